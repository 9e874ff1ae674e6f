"""The write paths of an RCP (e-Staff meeting) and its reads.

Planning: whoever plans must take part in every dossier put on the agenda (they share it);
an ``estaff`` room is opened (:mod:`rooms.actions`), the lead (« responsable de la
réunion ») is its host, the invited professionals its participants. Each invitee who is not
already on a side of an agenda dossier receives a read grant of kind ``rcp`` on that
dossier (audited): the invitees of a concertation read the dossiers they discuss, as a
reader by number does, and write nothing in them. The grants are withdrawn when the meeting
is cancelled (unless another planned RCP still holds the dossier for that person).

During the meeting, the lead moves through the agenda; the item shown now is stored on the
meeting and pushed to the room (``rcp:current``, after commit; a client joining or
reconnecting gets it in its ``room:join`` acknowledgement). The event carries the dossier's
number, never patient data: the page reads the meeting, access-checked and audited.

The « fiche RCP » (question, proposal, participants present) is written by the lead, then
signed by the lead: a PDF signed PAdES by the installation, filed into the dossier as a
document (``add_document``, audited), once.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.accounts import Role, User
from core.context import DB, NOTIFIER, SETTINGS
from core.db import utcnow
from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from core.notify import Attachment, DeliveryError, Email
from core.paris_time import paris_spelled_out
from core.principal import Principal
from dossier import permissions
from dossier.calendar_entry import calendar_entry
from dossier.documents.store import add_document
from dossier.models import (
    Dossier,
    DossierGrant,
    GrantKind,
    Patient,
    RcpItem,
    RcpItemStatus,
    RcpMeeting,
    RcpStatus,
)
from dossier.permissions import Action, require
from dossier.rcp import fiche
from dossier.rcp.schemas import (
    CurrentOut,
    FicheIn,
    ItemOut,
    MeetingOut,
    MeetingSummary,
    RescheduleIn,
    ScheduleIn,
)
from dossier.report.pdf import collect
from dossier.schemas import UserRef
from dossier.workflow.dossiers import _changed
from rooms import actions as room_actions
from rooms.models import MemberRole, RoomKind, RoomMember

log = logging.getLogger(__name__)
MAX_AHEAD = timedelta(days=730)


def _room_url(app: web.Application, room_id: uuid.UUID) -> str:
    return f"{app[SETTINGS].public_url}/app/rooms/{room_id}"


def _meeting_url(app: web.Application, meeting_id: uuid.UUID) -> str:
    return f"{app[SETTINGS].public_url}/app/rcp/{meeting_id}"


# -- checks -------------------------------------------------------------------------------


def _check_time(at: datetime, now: datetime) -> None:
    if at <= now:
        raise ValidationFailed("La RCP doit être planifiée dans le futur.", code="invalid_schedule")
    if at > now + MAX_AHEAD:
        raise ValidationFailed(
            "Une RCP se planifie au plus deux ans à l'avance.", code="invalid_schedule"
        )


def role_of(p: Principal, m: RcpMeeting) -> str | None:
    """``lead``, ``invitee`` (the planner too), ``admin``, or None (a stranger: 404)."""
    if not p.is_user:
        return None
    if p.subject_id == m.lead_id:
        return "lead"
    if str(p.subject_id) in m.invitee_ids or p.subject_id == m.planned_by_id:
        return "invitee"
    if p.is_admin:
        return "admin"
    return None


async def _load(
    app: web.Application, s: AsyncSession, p: Principal, meeting_id: uuid.UUID, *, lock: bool
) -> tuple[RcpMeeting, str]:
    stmt = select(RcpMeeting).where(RcpMeeting.id == meeting_id)
    if lock:
        if app[DB].dialect == "postgresql":
            stmt = stmt.with_for_update()
        else:  # take SQLite's writer lock before reading
            await s.execute(
                update(RcpMeeting)
                .where(RcpMeeting.id == meeting_id)
                .values(sequence=RcpMeeting.sequence)
            )
    m = (await s.execute(stmt.execution_options(populate_existing=True))).scalar_one_or_none()
    role = role_of(p, m) if m is not None else None
    if m is None or role is None:
        raise NotFound("No RCP with this id", code="rcp_not_found")
    return m, role


async def _lead_only(
    app: web.Application, p: Principal, m: RcpMeeting, role: str, what: str
) -> None:
    if role != "lead":
        await audit.record_now(
            app[DB], f"rcp.{what}", actor=p, object_type="rcp", object_id=m.id, outcome="denied"
        )
        raise Forbidden(
            "Seul le responsable de la réunion conduit la RCP et signe ses fiches.",
            code="rcp_lead_only",
        )


def _require_planned(m: RcpMeeting) -> None:
    if m.status is not RcpStatus.planned:
        raise Conflict(
            f"The RCP is '{m.status.value}' ({m.status.label})",
            code="illegal_state",
            state=m.status.value,
        )


async def _professionals(session: AsyncSession, ids: list[uuid.UUID]) -> list[User]:
    if not ids:
        return []
    rows = (await session.execute(select(User).where(User.id.in_(ids)))).scalars()
    found = {u.id: u for u in rows if u.active and u.role != Role.admin}
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise ValidationFailed("Unknown or inactive account", code="user_not_found", ids=missing)
    return [found[i] for i in ids]


async def _participant_of(
    app: web.Application, s: AsyncSession, p: Principal, dossier_id: uuid.UUID
) -> Dossier:
    """Only someone on a side of a dossier puts it on an RCP's agenda (they share it)."""
    d, acc = await require(s, app[DB], p, dossier_id, Action.read, for_update=False)
    if not (acc.requester_side or acc.expert_side):
        await audit.record_now(
            app[DB],
            "dossier.rcp",
            actor=p,
            object_type="dossier",
            object_id=dossier_id,
            outcome="denied",
        )
        raise Forbidden(
            "Seuls les intervenants du dossier l'inscrivent en RCP.", code="rcp_not_allowed"
        )
    return d


