"""Invitations: the patient's way into a room, by a link sent by e-mail and/or SMS.

The link carries ``<token_id>.<signature>``: ``token_id`` is random and names the row;
the signature is an HMAC (the deployment's secret key) over the token id, the room and the
expiry, so a token is bound to its room and cannot be forged or stretched. Revocation,
expiry and single use are checked against the row on every use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from core import audit
from core.config import Settings
from core.db import Database, UnitOfWork, utcnow
from core.errors import Conflict, Gone, NotFound, TooManyRequests, ValidationFailed
from core.notify import DeliveryError, Email, Notifier
from core.paris_time import paris_spelled_out
from core.principal import Principal
from core.ratelimit import RateLimiter
from rooms import access
from rooms.models import Guest, Invitation, Room, RoomKind, RoomStatus

log = logging.getLogger(__name__)
DEFAULT_VALIDITY = timedelta(hours=48)
# Outgoing e-mails and SMS: invitations a user may send per minute, a room may get per hour.
INVITES_PER_USER_PER_MINUTE = 10
INVITES_PER_ROOM_PER_HOUR = 20
# Supported browsers, as the téléconsultation guide lists them.
SUPPORTED_BROWSERS = [
    {"platform": "desktop", "browser": "Chrome"},
    {"platform": "desktop", "browser": "Firefox"},
    {"platform": "iphone", "browser": "Safari"},
    {"platform": "android", "browser": "Chrome"},
]


class InvitationProblem(Gone):
    """A token that cannot be used: expired, revoked, already used."""


def _signature(secret: str, token_id: str, room_id: uuid.UUID, expires_at: datetime) -> str:
    msg = f"invite:{token_id}:{room_id}:{int(expires_at.timestamp())}".encode()
    mac = hmac.new(secret.encode(), msg, hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def token_of(settings: Settings, inv: Invitation) -> str:
    sig = _signature(settings.secret_key, inv.token_id, inv.room_id, inv.expires_at)
    return f"{inv.token_id}.{sig}"


def link_of(settings: Settings, inv: Invitation) -> str:
    return f"{settings.public_url}/join/{token_of(settings, inv)}"


_KIND_FR = {
    RoomKind.teleconsultation: "une téléconsultation",
    RoomKind.estaff: "une réunion e-Staff",
    RoomKind.expertise: "un échange de téléexpertise",
}


def _texts(inv: Invitation, room: Room, host: str, link: str) -> tuple[str, str, str]:
    """Subject, e-mail body and SMS text, in French."""
    when = inv.scheduled_at or room.scheduled_at
    when_txt = f" le {paris_spelled_out(when)} (heure de Paris)" if when else ""
    what = _KIND_FR[room.kind]
    subject = f"Invitation à {what}" + (f" — {paris_spelled_out(when)}" if when else "")
    body = (
        f"Bonjour {inv.name},\n\n"
        f"{host} vous invite à {what}{when_txt}.\n\n"
        f"Pour rejoindre la salle, ouvrez ce lien depuis un ordinateur (Chrome ou Firefox), "
        f"un iPhone (Safari) ou un téléphone Android (Chrome) :\n{link}\n\n"
        f"Ce lien est personnel ; il expire le {paris_spelled_out(inv.expires_at)}.\n"
        "Vous patienterez dans la salle d'attente jusqu'à ce que le praticien "
        "vous fasse entrer.\n\n"
        "Consilium"
    )
    sms = f"{host} vous invite à {what}{when_txt}. Lien personnel : {link}"
    return subject, body, sms


@dataclass
class Delivery:
    email: str = ""  # sent | outbox | failed | ""
    sms: str = ""


async def check_sending_rate(limiter: RateLimiter, principal: Principal, room: Room) -> None:
    """Invitations send e-mails and SMS to outside addresses: a few per minute per user and
    per hour per room, else 429 ``rate_limited`` with ``Retry-After`` (the window's length: the
    limiter keeps fixed windows, the wait is at most that)."""
    user_key = f"invite:send:user:{principal.subject_id}"
    if not await limiter.hit(user_key, limit=INVITES_PER_USER_PER_MINUTE, window=60):
        raise TooManyRequests(
            f"At most {INVITES_PER_USER_PER_MINUTE} invitations a minute; wait a moment",
            code="rate_limited",
            retry_after=60,
        )
    room_key = f"invite:send:room:{room.id}"
    if not await limiter.hit(room_key, limit=INVITES_PER_ROOM_PER_HOUR, window=3600):
        raise TooManyRequests(
            f"At most {INVITES_PER_ROOM_PER_HOUR} invitations an hour for one room",
            code="rate_limited",
            retry_after=3600,
        )


async def create_invitation(
    db: Database,
    notifier: Notifier,
    settings: Settings,
    principal: Principal,
    room_id: uuid.UUID,
    *,
    name: str,
    email: str | None,
    mobile: str | None,
    scheduled_at: datetime | None,
    expires_at: datetime | None,
    single_use: bool,
    limiter: RateLimiter | None = None,
) -> tuple[Invitation, Room, Delivery]:
    """Create the invitation, then send the link (after commit: a failed delivery leaves the
    invitation usable and says so). One invitation goes to one person: one e-mail address
    and/or one mobile number. With ``limiter``, sending is rate-limited
    (:func:`check_sending_rate`), counted only once the caller is known to be a host."""
    if expires_at is not None and expires_at <= utcnow():
        raise ValidationFailed("The expiry must be in the future", code="invalid_expiry")
    async with db.write() as uow:
        room = await access.host_room(uow.session, principal, room_id)
        if room.status is RoomStatus.closed:
            raise Conflict("The room is closed", code="room_closed")
        if limiter is not None:
            await check_sending_rate(limiter, principal, room)
        when = scheduled_at or room.scheduled_at
        default_end = (when + timedelta(hours=4)) if when else utcnow() + DEFAULT_VALIDITY
        inv = Invitation(
            room_id=room.id,
            name=name.strip(),
            email=email,
            mobile=mobile,
            scheduled_at=scheduled_at,
            token_id=secrets.token_hex(16),
            expires_at=(expires_at or max(default_end, utcnow() + timedelta(hours=1))).replace(
                microsecond=0
            ),
            single_use=single_use,
            created_by=principal.subject_id,
        )
        uow.session.add(inv)
        await uow.session.flush()
        audit.record(
            uow.session,
            "invitation.create",
            actor=principal,
            object_type="room",
            object_id=room.id,
            invitation_id=str(inv.id),
            email=bool(email),
            sms=bool(mobile),
        )
    subject, body, sms = _texts(inv, room, principal.label, link_of(settings, inv))
    delivery = Delivery()
    if email:
        try:
            delivery.email = (
                await notifier.send_email(Email(to=email, subject=subject, text=body))
            ).status
        except DeliveryError:
            log.warning("invitation e-mail failed", exc_info=True)
            delivery.email = "failed"
    if mobile:
        try:
            delivery.sms = (await notifier.send_sms(mobile, sms)).status
        except DeliveryError:
            log.warning("invitation SMS failed", exc_info=True)
            delivery.sms = "failed"
    return inv, room, delivery


async def list_invitations(
    db: Database, principal: Principal, room_id: uuid.UUID
) -> list[Invitation]:
    async with db.read() as session:
        await access.host_room(session, principal, room_id)
        rows = await session.execute(
            select(Invitation)
            .where(Invitation.room_id == room_id)
            .order_by(Invitation.created_at.desc())
        )
        return list(rows.scalars())


async def revoke_invitation(
    db: Database, principal: Principal, room_id: uuid.UUID, invitation_id: uuid.UUID
) -> Invitation:
    async with db.write() as uow:
        await access.host_room(uow.session, principal, room_id)
        inv = await uow.session.get(Invitation, invitation_id)
        if inv is None or inv.room_id != room_id:
            raise NotFound("No invitation with this id", code="invitation_not_found")
        if inv.revoked_at is None:
            inv.revoked_at = utcnow()
            audit.record(
                uow.session,
                "invitation.revoke",
                actor=principal,
                object_type="room",
                object_id=room_id,
                invitation_id=str(inv.id),
            )
            uow.emit(
                "invitation.revoked",
                {"room_id": str(room_id), "invitation_id": str(inv.id)},
                room_id=room_id,
            )
            await end_guests(uow, [inv.id], "invitation_revoked")
    return inv


async def end_guests(
    uow: UnitOfWork,
    invitation_ids: list[uuid.UUID],
    reason: str,
    *,
    told_otherwise: uuid.UUID | None = None,
) -> list[Guest]:
    """End the guest sessions these invitations opened (in the caller's transaction, audited);
    ``guests.ended`` after commit disconnects them and deletes their sessions (except
    ``told_otherwise``: a refused or removed guest, whose own event says so)."""
    if not invitation_ids:
        return []
    rows = await uow.session.execute(
        select(Guest)
        .where(Guest.invitation_id.in_(invitation_ids), Guest.ended_at.is_(None))
        .with_for_update(skip_locked=True)
    )
    guests = list(rows.scalars())
    now = utcnow()
    for g in guests:
        g.ended_at, g.end_reason = now, reason
        audit.record(
            uow.session,
            "guest.end",
            actor=None,
            actor_label=g.name,
            object_type="room",
            object_id=g.room_id,
            guest_id=str(g.id),
            invitation_id=str(g.invitation_id),
            reason=reason,
        )
    by_room: dict[uuid.UUID, list[str]] = {}
    for g in guests:
        if g.id != told_otherwise:
            by_room.setdefault(g.room_id, []).append(str(g.id))
    for room_id, ids in by_room.items():
        uow.emit("guests.ended", {"room_id": str(room_id), "guest_ids": ids, "reason": reason})
    return guests


async def end_expired_guests(db: Database) -> int:
    """End the guest sessions of invitations that expired, or whose room closed, since the
    last sweep (run periodically on every node; a row is ended once)."""
    now = utcnow()
    async with db.write() as uow:
        rows = await uow.session.execute(
            select(Guest.invitation_id, Invitation.expires_at <= now)
            .join(Invitation, Invitation.id == Guest.invitation_id)
            .join(Room, Room.id == Guest.room_id)
            .where(
                Guest.ended_at.is_(None),
                or_(Invitation.expires_at <= now, Room.status == RoomStatus.closed),
            )
            .distinct()
            .limit(500)
        )
        found = rows.all()
        expired = [i for i, is_expired in found if is_expired]
        closed = [i for i, is_expired in found if not is_expired]
        ended = await end_guests(uow, expired, "invitation_expired")
        ended += await end_guests(uow, closed, "room_closed")
    return len(ended)


def _parse(token: str) -> tuple[str, str] | None:
    token_id, _, sig = token.partition(".")
    if len(token_id) != 32 or not sig or len(token) > 100:
        return None
    return token_id, sig


async def resolve(
    db: Database, settings: Settings, token: str, *, for_use: bool = True
) -> tuple[Invitation, Room]:
    """The invitation and room of a token, or a problem with a stable code:
    ``invitation_invalid`` (404), ``invitation_revoked``, ``invitation_expired``,
    ``invitation_used`` (410)."""
    parsed = _parse(token)
    inv = room = None
    if parsed is not None:
        async with db.read() as session:
            inv = await session.scalar(select(Invitation).where(Invitation.token_id == parsed[0]))
            if inv is not None:
                room = await session.get(Room, inv.room_id)
    if (
        parsed is None
        or inv is None
        or room is None
        or not hmac.compare_digest(
            parsed[1], _signature(settings.secret_key, inv.token_id, inv.room_id, inv.expires_at)
        )
    ):
        raise NotFound("This invitation link is not valid", code="invitation_invalid")
    if inv.revoked_at is not None:
        raise InvitationProblem("This invitation was withdrawn", code="invitation_revoked")
    if room.status is RoomStatus.closed:
        raise InvitationProblem("This consultation has ended", code="invitation_expired")
    if inv.expires_at <= utcnow():
        raise InvitationProblem("This invitation has expired", code="invitation_expired")
    if for_use and inv.single_use and inv.used_at is not None:
        raise InvitationProblem("This invitation was already used", code="invitation_used")
    return inv, room


async def accept(
    db: Database, settings: Settings, token: str, name: str, ip: str = ""
) -> tuple[Invitation, Room, Guest]:
    """Use the token (marking a single-use one as used, atomically): a new guest, who waits in
    the lobby until a host admits them, whoever was admitted with the same link before."""
    inv, room = await resolve(db, settings, token)
    async with db.write() as uow:
        row = await uow.session.get(Invitation, inv.id, with_for_update=True)
        assert row is not None
        if row.single_use and row.used_at is not None:
            raise InvitationProblem("This invitation was already used", code="invitation_used")
        if row.revoked_at is not None:
            raise InvitationProblem("This invitation was withdrawn", code="invitation_revoked")
        if row.expires_at <= utcnow():
            raise InvitationProblem("This invitation has expired", code="invitation_expired")
        row.used_at = row.used_at or utcnow()
        guest = Guest(invitation_id=row.id, room_id=room.id, name=name[:200])
        uow.session.add(guest)
        await uow.session.flush()
        audit.record(
            uow.session,
            "invitation.accept",
            actor=None,
            actor_label=name,
            ip=ip,
            object_type="room",
            object_id=room.id,
            invitation_id=str(row.id),
            guest_id=str(guest.id),
        )
    return row, room, guest


def problem_page(code: str) -> tuple[int, str]:
    """A plain French page for a link that cannot be used (never a stack trace)."""
    texts = {
        "invitation_expired": (
            "Ce lien a expiré",
            "La consultation est terminée ou le lien n'est plus valable. "
            "Demandez un nouveau lien au praticien qui vous a invité.",
        ),
        "invitation_revoked": (
            "Ce lien a été retiré",
            "Le praticien a annulé cette invitation. Contactez son secrétariat si besoin.",
        ),
        "invitation_used": (
            "Ce lien a déjà été utilisé",
            "Ce lien ne sert qu'une fois. Demandez un nouveau lien au praticien.",
        ),
    }
    title, text = texts.get(
        code,
        ("Lien invalide", "Ce lien d'invitation n'est pas reconnu. Vérifiez qu'il est complet."),
    )
    status = 404 if code not in texts else 410
    page = (
        "<!doctype html><html lang='fr'><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{title} — Consilium</title><main><h1>{title}</h1><p>{text}</p></main></html>"
    )
    return status, page


async def accept_grant(
    db: Database,
    *,
    room_id: uuid.UUID,
    grant_id: str,
    name: str,
    created_by: uuid.UUID,
    expires_at: datetime,
    ip: str = "",
    **details: object,
) -> tuple[Invitation, Room, Guest]:
    """Enter with an access token another application minted (ops/tokens.py): the token
    stands for an invitation (``grant_id``, 32 characters, the same for every use of one
    token) and each use opens a guest of its own, who waits in the lobby as an invited
    guest does. Withdrawing the invitation or closing the room ends them the same way."""
    if len(grant_id) != 32:
        raise ValueError("grant_id must be 32 characters")
    async with db.write() as uow:
        s = uow.session
        room = await s.get(Room, room_id)
        if room is None:
            raise NotFound("No room with this id", code="room_not_found")
        if room.status is RoomStatus.closed:
            raise InvitationProblem("This consultation has ended", code="invitation_expired")
        inv = await s.scalar(select(Invitation).where(Invitation.token_id == grant_id))
        if inv is None:
            inv = Invitation(
                room_id=room.id,
                name=name[:200],
                token_id=grant_id,
                expires_at=expires_at,
                single_use=False,
                created_by=created_by,
            )
            s.add(inv)
            await s.flush()
        elif inv.room_id != room.id:
            raise NotFound("No room with this id", code="room_not_found")
        elif inv.revoked_at is not None:
            raise InvitationProblem("This invitation was withdrawn", code="invitation_revoked")
        inv.used_at = inv.used_at or utcnow()
        guest = Guest(invitation_id=inv.id, room_id=room.id, name=name[:200])
        s.add(guest)
        await s.flush()
        audit.record(
            s,
            "invitation.accept",
            actor=None,
            actor_label=name,
            ip=ip,
            object_type="room",
            object_id=room.id,
            invitation_id=str(inv.id),
            guest_id=str(guest.id),
            **details,
        )
    return inv, room, guest
