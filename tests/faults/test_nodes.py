"""Nodes dying and stopping: a node killed with ``kill -9`` leaves no ghost (its participants
are removed within seconds and their rooms told; one coming back takes its ghost's place),
and a node stopped with SIGTERM moves its clients at once, keeps who they are and exits
within seconds. Each test runs its own Redis and its own two nodes."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.faults.conftest import Clock, figures
from tests.support.live import Sock
from tests.support.nodes import Cluster, cluster

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


async def _room_with(c: Cluster, *members: str) -> str:
    host = await c.browser("requester")
    status, room = await host.call(
        "POST", c.nodes[0].url + "/api/v1/rooms", json={"kind": "estaff", "title": "RCP"}
    )
    assert status == 201, room
    for who in members:
        status, body = await host.call(
            "POST",
            c.nodes[0].url + f"/api/v1/rooms/{room['id']}/members",
            json={"user_id": str(c.users[who].id), "role": "participant"},
        )
        assert status == 201, body
    return str(room["id"])


async def _join(c: Cluster, url: str, cookie: str, rid: str) -> tuple[Sock, dict]:
    sock = await Sock(url, cookie).connect()
    c.socks.append(sock)
    return sock, await sock.ok("room:join", {"room_id": rid})


async def test_a_killed_node_leaves_no_ghost(tmp_path, redis_server):
    async with cluster(tmp_path, "kill", redis_url=redis_server.url) as c:
        a, b = c.nodes
        rid = await _room_with(c, "expert", "secretary")
        host, expert, secretary = [await c.browser(w) for w in ("requester", "expert", "secretary")]
        h, _ = await _join(c, a.url, host.cookie, rid)
        _, e_ack = await _join(c, b.url, expert.cookie, rid)
        _, s_ack = await _join(c, b.url, secretary.cookie, rid)
        e_pid, s_pid = e_ack["participant_id"], s_ack["participant_id"]

        # The room listing, read over and over from before the kill until the ghosts are
        # gone: the returning person must never be listed twice, not even for a moment.
        listings: list[list[str]] = []
        watching = True

        async def watch() -> None:
            while watching:
                status, body = await host.call("GET", a.url + f"/api/v1/rooms/{rid}")
                assert status == 200, body
                listings.append([p["name"] for p in body["occupancy"]["participants"]])
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch())
        await b.kill()
        clock = Clock()
        # The expert signs in again on the surviving node at once (before the node's death
        # can be known): the new connection takes the ghost's entry in the same write.
        again = await c.browser("expert")
        _, back = await _join(c, a.url, again.cookie, rid)
        assert back["participant_id"] == e_pid and back["resumed"] is True, back
        names_at_return = [p["name"] for p in back["participants"]]
        assert names_at_return.count("Dr Karim Benali") == 1, names_at_return

        # The ghosts are removed within seconds and the room is told.
        left = await h.wait_for(
            "participant:left", lambda d: d["participant_id"] == s_pid, timeout=30
        )
        removed_after = clock.since()
        assert left["reason"] == "timeout"
        watching = False
        await watcher
        seen_twice = [n for n in listings if n.count("Dr Karim Benali") > 1]
        assert len(listings) > 3 and not seen_twice, seen_twice
        assert not [d for d in h.events("participant:left") if d["participant_id"] == e_pid]
        status, body = await host.call("GET", a.url + f"/api/v1/rooms/{rid}")
        assert status == 200 and body["occupancy"]["count"] == 2, body
        online = await h.ok("presence:online")
        assert "Sophie" not in str(online["users"]), online
        joined = await h.ok("room:join", {"room_id": rid})
        names = [p["name"] for p in joined["participants"]]
        assert names.count("Dr Karim Benali") == 1, names
        ghosts = [p for p in joined["participants"] if p["participant_id"] == s_pid]
        figures(
            "node kill -9",
            ghost_removed_after_s=removed_after,
            ghosts_left=len(ghosts),
            duplicated=names.count("Dr Karim Benali") - 1,
            listings_read=len(listings),
            listings_with_him_twice=len(seen_twice),
        )
        assert not ghosts


async def test_sigterm_moves_clients_keeps_their_identity_and_exits_quickly(tmp_path, redis_server):
    async with cluster(tmp_path, "drain", redis_url=redis_server.url) as c:
        a, b = c.nodes
        rid = await _room_with(c, "expert")
        host, expert = await c.browser("requester"), await c.browser("expert")
        h, _ = await _join(c, a.url, host.cookie, rid)
        e, e_ack = await _join(c, b.url, expert.cookie, rid)
        e_pid = e_ack["participant_id"]

        assert b.proc is not None
        clock = Clock()
        b.proc.send_signal(signal.SIGTERM)
        await e.wait_for("server:draining", timeout=10)
        told_after = clock.since()
        await asyncio.wait_for(e.disconnected.wait(), 10)
        moving = await h.wait_for(
            "participant:updated",
            lambda d: d["participant"]["participant_id"] == e_pid and d["participant"]["moving"],
            timeout=10,
        )
        assert moving["participant"]["connected"] is False
        # The client reconnects elsewhere with the same session: the same participant.
        _, back = await _join(c, a.url, expert.cookie, rid)
        moved_after = clock.since()
        assert back["participant_id"] == e_pid and back["resumed"] is True
        code = await asyncio.wait_for(b.proc.wait(), 30)
        exit_after = clock.since()
        log = b.log.read_text()
        assert code == 0, log[-2000:]
        assert "ConnectionError" not in log, log[-2000:]
        assert not [d for d in h.events("participant:left") if d["participant_id"] == e_pid]
        figures(
            "SIGTERM drain",
            told_after_s=told_after,
            back_on_other_node_after_s=moved_after,
            process_exit_after_s=exit_after,
            identities_lost=0,
        )
        assert exit_after < 10, exit_after  # was 13-15 s; the figure above is what counts