# -- messages -----------------------------------------------------------------------------


def ics_of(
    app: web.Application, m: RcpMeeting, lead: User | None, people: list[User], *, cancel: bool
) -> bytes:
    return calendar_entry(
        prodid="-//Consilium//RCP//FR",
        uid=f"rcp-{m.id}@consilium",
        start=m.scheduled_at,
        minutes=m.duration_minutes,
        sequence=m.sequence,
        summary=f"RCP — {m.title}",
        description=(
            f"Réunion de concertation pluridisciplinaire « {m.title} ».\n"
            f"Ordre du jour : {_meeting_url(app, m.id)}\nSalle : {_room_url(app, m.room_id)}"
        ),
        location=_room_url(app, m.room_id),
        url=_meeting_url(app, m.id),
        organizer=lead,
        attendees=people,
        cancel=cancel,
    )


async def _tell(
    app: web.Application, m: RcpMeeting, what: str, *, cancel: bool = False, extra: str = ""
) -> None:
    """An e-Mail with the .ics to the lead and every invitee. No patient data: the title, the
    time and links. A failed delivery is logged and never undoes the change."""
    async with app[DB].read() as s:
        ids = {uuid.UUID(i) for i in m.invitee_ids} | {m.lead_id}
        people = list((await s.execute(select(User).where(User.id.in_(ids)))).scalars())
        lead = await s.get(User, m.lead_id)
    when = paris_spelled_out(m.scheduled_at)
    subject = f"{what} — {m.title}"
    text = (
        f"{what} : « {m.title} », le {when} (heure de Paris), durée {m.duration_minutes} min.\n"
        f"{extra}\nOrdre du jour : {_meeting_url(app, m.id)}\n"
        f"Entrer dans la salle : {_room_url(app, m.room_id)}\n\nConsilium"
    )
    ics = Attachment("rcp.ics", ics_of(app, m, lead, people, cancel=cancel), "text/calendar")
    for u in people:
        try:
            await app[NOTIFIER].send_email(
                Email(to=u.email, subject=subject, text=text, attachments=[ics])
            )
        except DeliveryError:
            log.warning("RCP notice to a professional failed", exc_info=True)


