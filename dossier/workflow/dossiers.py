"""The dossier's write paths (one function per domain action) and its read views.

Each action: loads the dossier with :func:`dossier.permissions.require`, checks the state
(:mod:`dossier.states`), writes, adds its audit row in the same transaction, and emits
``dossier.updated`` (published after commit) to every user who may see the dossier. A
failing step raises before anything is flushed, so the dossier is left as it was.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, asc, desc, false, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.accounts import Delegation, User, delegators_of
from core.audit import AuditEntry
from core.db import Database, utcnow
from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from core.paris_time import paris_datetime
from core.principal import Principal
from dossier.careoffers.directory import members_of
from dossier.careoffers.schemas import CareOfferOut
from dossier.identity.patients import fold_for_matching
from dossier.identity.schemas import PatientOut
from dossier.models import (
    CareOffer,
    CareOfferMember,
    Dossier,
    DossierRecipient,
    DossierState,
    FormPart,
    FormSide,
    FormStatus,
    Patient,
    ReadReceipt,
    RequestType,
    Teleconsultation,
)
from dossier.permissions import (
    Access,
    Action,
    access_to,
    acting_ids,
    require,
    visible_dossiers,
    visible_patients,
)
from dossier.schemas import UserRef
from dossier.workflow import forms, numbering, states
from dossier.workflow.schemas import (
    ActivityPage,
    ActivityQuery,
    ActivityRow,
    DossierOut,
    FormPartOut,
    HistoryEntry,
    ReceiptOut,
    RequestTypeOut,
)

S = DossierState


# -- audience and events ------------------------------------------------------------------


async def audience(session: AsyncSession, d: Dossier) -> list[uuid.UUID]:
    """Users who may see the dossier (admins aside): whom live updates go to."""
    ids: set[uuid.UUID] = {d.requester_id, d.created_by_id}
    if d.expert_id:
        ids.add(d.expert_id)
    if d.state is not S.draft:
        rows = await session.execute(
            select(CareOfferMember.user_id)
            .join(DossierRecipient, DossierRecipient.care_offer_id == CareOfferMember.care_offer_id)
            .where(DossierRecipient.dossier_id == d.id)
        )
        ids.update(rows.scalars())
    delegates = await session.execute(
        select(Delegation.secretary_id).where(Delegation.practitioner_id.in_(list(ids)))
    )
    ids.update(delegates.scalars())
    return sorted(ids, key=str)


async def _changed(uow: Any, principal: Principal, d: Dossier, change: str, **details: Any) -> None:
    """Stamp the change, audit it, and queue the live event."""
    d.modified_at = utcnow()
    audit.record(
        uow.session,
        f"dossier.{change}",
        actor=principal,
        object_type="dossier",
        object_id=d.id,
        **details,
    )
    await uow.session.flush()
    uow.emit(
        "dossier.updated",
        {
            "dossier_id": str(d.id),
            "change": change,
            "state": d.state.value,
            "state_label": d.state.label,
            "urgent": d.urgent,
            "modified_at": d.modified_at.isoformat(),
            "by": principal.label,
        },
        user_ids=[str(u) for u in await audience(uow.session, d)],
        dossier_id=str(d.id),
    )


def _transition(d: Dossier, dst: DossierState) -> None:
    states.check_transition(d.state, dst)
    d.state = dst


# -- the wizard ---------------------------------------------------------------------------


async def request_types(db: Database) -> list[RequestType]:
    """The active request types ("type de demande"), by label."""
    async with db.read() as s:
        rows = await s.execute(
            select(RequestType).where(RequestType.active.is_(True)).order_by(RequestType.label)
        )
        return list(rows.scalars())


async def requesters_for(db: Database, principal: Principal) -> list[User]:
    """Whom the principal may open a dossier for: themself (practitioner) or those they act
    for (secretary, "en délégation de")."""
    p = principal
    ids = [p.subject_id] if p.role == "practitioner" else list(p.delegates_for)
    if p.role not in ("practitioner", "secretary") or not ids:
        return []
    async with db.read() as s:
        rows = await s.execute(
            select(User).where(User.id.in_(ids), User.active.is_(True)).order_by(User.last_name)
        )
        return list(rows.scalars())


async def create_dossier(
    db: Database,
    principal: Principal,
    *,
    patient_id: uuid.UUID,
    requester_id: uuid.UUID | None = None,
    urgent: bool = False,
) -> uuid.UUID:
    """Step "identité": open a draft for a patient the principal may see."""
    if principal.role == "secretary":
        if requester_id is None:
            if len(principal.delegates_for) != 1:
                raise ValidationFailed(
                    "Name the practitioner you prepare this dossier for",
                    code="requester_required",
                )
            requester_id = principal.delegates_for[0]
        if requester_id not in principal.delegates_for:
            raise Forbidden("You do not act on behalf of this practitioner", code="not_delegated")
    elif principal.role == "practitioner":
        if requester_id not in (None, principal.subject_id):
            raise Forbidden("A practitioner opens dossiers in their own name", code="not_delegated")
        requester_id = principal.subject_id
    else:
        raise Forbidden("Only practitioners and their secretaries open dossiers")
    async with db.write() as uow:
        s = uow.session
        patient = (
            await s.execute(
                select(Patient).where(Patient.id == patient_id, visible_patients(principal))
            )
        ).scalar_one_or_none()
        if patient is None:
            raise NotFound("No patient with this id", code="patient_not_found")
        now = utcnow()
        d = Dossier(
            id=uuid.uuid4(),
            # Counted in this transaction: a failed creation gives its number back.
            number=await numbering.allocate(s, now),
            patient_id=patient.id,
            requester_id=requester_id,
            created_by_id=principal.subject_id,
            state=S.draft,
            urgent=urgent,
            consent_comment="",
            created_at=now,
            modified_at=now,
        )
        s.add(d)
        await s.flush()
        await _changed(
            uow,
            principal,
            d,
            "create",
            number=d.number,
            patient_id=str(patient.id),
            requester_id=str(requester_id),
            on_behalf=requester_id != principal.subject_id,
        )
    return d.id


async def set_consent(
    db: Database,
    principal: Principal,
    dossier_id: uuid.UUID,
    *,
    consent: bool,
    comment: str,
    urgent: bool,
) -> None:
    """Step "consentement": the required yes/no, the required comment, the urgent flag."""
    async with db.write() as uow:
        d, _ = await require(uow.session, db, principal, dossier_id, Action.edit_request)
        states.require_state(d.state, states.REQUESTER_EDITABLE, "Changing the consent")
        d.consent, d.consent_comment, d.urgent = consent, comment, urgent
        d.consent_at = utcnow()
        await _changed(uow, principal, d, "consent", consent=consent, urgent=urgent)


async def set_recipients(
    db: Database, principal: Principal, dossier_id: uuid.UUID, care_offer_ids: list[uuid.UUID]
) -> None:
    """Step "destinataires": the care offers the dossier is addressed to."""
    ids = list(dict.fromkeys(care_offer_ids))
    async with db.write() as uow:
        s = uow.session
        d, _ = await require(s, db, principal, dossier_id, Action.edit_request)
        states.require_state(d.state, states.REQUESTER_EDITABLE, "Changing the recipients")
        found = set(
            (
                await s.execute(
                    select(CareOffer.id).where(CareOffer.id.in_(ids), CareOffer.active.is_(True))
                )
            ).scalars()
        )
        missing = [str(i) for i in ids if i not in found]
        if missing:
            raise ValidationFailed(
                "Unknown or inactive care offers", code="unknown_care_offer", care_offer_ids=missing
            )
        old = (
            await s.execute(select(DossierRecipient).where(DossierRecipient.dossier_id == d.id))
        ).scalars()
        for r in old:
            await s.delete(r)
        await s.flush()
        for pos, oid in enumerate(ids):
            s.add(DossierRecipient(dossier_id=d.id, care_offer_id=oid, position=pos))
        await _changed(uow, principal, d, "recipients", care_offer_ids=[str(i) for i in ids])


async def set_request_type(
    db: Database,
    principal: Principal,
    dossier_id: uuid.UUID,
    *,
    request_type_id: uuid.UUID | None = None,
    code: str | None = None,
) -> None:
    """Step "type de demande": choose the form; both parts are (re)created from its template,
    keeping the requester's values for fields that still exist."""
    if (request_type_id is None) == (code is None):
        raise ValidationFailed("Give request_type_id or code", code="request_type_required")
    async with db.write() as uow:
        s = uow.session
        d, _ = await require(s, db, principal, dossier_id, Action.edit_request)
        states.require_state(d.state, states.REQUESTER_EDITABLE, "Changing the request type")
        stmt = select(RequestType).where(RequestType.active.is_(True))
        stmt = stmt.where(
            RequestType.id == request_type_id if request_type_id else RequestType.code == code
        )
        rt = (await s.execute(stmt)).scalar_one_or_none()
        if rt is None:
            raise ValidationFailed("Unknown request type", code="unknown_request_type")
        parts = {
            p.side: p
            for p in (
                await s.execute(select(FormPart).where(FormPart.dossier_id == d.id))
            ).scalars()
        }
        for side in FormSide:
            fields = list(rt.template.get(side.value, []))
            part = parts.get(side)
            if part is None:
                s.add(
                    FormPart(
                        dossier_id=d.id,
                        side=side,
                        fields=fields,
                        values={},
                        status=FormStatus.draft,
                    )
                )
            else:
                names = {f["name"] for f in fields}
                part.fields = fields
                part.values = {k: v for k, v in (part.values or {}).items() if k in names}
        d.request_type_id = rt.id
        await _changed(uow, principal, d, "request_type", code=rt.code)


