"""Two real ``consilium serve`` processes sharing PostgreSQL and Redis: chat, presence,
moderation and occupancy cross nodes."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.support.live import Sock
from tests.support.nodes import two_nodes

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


async def test_chat_presence_moderation_and_occupancy_cross_two_nodes(tmp_path):
    async with two_nodes(tmp_path, "2n", CONSILIUM_ROOM_GRACE_SECONDS="2") as c:
        users, socks, browser, nodes = c.users, c.socks, c.browser, c.nodes
        a_url, b_url = nodes[0].url, nodes[1].url

        host, expert = await browser("requester"), await browser("expert")
        status, room = await host.call(
            "POST", a_url + "/api/v1/rooms", json={"kind": "estaff", "title": "RCP inter-sites"}
        )
        assert status == 201, room
        rid = room["id"]
        status, _ = await host.call(
            "POST",
            b_url + f"/api/v1/rooms/{rid}/members",
            json={"user_id": str(users["expert"].id), "role": "participant"},
        )
        assert status == 201

        # Presence across nodes: host on node 1, expert on node 2.
        h = await Sock(a_url, host.cookie).connect()
        e = await Sock(b_url, expert.cookie).connect()
        socks += [h, e]
        await h.ok("room:join", {"room_id": rid})
        joined = await e.ok("room:join", {"room_id": rid})
        assert sorted(p["name"] for p in joined["participants"]) == [
            "Dr Claire Martin",
            "Dr Karim Benali",
        ]
        online = await h.ok("presence:online")
        assert [u["name"] for u in online["users"]] == ["Dr Karim Benali"]
        seen = await h.wait_for("participant:joined")
        assert seen["participant"]["name"] == "Dr Karim Benali"

        # Occupancy read from either node agrees.
        occ = []
        for url in (a_url, b_url):
            status, body = await host.call("GET", url + f"/api/v1/rooms/{rid}")
            occ.append(body["occupancy"])
        assert occ[0] == occ[1] and occ[0]["count"] == 2

        # Chat across nodes, stored once.
        mid = str(uuid.uuid4())
        await e.ok("chat:send", {"id": mid, "text": "Bonjour depuis le nœud 2"})
        got = await h.wait_for("chat:message")
        assert got["id"] == mid
        await e.ok("chat:send", {"id": mid, "text": "Bonjour depuis le nœud 2"})
        hist = await h.ok("chat:history", {})
        assert [m["id"] for m in hist["messages"]] == [mid]

        # Moderation across nodes: mute, then remove (the connection on node 2 is closed).
        await h.ok("room:mute", {"participant_id": joined["participant_id"]})
        await e.wait_for("room:muted")
        await h.ok("room:remove", {"participant_id": joined["participant_id"]})
        await e.wait_for("room:removed")
        await asyncio.wait_for(e.disconnected.wait(), 5)
        left = await h.wait_for("participant:left")
        assert left["reason"] == "removed"
        e2 = await Sock(b_url, expert.cookie).connect()
        socks.append(e2)
        assert (await e2.call("room:join", {"room_id": rid}))["error"]["code"] == "removed"
        for url in (a_url, b_url):
            status, body = await host.call("GET", url + f"/api/v1/rooms/{rid}")
            assert body["occupancy"]["count"] == 1
