"""The write paths of a téléconsultation planned on a dossier, and its reads.

Planning opens a téléconsultation room on the dossier (:mod:`rooms.actions`), makes the
practitioners hosts and the nurse a participant, records the appointment and its reminders
(audited with the dossier, ``dossier.updated`` after commit), then invites the patient and
relatives through :mod:`rooms.invitations` (link by e-mail and/or SMS) and writes to the
professionals with an .ics (icalendar). Rescheduling and cancellation tell everyone.
Messages to professionals carry no patient data: the dossier's number and a link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from aiohttp import web
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.accounts import User
from core.context import DB, LIMITER, NOTIFIER, SETTINGS
from core.db import UnitOfWork, utcnow
from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from core.notify import Attachment, DeliveryError, Email
from core.paris_time import paris_datetime, paris_spelled_out
from core.principal import Principal
from dossier.calendar_entry import calendar_entry
from dossier.models import (
    Dossier,
    Teleconsultation,
    TeleconsultationReminder,
    TeleconsultationStep,
)
from dossier.permissions import Action, require
from dossier.schemas import UserRef
from dossier.teleconsult.schemas import (
    GuestOut,
    Occupant,
    PlanIn,
    ReportOut,
    ReportSent,
    RescheduleIn,
    RoomState,
    TeleconsultationOut,
)
from dossier.workflow.dossiers import _changed
from rooms import actions as room_actions
from rooms import invitations
from rooms.live import LIVE
from rooms.models import Invitation, MemberRole, Room, RoomKind, RoomStatus

log = logging.getLogger(__name__)
Step = TeleconsultationStep
# Reminders: the day before and a quarter of an hour before.
REMINDERS = {"day_before": timedelta(days=1), "quarter_hour": timedelta(minutes=15)}
REMINDER_INTERVAL_SECONDS = 60
# A guest's link stays valid this long after the planned end.
LINK_GRACE = timedelta(hours=2)
MAX_AHEAD = timedelta(days=730)


def _app_url(app: web.Application, dossier_id: uuid.UUID) -> str:
    return f"{app[SETTINGS].public_url}/app/dossiers/{dossier_id}"


def _room_url(app: web.Application, room_id: uuid.UUID) -> str:
    return f"{app[SETTINGS].public_url}/app/rooms/{room_id}"


# -- checks -------------------------------------------------------------------------------


async def _participant(
    app: web.Application,
    uow_session: AsyncSession,
    p: Principal,
    dossier_id: uuid.UUID,
    *,
    for_update: bool = True,
) -> Dossier:
    """The dossier, for someone on one of its sides (not a reader by number); writes lock
    its row (PostgreSQL), as the dossier's other write paths do."""
    d, acc = await require(uow_session, app[DB], p, dossier_id, Action.read, for_update=for_update)
    if not acc.participant or not p.is_user:
        await audit.record_now(
            app[DB],
            "dossier.teleconsultation",
            actor=p,
            object_type="dossier",
            object_id=dossier_id,
            outcome="denied",
        )
        raise Forbidden(
            "Seuls les professionnels du dossier planifient ses téléconsultations.",
            code="teleconsultation_not_allowed",
        )
    return d


def _check_time(at: datetime, now: datetime) -> None:
    if at <= now:
        raise ValidationFailed(
            "La téléconsultation doit être planifiée dans le futur.", code="invalid_schedule"
        )
    if at > now + MAX_AHEAD:
        raise ValidationFailed(
            "Une téléconsultation se planifie au plus deux ans à l'avance.",
            code="invalid_schedule",
        )


async def _professionals(session: AsyncSession, ids: list[uuid.UUID]) -> list[User]:
    if not ids:
        return []
    rows = (await session.execute(select(User).where(User.id.in_(ids)))).scalars()
    found = {u.id: u for u in rows if u.active}
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise ValidationFailed("Unknown or inactive account", code="user_not_found", ids=missing)
    return [found[i] for i in ids]