# -- forms --------------------------------------------------------------------------------


def _side_action(side: FormSide, sign: bool) -> Action:
    if side is FormSide.requester:
        return Action.sign_request if sign else Action.edit_request
    return Action.sign_expertise if sign else Action.edit_expertise


async def _part(s: AsyncSession, d: Dossier, side: FormSide) -> FormPart:
    part = (
        await s.execute(select(FormPart).where(FormPart.dossier_id == d.id, FormPart.side == side))
    ).scalar_one_or_none()
    if part is None:
        raise Conflict("Choose the request type first", code="request_type_missing")
    if part.status is FormStatus.signed:
        raise Conflict(
            "This part is signed: it can no longer be changed", code="part_signed", side=side.value
        )
    return part


async def save_form(
    db: Database,
    principal: Principal,
    dossier_id: uuid.UUID,
    side: FormSide,
    values: dict[str, Any],
) -> None:
    """Save a draft of one side's part ("Enregistrer")."""
    async with db.write() as uow:
        s = uow.session
        d, _ = await require(s, db, principal, dossier_id, _side_action(side, False))
        part = await _part(s, d, side)
        allowed = (
            states.REQUESTER_EDITABLE if side is FormSide.requester else states.EXPERT_EDITABLE
        )
        states.require_state(d.state, allowed, f"Editing the {side.value} part")
        clean = forms.clean_values(part.fields, values, complete=False)
        part.values = {**(part.values or {}), **clean}
        part.saved_by_id, part.saved_at = principal.subject_id, utcnow()
        await _changed(uow, principal, d, f"form.{side.value}.save", fields=sorted(clean))