# -- grants -------------------------------------------------------------------------------


async def _grant_invitees(
    s: AsyncSession, p: Principal, m: RcpMeeting, dossiers: list[Dossier]
) -> None:
    """Each invitee (and the lead) not on a side of an agenda dossier reads it (grant
    ``rcp``, audited on the dossier)."""
    ids = [uuid.UUID(i) for i in m.invitee_ids] + [m.lead_id]
    users = {u.id: u for u in (await s.execute(select(User).where(User.id.in_(ids)))).scalars()}
    for d in dossiers:
        for uid in ids:
            u = users.get(uid)
            if u is None:
                continue
            acc = await permissions.access_to(s, Principal.for_user(u), d)
            if acc.participant or acc.reader:
                continue
            if await permissions.grant_read(s, d.id, uid, GrantKind.rcp):
                audit.record(
                    s,
                    "dossier.rcp.grant",
                    actor=p,
                    object_type="dossier",
                    object_id=d.id,
                    user_id=str(uid),
                    rcp_id=str(m.id),
                )


async def _withdraw_grants(s: AsyncSession, p: Principal, m: RcpMeeting) -> None:
    """A cancelled RCP gives no read any more, unless another planned one holds the dossier."""
    items = list((await s.execute(select(RcpItem).where(RcpItem.meeting_id == m.id))).scalars())
    for it in items:
        others = (
            await s.execute(
                select(RcpMeeting)
                .join(RcpItem, RcpItem.meeting_id == RcpMeeting.id)
                .where(
                    RcpItem.dossier_id == it.dossier_id,
                    RcpMeeting.id != m.id,
                    RcpMeeting.status == RcpStatus.planned,
                )
            )
        ).scalars()
        keep = {m2.lead_id for m2 in others}
        for m2 in others:
            keep.update(uuid.UUID(i) for i in m2.invitee_ids)
        ids = [uuid.UUID(i) for i in m.invitee_ids] + [m.lead_id]
        gone = [i for i in ids if i not in keep]
        if not gone:
            continue
        res = await s.execute(
            delete(DossierGrant).where(
                DossierGrant.dossier_id == it.dossier_id,
                DossierGrant.kind == GrantKind.rcp,
                DossierGrant.user_id.in_(gone),
            )
        )
        if res.rowcount:  # type: ignore[attr-defined]
            audit.record(
                s,
                "dossier.rcp.grant_withdrawn",
                actor=p,
                object_type="dossier",
                object_id=it.dossier_id,
                rcp_id=str(m.id),
                count=res.rowcount,  # type: ignore[attr-defined]
            )


# -- write paths --------------------------------------------------------------------------


