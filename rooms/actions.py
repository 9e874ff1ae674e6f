"""The write paths of rooms: one function per domain action (check, write, audit, emit).

REST routes and Socket.IO handlers only translate to and from these functions.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select

from core import audit
from core.accounts import User
from core.db import Database, UnitOfWork, utcnow
from core.errors import Conflict, Forbidden, NotFound
from core.principal import Principal
from rooms import access, invitations
from rooms.live import Live
from rooms.models import (
    Guest,
    Invitation,
    MemberRole,
    Removal,
    Room,
    RoomKind,
    RoomMember,
    RoomStatus,
)
from rooms.presence import LobbyEntry, Participant

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
    owner_id: uuid.UUID | None = None,
) -> Room:
    """Create a room; a secretary may create it for a practitioner they act for."""
    if not principal.is_user:
        raise Forbidden("Reserved to professionals with an account", code="account_required")
    owner = owner_id or principal.subject_id
    if owner != principal.subject_id and owner not in principal.delegates_for:
        raise Forbidden("You do not act for this practitioner", code="not_delegate")
    async with db.write() as uow:
        if dossier_id is not None and not await access.may_attach_dossier(
            uow.session, principal, dossier_id
        ):
            raise NotFound("No dossier with this id", code="dossier_not_found")
        room = Room(
            kind=kind,
            title=title.strip(),
            owner_id=owner,
            dossier_id=dossier_id,
            scheduled_at=scheduled_at,
            # a téléconsultation: practitioner, patient, often a nurse or a relative
            capacity=capacity or (4 if kind is RoomKind.teleconsultation else 12),
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
            owner_id=str(owner),
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


async def reschedule_room(
    db: Database, principal: Principal, room_id: uuid.UUID, scheduled_at: datetime
) -> Room:
    """Move the room's planned time (a téléconsultation rescheduled on its dossier)."""
    async with db.write() as uow:
        room = await access.host_room(uow.session, principal, room_id)
        if room.status is RoomStatus.closed:
            raise Conflict("The room is closed", code="room_closed")
        before = room.scheduled_at
        room.scheduled_at = scheduled_at
        audit.record(
            uow.session,
            "room.reschedule",
            actor=principal,
            object_type="room",
            object_id=room.id,
            before=before.isoformat() if before else None,
            after=scheduled_at.isoformat(),
        )
        uow.emit("room.rescheduled", room_event(room), room_id=room.id)
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


async def _audit_target(
    uow: UnitOfWork, principal: Principal, room: Room, action: str, target: str, label: str
) -> None:
    audit.record(
        uow.session,
        action,
        actor=principal,
        object_type="room",
        object_id=room.id,
        target=target,
        target_label=label,
    )


async def _target(live: Live, room_id: uuid.UUID, participant_id: str) -> Participant:
    p = await live.state.get(str(room_id), participant_id[:64])
    if p is None:
        raise NotFound("No such participant in this room", code="participant_not_found")
    return p


async def mute_participant(
    db: Database, live: Live, principal: Principal, room_id: uuid.UUID, participant_id: str
) -> Participant:
    """A host mutes a participant: live state changed, then audited in the same transaction
    (a mute that did not happen leaves no audit row); ``participant.muted`` after commit."""
    async with db.write() as uow:
        room = await access.host_room(uow.session, principal, room_id)
        target = await _target(live, room.id, participant_id)
        before = {"muted_by_host": target.muted_by_host, "media": {"audio": target.media.audio}}
        p = await live.state.update(
            str(room.id), target.id, muted_by_host=True, media={"audio": False}
        )
        if p is None:  # gone meanwhile: nothing happened, nothing audited
            raise NotFound("No such participant in this room", code="participant_not_found")
        try:
            await _audit_target(uow, principal, room, "room.mute", target.subject_id, target.name)
            await uow.session.flush()
        except BaseException:
            await live.state.update(str(room.id), target.id, **before)
            raise
        uow.emit(
            "participant.muted",
            {"room_id": str(room.id), "participant": p.to_json(), "by": principal.label},
            room_id=room.id,
        )
    return p


async def ask_unmute(
    db: Database, live: Live, principal: Principal, room_id: uuid.UUID, participant_id: str
) -> Participant:
    """A host asks a participant to speak: the host's mute is lifted, the participant decides."""
    async with db.write() as uow:
        room = await access.host_room(uow.session, principal, room_id)
        target = await _target(live, room.id, participant_id)
        p = await live.state.update(str(room.id), target.id, muted_by_host=False)
        if p is None:
            raise NotFound("No such participant in this room", code="participant_not_found")
        try:
            await _audit_target(
                uow, principal, room, "room.ask_unmute", target.subject_id, target.name
            )
            await uow.session.flush()
        except BaseException:
            await live.state.update(str(room.id), target.id, muted_by_host=target.muted_by_host)
            raise
        uow.emit(
            "participant.unmute_requested",
            {"room_id": str(room.id), "participant": p.to_json(), "by": principal.label},
            room_id=room.id,
        )
    return p