def _reminder_rows(tc: Teleconsultation, now: datetime) -> list[TeleconsultationReminder]:
    """The reminders still ahead (a téléconsultation planned for in an hour gets only the
    quarter-hour one)."""
    return [
        TeleconsultationReminder(teleconsultation_id=tc.id, kind=kind, due_at=tc.scheduled_at - d)
        for kind, d in REMINDERS.items()
        if tc.scheduled_at - d > now
    ]


# -- messages -----------------------------------------------------------------------------


def ics_of(
    app: web.Application,
    tc: Teleconsultation,
    number: str,
    organizer: User | None,
    attendees: list[User],
    *,
    cancel: bool = False,
) -> bytes:
    """The calendar entry professionals get: same UID for the whole life of the appointment,
    SEQUENCE raised by each change, METHOD:CANCEL when it is called off."""
    return calendar_entry(
        prodid="-//Consilium//Téléconsultation//FR",
        uid=f"teleconsultation-{tc.id}@consilium",
        start=tc.scheduled_at,
        minutes=tc.duration_minutes,
        sequence=tc.sequence,
        summary=f"Téléconsultation — dossier n° {number}",
        description=(
            f"Téléconsultation du dossier n° {number}.\n"
            f"Dossier : {_app_url(app, tc.dossier_id)}\nSalle : {_room_url(app, tc.room_id)}"
        ),
        location=_room_url(app, tc.room_id),
        url=_room_url(app, tc.room_id),
        organizer=organizer,
        attendees=attendees,
        cancel=cancel,
    )


async def _tell_professionals(
    app: web.Application,
    tc: Teleconsultation,
    number: str,
    what: str,
    *,
    ics: bool = True,
    cancel: bool = False,
    extra: str = "",
) -> None:
    """An e-mail (with the .ics) to each professional taking part; SMS too when they asked
    for it (``room_invitation`` preference). Failures are logged, never undo the change."""
    async with app[DB].read() as s:
        ids = {uuid.UUID(i) for i in tc.practitioner_ids}
        if tc.nurse_id:
            ids.add(tc.nurse_id)
        if tc.planned_by_id:
            ids.add(tc.planned_by_id)
        people = list((await s.execute(select(User).where(User.id.in_(ids)))).scalars())
        organizer = await s.get(User, tc.planned_by_id) if tc.planned_by_id else None
    when = paris_spelled_out(tc.scheduled_at)
    subject = f"{what} — dossier n° {number}"
    text = (
        f"{what} : dossier n° {number}, le {when} (heure de Paris), "
        f"durée {tc.duration_minutes} min.\n{extra}\n"
        f"Ouvrir le dossier : {_app_url(app, tc.dossier_id)}\n"
        f"Entrer dans la salle : {_room_url(app, tc.room_id)}\n\nConsilium"
    )
    attachment = (
        [
            Attachment(
                "teleconsultation.ics",
                ics_of(app, tc, number, organizer, people, cancel=cancel),
                "text/calendar",
            )
        ]
        if ics
        else []
    )
    notifier = app[NOTIFIER]
    for u in people:
        try:
            await notifier.send_email(
                Email(to=u.email, subject=subject, text=text, attachments=attachment)
            )
            channel = ((u.preferences or {}).get("notify") or {}) if u.preferences else {}
            wants_sms = channel if isinstance(channel, str) else channel.get("room_invitation")
            if wants_sms in ("sms", "both") and u.mobile:
                await notifier.send_sms(u.mobile, f"{subject}, le {when}.")
        except DeliveryError:
            log.warning("téléconsultation notice to a professional failed", exc_info=True)


async def _tell_guest(
    app: web.Application, guest: dict[str, object], subject: str, text: str
) -> None:
    notifier = app[NOTIFIER]
    try:
        if guest.get("email"):
            await notifier.send_email(Email(to=str(guest["email"]), subject=subject, text=text))
        if guest.get("mobile"):
            await notifier.send_sms(str(guest["mobile"]), f"{subject}. {text}"[:600])
    except DeliveryError:
        log.warning("téléconsultation notice to a guest failed", exc_info=True)


