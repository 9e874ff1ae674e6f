"""What the FHIR API reads, each read in one audited transaction (the dossier access rule:
every read of a patient, a dossier or a report writes who, what, when, from where).

Visibility is the dossier package's: an API key acts as its account, so it sees the
patients and dossiers that account takes part in, nothing more.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.accounts import User
from core.config import Settings
from core.db import Database
from core.principal import Principal
from dossier.documents.store import storage_for
from dossier.models import Document, Dossier, InsStatus, Patient, RequestType
from dossier.permissions import visible_dossiers, visible_patients
from ops.fhir.resources import INS_SYSTEMS


@dataclass(frozen=True)
class Token:
    """A token search value: ``system|value``, ``|value`` (no system) or ``value``."""

    system: str | None
    value: str

    @classmethod
    def parse(cls, raw: str) -> Token:
        if "|" in raw:
            system, _, value = raw.partition("|")
            return cls(system, value)
        return cls(None, raw)


def patient_identifier_clause(tokens: list[Token], settings: Settings) -> ColumnElement[bool]:
    """Patients answering any of these identifiers: the IPP under the establishment's system,
    or the INS under its OID, the latter only for a qualified identity (the only INS that
    may be exchanged, RNIV)."""
    clauses: list[ColumnElement[bool]] = []
    qualified = Patient.ins_status == InsStatus.qualified
    for t in tokens:
        if not t.value:
            continue
        if t.system is None or t.system == "":
            clauses.append(or_(Patient.ipp == t.value, and_(Patient.ins == t.value, qualified)))
        elif t.system == settings.fhir_ipp_system:
            clauses.append(Patient.ipp == t.value)
        elif t.system in INS_SYSTEMS:
            oid = INS_SYSTEMS[t.system].value
            clauses.append(and_(Patient.ins == t.value, qualified, Patient.ins_oid == oid))
    return or_(*clauses) if clauses else false()


def _record(
    session: AsyncSession, principal: Principal, action: str, object_type: str, **kw: Any
) -> None:
    audit.record(session, action, actor=principal, object_type=object_type, **kw)


async def patients(
    db: Database,
    principal: Principal,
    settings: Settings,
    *,
    ids: list[uuid.UUID] | None,
    identifiers: list[Token] | None,
    limit: int,
) -> list[Patient]:
    async with db.write() as uow:
        stmt = select(Patient).where(visible_patients(principal))
        if ids is not None:
            stmt = stmt.where(Patient.id.in_(ids))
        if identifiers is not None:
            stmt = stmt.where(patient_identifier_clause(identifiers, settings))
        rows = list(
            (await uow.session.execute(stmt.order_by(Patient.created_at).limit(limit))).scalars()
        )
        for p in rows:
            _record(uow.session, principal, "patient.read", "patient", object_id=p.id, via="fhir")
        if ids is None or len(ids) != 1:
            _record(uow.session, principal, "fhir.search", "patient", results=len(rows))
    return rows


@dataclass
class DossierRow:
    dossier: Dossier
    request_type: str
    requester: User | None
    expert: User | None


async def _users(session: AsyncSession, ids: set[uuid.UUID | None]) -> dict[uuid.UUID, User]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    rows = await session.execute(select(User).where(User.id.in_(wanted)))
    return {u.id: u for u in rows.scalars()}


def _user(users: dict[uuid.UUID, User], user_id: uuid.UUID | None) -> User | None:
    return users.get(user_id) if user_id is not None else None


def _subject_filter(
    stmt: Any,
    patient_ids: list[uuid.UUID] | None,
    subject_identifiers: list[Token] | None,
    settings: Settings,
) -> Any:
    if patient_ids is not None:
        stmt = stmt.where(Dossier.patient_id.in_(patient_ids))
    if subject_identifiers is not None:
        stmt = stmt.where(
            Dossier.patient_id.in_(
                select(Patient.id).where(patient_identifier_clause(subject_identifiers, settings))
            )
        )
    return stmt


async def dossiers(
    db: Database,
    principal: Principal,
    settings: Settings,
    *,
    ids: list[uuid.UUID] | None,
    numbers: list[str] | None,
    patient_ids: list[uuid.UUID] | None,
    subject_identifiers: list[Token] | None,
    limit: int,
) -> list[DossierRow]:
    async with db.write() as uow:
        s = uow.session
        stmt = (
            select(Dossier, RequestType.label)
            .outerjoin(RequestType, RequestType.id == Dossier.request_type_id)
            .where(visible_dossiers(principal))
        )
        if ids is not None:
            stmt = stmt.where(Dossier.id.in_(ids))
        if numbers is not None:
            stmt = stmt.where(Dossier.number.in_(numbers))
        stmt = _subject_filter(stmt, patient_ids, subject_identifiers, settings)
        rows = (await s.execute(stmt.order_by(Dossier.created_at).limit(limit))).all()
        users = await _users(s, {x for d, _ in rows for x in (d.requester_id, d.expert_id)})
        out = [
            DossierRow(d, label or "", users.get(d.requester_id), _user(users, d.expert_id))
            for d, label in rows
        ]
        for r in out:
            _record(s, principal, "dossier.read", "dossier", object_id=r.dossier.id, via="fhir")
        if ids is None or len(ids) != 1:
            _record(s, principal, "fhir.search", "dossier", results=len(out))
    return out


@dataclass
class ReportRow:
    document: Document
    dossier: Dossier
    patient: Patient
    author: User | None
    pdf: bytes
    superseded: bool


async def reports(
    db: Database,
    principal: Principal,
    settings: Settings,
    *,
    ids: list[uuid.UUID] | None,
    patient_ids: list[uuid.UUID] | None,
    subject_identifiers: list[Token] | None,
    limit: int,
    with_pdf: bool = True,
) -> list[ReportRow]:
    """The signed reports (documents filed by "Générer PDF") of visible dossiers."""
    async with db.write() as uow:
        s = uow.session
        stmt = (
            select(Document, Dossier, Patient)
            .join(Dossier, Dossier.id == Document.dossier_id)
            .join(Patient, Patient.id == Dossier.patient_id)
            .where(Document.source == "report", visible_dossiers(principal))
        )
        if ids is not None:
            stmt = stmt.where(Document.id.in_(ids))
        stmt = _subject_filter(stmt, patient_ids, subject_identifiers, settings)
        rows = (await s.execute(stmt.order_by(Document.created_at).limit(limit))).all()
        newer = set(
            (
                await s.execute(
                    select(Document.previous_id).where(
                        Document.previous_id.in_([doc.id for doc, _, _ in rows])
                    )
                )
            ).scalars()
        )
        users = await _users(s, {doc.author_id for doc, _, _ in rows})
        storage = storage_for(s)
        out = []
        for doc, d, p in rows:
            pdf = await storage.blobs.read(doc.blob_key) if with_pdf else b""
            out.append(ReportRow(doc, d, p, _user(users, doc.author_id), pdf, doc.id in newer))
            _record(
                s,
                principal,
                "document.read",
                "dossier",
                object_id=d.id,
                document_id=str(doc.id),
                via="fhir",
            )
        if ids is None or len(ids) != 1:
            _record(s, principal, "fhir.search", "document", results=len(out))
    return out