async def schedule(
    app: web.Application, p: Principal, body: ScheduleIn, *, now: datetime | None = None
) -> MeetingOut:
    """« Planifier une RCP »: the room, the agenda, the grants, the invitations (.ics)."""
    db = app[DB]
    _check_time(body.scheduled_at, now or utcnow())
    if not p.is_user or p.is_admin:
        raise Forbidden("Reserved to professionals", code="rcp_not_allowed")
    ids = [i.dossier_id for i in body.agenda]
    if len(set(ids)) != len(ids):
        raise ValidationFailed("A dossier appears twice on the agenda", code="duplicate_dossier")
    lead_id = body.lead_id or p.subject_id
    async with db.read() as s:
        for i in ids:
            await _participant_of(app, s, p, i)
        (lead,) = await _professionals(s, [lead_id])
        if lead.role != Role.practitioner:
            raise ValidationFailed(
                "Le responsable de la réunion est un médecin (il signe les fiches RCP).",
                code="lead_not_practitioner",
            )
        invitees = await _professionals(
            s, [i for i in dict.fromkeys(body.invitee_ids) if i != lead_id]
        )
    # The lead owns the room when the planner is the lead or acts for them.
    owner = lead_id if lead_id in (p.subject_id, *p.delegates_for) else None
    room = await room_actions.create_room(
        db,
        p,
        kind=RoomKind.estaff,
        title=f"RCP — {body.title.strip()}",
        scheduled_at=body.scheduled_at,
        capacity=max(12, 2 + len(invitees)),
        owner_id=owner,
    )
    if room.owner_id != lead_id:
        await room_actions.add_member(db, p, room.id, lead_id, MemberRole.host)
    for u in invitees:
        if u.id != room.owner_id:
            await room_actions.add_member(db, p, room.id, u.id, MemberRole.participant)
    async with db.write() as uow:
        dossiers = []
        for i in ids:
            d, _ = await require(uow.session, db, p, i, Action.read, for_update=True)
            dossiers.append(d)
        m = RcpMeeting(
            title=body.title.strip(),
            scheduled_at=body.scheduled_at,
            duration_minutes=body.duration_minutes,
            lead_id=lead_id,
            planned_by_id=p.subject_id,
            room_id=room.id,
            invitee_ids=[str(u.id) for u in invitees],
            status=RcpStatus.planned,
            sequence=0,
            cancel_reason="",
        )
        uow.session.add(m)
        await uow.session.flush()
        for pos, (it, d) in enumerate(zip(body.agenda, dossiers, strict=True), start=1):
            uow.session.add(
                RcpItem(
                    meeting_id=m.id,
                    dossier_id=d.id,
                    position=pos,
                    question=it.question.strip(),
                    proposal="",
                    present=[],
                    status=RcpItemStatus.pending,
                )
            )
            await _changed(
                uow,
                p,
                d,
                "rcp.planned",
                rcp_id=str(m.id),
                room_id=str(room.id),
                scheduled_at=m.scheduled_at.isoformat(),
            )
        await uow.session.flush()
        await _grant_invitees(uow.session, p, m, dossiers)
        audit.record(
            uow.session,
            "rcp.schedule",
            actor=p,
            object_type="rcp",
            object_id=m.id,
            room_id=str(room.id),
            dossiers=len(dossiers),
            invitees=len(invitees),
        )
    await _tell(app, m, "RCP planifiée")
    return await get_meeting(app, p, m.id)


async def reschedule(
    app: web.Application,
    p: Principal,
    meeting_id: uuid.UUID,
    body: RescheduleIn,
    *,
    now: datetime | None = None,
) -> MeetingOut:
    """Move the meeting; everyone gets the updated .ics (same UID, next SEQUENCE)."""
    db = app[DB]
    _check_time(body.scheduled_at, now or utcnow())
    async with db.read() as s:
        m, role = await _load(app, s, p, meeting_id, lock=False)
    await _lead_only(app, p, m, role, "reschedule")
    _require_planned(m)
    await room_actions.reschedule_room(db, p, m.room_id, body.scheduled_at)
    async with db.write() as uow:
        m, role = await _load(app, uow.session, p, meeting_id, lock=True)
        _require_planned(m)
        before = m.scheduled_at
        m.scheduled_at = body.scheduled_at
        if body.duration_minutes:
            m.duration_minutes = body.duration_minutes
        m.sequence += 1
        audit.record(
            uow.session,
            "rcp.reschedule",
            actor=p,
            object_type="rcp",
            object_id=m.id,
            before=before.isoformat(),
            after=m.scheduled_at.isoformat(),
        )
    await _tell(app, m, "RCP déplacée", extra=f"Elle était prévue le {paris_spelled_out(before)}.")
    return await get_meeting(app, p, m.id)


async def cancel(
    app: web.Application, p: Principal, meeting_id: uuid.UUID, reason: str = ""
) -> MeetingOut:
    """Call the meeting off: grants withdrawn, room closed, everyone told (.ics CANCEL)."""
    db = app[DB]
    async with db.write() as uow:
        m, role = await _load(app, uow.session, p, meeting_id, lock=True)
        if role != "lead":
            raise Forbidden(
                "Seul le responsable de la réunion conduit la RCP et signe ses fiches.",
                code="rcp_lead_only",
            )
        _require_planned(m)
        m.status, m.cancelled_at, m.cancel_reason = RcpStatus.cancelled, utcnow(), reason.strip()
        m.sequence += 1
        await _withdraw_grants(uow.session, p, m)
        audit.record(
            uow.session, "rcp.cancel", actor=p, object_type="rcp", object_id=m.id, reason=reason
        )
    try:
        await room_actions.close_room(db, p, m.room_id)
    except (NotFound, Forbidden):
        log.warning("the RCP's room could not be closed", exc_info=True)
    await _tell(app, m, "RCP annulée", cancel=True, extra=f"Motif : {reason}" if reason else "")
    return await get_meeting(app, p, m.id)


