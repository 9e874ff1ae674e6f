"""Who may see and enter a room, and with which role.

Built in: the owner and added hosts are hosts; added members are participants; a secretary
acting for the owner ("en délégation de") manages the room as a host; a guest may enter only
the room of their invitation. Other packages widen access by registering an
:class:`AccessCheck` (the dossier package: the participants of a room's dossier)::

    rooms.access.register(DossierRoomAccess())
"""

from __future__ import annotations

import uuid
from typing import Literal, Protocol

from sqlalchemy import ColumnElement, exists, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Forbidden, NotFound
from core.principal import Principal
from rooms.models import MemberRole, Removal, Room, RoomMember

RoomRole = Literal["host", "participant", "guest"]


class AccessCheck(Protocol):
    async def can_enter(self, session: AsyncSession, principal: Principal, room: Room) -> bool:
        """True when this check lets the principal in as a participant."""
        ...

    def visible(self, principal: Principal) -> ColumnElement[bool] | None:
        """A SQL condition on ``Room`` selecting the rooms this check lets the principal see."""
        ...


_checks: list[AccessCheck] = []


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


async def role_in(session: AsyncSession, principal: Principal, room: Room) -> RoomRole | None:
    """The principal's role in the room, or None when they may not enter it."""
    if await is_banned(session, room.id, principal.subject_id):
        return None
    if principal.kind == "guest":
        return "guest" if guest_room_id(principal) == room.id else None
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
    role = await role_in(session, principal, room) if room is not None else None
    if room is None or role is None:
        raise NotFound("No room with this id", code="room_not_found")
    return room, role


async def host_room(session: AsyncSession, principal: Principal, room_id: uuid.UUID) -> Room:
    room, role = await room_for(session, principal, room_id)
    if role != "host":
        raise Forbidden("Reserved to the room's hosts", code="host_required")
    return room