async def sign_form(
    db: Database,
    principal: Principal,
    dossier_id: uuid.UUID,
    side: FormSide,
    values: dict[str, Any] | None = None,
) -> None:
    """Sign one side's part: it is validated, then locked for good, and the dossier moves on
    (requester → awaiting_expertise, experts notified; expert → expertised, requester
    notified)."""
    async with db.write() as uow:
        s = uow.session
        d, _ = await require(
            s, db, principal, dossier_id, _side_action(side, True), for_update=True
        )
        part = await _part(s, d, side)
        if side is FormSide.requester:
            states.check_transition(d.state, S.awaiting_expertise)
            if d.consent is not True or not d.consent_comment:
                raise Conflict(
                    "The patient's consent and its comment are required before sending",
                    code="consent_missing",
                )
            n = await s.scalar(select(func.count()).where(DossierRecipient.dossier_id == d.id))
            if not n:
                raise Conflict("Choose at least one recipient", code="recipients_missing")
        else:
            states.check_transition(d.state, S.expertised)
        merged = {**(part.values or {}), **(values or {})}
        part.values = forms.clean_values(part.fields, merged, complete=True)
        now = utcnow()
        part.status = FormStatus.signed
        part.signed_by_id, part.signed_at = principal.subject_id, now
        part.saved_by_id, part.saved_at = principal.subject_id, now
        if side is FormSide.requester:
            _transition(d, S.awaiting_expertise)
            d.submitted_at = now
            change = "submitted"
        else:
            _transition(d, S.expertised)
            d.expertised_at = now
            d.expert_id = principal.subject_id
            change = "expertised"
        await _changed(uow, principal, d, change, side=side.value)


