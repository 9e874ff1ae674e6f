"""Presence entries carry their node, and nodes their heartbeat (real Redis): a dead node's
connected participants are swept at once, its moving ones after the grace period, a person
coming back takes over their ghost, and one node sweeps at a time."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from rooms.presence import Participant, RedisLiveState, new_participant_id
from tests.conftest import REDIS_URL, need

pytestmark = pytest.mark.redis


@pytest.fixture
async def redis() -> AsyncIterator[object]:
    need("redis", REDIS_URL)
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    prefix = f"consilium-liveness-{uuid.uuid4().hex[:8]}:"
    client.test_prefix = prefix  # type: ignore[attr-defined]
    yield client
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def person(room: str, node: str, subject: str, session: str, name: str) -> Participant:
    return Participant(
        id=new_participant_id(),
        room_id=room,
        key=session,
        subject_id=subject,
        kind="user",
        name=name,
        role="participant",
        sid=uuid.uuid4().hex,
        node=node,
    )


async def test_a_dead_nodes_participants_are_swept_and_a_returning_person_takes_their_ghost(
    redis,
):
    prefix = redis.test_prefix
    a, b = RedisLiveState(redis, prefix, "node-a"), RedisLiveState(redis, prefix, "node-b")
    assert not await a.heartbeat(6) and not await b.heartbeat(6)  # first beats
    assert await a.heartbeat(6)  # continued
    room = str(uuid.uuid4())
    claire = person(room, "node-b", "u-claire", "s1", "Claire")
    karim = person(room, "node-b", "u-karim", "s2", "Karim")
    moving = person(room, "node-b", "u-sophie", "s3", "Sophie")
    for p in (claire, karim, moving):
        await b.join(p, capacity=10, grace=10)
    await b.set_online("u-claire", claire.sid, "Claire", True)
    await b.mark_disconnected(room, moving.id, moving.sid, moving=True)

    # Alive: nothing is swept, nobody is a ghost.
    assert await a.sweep(grace=10, lock_seconds=0.05) == []
    assert await a.dead_nodes(["node-b"]) == frozenset()

    await redis.delete(f"{prefix}live:alive:node-b")  # node-b's heartbeat lapsed (kill -9)
    assert await a.dead_nodes(["node-b"]) == {"node-b"}
    assert "u-claire" not in await a.online_users()  # a dead node's list is ignored
    # Karim signs in again (a new session) on node-a: he takes over his ghost.
    back = await a.join(person(room, "node-a", "u-karim", "s9", "Karim"), 10, 10)
    assert back.resumed and back.participant.id == karim.id and back.previous_sid == ""
    # The sweeper removes the connected ghost, keeps the moving one (grace) and Karim.
    await redis.delete(f"{prefix}live:sweeper")  # the first sweep's turn is over
    swept = await a.sweep(grace=10, lock_seconds=0.05)
    assert [p.id for p in swept] == [claire.id]
    left = {p.id for p in await a.participants(room, grace=10)}
    assert left == {karim.id, moving.id}
    # Past the grace period the moving one goes too (its node is not there to expire it).
    await redis.delete(f"{prefix}live:sweeper")
    assert [p.id for p in await a.sweep(grace=0, lock_seconds=0.05)] == [moving.id]
    assert {p.id for p in await a.participants(room, grace=10)} == {karim.id}


async def test_one_node_sweeps_at_a_time(redis):
    prefix = redis.test_prefix
    a, c = RedisLiveState(redis, prefix, "node-a"), RedisLiveState(redis, prefix, "node-c")
    b = RedisLiveState(redis, prefix, "node-b")
    room = str(uuid.uuid4())
    await b.heartbeat(6)
    await b.join(person(room, "node-b", "u1", "s1", "Claire"), 10, 10)
    await redis.delete(f"{prefix}live:alive:node-b")
    first = await a.sweep(grace=10, lock_seconds=5)
    second = await c.sweep(grace=10, lock_seconds=5)
    assert len(first) == 1 and second == []


async def test_a_redis_that_lost_its_keys_gets_this_nodes_presence_back(redis):
    prefix = redis.test_prefix
    a = RedisLiveState(redis, prefix, "node-a")
    await a.heartbeat(6)
    room = str(uuid.uuid4())
    p = (await a.join(person(room, "node-a", "u1", "s1", "Claire"), 10, 10)).participant
    await a.update(room, p.id, media={"audio": True})
    keys = [k async for k in redis.scan_iter(match=prefix + "*")]
    await redis.delete(*keys)  # what a restart without persistence does
    assert not await a.heartbeat(6)  # noticed: the key it renews is gone
    assert await a.restore(a.mine[(room, p.id)])
    (back,) = await a.participants(room, grace=10)
    assert back.id == p.id and back.media.audio
    assert not await a.restore(a.mine[(room, p.id)])  # already there: left as it is


@pytest.fixture
async def settings(database_url, tmp_path):
    """The in-process server on Redis live state (for the moderation of a ghost)."""
    from tests.conftest import make_settings

    need("redis", REDIS_URL)
    s = make_settings(database_url, tmp_path / "data", redis_url=REDIS_URL)
    yield s
    import redis.asyncio as aioredis

    r = aioredis.from_url(REDIS_URL)
    keys = [k async for k in r.scan_iter(match=s.redis_prefix + "*")]
    if keys:
        await r.delete(*keys)
    await r.aclose()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_removing_a_ghost_bans_nobody(app, browsers, sockets, users):
    from rooms.live import Live
    from tests.rooms.test_moderation import estaff

    _host, room, h, _expert, e, pid = await estaff(browsers, sockets, users)
    # The expert's entry belongs to a node that died (no heartbeat): a ghost.
    await Live.of(app).state.update(room["id"], pid, node="node-that-died")
    ack = await h.ok("room:remove", {"participant_id": pid})
    assert ack["ghost"] is True
    left = await h.wait_for("participant:left", lambda d: d["participant_id"] == pid)
    assert left["reason"] == "timeout"
    assert not e.events("room:removed")
    again = await e.ok("room:join", {"room_id": room["id"]})  # not banned
    assert again["status"] == "joined"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_node_that_dropped_messages_tells_every_client_to_resync(
    app, browsers, sockets, users
):
    """Redis back, but this node's heartbeat has not noticed yet: what it publishes for the
    other nodes is dropped (its own clients get it locally), possibly after those nodes
    resynced their clients. Once it knows Redis is back it broadcasts ``live:resync`` to
    every client of every node, and the direct message is in the history, once."""
    from rooms.live import Live

    live = Live.of(app)
    manager = live.sio.manager
    claire, karim = await browsers("requester"), await browsers("expert")
    c, k = await sockets(claire), await sockets(karim)
    believed_down = manager.is_down
    manager.is_down = lambda: True  # the node's view between Redis' return and its heartbeat
    try:
        mid = str(uuid.uuid4())
        to = str(users["expert"].id)
        await c.ok("chat:direct", {"id": mid, "text": "Le compte rendu est prêt", "to_user": to})
        assert manager.dropped
    finally:
        manager.is_down = believed_down
    await k.wait_for("live:resync", timeout=30)  # the next heartbeat announces it
    assert not manager.dropped
    history = await k.ok("chat:history", {"with_user": str(users["requester"].id)})
    assert [m["id"] for m in history["messages"]] == [mid]
    await c.wait_for("live:resync", timeout=30)  # every client, the sender's too


async def test_the_same_person_through_another_session_replaces_a_live_entry(redis):
    """Another device, or a new sign-in while the old node's death is not known yet: the
    entry is taken over in the same write (the old connection is to be closed), so the
    person is never listed twice."""
    prefix = redis.test_prefix
    a, b = RedisLiveState(redis, prefix, "node-a"), RedisLiveState(redis, prefix, "node-b")
    await a.heartbeat(6)
    await b.heartbeat(6)
    room = str(uuid.uuid4())
    first = (await b.join(person(room, "node-b", "u-karim", "s1", "Karim"), 10, 10)).participant
    old_sid = first.sid
    back = await a.join(person(room, "node-a", "u-karim", "s2", "Karim"), 10, 10)
    assert back.resumed and back.participant.id == first.id
    assert back.previous_sid == old_sid  # alive as far as anyone knows: it gets closed
    (listed,) = await a.participants(room, grace=10)
    assert listed.node == "node-a" and listed.key == "s2" and listed.connected
    # the old connection's late disconnection changes nothing (it no longer owns the entry)
    assert not await b.mark_disconnected(room, first.id, old_sid)
    assert [p.id for p in await a.participants(room, grace=10)] == [first.id]
