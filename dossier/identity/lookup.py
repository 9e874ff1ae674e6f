"""Access to one dossier by its number and the patient's birth date (seed 002 § 2.2).

"Il se peut que le professionnel de santé ne retrouve pas son patient en utilisant la
recherche par nom" — a practitioner who is on neither side of a dossier types its number
(``TE-2026-000123``, given over the phone) and the patient's birth date. When both match,
they get read access to that one dossier (a ``DossierGrant``, see
:mod:`dossier.permissions`), not to the patient's other dossiers.

- ``POST /api/v1/dossiers/lookup {number, birth_date}`` → ``{dossier_id}``.
- A mismatch answers 404 ``dossier_not_found`` whether the number does not exist, the birth
  date is wrong, or the dossier is still a draft (not sent yet, the patient's consent may
  not be recorded): the answer never tells which, so it cannot be used to test numbers.
- Every attempt writes an audit row ``dossier.access_by_number`` (``success`` or
  ``denied`` with a ``reason``); the dossier's history shows who consulted it by number.
- At most :data:`MAX_FAILURES` denied attempts per user in :data:`WINDOW` (sliding,
  counted from the audit log, so it holds across nodes and restarts): then 429
  ``lookup_rate_limited`` with ``Retry-After`` (seconds until the oldest counted failure
  leaves the window). The user's row is locked while counting (``FOR UPDATE`` on
  PostgreSQL; on SQLite the first statement is a write, which takes the single writer
  lock), so parallel attempts cannot slip past the count.
- Practitioners only (and admins, who see every dossier anyway): a secretary, a guest or
  a patient gets 403.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Uuid, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.accounts import User
from core.audit import AuditEntry
from core.db import Database, utcnow
from core.errors import Forbidden, NotFound, TooManyRequests, ValidationFailed
from core.principal import Principal
from dossier.models import Dossier, DossierState, Patient
from dossier.permissions import access_to, grant_read
from dossier.workflow import numbering

ACTION = "dossier.access_by_number"
MAX_FAILURES = 10
WINDOW = timedelta(minutes=15)
# Reasons of a denied attempt that count towards the limit (a refusal for being over the
# limit does not: it would push the end of the wait further at every retry).
COUNTED = ("unknown_number", "wrong_birth_date", "draft")


@dataclass
class _Outcome:
    dossier_id: uuid.UUID | None = None
    retry_after: int = 0


async def _lock_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    """One lookup of a user at a time, across nodes, for the count-then-write below."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(User.id).where(User.id == user_id).with_for_update())
    else:
        await session.execute(
            text("UPDATE users SET role = role WHERE id = :id").bindparams(
                bindparam("id", type_=Uuid())
            ),
            {"id": user_id},
        )


async def _failures(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> list[datetime]:
    rows = await session.execute(
        select(AuditEntry.at)
        .where(
            AuditEntry.actor_id == user_id,
            AuditEntry.action == ACTION,
            AuditEntry.outcome == "denied",
            AuditEntry.at > now - WINDOW,
            AuditEntry.details["reason"].as_string().in_(COUNTED),
        )
        .order_by(AuditEntry.at)
    )
    return list(rows.scalars())


async def lookup(db: Database, p: Principal, number: str, birth_date: date) -> uuid.UUID:
    """Open one dossier by number and birth date: the write path of the lookup."""
    if p.role not in ("practitioner", "admin"):
        await audit.record_now(
            db, ACTION, actor=p, object_type="dossier", outcome="denied", reason="role"
        )
        raise Forbidden(
            "Access by dossier number is for practitioners", code="lookup_practitioners_only"
        )
    wanted = numbering.normalize(number)
    if wanted is None:
        raise ValidationFailed(
            "A dossier number reads like TE-2026-000123", code="invalid_dossier_number"
        )
    now = utcnow()
    out = _Outcome()
    async with db.write() as uow:
        s = uow.session
        await _lock_user(s, p.subject_id)
        failures = await _failures(s, p.subject_id, now)
        if len(failures) >= MAX_FAILURES:
            free_at = failures[len(failures) - MAX_FAILURES] + WINDOW
            out.retry_after = max(1, math.ceil((free_at - now).total_seconds()))
            audit.record(
                s,
                ACTION,
                actor=p,
                object_type="dossier",
                outcome="denied",
                reason="rate_limited",
                number=wanted,
            )
        else:
            row = (
                await s.execute(
                    select(Dossier, Patient.birth_date)
                    .join(Patient, Patient.id == Dossier.patient_id)
                    .where(Dossier.number == wanted)
                )
            ).first()
            reason = ""
            if row is None:
                reason = "unknown_number"
            elif row[1] != birth_date:
                reason = "wrong_birth_date"
            elif row[0].state is DossierState.draft:
                reason = "draft"
            if reason:
                # The dossier's id when there is one: its history shows the failed attempt.
                audit.record(
                    s,
                    ACTION,
                    actor=p,
                    object_type="dossier",
                    object_id=row[0].id if row else "",
                    outcome="denied",
                    reason=reason,
                    number=wanted,
                )
            else:
                assert row is not None
                d = row[0]
                acc = await access_to(s, p, d)
                if acc.participant or acc.reader:
                    how = "already"
                else:
                    await grant_read(s, d.id, p.subject_id)
                    how = "granted"
                audit.record(
                    s,
                    ACTION,
                    actor=p,
                    object_type="dossier",
                    object_id=d.id,
                    number=d.number,
                    access=how,
                )
                out.dossier_id = d.id
        # Audit rows commit here, whatever the answer.
    if out.retry_after:
        raise TooManyRequests(
            "Too many attempts; try again later",
            code="lookup_rate_limited",
            retry_after=out.retry_after,
        )
    if out.dossier_id is None:
        raise NotFound("No dossier with this number and this birth date", code="dossier_not_found")
    return out.dossier_id
