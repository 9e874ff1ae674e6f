"""Database engine, declarative base, shared column types and the unit of work.

Every write path opens a :class:`UnitOfWork`: it owns one transaction, collects the domain
events raised while writing, and publishes them only after the commit succeeded, so no
listener ever sees a state that was rolled back.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, TypeDecorator, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.errors import Problem, Unavailable
from core.events import Event, EventBus

try:  # PostgreSQL's driver is optional (SQLite is the default)
    import asyncpg.exceptions as _pg

    _PG_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
        _pg.PostgresConnectionError,  # SQLSTATE class 08
        _pg.CannotConnectNowError,  # starting up, shutting down
        _pg.OperatorInterventionError,  # admin / crash shutdown
        _pg.ConnectionDoesNotExistError,
    )
except ImportError:  # pragma: no cover
    _PG_CONNECTION_ERRORS = ()

# Seconds a client is told to wait (``Retry-After``) when the database cannot be reached.
DB_RETRY_AFTER = 5

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DatabaseUnavailable(Unavailable):
    """The database server cannot be reached: 503 with ``Retry-After``, nothing written."""

    code, title = "database_unavailable", "The database is unavailable; try again shortly"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, retry_after=DB_RETRY_AFTER)


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the database server could not be reached or
    dropped the connection, as opposed to a refusal of the statement itself. The one place
    that knows the shapes this takes: SQLAlchemy's invalidated connections and pool timeouts,
    the driver's connection errors, a refused or reset socket."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
            return True
        if isinstance(e, sa_exc.TimeoutError):  # no pooled connection came free in time
            return True
        if isinstance(e, (ConnectionError, socket.gaierror, *_PG_CONNECTION_ERRORS)):
            return True
        if type(e).__name__ == "InterfaceError" and "connection is closed" in str(e):
            return True
        orig = e.orig if isinstance(e, sa_exc.DBAPIError) else None
        e = orig if orig is not None and id(orig) not in seen else (e.__cause__ or e.__context__)
    return False


def _unavailable(exc: Exception) -> Exception:
    """The exception to raise instead of ``exc``: a 503 problem for a lost database."""
    if not isinstance(exc, Problem) and is_connection_error(exc):
        return DatabaseUnavailable()
    return exc


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


def make_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    kwargs: dict[str, Any] = {"echo": echo}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    else:
        # A database that does not answer is a 503 within seconds, not a minute's hang.
        kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True, pool_timeout=10)
        if url.startswith("postgresql+asyncpg"):
            kwargs["connect_args"] = {"timeout": 5}
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

    return engine


class Database:
    """The engine and session factory of one server process."""

    def __init__(self, url: str, bus: EventBus, *, echo: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url, echo=echo)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.bus = bus
        # Called with the transaction's session and queued events just before each commit
        # that has events: a transactional outbox (ops/webhooks.py) writes its rows there, so
        # they commit, or roll back, with the change they describe.
        self.before_commit: list[Callable[[AsyncSession, list[Event]], Awaitable[None]]] = []

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; nothing written through it is committed."""
        try:
            async with self.sessions() as session:
                yield session
        except Exception as e:
            mapped = _unavailable(e)
            if mapped is e:
                raise
            raise mapped from e

    def write(self) -> UnitOfWork:
        return UnitOfWork(self)

    @asynccontextmanager
    async def cluster_lock(self, name: str) -> AsyncIterator[bool]:
        """``async with db.cluster_lock("retention") as held:`` — True in one process only.

        For work that must run once per cluster, not once per node (the retention purge, the
        orphan sweep). On PostgreSQL it is a session-level advisory lock held on a connection
        of its own for the duration of the block, so a node that dies releases it with its
        connection. SQLite is the embedded one-node setting: the lock is always held.
        """
        if self.dialect != "postgresql":
            yield True
            return
        key = _lock_key(name)
        async with self.engine.connect() as conn:
            held = bool(
                (await conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({key})")).scalar()
            )
            try:
                yield held
            finally:
                if held:
                    with contextlib.suppress(Exception):
                        await conn.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")

    async def close(self) -> None:
        await self.engine.dispose()


def _lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name`` (same on every node)."""
    digest = hashlib.blake2b(f"consilium:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class UnitOfWork:
    """``async with db.write() as uow:`` — one transaction, events published after commit."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._events: list[Event] = []
        self.session: AsyncSession

    def emit(self, name: str, payload: dict[str, Any], **routing: Any) -> None:
        """Queue an event; it is published once the transaction has committed."""
        self._events.append(Event(name=name, payload=payload, routing=routing))

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._db.sessions()
        await self.session.begin()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                if self._events:
                    for hook in self._db.before_commit:
                        await hook(self.session, self._events)
                await self.session.commit()
            else:
                await self.session.rollback()
        except Exception as e:
            # Not applied, and no event leaves; a lost database becomes a 503.
            if not (isinstance(exc, Exception) and is_connection_error(exc)):
                mapped = _unavailable(e)
                if mapped is e:
                    raise
                raise mapped from e
            # else: the rollback of a lost connection failed too; ``exc`` is mapped below
        finally:
            with contextlib.suppress(Exception):
                await self.session.close()
        if isinstance(exc, Exception):
            mapped = _unavailable(exc)
            if mapped is not exc:
                raise mapped from exc
        if exc_type is None:
            for ev in self._events:
                await self._db.bus.publish(ev)