async def _invite_guests(
    app: web.Application, p: Principal, tc: Teleconsultation, guests: list[dict[str, object]]
) -> list[dict[str, object]]:
    """Send each guest their personal link (rooms' invitations), valid until two hours after
    the planned end; returns the guests with their invitation ids."""
    out = []
    ends = tc.scheduled_at + timedelta(minutes=tc.duration_minutes) + LINK_GRACE
    for g in guests:
        inv, _, _ = await invitations.create_invitation(
            app[DB],
            app[NOTIFIER],
            app[SETTINGS],
            p,
            tc.room_id,
            name=str(g["name"]),
            email=str(g["email"]) if g.get("email") else None,
            mobile=str(g["mobile"]) if g.get("mobile") else None,
            scheduled_at=tc.scheduled_at,
            expires_at=ends,
            single_use=False,
            limiter=app.get(LIMITER),
        )
        out.append({**g, "invitation_id": str(inv.id)})
    return out


async def _store_guests(
    app: web.Application, tc_id: uuid.UUID, guests: list[dict[str, object]]
) -> None:
    """Remember the guests' invitation ids (the rooms' own rows are already audited)."""
    async with app[DB].write() as uow:
        await uow.session.execute(
            update(Teleconsultation).where(Teleconsultation.id == tc_id).values(guests=guests)
        )


async def _revoke_guests(app: web.Application, p: Principal, tc: Teleconsultation) -> None:
    for g in tc.guests:
        if g.get("invitation_id"):
            with contextlib.suppress(NotFound):
                await invitations.revoke_invitation(
                    app[DB], p, tc.room_id, uuid.UUID(str(g["invitation_id"]))
                )


# -- write paths --------------------------------------------------------------------------


async def plan(
    app: web.Application,
    p: Principal,
    dossier_id: uuid.UUID,
    body: PlanIn,
    *,
    now: datetime | None = None,
) -> TeleconsultationOut:
    """« Planifier une téléconsultation » on a dossier."""
    db = app[DB]
    now = now or utcnow()
    _check_time(body.scheduled_at, now)
    async with db.read() as s:
        d = await _participant(app, s, p, dossier_id, for_update=False)
        practitioners = await _professionals(s, list(dict.fromkeys(body.practitioner_ids)))
        nurse = (await _professionals(s, [body.nurse_id]))[0] if body.nurse_id else None
        number, requester_id = d.number, d.requester_id
    room = await room_actions.create_room(
        db,
        p,
        kind=RoomKind.teleconsultation,
        title=f"Téléconsultation — dossier n° {number}",
        dossier_id=dossier_id,
        scheduled_at=body.scheduled_at,
        capacity=max(4, 2 + len(practitioners) + len(body.guests)),
        # A secretary plans for the practitioner she acts for: the room is theirs.
        owner_id=requester_id if p.role == "secretary" else None,
    )
    for u in practitioners:
        if u.id != room.owner_id:
            await room_actions.add_member(db, p, room.id, u.id, MemberRole.host)
    if nurse is not None and nurse.id != room.owner_id and nurse not in practitioners:
        await room_actions.add_member(db, p, room.id, nurse.id, MemberRole.participant)
    guests = [g.model_dump() for g in body.guests]
    async with db.write() as uow:
        d = await _participant(app, uow.session, p, dossier_id)
        tc = Teleconsultation(
            dossier_id=dossier_id,
            room_id=room.id,
            scheduled_at=body.scheduled_at,
            duration_minutes=body.duration_minutes,
            step=Step.planned,
            planned_by_id=p.subject_id,
            practitioner_ids=[str(u.id) for u in practitioners],
            nurse_id=nurse.id if nurse else None,
            guests=guests,
            sequence=0,
        )
        uow.session.add(tc)
        await uow.session.flush()
        uow.session.add_all(_reminder_rows(tc, now))
        await _changed(
            uow,
            p,
            d,
            "teleconsultation.planned",
            teleconsultation_id=str(tc.id),
            room_id=str(room.id),
            scheduled_at=tc.scheduled_at.isoformat(),
            duration_minutes=tc.duration_minutes,
            guests=len(guests),
        )
    tc.guests = await _invite_guests(app, p, tc, guests)
    await _store_guests(app, tc.id, tc.guests)
    await _tell_professionals(app, tc, number, "Téléconsultation planifiée")
    return await _out(app, tc)