def _people(m: RcpMeeting) -> list[str]:
    return sorted({*m.invitee_ids, str(m.lead_id)})


def _current_of(m: RcpMeeting, items: list[RcpItem], numbers: dict[uuid.UUID, str]) -> CurrentOut:
    it = next((i for i in items if i.id == m.current_item_id), None)
    return CurrentOut(
        meeting_id=m.id,
        item_id=it.id if it else None,
        position=it.position if it else None,
        dossier_id=it.dossier_id if it else None,
        number=numbers.get(it.dossier_id) if it else None,
    )


async def _items(s: AsyncSession, meeting_id: uuid.UUID) -> list[RcpItem]:
    return list(
        (
            await s.execute(
                select(RcpItem).where(RcpItem.meeting_id == meeting_id).order_by(RcpItem.position)
            )
        ).scalars()
    )


async def set_current(
    app: web.Application, p: Principal, meeting_id: uuid.UUID, item_id: uuid.UUID | None
) -> CurrentOut:
    """« Dossier suivant » (``item_id`` None: the next on the agenda) or the item chosen;
    every participant of the room is shown it (``rcp:current`` after commit)."""
    async with app[DB].write() as uow:
        m, role = await _load(app, uow.session, p, meeting_id, lock=True)
        if role != "lead":
            raise Forbidden(
                "Seul le responsable de la réunion conduit la RCP et signe ses fiches.",
                code="rcp_lead_only",
            )
        _require_planned(m)
        items = await _items(uow.session, m.id)
        if item_id is None:
            pos = next((i.position for i in items if i.id == m.current_item_id), 0)
            nxt = next((i for i in items if i.position > pos), None)
            if nxt is None:
                raise Conflict("Le dernier dossier de l'ordre du jour est atteint.", code="rcp_end")
        else:
            nxt = next((i for i in items if i.id == item_id), None)
            if nxt is None:
                raise NotFound("No such item on this RCP's agenda", code="rcp_item_not_found")
        m.current_item_id = nxt.id
        d = await uow.session.get(Dossier, nxt.dossier_id)
        assert d is not None
        numbers = {d.id: d.number}
        out = _current_of(m, items, numbers)
        audit.record(
            uow.session,
            "dossier.rcp.presented",
            actor=p,
            object_type="dossier",
            object_id=d.id,
            rcp_id=str(m.id),
            position=nxt.position,
        )
        uow.emit(
            "rcp.current", out.model_dump(mode="json"), room_id=str(m.room_id), user_ids=_people(m)
        )
    return out


async def _item_for_lead(
    app: web.Application, s: AsyncSession, p: Principal, item_id: uuid.UUID, *, lock: bool
) -> tuple[RcpItem, RcpMeeting]:
    """The item and its meeting, for the lead. The refusal is audited before anything is
    locked (on SQLite its own transaction would wait for ours)."""
    it = await s.get(RcpItem, item_id)
    if it is None:
        raise NotFound("No such item", code="rcp_item_not_found")
    m, role = await _load(app, s, p, it.meeting_id, lock=False)
    await _lead_only(app, p, m, role, "fiche")
    if lock:
        m, role = await _load(app, s, p, it.meeting_id, lock=True)
        await s.refresh(it)
    if it.status is RcpItemStatus.signed:
        raise Conflict("La fiche RCP est déjà signée.", code="fiche_signed")
    return it, m


