"""Moderation by a room's hosts: ask to unmute, mute, remove, lock, end. Every act is audited
(the audit row is written by :mod:`rooms.actions` before the live effect)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from core.context import DB, SESSIONS
from core.events import Event
from rooms import actions
from rooms.live import Conn, EventError, Live, Payload, channel_guest, channel_room
from rooms.participants import Empty
from rooms.presence import Participant


class TargetIn(Payload):
    participant_id: str


class LockIn(Payload):
    locked: bool = True


async def _target(live: Live, conn: Conn, participant_id: str) -> Participant:
    p = await live.state.get(str(conn.room_id), participant_id[:64])
    if p is None:
        raise EventError("No such participant in this room", code="participant_not_found")
    return p


async def end_live_room(live: Live, room_id: str) -> None:
    """Everyone out: participants and waiting guests get ``room:ended`` and are disconnected."""
    lobby = await live.state.lobby(room_id)
    for e in lobby:
        await live.sio.emit("room:ended", {"room_id": room_id}, room=channel_guest(e.guest_id))
    await live.emit_to_room(room_id, "room:ended", {"room_id": room_id})
    participants = await live.state.clear_room(room_id)
    for p in participants:
        await live.run_hooks("left", p, "ended")
    sids = {p.sid for p in participants if p.connected} | {e.sid for e in lobby}

    async def disconnect_later() -> None:
        # Let the host's acknowledgement and "room:ended" reach the clients first.
        await asyncio.sleep(0.3)
        for sid in sids:
            await live.disconnect_sid(sid)

    live.spawn(disconnect_later())


def register(live: Live) -> None:
    db = live.app[DB]

    @live.event("room:mute", TargetIn, host=True)
    async def mute(live: Live, conn: Conn, body: TargetIn) -> dict[str, Any]:
        assert conn.room_id is not None
        target = await _target(live, conn, body.participant_id)
        await actions.moderate(
            db,
            conn.principal,
            conn.room_id,
            "room.mute",
            target_id=target.subject_id,
            target_label=target.name,
        )
        p = await live.state.update(
            str(conn.room_id), target.id, muted_by_host=True, media={"audio": False}
        )
        if p is None:
            raise EventError("No such participant in this room", code="participant_not_found")
        await live.emit_to_participant(p.id, "room:muted", {"by": conn.principal.label})
        await live.emit_to_room(conn.room_id, "participant:updated", {"participant": p.public()})
        await live.run_hooks("muted", p)
        return {"participant": p.public()}

    @live.event("room:ask_unmute", TargetIn, host=True)
    async def ask_unmute(live: Live, conn: Conn, body: TargetIn) -> dict[str, Any]:
        assert conn.room_id is not None
        target = await _target(live, conn, body.participant_id)
        await actions.moderate(
            db,
            conn.principal,
            conn.room_id,
            "room.ask_unmute",
            target_id=target.subject_id,
            target_label=target.name,
        )
        # Asked, not forced: the host's mute is lifted, the participant decides.
        p = await live.state.update(str(conn.room_id), target.id, muted_by_host=False)
        if p is None:
            raise EventError("No such participant in this room", code="participant_not_found")
        await live.emit_to_participant(p.id, "room:unmute_requested", {"by": conn.principal.label})
        await live.emit_to_room(conn.room_id, "participant:updated", {"participant": p.public()})
        return {}

    @live.event("room:remove", TargetIn, host=True)
    async def remove(live: Live, conn: Conn, body: TargetIn) -> dict[str, Any]:
        assert conn.room_id is not None
        target = await _target(live, conn, body.participant_id)
        if target.id == conn.participant_id:
            raise EventError("Use room:leave to leave", code="cannot_remove_self")
        if await live.watch.is_ghost(target):  # left behind by a dead node: ban nobody
            if await live.state.remove(str(conn.room_id), target.id):
                await live.participant_left(target, "timeout")
            return {"ghost": True}
        await actions.remove_identity(
            db,
            conn.principal,
            conn.room_id,
            subject_id=uuid.UUID(target.subject_id),
            subject_kind=target.kind,
            label=target.name,
        )
        await live.state.remove(str(conn.room_id), target.id)
        await live.emit_to_participant(target.id, "room:removed", {"room_id": str(conn.room_id)})
        await live.participant_left(target, "removed")
        if target.kind == "guest":
            await live.app[SESSIONS].store.delete_for_subject(uuid.UUID(target.subject_id))
        if target.sid:
            await live.disconnect_sid(target.sid)
        return {}

    @live.event("room:lock", LockIn, host=True)
    async def lock(live: Live, conn: Conn, body: LockIn) -> dict[str, Any]:
        assert conn.room_id is not None
        await actions.set_locked(db, conn.principal, conn.room_id, body.locked)
        return {"locked": body.locked}

    @live.event("room:end", Empty, host=True)
    async def end(live: Live, conn: Conn, body: Empty) -> dict[str, Any]:
        assert conn.room_id is not None
        await actions.close_room(db, conn.principal, conn.room_id)
        return {}

    async def on_room_event(event: Event) -> None:
        room_id = str(event.payload["room_id"])
        if event.name == "room.closed":
            await end_live_room(live, room_id)
        elif event.name == "room.locked":
            await live.sio.emit(
                "room:updated",
                {"room_id": room_id, "locked": event.payload["locked"]},
                room=channel_room(room_id),
            )

    async def on_invitation_revoked(event: Event) -> None:
        """A withdrawn invitation closes its guest's way in, even while inside or waiting."""
        room_id, guest_id = str(event.payload["room_id"]), str(event.payload["invitation_id"])
        entry = await live.state.lobby_remove(room_id, guest_id)
        if entry is not None:
            await live.emit_to_hosts(
                room_id, "lobby:left", {"guest_id": guest_id, "reason": "gone"}
            )
            await live.disconnect_sid(entry.sid)
        for p in await live.state.participants(room_id, live.grace):
            if p.subject_id == guest_id and await live.state.remove(room_id, p.id):
                await live.emit_to_participant(p.id, "room:removed", {"room_id": room_id})
                await live.participant_left(p, "removed")
                if p.sid:
                    await live.disconnect_sid(p.sid)
        await live.app[SESSIONS].store.delete_for_subject(uuid.UUID(guest_id))

    live.app[DB].bus.subscribe("room.", on_room_event)
    live.app[DB].bus.subscribe("invitation.revoked", on_invitation_revoked)