# -- closure --------------------------------------------------------------------------------


async def request_closure(
    db: Database, principal: Principal, dossier_id: uuid.UUID, reason: str = ""
) -> None:
    """ "Demande clôture", by either side."""
    async with db.write() as uow:
        d, _ = await require(uow.session, db, principal, dossier_id, Action.request_closure)
        src = d.state
        _transition(d, S.closure_requested)
        d.state_before_closure = src
        d.closure_requested_at = utcnow()
        d.closure_requested_by_id = principal.subject_id
        await _changed(uow, principal, d, "closure_requested", reason=reason, from_state=src.value)


async def _same_side(s: AsyncSession, d: Dossier, a: Access, asker_id: uuid.UUID | None) -> bool:
    """Is the principal on the side that asked for the closure?"""
    if asker_id is None:
        return False
    asker = await s.get(User, asker_id)
    if asker is None:
        return False
    asker_p = Principal.for_user(asker, delegates_for=await delegators_of(s, asker.id))
    b = await access_to(s, asker_p, d)
    return (a.requester_side and b.requester_side) or (a.expert_side and b.expert_side)


async def withdraw_closure(db: Database, principal: Principal, dossier_id: uuid.UUID) -> None:
    """Withdraw (asking side) or refuse (other side) a closure request: back where it was."""
    async with db.write() as uow:
        d, _ = await require(uow.session, db, principal, dossier_id, Action.request_closure)
        if d.state is not S.closure_requested or d.state_before_closure is None:
            raise Conflict(
                f"No closure was requested (the dossier is '{d.state.value}')",
                code="illegal_transition",
                state=d.state.value,
            )
        back = d.state_before_closure
        _transition(d, back)
        d.state_before_closure = None
        d.closure_requested_at = d.closure_requested_by_id = None
        await _changed(uow, principal, d, "closure_withdrawn", to_state=back.value)


async def close(db: Database, principal: Principal, dossier_id: uuid.UUID) -> None:
    """Close: a requester abandons a draft; either side closes an expertised dossier; the
    other side (or an admin) accepts a closure request."""
    async with db.write() as uow:
        s = uow.session
        d, a = await require(s, db, principal, dossier_id, Action.close)
        states.check_transition(d.state, S.closed)
        if d.state is S.draft and not (a.requester_side or a.admin):
            raise Forbidden("Only the requester may abandon a draft")
        if (
            d.state is S.closure_requested
            and not a.admin
            and await _same_side(s, d, a, d.closure_requested_by_id)
        ):
            raise Conflict(
                "The closure you asked for must be accepted by the other side",
                code="closure_needs_other_side",
            )
        src = d.state
        _transition(d, S.closed)
        d.closed_at = utcnow()
        d.state_before_closure = None
        await _changed(uow, principal, d, "closed", from_state=src.value)


# -- reads ----------------------------------------------------------------------------------


async def _users(s: AsyncSession, ids: set[uuid.UUID | None]) -> dict[uuid.UUID, User]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    rows = await s.execute(select(User).where(User.id.in_(wanted)))
    return {u.id: u for u in rows.scalars()}


