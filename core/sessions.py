"""Server-side sessions behind an HttpOnly cookie, kept in the database; with Redis configured,
Redis is a read-through cache in front of it, so that losing Redis signs nobody out.

The cookie carries a random token; the store keys the session by the token's SHA-256, so a
leaked database or Redis dump holds no usable cookie. A session is ``stage="mfa"`` between
the password and the second factor, then ``stage="full"``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import JSON, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, Database, UTCDateTime, utcnow

log = logging.getLogger(__name__)

COOKIE = "consilium_session"
CSRF_HEADER = "X-CSRF-Token"
# Between the password and the second factor: long enough to fetch a code, no longer.
MFA_LIFETIME = timedelta(minutes=10)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionRow(Base):
    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie token
    kind: Mapped[str] = mapped_column(String(10))  # user | guest
    subject_id: Mapped[uuid.UUID] = mapped_column(index=True)
    stage: Mapped[str] = mapped_column(String(10))  # mfa | full
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


@dataclass
class SessionData:
    id: str
    kind: str
    subject_id: uuid.UUID
    stage: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str = ""
    user_agent: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class SessionStore(Protocol):
    async def put(self, s: SessionData) -> None: ...
    async def get(self, session_id: str) -> SessionData | None: ...
    async def delete(self, session_id: str) -> None: ...
    async def delete_for_subject(self, subject_id: uuid.UUID) -> None: ...


class DbSessionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, s: SessionData) -> None:
        async with self.db.write() as uow:
            await uow.session.merge(SessionRow(**asdict(s)))

    async def get(self, session_id: str) -> SessionData | None:
        async with self.db.read() as session:
            row = await session.get(SessionRow, session_id)
            if row is None:
                return None
            return SessionData(**{k: getattr(row, k) for k in SessionData.__dataclass_fields__})

    async def delete(self, session_id: str) -> None:
        async with self.db.write() as uow:
            await uow.session.execute(delete(SessionRow).where(SessionRow.id == session_id))

    async def delete_for_subject(self, subject_id: uuid.UUID) -> None:
        async with self.db.write() as uow:
            await uow.session.execute(delete(SessionRow).where(SessionRow.subject_id == subject_id))

    async def purge_expired(self) -> int:
        async with self.db.write() as uow:
            res = await uow.session.execute(
                delete(SessionRow).where(SessionRow.expires_at < utcnow())
            )
            return int(getattr(res, "rowcount", 0) or 0)

    async def count(self) -> int:
        async with self.db.read() as session:
            return len((await session.execute(select(SessionRow.id))).all())


class RedisSessionStore:
    """Sessions in Redis (``CONSILIUM_REDIS_URL``), shared by every node, expiring by TTL."""

    def __init__(self, redis: Any, prefix: str = "consilium:session:") -> None:
        self.redis = redis
        self.prefix = prefix

    def _key(self, session_id: str) -> str:
        return self.prefix + session_id

    def _subject_key(self, subject_id: uuid.UUID) -> str:
        return f"{self.prefix}by-subject:{subject_id}"

    async def put(self, s: SessionData, *, ttl: int | None = None) -> None:
        """Store ``s`` until it expires (or ``ttl`` seconds, when shorter)."""
        remaining = max(1, int((s.expires_at - utcnow()).total_seconds()))
        ttl = min(remaining, ttl) if ttl else remaining
        payload = asdict(s)
        payload["subject_id"] = str(s.subject_id)
        for k in ("created_at", "last_seen_at", "expires_at"):
            payload[k] = payload[k].isoformat()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(s.id), json.dumps(payload), ex=ttl)
            pipe.sadd(self._subject_key(s.subject_id), s.id)
            # The index of a subject's sessions outlives the longest of them (Redis >= 7):
            # set a TTL when there is none, otherwise only ever extend it.
            pipe.expire(self._subject_key(s.subject_id), ttl, nx=True)
            pipe.expire(self._subject_key(s.subject_id), ttl, gt=True)
            await pipe.execute()

    async def get(self, session_id: str) -> SessionData | None:
        raw = await self.redis.get(self._key(session_id))
        if raw is None:
            return None
        d = json.loads(raw)
        d["subject_id"] = uuid.UUID(d["subject_id"])
        for k in ("created_at", "last_seen_at", "expires_at"):
            d[k] = datetime.fromisoformat(d[k])
        return SessionData(**d)

    async def delete(self, session_id: str) -> None:
        await self.redis.delete(self._key(session_id))

    async def delete_for_subject(self, subject_id: uuid.UUID) -> None:
        ids = await self.redis.smembers(self._subject_key(subject_id))
        keys = [self._key(i.decode() if isinstance(i, bytes) else i) for i in ids]
        if keys:
            await self.redis.delete(*keys)
        await self.redis.delete(self._subject_key(subject_id))


class CachedSessionStore:
    """Sessions durable in the database, read through a Redis cache shared by the nodes.

    Every write goes to the database first (the truth), then to the cache; reads hit Redis
    and fall back to the database when the entry is missing or Redis cannot be reached. A
    Redis restart or outage therefore costs a database read per session, never a session.
    Cache entries live at most :attr:`CACHE_SECONDS`: a session ended while Redis was
    unreachable cannot outlive that in a cache that survived the outage.
    """

    CACHE_SECONDS = 300

    def __init__(self, durable: DbSessionStore, cache: RedisSessionStore) -> None:
        self.durable = durable
        self.cache = cache

    async def _cache_put(self, s: SessionData) -> None:
        try:
            await self.cache.put(s, ttl=self.CACHE_SECONDS)
        except Exception as e:  # Redis down: the database has it
            log.debug("session cache write skipped: %s", e)

    async def put(self, s: SessionData) -> None:
        await self.durable.put(s)
        await self._cache_put(s)

    async def get(self, session_id: str) -> SessionData | None:
        try:
            s = await self.cache.get(session_id)
        except Exception as e:
            log.debug("session cache read skipped: %s", e)
            return await self.durable.get(session_id)
        if s is not None:
            return s
        s = await self.durable.get(session_id)
        if s is not None:
            await self._cache_put(s)
        return s

    async def delete(self, session_id: str) -> None:
        await self.durable.delete(session_id)
        try:
            await self.cache.delete(session_id)
        except Exception as e:
            log.warning("session %s… left in the cache until it expires: %s", session_id[:8], e)

    async def delete_for_subject(self, subject_id: uuid.UUID) -> None:
        await self.durable.delete_for_subject(subject_id)
        try:
            await self.cache.delete_for_subject(subject_id)
        except Exception as e:
            log.warning("sessions of %s left in the cache until they expire: %s", subject_id, e)


def make_store(db: Database, redis: Any = None, prefix: str = "consilium:") -> SessionStore:
    """The store of a server process: the database, cached in Redis when there is one."""
    durable = DbSessionStore(db)
    if redis is None:
        return durable
    return CachedSessionStore(durable, RedisSessionStore(redis, prefix + "session:"))


class Sessions:
    """Creates, loads, refreshes and ends sessions, applying idle and absolute expiry."""

    def __init__(self, store: SessionStore, *, idle: timedelta, absolute: timedelta) -> None:
        self.store = store
        self.idle = idle
        self.absolute = absolute

    async def create(
        self,
        *,
        kind: str,
        subject_id: uuid.UUID,
        stage: str,
        ip: str = "",
        user_agent: str = "",
        data: dict[str, Any] | None = None,
        absolute: timedelta | None = None,
    ) -> tuple[str, SessionData]:
        """Return the cookie token and the stored session."""
        token = secrets.token_urlsafe(32)
        now = utcnow()
        s = SessionData(
            id=_hash(token),
            kind=kind,
            subject_id=subject_id,
            stage=stage,
            csrf_token=secrets.token_urlsafe(24),
            created_at=now,
            last_seen_at=now,
            expires_at=now + min(self.idle, absolute or self.absolute),
            ip=ip,
            user_agent=user_agent[:300],
            data=data or {},
        )
        await self.store.put(s)
        return token, s

    async def load(self, token: str) -> SessionData | None:
        """The live session for a cookie token, its idle deadline pushed back; None if expired."""
        s = await self.store.get(_hash(token))
        if s is None:
            return None
        now = utcnow()
        hard_end = s.created_at + (MFA_LIFETIME if s.stage == "mfa" else self.absolute)
        if now >= s.expires_at or now >= hard_end:
            await self.store.delete(s.id)
            return None
        # Refresh at most once a minute to keep reads cheap.
        if now - s.last_seen_at > timedelta(seconds=60):
            s.last_seen_at = now
            s.expires_at = min(now + self.idle, hard_end)
            await self.store.put(s)
        return s

    async def promote(self, s: SessionData, token_out: list[str]) -> SessionData:
        """Finish the second factor: a new token (no fixation) at stage ``full``."""
        await self.store.delete(s.id)
        token, new = await self.create(
            kind=s.kind,
            subject_id=s.subject_id,
            stage="full",
            ip=s.ip,
            user_agent=s.user_agent,
            data={k: v for k, v in s.data.items() if not k.startswith("mfa_")},
        )
        token_out.append(token)
        return new

    async def update(self, s: SessionData) -> None:
        await self.store.put(s)

    async def end(self, session_id: str) -> None:
        await self.store.delete(session_id)
