"""The write paths of rooms: one function per domain action (check, write, audit, emit).

REST routes and Socket.IO handlers only translate to and from these functions.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select

from core import audit
from core.accounts import User
from core.db import Database, utcnow
from core.errors import Conflict, Forbidden, NotFound
from core.principal import Principal
from rooms import access
from rooms.models import Invitation, MemberRole, Removal, Room, RoomKind, RoomMember, RoomStatus

MAX_CAPACITY = 50


def room_event(room: Room) -> dict[str, object]:
    return {
        "room_id": str(room.id),
        "kind": room.kind.value,
        "title": room.title,
        "status": room.status.value,
        "locked": room.locked,
    }


async def create_room(
    db: Database,
    principal: Principal,
    *,
    kind: RoomKind,
    title: str,
    dossier_id: uuid.UUID | None = None,
    scheduled_at: datetime | None = None,
    capacity: int | None = None,
) -> Room:
    if not principal.is_user:
        raise Forbidden("Reserved to professionals with an account", code="account_required")
    owner = principal.subject_id
    async with db.write() as uow:
        room = Room(
            kind=kind,
            title=title.strip(),
            owner_id=owner,
            dossier_id=dossier_id,
            scheduled_at=scheduled_at,
            capacity=capacity or (2 if kind is RoomKind.teleconsultation else 12),
            locked=False,
            status=RoomStatus.open,
        )
        uow.session.add(room)
        await uow.session.flush()
        audit.record(
            uow.session,
            "room.create",
            actor=principal,
            object_type="room",
            object_id=room.id,
            kind=kind.value,
            capacity=room.capacity,
        )
        uow.emit("room.created", room_event(room), room_id=room.id)
    return room


async def close_room(db: Database, principal: Principal, room_id: uuid.UUID) -> Room:
    """Close the room for good: the live layer disconnects everyone on ``room.closed``."""
    async with db.write() as uow:
        room = await access.host_room(uow.session, principal, room_id)
        if room.status is RoomStatus.closed:
            return room
        room.status, room.closed_at = RoomStatus.closed, utcnow()
        audit.record(
            uow.session, "room.close", actor=principal, object_type="room", object_id=room.id
        )
        uow.emit("room.closed", room_event(room), room_id=room.id)
    return room


async def set_locked(db: Database, principal: Principal, room_id: uuid.UUID, locked: bool) -> Room:
    async with db.write() as uow:
        room = await access.host_room(uow.session, principal, room_id)
        if room.status is RoomStatus.closed:
            raise Conflict("The room is closed", code="room_closed")
        room.locked = locked
        audit.record(
            uow.session,
            "room.lock" if locked else "room.unlock",
            actor=principal,
            object_type="room",
            object_id=room.id,
        )
        uow.emit("room.locked", room_event(room), room_id=room.id)
    return room


async def add_member(
    db: Database,
    principal: Principal,
    room_id: uuid.UUID,
    user_id: uuid.UUID,
    role: MemberRole,
) -> RoomMember:
    async with db.write() as uow:
        room = await access.host_room(uow.session, principal, room_id)
        user = await uow.session.get(User, user_id)
        if user is None or not user.active:
            raise NotFound("No account with this id", code="user_not_found")
        if user.id == room.owner_id:
            raise Conflict("The owner is already a host", code="already_host")
        member = await uow.session.scalar(
            select(RoomMember).where(RoomMember.room_id == room.id, RoomMember.user_id == user.id)
        )
        if member is None:
            member = RoomMember(
                room_id=room.id, user_id=user.id, role=role, added_by=principal.subject_id
            )
            uow.session.add(member)
        else:
            member.role = role
        await uow.session.flush()
        audit.record(
            uow.session,
            "room.member_add",
            actor=principal,
            object_type="room",
            object_id=room.id,
            user_id=str(user.id),
            role=role.value,
        )
        uow.emit(
            "room.member_added",
            {"room_id": str(room.id), "user_id": str(user.id), "role": role.value},
            room_id=room.id,
        )
    return member


async def moderate(
    db: Database,
    principal: Principal,
    room_id: uuid.UUID,
    action: str,
    *,
    target_id: str = "",
    target_label: str = "",
) -> Room:
    """Check the host role and audit an act whose effect is live state only (mute, ask to
    unmute, admit)."""
    async with db.write() as uow:
        room = await access.host_room(uow.session, principal, room_id)
        audit.record(
            uow.session,
            action,
            actor=principal,
            object_type="room",
            object_id=room.id,
            target=target_id,
            target_label=target_label,
        )
    return room


async def remove_identity(
    db: Database,
    principal: Principal,
    room_id: uuid.UUID,
    *,
    subject_id: uuid.UUID,
    subject_kind: str,
    label: str,
    reason: str = "removed",
) -> Removal:
    """Ban an identity from the room; a guest's invitation is revoked with it."""
    async with db.write() as uow:
        room = await access.host_room(uow.session, principal, room_id)
        if subject_kind == "user" and subject_id == room.owner_id:
            raise Forbidden("The owner cannot be removed", code="owner_protected")
        removal = Removal(
            room_id=room.id,
            subject_id=subject_id,
            subject_kind=subject_kind,
            label=label[:200],
            reason=reason,
            removed_by=principal.subject_id,
        )
        uow.session.add(removal)
        if subject_kind == "guest":
            inv = await uow.session.get(Invitation, subject_id)
            if inv is not None and inv.room_id == room.id and inv.revoked_at is None:
                inv.revoked_at = utcnow()
        audit.record(
            uow.session,
            "lobby.refuse" if reason == "refused" else "room.remove",
            actor=principal,
            object_type="room",
            object_id=room.id,
            target=str(subject_id),
            target_kind=subject_kind,
            target_label=label,
        )
    return removal