def on_behalf_label(requester: User, creator: User) -> str | None:
    if requester.id == creator.id:
        return None
    return f"{creator.display_name}, en délégation de {requester.display_name}"


def actions_for(d: Dossier, a: Access, principal: Principal) -> list[str]:
    """The actions the UI may offer this principal now (the activity view's "Action")."""
    asked_by_me = d.closure_requested_by_id in acting_ids(principal)
    out = ["open"] if a.can_see else []
    st = d.state
    if st is S.draft and a.requester_side:
        out.append("edit_request")
        if a.is_requester:
            out.append("sign_request")
    if st is S.awaiting_expertise and a.is_expert:
        out += ["edit_expertise", "sign_expertise"]
    if states.can_transition(st, S.closure_requested) and (a.requester_side or a.is_expert):
        out.append("request_closure")
    if st is S.closure_requested and (a.requester_side or a.is_expert):
        out.append("withdraw_closure")
    if states.can_transition(st, S.closed) and (
        a.admin
        or (st is S.draft and a.requester_side)
        or (st is S.closure_requested and (a.requester_side or a.is_expert) and not asked_by_me)
        or (st is S.expertised and (a.requester_side or a.is_expert))
    ):
        out.append("close")
    return out


async def dossier_view(s: AsyncSession, principal: Principal, d: Dossier, a: Access) -> DossierOut:
    patient = await s.get(Patient, d.patient_id)
    assert patient is not None
    parts = {
        p.side: p
        for p in (await s.execute(select(FormPart).where(FormPart.dossier_id == d.id))).scalars()
    }
    recipients = (
        (
            await s.execute(
                select(CareOffer)
                .join(DossierRecipient, DossierRecipient.care_offer_id == CareOffer.id)
                .where(DossierRecipient.dossier_id == d.id)
                .order_by(DossierRecipient.position)
            )
        )
        .scalars()
        .all()
    )
    members = await members_of(s, [o.id for o in recipients])
    receipts = (
        (
            await s.execute(
                select(ReadReceipt)
                .where(ReadReceipt.dossier_id == d.id)
                .order_by(ReadReceipt.first_read_at)
            )
        )
        .scalars()
        .all()
    )
    ids: set[uuid.UUID | None] = {
        d.requester_id,
        d.created_by_id,
        d.expert_id,
        d.closure_requested_by_id,
        *(r.user_id for r in receipts),
        *(p.signed_by_id for p in parts.values()),
        *(p.saved_by_id for p in parts.values()),
    }
    users = await _users(s, ids)

    def ref(uid: uuid.UUID | None) -> UserRef | None:
        return UserRef.of(users[uid]) if uid is not None and uid in users else None

    rt = await s.get(RequestType, d.request_type_id) if d.request_type_id else None
    requester, creator = users[d.requester_id], users[d.created_by_id]
    side: Literal["requester", "expert", "admin", "reader"]
    if a.requester_side:
        side = "requester"
    elif a.expert_side:
        side = "expert"
    elif a.admin:
        side = "admin"
    else:
        side = "reader"
    return DossierOut(
        id=d.id,
        number=d.number,
        state=d.state,
        state_label=d.state.label,
        urgent=d.urgent,
        # Beyond the requester side the identity has left its holders: INS only if qualified.
        patient=PatientOut.of(patient, exchange=side != "requester"),
        requester=UserRef.of(requester),
        created_by=UserRef.of(creator),
        on_behalf_label=on_behalf_label(requester, creator),
        consent=d.consent,
        consent_comment=d.consent_comment,
        consent_at=d.consent_at,
        request_type=RequestTypeOut.of(rt) if rt else None,
        recipients=[CareOfferOut.of(o, members[o.id]) for o in recipients],
        expert=ref(d.expert_id),
        forms=[
            FormPartOut(
                side=p.side,
                status=p.status,
                fields=p.fields,
                values=p.values,
                saved_at=p.saved_at,
                saved_by=ref(p.saved_by_id),
                signed_at=p.signed_at,
                signed_by=ref(p.signed_by_id),
            )
            for p in sorted(parts.values(), key=lambda p: p.side.value != "requester")
        ],
        receipts=[
            ReceiptOut(
                user=UserRef.of(users[r.user_id]),
                first_read_at=r.first_read_at,
                label=f"Dossier lu par {users[r.user_id].display_name} le "
                f"{paris_datetime(r.first_read_at, clock='h')}",
            )
            for r in receipts
            if r.user_id in users
        ],
        created_at=d.created_at,
        modified_at=d.modified_at,
        submitted_at=d.submitted_at,
        expertised_at=d.expertised_at,
        closure_requested_at=d.closure_requested_at,
        closure_requested_by=ref(d.closure_requested_by_id),
        closed_at=d.closed_at,
        my_side=side,
        actions=actions_for(d, a, principal),
    )


