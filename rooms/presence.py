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
    async def mark_disconnected(self, room_id: str, participant_id: str, sid: str) -> bool: ...
    async def remove(self, room_id: str, participant_id: str, *, only_if_sid: str = "") -> bool: ...
    async def clear_room(self, room_id: str) -> list[Participant]: ...
    async def lobby_add(self, room_id: str, entry: LobbyEntry) -> None: ...
    async def lobby_remove(self, room_id: str, guest_id: str) -> LobbyEntry | None: ...
    async def lobby(self, room_id: str) -> list[LobbyEntry]: ...
    async def admit(self, room_id: str, guest_id: str) -> None: ...
    async def is_admitted(self, room_id: str, guest_id: str) -> bool: ...


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
    current: dict[str, Participant], p: Participant, capacity: int, grace: float
) -> tuple[JoinResult, list[str]]:
    """The join decision on a room's current entries; returns the result and stale ids."""
    now = time.time()
    stale = [pid for pid, q in current.items() if not _alive(q, grace, now)]
    live = {pid: q for pid, q in current.items() if pid not in stale}
    for q in live.values():
        if q.key == p.key:
            previous = q.sid if q.connected else ""
            q.sid, q.node, q.connected, q.disconnected_at = p.sid, p.node, True, None
            q.name = p.name
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

    async def mark_disconnected(self, room_id: str, participant_id: str, sid: str) -> bool:
        p = self._rooms.get(room_id, {}).get(participant_id)
        if p is None or p.sid != sid:
            return False
        p.connected, p.disconnected_at = False, time.time()
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


class RedisLiveState:
    """Keys (all under the deployment prefix): ``live:room:<id>`` hash participant id → JSON,
    ``live:lobby:<id>`` hash guest id → JSON, ``live:admitted:<id>`` set of guest ids."""

    TTL = 24 * 3600  # a forgotten room's live keys do not outlive a day

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix + "live:"

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
            result, stale = _join_into(await self._all(p.room_id), p, capacity, grace)
            key = self._room(p.room_id)
            async with self.redis.pipeline(transaction=True) as pipe:
                if stale:
                    pipe.hdel(key, *stale)
                pipe.hset(key, result.participant.id, result.participant.to_json())
                pipe.expire(key, self.TTL)
                await pipe.execute()
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
            return p

    async def mark_disconnected(self, room_id: str, participant_id: str, sid: str) -> bool:
        async with self._locked(room_id):
            p = await self.get(room_id, participant_id)
            if p is None or p.sid != sid:
                return False
            p.connected, p.disconnected_at = False, time.time()
            await self.redis.hset(self._room(room_id), participant_id, p.to_json())
            return True

    async def remove(self, room_id: str, participant_id: str, *, only_if_sid: str = "") -> bool:
        async with self._locked(room_id):
            p = await self.get(room_id, participant_id)
            if p is None or (only_if_sid and (p.sid != only_if_sid or p.connected)):
                return False
            await self.redis.hdel(self._room(room_id), participant_id)
            return True

    async def clear_room(self, room_id: str) -> list[Participant]:
        async with self._locked(room_id):
            ps = list((await self._all(room_id)).values())
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


def new_participant_id() -> str:
    return uuid.uuid4().hex