async def _load(
    app: web.Application,
    s: AsyncSession,
    p: Principal,
    tc_id: uuid.UUID,
    *,
    for_update: bool = True,
) -> tuple[Teleconsultation, Dossier]:
    """The téléconsultation and its dossier. For a write, the appointment's row is locked
    first (``FOR UPDATE`` on PostgreSQL; on SQLite a no-op write takes the writer lock before
    anything is read), so two changes of one appointment run one after the other and the
    second sees the first's result."""
    stmt = select(Teleconsultation).where(Teleconsultation.id == tc_id)
    if for_update:
        if app[DB].dialect == "postgresql":
            stmt = stmt.with_for_update()
        else:
            await s.execute(
                update(Teleconsultation)
                .where(Teleconsultation.id == tc_id)
                .values(sequence=Teleconsultation.sequence)
            )
    tc = (await s.execute(stmt.execution_options(populate_existing=True))).scalar_one_or_none()
    if tc is None:
        raise NotFound("No téléconsultation with this id", code="teleconsultation_not_found")
    d = await _participant(app, s, p, tc.dossier_id, for_update=for_update)
    return tc, d


def _require_step(tc: Teleconsultation, allowed: set[Step]) -> None:
    if tc.step not in allowed:
        raise Conflict(
            f"The téléconsultation is '{tc.step.value}' ({tc.step.label})",
            code="illegal_state",
            state=tc.step.value,
        )


async def reschedule(
    app: web.Application,
    p: Principal,
    tc_id: uuid.UUID,
    body: RescheduleIn,
    *,
    now: datetime | None = None,
) -> TeleconsultationOut:
    """Move the appointment: new reminders, new links for the guests (the old ones are
    revoked), an updated .ics (same UID, next SEQUENCE) for the professionals."""
    db = app[DB]
    now = now or utcnow()
    _check_time(body.scheduled_at, now)
    async with db.read() as s:
        tc, d = await _load(app, s, p, tc_id, for_update=False)
        _require_step(tc, {Step.planned})
    await room_actions.reschedule_room(db, p, tc.room_id, body.scheduled_at)
    async with db.write() as uow:
        tc, d = await _load(app, uow.session, p, tc_id)
        _require_step(tc, {Step.planned})
        before = tc.scheduled_at
        tc.scheduled_at = body.scheduled_at
        if body.duration_minutes:
            tc.duration_minutes = body.duration_minutes
        tc.sequence += 1
        await uow.session.execute(
            delete(TeleconsultationReminder).where(
                TeleconsultationReminder.teleconsultation_id == tc.id
            )
        )
        uow.session.add_all(_reminder_rows(tc, now))
        await _changed(
            uow,
            p,
            d,
            "teleconsultation.rescheduled",
            teleconsultation_id=str(tc.id),
            before=before.isoformat(),
            scheduled_at=tc.scheduled_at.isoformat(),
        )
        number = d.number
    await _revoke_guests(app, p, tc)
    tc.guests = await _invite_guests(app, p, tc, [dict(g) for g in tc.guests])
    await _store_guests(app, tc.id, tc.guests)
    await _tell_professionals(
        app,
        tc,
        number,
        "Téléconsultation déplacée",
        extra=f"Elle était prévue le {paris_spelled_out(before)}.",
    )
    return await _out(app, tc)