async def open_dossier(
    db: Database, principal: Principal, dossier_id: uuid.UUID, *, after_write: bool = False
) -> DossierOut:
    """Read a dossier: audited; the first opening by an expert leaves a read receipt that
    the requester sees ("Dossier lu par Dr X le …"). ``after_write``: the view answering a
    change the caller just made (already audited as that change)."""
    async with db.write() as uow:
        s = uow.session
        d, a = await require(s, db, principal, dossier_id, Action.read)
        if not after_write:
            audit.record(s, "dossier.read", actor=principal, object_type="dossier", object_id=d.id)
        if a.expert_side and not a.requester_side and not a.is_secretary:
            seen = await s.execute(
                select(ReadReceipt.id).where(
                    ReadReceipt.dossier_id == d.id, ReadReceipt.user_id == principal.subject_id
                )
            )
            receipt = None
            if seen.first() is None:
                receipt = ReadReceipt(
                    dossier_id=d.id, user_id=principal.subject_id, first_read_at=utcnow()
                )
                try:
                    async with s.begin_nested():  # two first openings at once: one receipt
                        s.add(receipt)
                except IntegrityError:
                    receipt = None
            if receipt is not None:
                audit.record(
                    s, "dossier.receipt", actor=principal, object_type="dossier", object_id=d.id
                )
                uow.emit(
                    "dossier.updated",
                    {
                        "dossier_id": str(d.id),
                        "change": "read",
                        "state": d.state.value,
                        "state_label": d.state.label,
                        "urgent": d.urgent,
                        "modified_at": d.modified_at.isoformat(),
                        "by": principal.label,
                        "first_read_at": receipt.first_read_at.isoformat(),
                    },
                    user_ids=[str(u) for u in await audience(s, d)],
                    dossier_id=str(d.id),
                )
        return await dossier_view(s, principal, d, a)


async def history(db: Database, principal: Principal, dossier_id: uuid.UUID) -> list[HistoryEntry]:
    """The dossier's own history, read from the audit log (this reading is audited too)."""
    async with db.write() as uow:
        s = uow.session
        d, _ = await require(s, db, principal, dossier_id, Action.read)
        audit.record(s, "dossier.history", actor=principal, object_type="dossier", object_id=d.id)
        rows = await s.execute(
            select(AuditEntry)
            .where(
                or_(
                    and_(AuditEntry.object_type == "dossier", AuditEntry.object_id == str(d.id)),
                    # documents of the dossier are audited with their own id
                    and_(
                        AuditEntry.object_type == "document",
                        AuditEntry.details["dossier_id"].as_string() == str(d.id),
                    ),
                )
            )
            .order_by(AuditEntry.at)
        )
        return [
            HistoryEntry(
                at=e.at,
                actor_id=e.actor_id,
                actor_label=e.actor_label,
                action=e.action,
                outcome=e.outcome,
                ip=e.ip,
                details=e.details or {},
            )
            for e in rows.scalars()
        ]


