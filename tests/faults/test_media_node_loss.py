"""A room's media node killed with ``kill -9`` mid-call (rooms/placement.py): the room is
placed again on a live node, every participant is told ``rtc:moved`` and starts its media
there (the one whose live connection was on the dead node reconnects it elsewhere first),
chat history and presence stay whole. Own Redis, three ``consilium serve`` nodes, aiortc
participants whose live connections are on three different nodes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.faults.conftest import Clock, figures
from tests.support.live import Sock
from tests.support.media_nodes import (
    MovingPeer,
    all_decode,
    decoded_from,
    loopback_peers,
    placements,
)
from tests.support.nodes import cluster

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.media]


@pytest.fixture(autouse=True)
def _loopback() -> Iterator[None]:
    with loopback_peers():
        yield


async def test_media_comes_back_on_another_node_after_kill_9(tmp_path, redis_server):
    async with cluster(
        tmp_path,
        "medialoss",
        count=3,
        redis_url=redis_server.url,
        CONSILIUM_RTC_ALLOWED_ADDRESSES='["127.0.0.1"]',
    ) as c:
        host = await c.browser("requester")
        status, room = await host.call(
            "POST", c.nodes[0].url + "/api/v1/rooms", json={"kind": "estaff", "title": "RCP"}
        )
        assert status == 201, room
        rid = str(room["id"])
        for who in ("expert", "secretary"):
            status, body = await host.call(
                "POST",
                c.nodes[0].url + f"/api/v1/rooms/{rid}/members",
                json={"user_id": str(c.users[who].id), "role": "participant"},
            )
            assert status == 201, body
        cookies: dict[str, str] = {}
        peers: list[MovingPeer] = []
        for i, who in enumerate(("requester", "expert", "secretary")):
            cookies[who] = host.cookie if who == "requester" else (await c.browser(who)).cookie
            sock = await Sock(c.nodes[i].url, cookies[who]).connect()
            c.socks.append(sock)
            joined = await sock.ok("room:join", {"room_id": rid})
            peers.append(MovingPeer(who, sock, joined["participant_id"]))
        node_of = {p.name: c.nodes[i] for i, p in enumerate(peers)}
        try:
            for p in peers:
                await p.start()
            await all_decode(peers, frames=10)
            (media,) = {p.media_nodes[-1] for p in peers}
            dead = next(n for n in c.nodes if n.url.endswith(media))
            sent = []
            for p in peers:
                mid = str(uuid.uuid4())
                await p.sock.ok("chat:send", {"id": mid, "text": f"Avant la panne ({p.name})"})
                sent.append(mid)

            await dead.kill()
            clock = Clock()
            killed_at = time.monotonic()
            # whoever's live connection was on the dead node reconnects to another node (the
            # browser's Socket.IO client does that through the load balancer), same session
            alive_nodes = [n for n in c.nodes if n is not dead]
            for p in peers:
                if node_of[p.name] is dead:
                    await asyncio.wait_for(p.sock.disconnected.wait(), 30)
                    sock = await Sock(alive_nodes[0].url, cookies[p.name]).connect()
                    c.socks.append(sock)
                    back = await sock.ok("room:join", {"room_id": rid})
                    assert back["participant_id"] == p.id and back["resumed"] is True, back
                    node_of[p.name] = alive_nodes[0]
                    p.restart(sock=sock)

            # every peer starts its media again on the new media node
            first_frames: dict[tuple[str, str], float] = {}
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                for pair, n in decoded_from(peers).items():
                    a = next(p for p in peers if p.name == pair[0])
                    if n and pair not in first_frames and a.restarted_at is not None:
                        first_frames[pair] = time.monotonic() - killed_at
                if len(first_frames) == 6:
                    break
                await asyncio.sleep(0.05)
            assert len(first_frames) == 6, (first_frames, decoded_from(peers))
            await all_decode(peers, frames=10)
            moved_told = [t - killed_at for p in peers for t, _ in p.moved[:1]]
            new_media = {p.media_nodes[-1] for p in peers}
            assert len(new_media) == 1 and media not in new_media, new_media
            assert (await placements(c, redis_server.url)) == {rid: next(iter(new_media))}

            # chat: the history read on any node has every message, once
            mid = str(uuid.uuid4())
            await peers[1].sock.ok("chat:send", {"id": mid, "text": "Après la panne"})
            for p in peers:
                hist = await p.sock.ok("chat:history", {})
                ids = [m["id"] for m in hist["messages"]]
                assert sorted(ids) == sorted([*sent, mid]), ids
            # presence: three participants, each once, connected; nobody left
            status, body = await host.call("GET", alive_nodes[0].url + f"/api/v1/rooms/{rid}")
            assert status == 200, body
            assert body["occupancy"]["count"] == 3, body["occupancy"]
            joined = await peers[1].sock.ok("room:join", {"room_id": rid})
            listed = joined["participants"]
            assert sorted(p["participant_id"] for p in listed) == sorted(p.id for p in peers)
            assert all(p["connected"] for p in listed), listed
            for p in peers:
                assert not p.sock.events("participant:left"), p.sock.events("participant:left")
            figures(
                "media node kill -9",
                rtc_moved_after_s=min(moved_told) if moved_told else -1.0,
                media_back_first_pair_s=min(first_frames.values()),
                media_back_all_pairs_s=max(first_frames.values()),
                target_s=10.0,
                test_s=clock.since(),
            )
        finally:
            for p in peers:
                await p.close()