async def save_fiche(
    app: web.Application, p: Principal, item_id: uuid.UUID, body: FicheIn
) -> ItemOut:
    """The lead writes the « fiche RCP » (draft until signed)."""
    async with app[DB].write() as uow:
        it, m = await _item_for_lead(app, uow.session, p, item_id, lock=True)
        _require_planned(m)
        it.question, it.proposal, it.present = body.question.strip(), body.proposal, body.present
        d = await uow.session.get(Dossier, it.dossier_id)
        assert d is not None
        await _changed(uow, p, d, "rcp.fiche_saved", rcp_id=str(m.id), item_id=str(it.id))
    return (await _item_outs(app, p, m, [it], role="lead"))[0]


async def sign_fiche(app: web.Application, p: Principal, item_id: uuid.UUID) -> ItemOut:
    """The lead signs the fiche: a PAdES-signed PDF filed into the dossier, once."""
    db = app[DB]
    async with db.read() as s:
        it, m = await _item_for_lead(app, s, p, item_id, lock=False)
        if not it.proposal.strip():
            raise ValidationFailed(
                "La proposition thérapeutique / avis de la RCP est à remplir avant de signer.",
                code="fiche_incomplete",
            )
        report = await collect(s, it.dossier_id, p.label)
        lead = await s.get(User, m.lead_id)
        lead_label = lead.display_name if lead else p.label
        if lead is not None and lead.rpps:
            lead_label += f" (RPPS {lead.rpps})"
    signed_at = utcnow()
    data = fiche.FicheData(
        number=report.number,
        patient=report.patient,
        patient_file_name=report.patient_file_name,
        meeting_title=m.title,
        meeting_at=m.scheduled_at,
        lead=lead_label,
        question=it.question,
        proposal=it.proposal,
        present=list(it.present),
        signed_at=signed_at,
    )
    pdf = await fiche.build_signed(data, app[SETTINGS].data_dir)
    async with db.write() as uow:
        it, m = await _item_for_lead(app, uow.session, p, item_id, lock=True)
        # The lead files it as the RCP's lead: checked above, and they may hold only the
        # meeting's read grant on this dossier.
        doc = await add_document(
            uow,
            p,
            it.dossier_id,
            fiche.filename(data),
            pdf,
            "report",
            category="report",
            meta={"signed": True, "pades": True, "rcp": True, "rcp_id": str(m.id)},
            check_permission=False,
        )
        it.status, it.signed_at, it.signed_by_id, it.document_id = (
            RcpItemStatus.signed,
            signed_at,
            p.subject_id,
            doc.id,
        )
        d = await uow.session.get(Dossier, it.dossier_id)
        assert d is not None
        await _changed(
            uow,
            p,
            d,
            "rcp.fiche_signed",
            rcp_id=str(m.id),
            item_id=str(it.id),
            document_id=str(doc.id),
            sha256=doc.sha256,
        )
        uow.emit(
            "rcp.item_signed",
            {"meeting_id": str(m.id), "item_id": str(it.id), "dossier_id": str(d.id)},
            room_id=str(m.room_id),
            user_ids=_people(m),
        )
    return (await _item_outs(app, p, m, [it], role="lead"))[0]


# -- reads ----------------------------------------------------------------------------------


async def _users(s: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, User]:
    if not ids:
        return {}
    return {u.id: u for u in (await s.execute(select(User).where(User.id.in_(ids)))).scalars()}


async def _item_outs(
    app: web.Application, p: Principal, m: RcpMeeting, items: list[RcpItem], *, role: str
) -> list[ItemOut]:
    """The agenda as ``p`` may see it: each dossier they may read shows its patient (an
    audited read of that dossier); others show only the number and the question."""
    out = []
    async with app[DB].write() as uow:
        s = uow.session
        signers = await _users(s, {i.signed_by_id for i in items if i.signed_by_id})
        for it in items:
            d = await s.get(Dossier, it.dossier_id)
            if d is None:
                continue
            acc = await permissions.access_to(s, p, d)
            patient = ""
            if acc.can_see:
                pt = await s.get(Patient, d.patient_id)
                if pt is not None:
                    first = pt.used_first_name or pt.first_name
                    patient = f"{(pt.used_name or pt.birth_name).upper()} {first}".strip()
                    patient += f" ({pt.birth_date.strftime('%d/%m/%Y')})"
                audit.record(
                    s,
                    "dossier.rcp.read",
                    actor=p,
                    object_type="dossier",
                    object_id=d.id,
                    rcp_id=str(m.id),
                )
            out.append(
                ItemOut(
                    id=it.id,
                    position=it.position,
                    dossier_id=it.dossier_id,
                    number=d.number,
                    patient=patient,
                    question=it.question,
                    proposal=it.proposal,
                    present=list(it.present),
                    status=it.status,
                    status_label=it.status.label,
                    signed_at=it.signed_at,
                    signed_by=UserRef.of(signers[it.signed_by_id])
                    if it.signed_by_id in signers
                    else None,
                    document_id=it.document_id,
                )
            )
    return out


