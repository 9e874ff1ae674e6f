"""Who may see and enter a room, and with which role.

Built in: the owner and added hosts are hosts; added members are participants; a secretary
acting for the owner ("en délégation de") manages the room as a host; a guest may enter only
the room of their invitation. Other packages widen access by registering an
:class:`AccessCheck` (the dossier package: the participants of a room's dossier)::

    rooms.access.register(DossierRoomAccess())
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

from sqlalchemy import ColumnElement, exists, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.errors import Forbidden, NotFound
from core.principal import Principal
from rooms.models import Guest, Invitation, MemberRole, Removal, Room, RoomMember

RoomRole = Literal["host", "participant", "guest"]

_ENDED = {
    "invitation_revoked": "Your invitation was withdrawn",
    "invitation_expired": "Your invitation has expired",
    "room_closed": "This consultation has ended",
}


class AccessCheck(Protocol):
    async def can_enter(self, session: AsyncSession, principal: Principal, room: Room) -> bool:
        """True when this check lets the principal in as a participant."""
        ...

    def visible(self, principal: Principal) -> ColumnElement[bool] | None:
        """A SQL condition on ``Room`` selecting the rooms this check lets the principal see."""
        ...


_checks: list[AccessCheck] = []

# Verifies that a principal may attach a room to a dossier (registered by the dossier package;
# rooms cannot read dossiers itself). With none registered, no room can name a dossier.
AttachCheck = Callable[[AsyncSession, Principal, uuid.UUID], Awaitable[bool]]
_attach_checks: list[AttachCheck] = []


def register_attach_check(check: AttachCheck) -> None:
    if check not in _attach_checks:
        _attach_checks.append(check)


async def may_attach_dossier(
    session: AsyncSession, principal: Principal, dossier_id: uuid.UUID
) -> bool:
    if not _attach_checks:
        return False
    for check in _attach_checks:
        if not await check(session, principal, dossier_id):
            return False
    return True


def register(check: AccessCheck) -> None:
    """Add an access check (process-wide; registering the same object twice is a no-op)."""
    if check not in _checks:
        _checks.append(check)


def guest_room_id(principal: Principal) -> uuid.UUID | None:
    raw = principal.data.get("room_id")
    try:
        return uuid.UUID(str(raw)) if raw else None
    except ValueError:
        return None


async def is_banned(session: AsyncSession, room_id: uuid.UUID, subject_id: uuid.UUID) -> bool:
    row = await session.execute(
        select(Removal.id)
        .where(Removal.room_id == room_id, Removal.subject_id == subject_id)
        .limit(1)
    )
    return row.first() is not None


async def guest_ended(session: AsyncSession, guest_id: uuid.UUID) -> str | None:
    """Why a guest session may no longer be used (``invitation_revoked``,
    ``invitation_expired``, ``room_closed``), or None while it may."""
    row = (
        await session.execute(
            select(Guest, Invitation)
            .join(Invitation, Invitation.id == Guest.invitation_id)
            .where(Guest.id == guest_id)
        )
    ).first()
    if row is None:
        return "invitation_revoked"
    guest, inv = row
    if guest.ended_at is not None:
        return guest.end_reason or "invitation_revoked"
    if inv.revoked_at is not None:
        return "invitation_revoked"
    if inv.expires_at <= utcnow():
        return "invitation_expired"
    return None


async def role_in(session: AsyncSession, principal: Principal, room: Room) -> RoomRole | None:
    """The principal's role in the room, or None when they may not enter it."""
    if await is_banned(session, room.id, principal.subject_id):
        return None
    if principal.kind == "guest":
        if guest_room_id(principal) != room.id:
            return None
        return "guest" if await guest_ended(session, principal.subject_id) is None else None
    if room.owner_id == principal.subject_id or room.owner_id in principal.delegates_for:
        return "host"
    member = await session.scalar(
        select(RoomMember.role).where(
            RoomMember.room_id == room.id, RoomMember.user_id == principal.subject_id
        )
    )
    if member is not None:
        return "host" if member == MemberRole.host else "participant"
    for check in _checks:
        if await check.can_enter(session, principal, room):
            return "participant"
    return None


async def can_enter(session: AsyncSession, principal: Principal, room: Room) -> bool:
    return await role_in(session, principal, room) is not None


def visible_clause(principal: Principal) -> ColumnElement[bool]:
    """Rooms a signed-in user may see in their list (guests list nothing)."""
    if principal.kind != "user":
        return false()
    conds: list[ColumnElement[bool]] = [
        Room.owner_id == principal.subject_id,
        exists().where(RoomMember.room_id == Room.id, RoomMember.user_id == principal.subject_id),
    ]
    if principal.delegates_for:
        conds.append(Room.owner_id.in_(principal.delegates_for))
    for check in _checks:
        c = check.visible(principal)
        if c is not None:
            conds.append(c)
    return or_(*conds)


async def room_for(
    session: AsyncSession, principal: Principal, room_id: uuid.UUID
) -> tuple[Room, RoomRole]:
    """The room and the principal's role; 404 when it does not exist *or* is not theirs
    (a stranger learns nothing about a private room)."""
    room = await session.get(Room, room_id)
    if room is not None and principal.kind == "guest" and guest_room_id(principal) == room.id:
        ended = await guest_ended(session, principal.subject_id)
        if ended is not None:  # their own room: say why the way in closed
            raise Forbidden(_ENDED.get(ended, _ENDED["invitation_revoked"]), code=ended)
    role = await role_in(session, principal, room) if room is not None else None
    if room is None or role is None:
        raise NotFound("No room with this id", code="room_not_found")
    return room, role


async def host_room(session: AsyncSession, principal: Principal, room_id: uuid.UUID) -> Room:
    room, role = await room_for(session, principal, room_id)
    if role != "host":
        raise Forbidden("Reserved to the room's hosts", code="host_required")
    return room