async def cancel(
    app: web.Application, p: Principal, tc_id: uuid.UUID, reason: str = ""
) -> TeleconsultationOut:
    """Call the appointment off: the room closes, links are revoked, everyone is told."""
    db = app[DB]
    async with db.write() as uow:
        tc, d = await _load(app, uow.session, p, tc_id)
        _require_step(tc, {Step.planned})
        tc.step, tc.cancelled_at, tc.cancel_reason = Step.cancelled, utcnow(), reason.strip()
        tc.sequence += 1
        await uow.session.execute(
            delete(TeleconsultationReminder).where(
                TeleconsultationReminder.teleconsultation_id == tc.id
            )
        )
        await _changed(
            uow, p, d, "teleconsultation.cancelled", teleconsultation_id=str(tc.id), reason=reason
        )
        number = d.number
    await _revoke_guests(app, p, tc)
    with contextlib.suppress(NotFound, Forbidden):
        await room_actions.close_room(db, p, tc.room_id)
    when = paris_spelled_out(tc.scheduled_at)
    for g in tc.guests:
        await _tell_guest(
            app,
            g,
            "Téléconsultation annulée",
            f"Bonjour {g.get('name', '')}, la téléconsultation prévue le {when} (heure de Paris) "
            "est annulée. Le lien reçu ne permet plus d'entrer dans la salle.",
        )
    await _tell_professionals(
        app, tc, number, "Téléconsultation annulée", cancel=True,
        extra=f"Motif : {reason}" if reason else "",
    )  # fmt: skip
    return await _out(app, tc)


async def mark_done(app: web.Application, p: Principal, tc_id: uuid.UUID) -> TeleconsultationOut:
    """« Téléconsultation réalisée »."""
    async with app[DB].write() as uow:
        tc, d = await _load(app, uow.session, p, tc_id)
        _require_step(tc, {Step.planned})
        tc.step, tc.done_at = Step.done, utcnow()
        await uow.session.execute(
            delete(TeleconsultationReminder).where(
                TeleconsultationReminder.teleconsultation_id == tc.id
            )
        )
        await _changed(uow, p, d, "teleconsultation.done", teleconsultation_id=str(tc.id))
    return await _out(app, tc)


async def mark_report_signed(
    uow: UnitOfWork, dossier_id: uuid.UUID, *, teleconsultation_id: uuid.UUID | None = None
) -> None:
    """For the consultation report's signing (:func:`dossier.teleconsult.report.sign_report`,
    in its transaction): the téléconsultation named (by default the dossier's last one carried
    out) becomes « Compte-rendu signé »."""
    stmt = select(Teleconsultation).where(
        Teleconsultation.dossier_id == dossier_id, Teleconsultation.step == Step.done
    )
    if teleconsultation_id is not None:
        stmt = stmt.where(Teleconsultation.id == teleconsultation_id)
    tc = await uow.session.scalar(stmt.order_by(Teleconsultation.scheduled_at.desc()).limit(1))
    if tc is not None:
        tc.step = Step.report_signed


# -- reminders ------------------------------------------------------------------------------


