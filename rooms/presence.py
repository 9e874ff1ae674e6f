"""Live state of rooms: who is inside (participants with media state), the lobby, admissions.

One interface, two implementations:

- :class:`MemoryLiveState`: process memory, for the embedded single-process server;
- :class:`RedisLiveState`: Redis, shared by every node, so presence and occupancy read from
  any node agree (``CONSILIUM_REDIS_URL``).

Mutations of one room are serialised (an asyncio lock, or a Redis lock) so that the capacity
check and the "one entry per identity" rule hold under concurrent joins on several nodes.
A participant whose connection dropped stays listed (``connected: false``) for the grace
period; :meth:`LiveState.participants` hides entries older than that even if the node that
should have removed them died.

Each entry names the node holding its connection. With Redis, every node keeps a heartbeat
key that expires unless renewed (:meth:`RedisLiveState.heartbeat`); when a node's heartbeat
lapses (a crash, ``kill -9``), another node removes its participants
(:meth:`RedisLiveState.sweep`, one sweeper at a time) and the room is told. A participant
coming back, even through a new session and before the loss is known, takes over its
ghost's entry in the same write: one person is never listed twice.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol


@dataclass
class MediaState:
    audio: bool = False
    video: bool = False
    screen: bool = False


@dataclass
class Participant:
    """One identity inside one room (stable across reconnects within the grace period)."""

    id: str
    room_id: str
    key: str  # what identifies a reconnect: the session id
    subject_id: str  # user id or guest id
    kind: Literal["user", "guest"]
    name: str
    role: Literal["host", "participant", "guest"]
    sid: str = ""  # current Socket.IO connection
    node: str = ""
    connected: bool = True
    since: float = field(default_factory=time.time)
    disconnected_at: float | None = None
    media: MediaState = field(default_factory=MediaState)
    hand_raised: bool = False
    muted_by_host: bool = False
    moving: bool = False  # its node is restarting: it is reconnecting to another one

    @property
    def key_of_subject(self) -> tuple[str, str]:
        return (self.kind, self.subject_id)

    def public(self) -> dict[str, Any]:
        """What other participants see."""
        return {
            "participant_id": self.id,
            "name": self.name,
            "role": self.role,
            "kind": self.kind,
            "subject_id": self.subject_id,
            "media": asdict(self.media),
            "hand_raised": self.hand_raised,
            "muted_by_host": self.muted_by_host,
            "connected": self.connected,
            "moving": self.moving,
        }

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Participant:
        d = json.loads(raw)
        d["media"] = MediaState(**d["media"])
        return cls(**d)


@dataclass
class LobbyEntry:
    guest_id: str
    name: str
    sid: str
    since: float = field(default_factory=time.time)

    def public(self) -> dict[str, Any]:
        return {"guest_id": self.guest_id, "name": self.name, "since": self.since}


class RoomFull(Exception):
    """The room holds as many participants as its capacity."""


@dataclass
class JoinResult:
    participant: Participant
    resumed: bool  # the identity was already listed (reconnect): not a new entry
    previous_sid: str  # the connection it replaces, if any


class LiveState(Protocol):
    async def join(self, p: Participant, capacity: int, grace: float) -> JoinResult: ...
    async def get(self, room_id: str, participant_id: str) -> Participant | None: ...
    async def participants(self, room_id: str, grace: float) -> list[Participant]: ...
    async def occupancy(
        self, room_ids: Iterable[str], grace: float
    ) -> dict[str, list[Participant]]: ...
    async def update(
        self, room_id: str, participant_id: str, **changes: Any
    ) -> Participant | None: ...
    async def mark_disconnected(
        self, room_id: str, participant_id: str, sid: str, *, moving: bool = False
    ) -> bool: ...
    async def remove(self, room_id: str, participant_id: str, *, only_if_sid: str = "") -> bool: ...
    async def clear_room(self, room_id: str) -> list[Participant]: ...
    async def lobby_add(self, room_id: str, entry: LobbyEntry) -> None: ...
    async def lobby_remove(self, room_id: str, guest_id: str) -> LobbyEntry | None: ...
    async def lobby(self, room_id: str) -> list[LobbyEntry]: ...
    async def admit(self, room_id: str, guest_id: str) -> None: ...
    async def is_admitted(self, room_id: str, guest_id: str) -> bool: ...
    async def set_online(self, user_id: str, sid: str, name: str, online: bool) -> None: ...
    async def online_users(self) -> dict[str, str]: ...


def _alive(p: Participant, grace: float, now: float) -> bool:
    return p.connected or (p.disconnected_at is not None and now - p.disconnected_at < grace + 5)


def _apply(p: Participant, changes: dict[str, Any]) -> None:
    for k, v in changes.items():
        if k == "media":
            for mk, mv in v.items():
                setattr(p.media, mk, mv)
        else:
            setattr(p, k, v)


def _join_into(
    current: dict[str, Participant],
    p: Participant,
    capacity: int,
    grace: float,
    dead_nodes: frozenset[str] = frozenset(),
) -> tuple[JoinResult, list[str]]:
    """The join decision on a room's current entries; returns the result and stale ids.

    The same session takes its entry back (a reconnect); so does the same person through
    another session (a new sign-in after a node crash, before that node's death is even
    known; another device): one person, one entry, never a ghost beside them. Entries
    without a live connection are taken first; a connection the entry still names is
    returned as ``previous_sid`` (the caller closes it: the newest connection wins)."""
    now = time.time()
    stale = [pid for pid, q in current.items() if not _alive(q, grace, now)]
    live = {pid: q for pid, q in current.items() if pid not in stale}
    same_session = [q for q in live.values() if q.key == p.key]
    same_person = sorted(
        (q for q in live.values() if q.key_of_subject == p.key_of_subject),
        key=lambda q: (q.connected and q.node not in dead_nodes, -q.since),
    )
    for q in same_session or same_person[:1]:
        previous = q.sid if q.connected and q.node not in dead_nodes else ""
        q.sid, q.node, q.connected, q.disconnected_at = p.sid, p.node, True, None
        q.key, q.name, q.moving = p.key, p.name, False
        return JoinResult(q, True, previous), stale
    if len(live) >= capacity:
        raise RoomFull
    return JoinResult(p, False, ""), stale


class MemoryLiveState:
    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, Participant]] = {}
        self._lobby: dict[str, dict[str, LobbyEntry]] = {}
        self._admitted: dict[str, set[str]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._online: dict[str, str] = {}  # "<user id>|<sid>" -> name

    def _lock(self, room_id: str) -> asyncio.Lock:
        return self._locks.setdefault(room_id, asyncio.Lock())

    async def join(self, p: Participant, capacity: int, grace: float) -> JoinResult:
        async with self._lock(p.room_id):
            room = self._rooms.setdefault(p.room_id, {})
            result, stale = _join_into(room, p, capacity, grace)
            for pid in stale:
                room.pop(pid, None)
            room[result.participant.id] = result.participant
            return result

    async def get(self, room_id: str, participant_id: str) -> Participant | None:
        return self._rooms.get(room_id, {}).get(participant_id)

    async def participants(self, room_id: str, grace: float) -> list[Participant]:
        now = time.time()
        return [p for p in self._rooms.get(room_id, {}).values() if _alive(p, grace, now)]

    async def occupancy(
        self, room_ids: Iterable[str], grace: float
    ) -> dict[str, list[Participant]]:
        return {r: await self.participants(r, grace) for r in room_ids}

    async def update(self, room_id: str, participant_id: str, **changes: Any) -> Participant | None:
        p = self._rooms.get(room_id, {}).get(participant_id)
        if p is not None:
            _apply(p, changes)
        return p

    async def mark_disconnected(
        self, room_id: str, participant_id: str, sid: str, *, moving: bool = False
    ) -> bool:
        p = self._rooms.get(room_id, {}).get(participant_id)
        if p is None or p.sid != sid:
            return False
        p.connected, p.disconnected_at, p.moving = False, time.time(), moving
        return True

    async def remove(self, room_id: str, participant_id: str, *, only_if_sid: str = "") -> bool:
        async with self._lock(room_id):
            room = self._rooms.get(room_id, {})
            p = room.get(participant_id)
            if p is None or (only_if_sid and (p.sid != only_if_sid or p.connected)):
                return False
            del room[participant_id]
            return True

    async def clear_room(self, room_id: str) -> list[Participant]:
        self._lobby.pop(room_id, None)
        self._admitted.pop(room_id, None)
        return list(self._rooms.pop(room_id, {}).values())

    async def lobby_add(self, room_id: str, entry: LobbyEntry) -> None:
        self._lobby.setdefault(room_id, {})[entry.guest_id] = entry

    async def lobby_remove(self, room_id: str, guest_id: str) -> LobbyEntry | None:
        return self._lobby.get(room_id, {}).pop(guest_id, None)

    async def lobby(self, room_id: str) -> list[LobbyEntry]:
        return list(self._lobby.get(room_id, {}).values())

    async def admit(self, room_id: str, guest_id: str) -> None:
        self._admitted.setdefault(room_id, set()).add(guest_id)

    async def is_admitted(self, room_id: str, guest_id: str) -> bool:
        return guest_id in self._admitted.get(room_id, set())

    async def set_online(self, user_id: str, sid: str, name: str, online: bool) -> None:
        if online:
            self._online[f"{user_id}|{sid}"] = name
        else:
            self._online.pop(f"{user_id}|{sid}", None)

    async def online_users(self) -> dict[str, str]:
        return {k.split("|", 1)[0]: v for k, v in self._online.items()}


class RedisLiveState:
    """Keys (all under the deployment prefix): ``live:room:<id>`` hash participant id → JSON,
    ``live:lobby:<id>`` hash guest id → JSON, ``live:admitted:<id>`` set of guest ids;
    per node: ``live:alive:<node>`` its heartbeat (expires), ``live:node-rooms:<node>`` the
    rooms where it holds participants, ``live:online:<node>`` its signed-in connections;
    ``live:nodes`` the nodes that may hold any of those."""

    TTL = 24 * 3600  # a forgotten room's live keys do not outlive a day

    def __init__(self, redis: Any, prefix: str, node: str = "") -> None:
        self.redis = redis
        self.prefix = prefix + "live:"
        self.node = node
        # This node's own entries as last written here: what it puts back if Redis loses them.
        self.mine: dict[tuple[str, str], Participant] = {}

    def _remember(self, p: Participant) -> None:
        if p.node == self.node:
            self.mine[(p.room_id, p.id)] = p
        else:
            self.mine.pop((p.room_id, p.id), None)

    def _alive_key(self, node: str) -> str:
        return f"{self.prefix}alive:{node}"

    def _node_rooms(self, node: str) -> str:
        return f"{self.prefix}node-rooms:{node}"

    # -- node liveness -------------------------------------------------------------------

    async def heartbeat(self, ttl: float) -> bool:
        """Renew this node's heartbeat; False when it had lapsed or Redis lost it (a restart):
        then the caller puts this node's presence back (:meth:`restore`)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._alive_key(self.node), str(time.time()), px=int(ttl * 1000), get=True)
            pipe.sadd(f"{self.prefix}nodes", self.node)
            previous, _ = await pipe.execute()
        return previous is not None

    async def retire(self) -> None:
        """This node stops: its heartbeat ends now rather than when it expires."""
        await self.redis.delete(self._alive_key(self.node), f"{self.prefix}online:{self.node}")

    async def dead_nodes(self, nodes: Iterable[str]) -> frozenset[str]:
        ids = sorted({n for n in nodes if n and n != self.node})
        if not ids:
            return frozenset()
        beats = await self.redis.mget([self._alive_key(n) for n in ids])
        return frozenset(n for n, b in zip(ids, beats, strict=True) if b is None)

    async def sweep(self, grace: float, lock_seconds: float) -> list[Participant]:
        """Remove the participants of nodes whose heartbeat lapsed: at once when they were
        connected (ghosts), after the grace period when they had left to reconnect (a
        draining node's participants keep their place that long). One node sweeps at a
        time (a lock that expires on its own); the removed entries are returned so that the
        caller tells their rooms."""
        lock = f"{self.prefix}sweeper"
        if not await self.redis.set(lock, self.node, nx=True, px=int(lock_seconds * 1000)):
            return []
        nodes = {_text(n) for n in await self.redis.smembers(f"{self.prefix}nodes")}
        removed: list[Participant] = []
        for node in await self.dead_nodes(nodes):
            rooms = {_text(r) for r in await self.redis.smembers(self._node_rooms(node))}
            for room_id in rooms:
                gone, kept = await self._sweep_room(room_id, node, grace)
                removed += gone
                if not kept:
                    await self.redis.srem(self._node_rooms(node), room_id)
            if not await self.redis.scard(self._node_rooms(node)):
                await self.redis.srem(f"{self.prefix}nodes", node)
                await self.redis.delete(f"{self.prefix}online:{node}")
        return removed

    async def forget_previous_life(self, grace: float) -> list[Participant]:
        """At start, before the first heartbeat: entries under this node's id are a previous
        process's (a worker or unit restarted with the same node id, maybe before its
        heartbeat lapsed, so no other node took it for dead). Its connected participants are
        ghosts, removed now (and returned, to tell their rooms); its signed-in connections
        are gone."""
        removed: list[Participant] = []
        rooms = {_text(r) for r in await self.redis.smembers(self._node_rooms(self.node))}
        for room_id in rooms:
            gone, kept = await self._sweep_room(room_id, self.node, grace)
            removed += gone
            if not kept:
                await self.redis.srem(self._node_rooms(self.node), room_id)
        await self.redis.delete(f"{self.prefix}online:{self.node}")
        return removed

    async def _sweep_room(
        self, room_id: str, node: str, grace: float
    ) -> tuple[list[Participant], bool]:
        async with self._locked(room_id):
            now = time.time()
            mine = [p for p in (await self._all(room_id)).values() if p.node == node]
            gone = [
                p
                for p in mine
                if p.connected or p.disconnected_at is None or now - p.disconnected_at >= grace
            ]
            if gone:
                await self.redis.hdel(self._room(room_id), *[p.id for p in gone])
            return gone, len(gone) < len(mine)

    async def restore(self, p: Participant) -> bool:
        """Put back an entry of this node that Redis lost (a restart); True if it was missing."""
        async with self._locked(p.room_id):
            key = self._room(p.room_id)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hsetnx(key, p.id, p.to_json())
                pipe.expire(key, self.TTL)
                pipe.sadd(self._node_rooms(p.node), p.room_id)
                added, _, _ = await pipe.execute()
        self._remember(p)
        return bool(added)

    def _room(self, room_id: str) -> str:
        return f"{self.prefix}room:{room_id}"

    @asynccontextmanager
    async def _locked(self, room_id: str) -> AsyncIterator[None]:
        async with self.redis.lock(
            f"{self.prefix}lock:{room_id}", timeout=5, blocking_timeout=5, sleep=0.005
        ):
            yield

    async def _all(self, room_id: str) -> dict[str, Participant]:
        raw = await self.redis.hgetall(self._room(room_id))
        return {
            (k.decode() if isinstance(k, bytes) else k): Participant.from_json(v)
            for k, v in raw.items()
        }

    async def join(self, p: Participant, capacity: int, grace: float) -> JoinResult:
        async with self._locked(p.room_id):
            current = await self._all(p.room_id)
            dead = await self.dead_nodes(q.node for q in current.values())
            result, stale = _join_into(current, p, capacity, grace, dead)
            key = self._room(p.room_id)
            async with self.redis.pipeline(transaction=True) as pipe:
                if stale:
                    pipe.hdel(key, *stale)
                pipe.hset(key, result.participant.id, result.participant.to_json())
                pipe.expire(key, self.TTL)
                pipe.sadd(self._node_rooms(result.participant.node), p.room_id)
                await pipe.execute()
            self._remember(result.participant)
            return result

    async def get(self, room_id: str, participant_id: str) -> Participant | None:
        raw = await self.redis.hget(self._room(room_id), participant_id)
        return Participant.from_json(raw) if raw else None

    async def participants(self, room_id: str, grace: float) -> list[Participant]:
        now = time.time()
        return [p for p in (await self._all(room_id)).values() if _alive(p, grace, now)]

    async def occupancy(
        self, room_ids: Iterable[str], grace: float
    ) -> dict[str, list[Participant]]:
        ids = list(room_ids)
        if not ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for r in ids:
                pipe.hgetall(self._room(r))
            results = await pipe.execute()
        now = time.time()
        out: dict[str, list[Participant]] = {}
        for r, raw in zip(ids, results, strict=True):
            ps = [Participant.from_json(v) for v in raw.values()]
            out[r] = [p for p in ps if _alive(p, grace, now)]
        return out

    async def update(self, room_id: str, participant_id: str, **changes: Any) -> Participant | None:
        async with self._locked(room_id):
            p = await self.get(room_id, participant_id)
            if p is None:
                return None
            _apply(p, changes)
            await self.redis.hset(self._room(room_id), participant_id, p.to_json())
            self._remember(p)
            return p

    async def mark_disconnected(
        self, room_id: str, participant_id: str, sid: str, *, moving: bool = False
    ) -> bool:
        async with self._locked(room_id):
            p = await self.get(room_id, participant_id)
            if p is None or p.sid != sid:
                return False
            p.connected, p.disconnected_at, p.moving = False, time.time(), moving
            await self.redis.hset(self._room(room_id), participant_id, p.to_json())
            self.mine.pop((room_id, participant_id), None)
            return True

    async def remove(self, room_id: str, participant_id: str, *, only_if_sid: str = "") -> bool:
        async with self._locked(room_id):
            p = await self.get(room_id, participant_id)
            self.mine.pop((room_id, participant_id), None)
            if p is None or (only_if_sid and (p.sid != only_if_sid or p.connected)):
                return False
            await self.redis.hdel(self._room(room_id), participant_id)
            return True

    async def clear_room(self, room_id: str) -> list[Participant]:
        async with self._locked(room_id):
            ps = list((await self._all(room_id)).values())
            for p in ps:
                self.mine.pop((room_id, p.id), None)
            await self.redis.delete(
                self._room(room_id),
                f"{self.prefix}lobby:{room_id}",
                f"{self.prefix}admitted:{room_id}",
            )
            return ps

    async def lobby_add(self, room_id: str, entry: LobbyEntry) -> None:
        key = f"{self.prefix}lobby:{room_id}"
        await self.redis.hset(key, entry.guest_id, json.dumps(asdict(entry)))
        await self.redis.expire(key, self.TTL)

    async def lobby_remove(self, room_id: str, guest_id: str) -> LobbyEntry | None:
        key = f"{self.prefix}lobby:{room_id}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(key, guest_id)
            pipe.hdel(key, guest_id)
            raw, _ = await pipe.execute()
        return LobbyEntry(**json.loads(raw)) if raw else None

    async def lobby(self, room_id: str) -> list[LobbyEntry]:
        raw = await self.redis.hgetall(f"{self.prefix}lobby:{room_id}")
        return [LobbyEntry(**json.loads(v)) for v in raw.values()]

    async def admit(self, room_id: str, guest_id: str) -> None:
        key = f"{self.prefix}admitted:{room_id}"
        await self.redis.sadd(key, guest_id)
        await self.redis.expire(key, self.TTL)

    async def is_admitted(self, room_id: str, guest_id: str) -> bool:
        return bool(await self.redis.sismember(f"{self.prefix}admitted:{room_id}", guest_id))

    async def set_online(self, user_id: str, sid: str, name: str, online: bool) -> None:
        key = f"{self.prefix}online:{self.node}"
        if online:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, f"{user_id}|{sid}", name)
                pipe.sadd(f"{self.prefix}nodes", self.node)
                await pipe.execute()
        else:
            await self.redis.hdel(key, f"{user_id}|{sid}")

    async def online_users(self) -> dict[str, str]:
        """Signed-in people connected to a live node (a dead node's list is ignored)."""
        nodes = {_text(n) for n in await self.redis.smembers(f"{self.prefix}nodes")}
        dead = await self.dead_nodes(nodes)
        out = {}
        for node in sorted(nodes - dead):
            raw = await self.redis.hgetall(f"{self.prefix}online:{node}")
            for k, v in raw.items():
                out[_text(k).split("|", 1)[0]] = _text(v)
        return out


def _text(v: str | bytes) -> str:
    return v.decode() if isinstance(v, bytes) else v


def new_participant_id() -> str:
    return uuid.uuid4().hex
