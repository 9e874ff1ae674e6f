"""Rooms' media placed on one node of several (rooms/placement.py): real ``consilium serve``
nodes on one PostgreSQL and one Redis, aiortc participants whose live connections land on
different nodes. A room's media runs on exactly one node; the others relay the signalling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.conftest import PG_URL, REDIS_URL, need
from tests.support.live import Sock
from tests.support.media_nodes import (
    MovingPeer,
    all_decode,
    loopback_peers,
    media_loads,
    placements,
)
from tests.support.nodes import Cluster, cluster, two_nodes

pytestmark = [pytest.mark.media, pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _loopback() -> Iterator[None]:
    with loopback_peers():
        yield


LOOPBACK = '["127.0.0.1"]'


async def room_of(c: Cluster, title: str, *members: str) -> str:
    host = await c.browser("requester")
    status, room = await host.call(
        "POST", c.nodes[0].url + "/api/v1/rooms", json={"kind": "estaff", "title": title}
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


async def enter(c: Cluster, who: str, node: int, rid: str) -> MovingPeer:
    browser = await c.browser(who)
    sock = await Sock(c.nodes[node].url, browser.cookie).connect()
    c.socks.append(sock)
    joined = await sock.ok("room:join", {"room_id": rid})
    return MovingPeer(who, sock, joined["participant_id"])


async def wait_until(predicate, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def test_three_participants_on_three_nodes_share_one_media_node(tmp_path):
    need("database", PG_URL)
    need("redis", REDIS_URL)
    async with cluster(tmp_path, "place3", count=3, CONSILIUM_RTC_ALLOWED_ADDRESSES=LOOPBACK) as c:
        assert len(c.nodes) == 3
        rid = await room_of(c, "RCP trois sites", "expert", "secretary")
        peers = [
            await enter(c, who, i, rid)
            for i, who in enumerate(("requester", "expert", "secretary"))
        ]
        try:
            for p in peers:
                await p.start()
            await all_decode(peers, frames=10)
            # one media node for the room, whatever node each live connection reached
            media = {p.media_nodes[-1] for p in peers}
            assert len(media) == 1, media
            (node,) = media
            assert (await placements(c, REDIS_URL)) == {rid: node}

            async def one_node_runs_it() -> bool:
                loads = await media_loads(c, REDIS_URL)
                rooms = {n: (v or {}).get("rooms", 0) for n, v in loads.items()}
                return rooms == {n: (1 if n == node else 0) for n in rooms}

            await wait_until(one_node_runs_it)
            # a push of the media node (rtc:stats) reaches each participant on its own node
            for p in peers:
                await p.sock.wait_for("rtc:stats", timeout=30)
        finally:
            for p in peers:
                await p.close()


async def test_two_rooms_spread_over_two_nodes_by_load(tmp_path):
    async with two_nodes(tmp_path, "spread", CONSILIUM_RTC_ALLOWED_ADDRESSES=LOOPBACK) as c:
        first = await room_of(c, "Salle 1", "expert")
        second = await room_of(c, "Salle 2", "secretary", "expert")
        # every live connection reaches node 0; the second room still goes to node 1
        peers1 = [await enter(c, w, 0, first) for w in ("requester", "expert")]
        peers2 = [await enter(c, w, 0, second) for w in ("secretary", "expert")]
        try:
            for p in peers1:
                await p.start()
            await all_decode(peers1, frames=5)
            for p in peers2:
                await p.start()
            await all_decode(peers2, frames=5)
            await all_decode(peers1, frames=15)
            where = await placements(c, REDIS_URL)
            assert where[first] != where[second], where
            assert {where[first], where[second]} == {n.url.removeprefix("http://") for n in c.nodes}
            assert {p.media_nodes[-1] for p in peers1} == {where[first]}
            assert {p.media_nodes[-1] for p in peers2} == {where[second]}
        finally:
            for p in peers1 + peers2:
                await p.close()