async def send_due_reminders(app: web.Application, now: datetime | None = None) -> int:
    """Send the reminders due at ``now``, once per cluster (:meth:`Database.cluster_lock`);
    each row is claimed (``sent_at``) before its messages leave, so none goes twice. A
    reminder that comes too late (the appointment has begun, or the day-before one once the
    quarter-hour one is due) is dropped. Returns how many were sent."""
    db = app[DB]
    now = now or utcnow()
    sent = 0
    async with db.cluster_lock("teleconsultation-reminders") as held:
        if not held:
            return 0
        async with db.read() as s:
            due = (
                (
                    await s.execute(
                        select(TeleconsultationReminder.id)
                        .join(Teleconsultation)
                        .where(
                            TeleconsultationReminder.sent_at.is_(None),
                            TeleconsultationReminder.due_at <= now,
                            Teleconsultation.step == Step.planned,
                        )
                        .order_by(TeleconsultationReminder.due_at)
                        .limit(200)
                    )
                )
                .scalars()
                .all()
            )
        for rid in due:
            async with db.write() as uow:
                claimed = await uow.session.execute(
                    update(TeleconsultationReminder)
                    .where(
                        TeleconsultationReminder.id == rid,
                        TeleconsultationReminder.sent_at.is_(None),
                    )
                    .values(sent_at=now)
                )
                if claimed.rowcount != 1:  # type: ignore[attr-defined]
                    continue
                r = await uow.session.get(TeleconsultationReminder, rid)
                assert r is not None
                tc = await uow.session.get(Teleconsultation, r.teleconsultation_id)
                assert tc is not None
                d = await uow.session.get(Dossier, tc.dossier_id)
                assert d is not None
                links = {}
                for g in tc.guests:
                    if g.get("invitation_id"):
                        inv = await uow.session.get(Invitation, uuid.UUID(str(g["invitation_id"])))
                        if inv is not None and inv.revoked_at is None:
                            links[str(inv.id)] = invitations.link_of(app[SETTINGS], inv)
                kind, number = r.kind, d.number
            # Too late to be of use: the appointment has begun, or « demain » would arrive
            # with the quarter-hour reminder (a server down for the night).
            if tc.scheduled_at <= now or (
                kind == "day_before" and now >= tc.scheduled_at - REMINDERS["quarter_hour"]
            ):
                continue
            await _remind(app, tc, number, kind, links)
            sent += 1
    return sent


async def _remind(
    app: web.Application, tc: Teleconsultation, number: str, kind: str, links: dict[str, str]
) -> None:
    when = paris_spelled_out(tc.scheduled_at)
    soon = "dans 15 minutes" if kind == "quarter_hour" else "demain"
    for g in tc.guests:
        link = links.get(str(g.get("invitation_id")))
        if link is None:
            continue
        await _tell_guest(
            app,
            g,
            f"Rappel : téléconsultation {soon}",
            f"Bonjour {g.get('name', '')}, votre téléconsultation a lieu {soon}, le {when} "
            f"(heure de Paris). Pour entrer dans la salle : {link}",
        )
    await _tell_professionals(app, tc, number, f"Rappel : téléconsultation {soon}", ics=False)


