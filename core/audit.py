"""The append-only audit log: who did what to which object, when, from where, with what outcome.

Rows are written inside the transaction of the action they describe (so an action and its
audit row commit or roll back together). Failed attempts are written in a transaction of
their own with :func:`record_now`, since the action itself is rolled back.

Tamper evidence: the database refuses UPDATE and DELETE (triggers), and each row carries a
sequence number and an HMAC over its content and the previous row's HMAC, keyed by a key
derived from the server secret, which the database does not hold. A forged, altered, deleted
or truncated row breaks the chain; ``consilium audit verify`` finds the first break. The
chain's head (last sequence number and HMAC) lives in ``audit_chain``; a writer locks it for
the rest of its transaction, so concurrent writers append one after the other and never fork
the chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, BigInteger, String, event, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db import Base, IdMixin, UTCDateTime, utcnow

if TYPE_CHECKING:
    from core.db import Database
    from core.principal import Principal


class AuditEntry(IdMixin, Base):
    __tablename__ = "audit_log"

    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    actor_kind: Mapped[str] = mapped_column(String(20))  # user | guest | system | anonymous
    actor_label: Mapped[str] = mapped_column(String(200), default="")
    action: Mapped[str] = mapped_column(String(60), index=True)  # e.g. "auth.login", "room.close"
    object_type: Mapped[str] = mapped_column(String(40), default="")
    object_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    ip: Mapped[str] = mapped_column(String(64), default="")
    outcome: Mapped[str] = mapped_column(String(20), default="success")  # success|failure|denied
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True, index=True)
    prev_mac: Mapped[str] = mapped_column(String(64), default="")
    mac: Mapped[str] = mapped_column(String(64), default="")


class AuditChainHead(Base):
    """The last link of a chain: its sequence number and HMAC (one row per chained table)."""

    __tablename__ = "audit_chain"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    mac: Mapped[str] = mapped_column(String(64), default="")


CHAIN = "audit_log"
GENESIS = "0" * 64  # the "previous HMAC" of the first row
_KEY_LABEL = b"consilium audit chain v1"
_key: bytes | None = None


def configure_chain(secret_key: str) -> None:
    """Derive the chain key from the server secret (at start-up, and in each command)."""
    global _key
    _key = hmac.new(secret_key.encode(), _KEY_LABEL, hashlib.sha256).digest()


def chain_key() -> bytes:
    if _key is None:
        from core.config import DEV_SECRET

        configure_chain(DEV_SECRET)  # development, and tests that write without an app
    assert _key is not None
    return _key


def _canonical(row: Any, seq: int, prev_mac: str) -> bytes:
    at = row.at
    fields = [
        seq,
        prev_mac,
        str(row.id),
        at.isoformat(timespec="microseconds") if at is not None else "",
        str(row.actor_id) if row.actor_id else "",
        row.actor_kind or "",
        row.actor_label or "",
        row.action or "",
        row.object_type or "",
        row.object_id or "",
        row.ip or "",
        row.outcome or "",
        row.details if row.details is not None else {},
    ]
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def row_mac(row: Any, seq: int, prev_mac: str, key: bytes | None = None) -> str:
    """The HMAC of one row in the chain (``row`` has the audit columns as attributes)."""
    return hmac.new(key or chain_key(), _canonical(row, seq, prev_mac), hashlib.sha256).hexdigest()


def _lock_head(session: Session) -> tuple[int, str]:
    """The chain head, locked until the transaction ends (created when missing)."""
    conn = session.connection()
    conn.execute(
        text(
            "INSERT INTO audit_chain (name, seq, mac) VALUES (:n, 0, :g) "
            "ON CONFLICT (name) DO NOTHING"
        ),
        {"n": CHAIN, "g": GENESIS},
    )
    if conn.dialect.name == "postgresql":
        row = conn.execute(
            text("SELECT seq, mac FROM audit_chain WHERE name = :n FOR UPDATE"), {"n": CHAIN}
        ).one()
    else:
        # SQLite has no row locks: the write above already holds the database's write lock.
        row = conn.execute(
            text("SELECT seq, mac FROM audit_chain WHERE name = :n"), {"n": CHAIN}
        ).one()
    return int(row.seq), str(row.mac)


@event.listens_for(Session, "before_flush")
def _chain_new_entries(session: Session, _ctx: Any, _instances: Any) -> None:
    new = [o for o in session.new if isinstance(o, AuditEntry) and o.seq is None]
    if not new:
        return
    new.sort(key=lambda o: getattr(o, "_order", 0))
    seq, prev = _lock_head(session)
    for row in new:
        if row.id is None:
            row.id = uuid.uuid4()
        if row.at is None:
            row.at = utcnow()
        # What is stored is what is hashed: JSON round-trip of the details.
        row.details = json.loads(json.dumps(row.details or {}, default=str))
        seq += 1
        row.seq, row.prev_mac = seq, prev
        row.mac = prev = row_mac(row, seq, prev)
    session.connection().execute(
        text("UPDATE audit_chain SET seq = :s, mac = :m WHERE name = :n"),
        {"s": seq, "m": prev, "n": CHAIN},
    )


_counter = 0


def _next_order() -> int:
    global _counter
    _counter += 1
    return _counter


def entry(
    action: str,
    *,
    actor: Principal | None = None,
    object_type: str = "",
    object_id: object = "",
    ip: str = "",
    outcome: str = "success",
    actor_label: str = "",
    actor_id: uuid.UUID | None = None,
    actor_kind: str = "",
    **details: Any,
) -> AuditEntry:
    """An audit row. ``actor`` is the principal acting; before a session exists (sign-in),
    ``actor_id``/``actor_kind``/``actor_label`` name who it was instead."""
    row = AuditEntry(
        actor_id=actor.subject_id if actor else actor_id,
        actor_kind=actor.kind if actor else (actor_kind or ("user" if actor_id else "anonymous")),
        actor_label=actor_label or (actor.label if actor else ""),
        action=action,
        object_type=object_type,
        object_id=str(object_id) if object_id else "",
        ip=ip or (actor.ip if actor else ""),
        outcome=outcome,
        details=details,
    )
    row._order = _next_order()  # type: ignore[attr-defined]  # chained in the order written
    return row


def record(session: AsyncSession, action: str, **kw: Any) -> AuditEntry:
    """Add an audit row to the current transaction."""
    row = entry(action, **kw)
    session.add(row)
    return row


async def record_now(db: Database, action: str, **kw: Any) -> None:
    """Write an audit row in a transaction of its own (failures, refusals)."""
    async with db.write() as uow:
        record(uow.session, action, **kw)


# -- verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class Break:
    seq: int | None
    row_id: str
    reason: str

    def __str__(self) -> str:
        where = f"row {self.seq}" if self.seq is not None else "chain"
        ident = f" (id {self.row_id})" if self.row_id else ""
        return f"{where}{ident}: {self.reason}"


@dataclass(frozen=True)
class Verdict:
    rows: int
    first_break: Break | None

    @property
    def intact(self) -> bool:
        return self.first_break is None


async def _rows(session: AsyncSession, batch: int = 1000) -> AsyncIterator[AuditEntry]:
    last: int | None = None
    while True:
        q = select(AuditEntry).order_by(AuditEntry.seq.asc().nulls_first()).limit(batch)
        if last is not None:
            q = q.where(AuditEntry.seq > last)
        rows = list((await session.execute(q)).scalars())
        if not rows:
            return
        for r in rows:
            yield r
        if rows[-1].seq is None:  # unchained rows are reported by the caller; stop here
            return
        last = rows[-1].seq
        session.expunge_all()


async def verify(db: Database) -> Verdict:
    """Walk the chain from its first row: the first row that does not follow is named."""
    key = chain_key()
    count = 0
    prev_seq, prev_mac = 0, GENESIS
    async with db.read() as session:
        async for row in _rows(session):
            count += 1
            if row.seq is None:
                return Verdict(count, Break(None, str(row.id), "row outside the chain (forged)"))
            if row.seq != prev_seq + 1:
                return Verdict(
                    count,
                    Break(row.seq, str(row.id), f"rows {prev_seq + 1}..{row.seq - 1} are missing"),
                )
            if row.prev_mac != prev_mac:
                return Verdict(count, Break(row.seq, str(row.id), "does not follow the row before"))
            if not hmac.compare_digest(row.mac, row_mac(row, row.seq, row.prev_mac, key)):
                return Verdict(
                    count, Break(row.seq, str(row.id), "content altered or row forged (bad HMAC)")
                )
            prev_seq, prev_mac = row.seq, row.mac
        head = (
            await session.execute(select(AuditChainHead).where(AuditChainHead.name == CHAIN))
        ).scalar_one_or_none()
    head_seq, head_mac = (head.seq, head.mac) if head is not None else (0, GENESIS)
    if head is None and count:
        return Verdict(count, Break(None, "", "the chain head is missing"))
    if head_seq != prev_seq or head_mac != prev_mac:
        if head_seq > prev_seq:
            reason = f"rows {prev_seq + 1}..{head_seq} are missing (deleted or truncated)"
        else:
            reason = f"the chain head (row {head_seq}) does not match the last row ({prev_seq})"
        return Verdict(count, Break(prev_seq + 1 if head_seq > prev_seq else None, "", reason))
    return Verdict(count, None)
