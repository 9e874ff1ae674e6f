"""Identity status (RNIV): the one write path that moves an identity between provisoire,
récupérée, validée and qualifiée, and the history of those moves.

Every change needs a reason, is checked against :data:`dossier.identity.ins.TRANSITIONS`
and the evidence the target status rests on (an INSi call, a high-trust document), writes
an :class:`~dossier.models.IdentityStatusChange` row and a ``patient.identity_status`` audit
row in the same transaction. Only the requester side holding the identity changes it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.db import Database, utcnow
from core.errors import Forbidden, NotFound, ValidationFailed
from core.principal import Principal
from dossier.identity.ins import NEEDS, IdentityDocument, check_transition
from dossier.models import IdentityStatusChange, InsStatus, Patient
from dossier.permissions import identity_holders, visible_patients


@dataclass(frozen=True)
class Evidence:
    """What the person changing the status declares having done now."""

    insi: bool = False  # the INSi teleservice returned this INS for these traits
    document: IdentityDocument | None = None  # the high-trust document checked

    def provides(self) -> set[str]:
        return ({"insi"} if self.insi else set()) | ({"document"} if self.document else set())

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"insi": self.insi}
        if self.document:
            out["document"] = self.document.value
        return out


def check_evidence(patient_ins: str | None, target: InsStatus, provided: set[str]) -> None:
    """422 ``evidence_required`` (with ``missing``) when the target status is not backed."""
    missing = sorted(NEEDS[target] - provided)
    if missing:
        raise ValidationFailed(
            "This identity status needs "
            + " and ".join(
                {"insi": "an INSi call", "document": "a high-trust document"}[m] for m in missing
            ),
            code="evidence_required",
            missing=missing,
        )
    if "insi" in NEEDS[target] and not patient_ins:
        raise ValidationFailed(
            "A recovered or qualified identity carries its INS", code="ins_required"
        )


def apply_status(
    session: AsyncSession,
    principal: Principal,
    patient: Patient,
    target: InsStatus,
    *,
    reason: str,
    evidence: Evidence,
    initial: bool = False,
) -> IdentityStatusChange:
    """Set the status and its evidence, and add the history row (no checks: callers check)."""
    before = None if initial else patient.ins_status
    # A downgrade drops the evidence the new status no longer rests on.
    if "document" not in NEEDS[target] and not evidence.document:
        patient.identity_document = ""
    if "insi" not in NEEDS[target] and not evidence.insi:
        patient.insi_checked_at = None
    if evidence.document:
        patient.identity_document = evidence.document.value
    if evidence.insi:
        patient.insi_checked_at = utcnow()
    patient.ins_status = target
    row = IdentityStatusChange(
        id=uuid.uuid4(),
        patient_id=patient.id,
        from_status=before,
        to_status=target,
        changed_by_id=principal.subject_id if principal.is_user else None,
        changed_by_label=principal.label,
        changed_at=utcnow(),
        reason=reason,
        evidence=evidence.as_json(),
    )
    session.add(row)
    return row


async def holding_patient(
    db: Database,
    principal: Principal,
    patient_id: uuid.UUID,
    s: AsyncSession,
    action: str = "patient.identity_status",
) -> Patient:
    """The patient, locked for the change, if ``principal`` sees it (404 otherwise) and is
    on the requester side holding the identity (403 otherwise, audited as ``action``)."""
    patient = (
        await s.execute(
            select(Patient)
            .where(Patient.id == patient_id, visible_patients(principal))
            .with_for_update()
        )
    ).scalar_one_or_none()
    if patient is None:
        raise NotFound("No patient with this id", code="patient_not_found")
    holder = await s.execute(
        select(Patient.id).where(Patient.id == patient_id, identity_holders(principal))
    )
    if holder.first() is None:
        await audit.record_now(
            db,
            action,
            actor=principal,
            object_type="patient",
            object_id=patient_id,
            outcome="denied",
        )
        raise Forbidden(
            "Only the requester side holding this identity changes it",
            code="identity_change_not_allowed",
        )
    return patient


async def change_status(
    db: Database,
    principal: Principal,
    patient_id: uuid.UUID,
    target: InsStatus,
    *,
    reason: str,
    evidence: Evidence,
) -> Patient:
    """The one write path of an identity's status."""
    reason = reason.strip()
    if not reason:
        raise ValidationFailed(
            "Give the reason for changing the identity status", code="reason_required"
        )
    async with db.write() as uow:
        s = uow.session
        patient = await holding_patient(db, principal, patient_id, s)
        current = patient.ins_status
        # What the step needs is done now (a recovered identity keeps its INSi call on the
        # way to qualified: the step needs only the document).
        needs_now = set(check_transition(current, target))
        check_evidence(patient.ins, target, evidence.provides() | (NEEDS[target] - needs_now))
        row = apply_status(s, principal, patient, target, reason=reason, evidence=evidence)
        audit.record(
            s,
            "patient.identity_status",
            actor=principal,
            object_type="patient",
            object_id=patient.id,
            **{"from": current.value, "to": target.value},
            reason=reason,
            evidence=row.evidence,
        )
    return patient


async def history(
    db: Database, principal: Principal, patient_id: uuid.UUID
) -> list[IdentityStatusChange]:
    """The identity's status changes, oldest first (visible to whoever sees the identity);
    the reading is audited."""
    async with db.write() as uow:
        s = uow.session
        seen = await s.execute(
            select(Patient.id).where(Patient.id == patient_id, visible_patients(principal))
        )
        if seen.first() is None:
            raise NotFound("No patient with this id", code="patient_not_found")
        rows = (
            (
                await s.execute(
                    select(IdentityStatusChange)
                    .where(IdentityStatusChange.patient_id == patient_id)
                    .order_by(IdentityStatusChange.changed_at, IdentityStatusChange.id)
                )
            )
            .scalars()
            .all()
        )
        audit.record(
            s,
            "patient.identity_status_history",
            actor=principal,
            object_type="patient",
            object_id=patient_id,
        )
    return list(rows)