async def get_meeting(app: web.Application, p: Principal, meeting_id: uuid.UUID) -> MeetingOut:
    async with app[DB].read() as s:
        m, role = await _load(app, s, p, meeting_id, lock=False)
        items = await _items(s, m.id)
        ids = {uuid.UUID(i) for i in m.invitee_ids} | {m.lead_id}
        if m.planned_by_id:
            ids.add(m.planned_by_id)
        users = await _users(s, ids)
    ref = lambda i: UserRef.of(users[i]) if i in users else None  # noqa: E731
    return MeetingOut(
        id=m.id,
        title=m.title,
        scheduled_at=m.scheduled_at,
        duration_minutes=m.duration_minutes,
        status=m.status,
        status_label=m.status.label,
        room_id=m.room_id,
        lead=ref(m.lead_id),
        planned_by=ref(m.planned_by_id),
        invitees=[r for i in m.invitee_ids if (r := ref(uuid.UUID(i)))],
        items=await _item_outs(app, p, m, items, role=role),
        current_item_id=m.current_item_id,
        my_role=role,
        cancelled_at=m.cancelled_at,
        cancel_reason=m.cancel_reason,
    )


async def list_meetings(app: web.Application, p: Principal) -> list[MeetingSummary]:
    """The RCPs I lead, am invited to or planned (admins: all), soonest first."""
    if not p.is_user:
        return []
    me = p.subject_id
    stmt = select(RcpMeeting).order_by(RcpMeeting.scheduled_at)
    if not p.is_admin:  # invitees are the room's members
        stmt = stmt.where(
            or_(
                RcpMeeting.lead_id == me,
                RcpMeeting.planned_by_id == me,
                RcpMeeting.room_id.in_(select(RoomMember.room_id).where(RoomMember.user_id == me)),
            )
        )
    async with app[DB].read() as s:
        rows = list((await s.execute(stmt)).scalars())
        mine = [m for m in rows if role_of(p, m) is not None]
        counts: dict[uuid.UUID, tuple[int, int]] = {}
        for m in mine:
            its = await _items(s, m.id)
            counts[m.id] = (len(its), sum(i.status is RcpItemStatus.signed for i in its))
        users = await _users(s, {m.lead_id for m in mine})
    return [
        MeetingSummary(
            id=m.id,
            title=m.title,
            scheduled_at=m.scheduled_at,
            duration_minutes=m.duration_minutes,
            status=m.status,
            status_label=m.status.label,
            room_id=m.room_id,
            lead=UserRef.of(users[m.lead_id]) if m.lead_id in users else None,
            items=counts[m.id][0],
            signed=counts[m.id][1],
        )
        for m in mine
    ]


async def current_of_room(app: web.Application, room_id: uuid.UUID) -> dict[str, Any] | None:
    """For the ``room:join`` acknowledgement: the RCP of this room and its current item."""
    async with app[DB].read() as s:
        m = await s.scalar(select(RcpMeeting).where(RcpMeeting.room_id == room_id))
        if m is None:
            return None
        items = await _items(s, m.id)
        numbers: dict[uuid.UUID, str] = {}
        cur = next((i for i in items if i.id == m.current_item_id), None)
        if cur is not None:
            d = await s.get(Dossier, cur.dossier_id)
            if d is not None:
                numbers[d.id] = d.number
    return _current_of(m, items, numbers).model_dump(mode="json")
