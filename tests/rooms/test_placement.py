"""Room placement on the real Redis (rooms/placement.py), without media: atomic placement,
spreading by load, a lost node's rooms placed again once, a node back taking rooms again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from rooms.nodes import NodeSettings
from rooms.placement import Placement
from tests.conftest import REDIS_URL, need

pytestmark = [pytest.mark.redis]


@pytest.fixture
async def redis() -> AsyncIterator[Any]:
    import redis.asyncio as aioredis

    need("redis", REDIS_URL)
    r = aioredis.from_url(REDIS_URL)
    yield r
    await r.aclose()


@pytest.fixture
def prefix() -> str:
    return f"consilium-place-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
async def cleanup(redis: Any, prefix: str) -> AsyncIterator[None]:
    yield
    keys = [k async for k in redis.scan_iter(match=prefix + "*")]
    if keys:
        await redis.delete(*keys)


class Node:
    """A Placement and the node bus subscription a live node has (a killed one has none)."""

    def __init__(self, redis: Any, prefix: str, name: str) -> None:
        self.p = Placement(redis, prefix, name, NodeSettings(heartbeat_seconds=1, ttl_seconds=6))
        self.redis, self.name = redis, name
        self.moves: list[tuple[str, str, str]] = []
        self.pubsub: Any = None
        self.score = 0.0  # announced load, fixed (the real one measures this process's CPU)
        self.p.figures = lambda: {"score": self.score}  # type: ignore[method-assign]

        async def moved(room: str, new: str, old: str) -> None:
            self.moves.append((room, new, old))

        self.p.on_moved = moved

    async def start(self) -> Node:
        self.pubsub = self.redis.pubsub()
        await self.pubsub.subscribe(self.p.bus_channel + self.name)
        await self.p.announce()
        return self

    async def kill(self) -> None:
        await self.pubsub.aclose()


async def test_one_room_is_placed_once_even_when_every_node_asks_at_once(redis, prefix, cleanup):
    nodes = [await Node(redis, prefix, f"n{i}").start() for i in range(3)]
    try:
        for _ in range(20):
            room = str(uuid.uuid4())
            owners = await asyncio.gather(*(n.p.place(room) for n in nodes))
            assert len({o for o, _ in owners}) == 1, owners
            assert all(previous == "" for _, previous in owners)
    finally:
        for n in nodes:
            await n.kill()


async def test_rooms_spread_by_load_and_the_asker_keeps_a_near_tie(redis, prefix, cleanup):
    a, b = [await Node(redis, prefix, n).start() for n in ("a", "b")]
    try:
        assert (await a.p.place("room-1"))[0] == "a"  # a tie: the asking node
        assert (await a.p.place("room-2"))[0] == "b"  # a has one room more
        assert (await b.p.place("room-3"))[0] == "b"  # tie again (one each): b asks
        b.score = 3.0  # b gets busy (60 published tracks, say)
        await b.p.announce()
        assert (await b.p.place("room-4"))[0] == "a"
    finally:
        await a.kill()
        await b.kill()


async def test_a_lost_nodes_rooms_are_placed_again_once_and_it_takes_rooms_when_back(
    redis, prefix, cleanup
):
    a, b, c = [await Node(redis, prefix, n).start() for n in ("a", "b", "c")]
    try:
        rooms = [f"room-{i}" for i in range(4)]
        for r in rooms:
            await a.p.redis.hset(a.p.rooms_key, r, "a")
        await a.kill()  # kill -9: its bus subscription is gone, its announcement not yet
        for _ in range(4):  # SILENT_TICKS ticks of both survivors, interleaved
            await asyncio.gather(b.p.tick(), c.p.tick())
        where = await b.p.placements()
        assert set(where) == set(rooms) and "a" not in where.values(), where
        assert sorted(where.values()) == ["b", "b", "c", "c"], where  # spread
        told = b.moves + c.moves
        assert sorted(m[0] for m in told) == rooms, told  # each room told once
        assert all(old == "a" for _, _, old in told)
        assert await redis.get(a.p.load_prefix + "a") is None

        # a comes back (same id): it announces itself and takes the next new room
        back = await Node(redis, prefix, "a").start()
        assert (await back.p.place("room-new"))[0] == "a"
        await back.kill()
    finally:
        await b.kill()
        await c.kill()


async def test_a_slow_node_keeps_its_rooms_and_a_node_runs_no_room_placed_elsewhere(
    redis, prefix, cleanup
):
    a, b = [await Node(redis, prefix, n).start() for n in ("a", "b")]
    try:
        await redis.hset(a.p.rooms_key, "room-1", "a")
        await redis.delete(a.p.load_prefix + "a")  # announcement lapsed, still listening
        for _ in range(4):
            await b.p.tick()
        assert await b.p.owner("room-1") == "a" and not b.moves

        # a room b runs but that is placed on a: b closes its media there
        evicted: list[str] = []

        async def evict(room: str) -> None:
            evicted.append(room)

        b.p.running = lambda: {"room-1"}
        b.p.evict = evict
        await b.p.tick()
        assert evicted == ["room-1"]
    finally:
        await a.kill()
        await b.kill()