def _search(q: str) -> ColumnElement[bool]:
    """The activity view's search box: a dossier number ("TE-2026-000123", typed in any case,
    with or without dashes or leading zeros), or words that each match the patient's names,
    the IPP, or (words with digits) a part of the dossier number ("000123")."""
    number = numbering.normalize(q)
    words = []
    for word in fold_for_matching(q).split():
        alternatives = [
            Patient.search_text.contains(word, autoescape=True),
            Patient.ipp == q.strip(),
        ]
        if any(c.isdigit() for c in word):  # "te" is a name's start, not every number's
            alternatives.append(Dossier.number.contains(word.upper(), autoescape=True))
        words.append(or_(*alternatives))
    by_words = and_(*words) if words else false()
    return or_(Dossier.number == number, by_words) if number else by_words


async def activity(db: Database, principal: Principal, query: ActivityQuery) -> ActivityPage:
    """The activity view: my dossiers (and those I consulted by number), urgent first,
    filtered, sorted and paged."""
    async with db.write() as uow:
        s = uow.session
        where = [visible_dossiers(principal, grants=True)]
        if query.state is not None:
            where.append(Dossier.state == query.state)
        if query.urgent is not None:
            where.append(Dossier.urgent.is_(query.urgent))
        if query.teleconsultation is not None:
            where.append(
                Dossier.id.in_(
                    select(Teleconsultation.dossier_id).where(
                        Teleconsultation.step == query.teleconsultation
                    )
                )
            )
        if query.q:
            where.append(_search(query.q))
        base = (
            select(Dossier, Patient).join(Patient, Patient.id == Dossier.patient_id).where(*where)
        )
        total = await s.scalar(select(func.count()).select_from(base.subquery())) or 0
        key, direction = query.sort.lstrip("-"), desc if query.sort.startswith("-") else asc
        column = {
            "modified_at": Dossier.modified_at,
            "patient": Patient.birth_name,
            "state": Dossier.state,
        }[key]
        rows = (
            await s.execute(
                base.order_by(Dossier.urgent.desc(), direction(column), Dossier.id)
                .offset((query.page - 1) * query.per_page)
                .limit(query.per_page)
            )
        ).all()
        wanted: set[uuid.UUID | None] = {d.requester_id for d, _ in rows}
        wanted |= {d.created_by_id for d, _ in rows}
        users = await _users(s, wanted)
        rtypes = {
            rt.id: rt.label
            for rt in (
                await s.execute(
                    select(RequestType).where(
                        RequestType.id.in_(
                            [d.request_type_id for d, _ in rows if d.request_type_id]
                        )
                    )
                )
            ).scalars()
        }
        latest_tc: dict[uuid.UUID, Teleconsultation] = {}
        for tc in (
            await s.execute(
                select(Teleconsultation)
                .where(Teleconsultation.dossier_id.in_([d.id for d, _ in rows]))
                .order_by(Teleconsultation.created_at)
            )
        ).scalars():
            latest_tc[tc.dossier_id] = tc
        items = []
        for d, p in rows:
            a = await access_to(s, principal, d)
            tc_row = latest_tc.get(d.id)
            requester, creator = users[d.requester_id], users[d.created_by_id]
            items.append(
                ActivityRow(
                    id=d.id,
                    number=d.number,
                    patient_name=p.display_name,
                    patient_sex=p.sex,
                    patient_birth_date=p.birth_date,
                    requester=UserRef.of(requester),
                    created_by_label=on_behalf_label(requester, creator),
                    modified_at=d.modified_at,
                    state=d.state,
                    state_label=d.state.label,
                    urgent=d.urgent,
                    request_type_label=rtypes.get(d.request_type_id) if d.request_type_id else None,
                    by_number=a.reader and not a.participant,
                    actions=actions_for(d, a, principal),
                    teleconsultation_step=tc_row.step if tc_row else None,
                    teleconsultation_step_label=tc_row.step.label if tc_row else None,
                    teleconsultation_at=tc_row.scheduled_at if tc_row else None,
                )
            )
        audit.record(
            s,
            "dossier.list",
            actor=principal,
            object_type="dossier",
            count=len(items),
            dossier_ids=[str(i.id) for i in items],
        )
        return ActivityPage(items=items, total=total, page=query.page, per_page=query.per_page)