def start_reminders(app: web.Application) -> None:
    """Send due reminders every minute in the server (one node of the cluster at a time)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(REMINDER_INTERVAL_SECONDS)
                try:
                    await send_due_reminders(app)
                except Exception:
                    log.exception("téléconsultation reminders failed")

        task = asyncio.create_task(loop(), name="teleconsultation-reminders")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(ctx)


# -- reads ----------------------------------------------------------------------------------


async def _out(app: web.Application, tc: Teleconsultation) -> TeleconsultationOut:
    async with app[DB].read() as s:
        ids = {uuid.UUID(i) for i in tc.practitioner_ids}
        for extra in (tc.nurse_id, tc.planned_by_id, tc.report_signed_by_id):
            if extra:
                ids.add(extra)
        users = {u.id: u for u in (await s.execute(select(User).where(User.id.in_(ids)))).scalars()}
    ref = lambda i: UserRef.of(users[i]) if i in users else None  # noqa: E731
    return TeleconsultationOut(
        id=tc.id,
        dossier_id=tc.dossier_id,
        room_id=tc.room_id,
        scheduled_at=tc.scheduled_at,
        duration_minutes=tc.duration_minutes,
        step=tc.step,
        step_label=tc.step.label,
        planned_by=ref(tc.planned_by_id),
        practitioners=[r for i in tc.practitioner_ids if (r := ref(uuid.UUID(i)))],
        nurse=ref(tc.nurse_id),
        guests=[
            GuestOut(
                name=str(g.get("name", "")),
                relation=str(g.get("relation", "patient")),
                email=g.get("email"),
                mobile=g.get("mobile"),
            )
            for g in tc.guests
        ],
        done_at=tc.done_at,
        cancelled_at=tc.cancelled_at,
        cancel_reason=tc.cancel_reason,
        report=_report_out(tc, ref(tc.report_signed_by_id) if tc.report_signed_by_id else None),
    )


def _report_out(tc: Teleconsultation, signer: UserRef | None) -> ReportOut | None:
    r = tc.report
    if not r:
        return None
    pid = r.get("prescription_document_id")
    return ReportOut(
        reason=str(r.get("reason", "")),
        findings=str(r.get("findings", "")),
        conclusion=str(r.get("conclusion", "")),
        prescription_document_id=uuid.UUID(str(pid)) if pid else None,
        gp_name=str(r.get("gp_name", "")),
        gp_mss=str(r.get("gp_mss", "")),
        document_id=tc.report_document_id,
        signed_by=signer,
        signed_at=tc.report_signed_at,
        sent=[ReportSent.model_validate(x) for x in (tc.report_sent or [])],
    )


async def list_for_dossier(
    app: web.Application, p: Principal, dossier_id: uuid.UUID
) -> list[TeleconsultationOut]:
    async with app[DB].write() as uow:
        await _participant(app, uow.session, p, dossier_id, for_update=False)
        rows = list(
            (
                await uow.session.execute(
                    select(Teleconsultation)
                    .where(Teleconsultation.dossier_id == dossier_id)
                    .order_by(Teleconsultation.scheduled_at)
                )
            ).scalars()
        )
        audit.record(
            uow.session,
            "dossier.teleconsultation.list",
            actor=p,
            object_type="dossier",
            object_id=dossier_id,
            count=len(rows),
        )
    return [await _out(app, tc) for tc in rows]


async def dossier_rooms(
    app: web.Application, p: Principal, dossier_id: uuid.UUID
) -> list[RoomState]:
    """The dossier's open rooms with who is inside now (seed 001: « si la salle est déjà
    occupée, vous verrez le nombre de participants ainsi que leur nom »). A reader by number
    does not enter the dossier's rooms: an empty list."""
    async with app[DB].write() as uow:
        _, acc = await require(uow.session, app[DB], p, dossier_id, Action.read)
        audit.record(
            uow.session, "dossier.rooms", actor=p, object_type="dossier", object_id=dossier_id
        )
        if not acc.participant:
            return []
        rooms = list(
            (
                await uow.session.execute(
                    select(Room)
                    .where(Room.dossier_id == dossier_id, Room.status == RoomStatus.open)
                    .order_by(Room.scheduled_at.is_(None), Room.scheduled_at, Room.created_at)
                )
            ).scalars()
        )
        tcs = {
            tc.room_id: tc.id
            for tc in (
                await uow.session.execute(
                    select(Teleconsultation).where(Teleconsultation.dossier_id == dossier_id)
                )
            ).scalars()
        }
    live = app.get(LIVE)
    occ = (
        await live.state.occupancy([str(r.id) for r in rooms], live.grace) if live and rooms else {}
    )
    out = []
    for r in rooms:
        # As the rooms list counts them: a participant briefly disconnected (within the
        # grace period) is still inside.
        ps = occ.get(str(r.id), [])
        label = (
            f"Salle prévue le {paris_datetime(r.scheduled_at)}"
            if r.scheduled_at
            else "Salle ouverte"
        )
        out.append(
            RoomState(
                id=r.id,
                title=r.title,
                kind=r.kind.value,
                status=r.status.value,
                scheduled_at=r.scheduled_at,
                label=label,
                count=len(ps),
                occupants=[Occupant(name=x.name, kind=x.kind) for x in ps],
                teleconsultation_id=tcs.get(r.id),
            )
        )
    return out
