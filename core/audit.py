"""The append-only audit log: who did what to which object, when, from where, with what outcome.

Rows are written inside the transaction of the action they describe (so an action and its
audit row commit or roll back together). Failed attempts are written in a transaction of
their own with :func:`record_now`, since the action itself is rolled back.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

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
    return AuditEntry(
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


def record(session: AsyncSession, action: str, **kw: Any) -> AuditEntry:
    """Add an audit row to the current transaction."""
    row = entry(action, **kw)
    session.add(row)
    return row


async def record_now(db: Database, action: str, **kw: Any) -> None:
    """Write an audit row in a transaction of its own (failures, refusals)."""
    async with db.write() as uow:
        record(uow.session, action, **kw)