async def remove_ghost(live: Live, room_id: uuid.UUID, participant_id: str) -> bool:
    """Take out a participant left behind by a dead node (its host check was done by the
    event): nobody is banned, since the person may be back on another node. False when the
    participant is not a ghost, for ``remove_participant`` to decide."""
    target = await _target(live, room_id, participant_id)
    if not await live.watch.is_ghost(target):
        return False
    if await live.state.remove(str(room_id), target.id):
        await live.participant_left(target, "timeout")
    return True


async def remove_participant(
    db: Database,
    live: Live,
    principal: Principal,
    room_id: uuid.UUID,
    participant_id: str,
    *,
    own_participant_id: str | None = None,
) -> Participant:
    """A host removes someone from the room for good (banned; a guest's invitation revoked);
    ``participant.removed`` after commit takes them out of the live room."""
    target = await _target(live, room_id, participant_id)
    if target.id == own_participant_id:
        raise Conflict("Use room:leave to leave", code="cannot_remove_self")
    async with db.write() as uow:
        room = await access.host_room(uow.session, principal, room_id)
        await _ban(
            uow,
            principal,
            room,
            subject_id=uuid.UUID(target.subject_id),
            subject_kind=target.kind,
            label=target.name,
            reason="removed",
        )
        uow.emit(
            "participant.removed",
            {"room_id": str(room.id), "participant": target.to_json()},
            room_id=room.id,
        )
    return target


async def admit_guest(
    db: Database, live: Live, principal: Principal, room_id: uuid.UUID, guest_id: uuid.UUID
) -> LobbyEntry:
    """A host lets a waiting guest in: host checked first, then the guest leaves the lobby,
    audited in the same transaction; ``lobby.admitted`` after commit tells the guest."""
    room_key = str(room_id)
    async with db.write() as uow:
        room = await access.host_room(uow.session, principal, room_id)
        entry = await live.state.lobby_remove(room_key, str(guest_id))
        if entry is None:
            raise Conflict("Nobody with this id is waiting", code="not_in_lobby")
        try:
            await _audit_target(uow, principal, room, "lobby.admit", entry.guest_id, entry.name)
            await uow.session.flush()
            await live.state.admit(room_key, entry.guest_id)
        except BaseException:
            await live.state.lobby_add(room_key, entry)
            raise
        uow.emit("lobby.admitted", {"room_id": room_key, "guest_id": entry.guest_id})
    return entry


async def refuse_guest(
    db: Database, live: Live, principal: Principal, room_id: uuid.UUID, guest_id: uuid.UUID
) -> LobbyEntry:
    """A host refuses a waiting guest: host checked first, then the guest leaves the lobby,
    banned from the room and their invitation revoked, audited in the same transaction;
    ``lobby.refused`` after commit tells the guest and closes their way in."""
    room_key = str(room_id)
    async with db.write() as uow:
        room = await access.host_room(uow.session, principal, room_id)
        entry = await live.state.lobby_remove(room_key, str(guest_id))
        if entry is None:
            raise Conflict("Nobody with this id is waiting", code="not_in_lobby")
        try:
            await _ban(
                uow,
                principal,
                room,
                subject_id=guest_id,
                subject_kind="guest",
                label=entry.name,
                reason="refused",
            )
            await uow.session.flush()
        except BaseException:
            await live.state.lobby_add(room_key, entry)
            raise
        uow.emit(
            "lobby.refused", {"room_id": room_key, "guest_id": entry.guest_id, "sid": entry.sid}
        )
    return entry


async def _ban(
    uow: UnitOfWork,
    principal: Principal,
    room: Room,
    *,
    subject_id: uuid.UUID,
    subject_kind: str,
    label: str,
    reason: str,
) -> Removal:
    """Ban an identity from the room; a guest's invitation is revoked with it."""
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
        # The link is compromised or unwanted: withdrawn, every guest it brought in is out.
        guest = await uow.session.get(Guest, subject_id)
        inv = await uow.session.get(Invitation, guest.invitation_id) if guest else None
        if inv is not None and inv.room_id == room.id:
            if inv.revoked_at is None:
                inv.revoked_at = utcnow()
            await invitations.end_guests(
                uow, [inv.id], "invitation_revoked", told_otherwise=subject_id
            )
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
