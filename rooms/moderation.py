"""Moderation by a room's hosts: ask to unmute, mute, remove, lock, end.

The handlers only translate: each act is a :mod:`rooms.actions` function (host checked, state
changed, audited in the same transaction); its live effects follow the commit here, from the
``participant.*`` and ``room.*`` events."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from core.context import DB, SESSIONS
from core.events import Event
from rooms import actions
from rooms.live import Conn, Live, Payload, channel_guest, channel_room
from rooms.participants import Empty
from rooms.presence import Participant


class TargetIn(Payload):
    participant_id: str


class LockIn(Payload):
    locked: bool = True


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
        p = await actions.mute_participant(
            db, live, conn.principal, conn.room_id, body.participant_id
        )
        return {"participant": p.public()}

    @live.event("room:ask_unmute", TargetIn, host=True)
    async def ask_unmute(live: Live, conn: Conn, body: TargetIn) -> dict[str, Any]:
        assert conn.room_id is not None
        await actions.ask_unmute(db, live, conn.principal, conn.room_id, body.participant_id)
        return {}

    @live.event("room:remove", TargetIn, host=True)
    async def remove(live: Live, conn: Conn, body: TargetIn) -> dict[str, Any]:
        assert conn.room_id is not None
        if await actions.remove_ghost(live, conn.room_id, body.participant_id):
            return {"ghost": True}  # left behind by a dead node: ban nobody
        await actions.remove_participant(
            db,
            live,
            conn.principal,
            conn.room_id,
            body.participant_id,
            own_participant_id=conn.participant_id,
        )
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

    async def on_participant_event(event: Event) -> None:
        """After a host's act committed: tell the room, and the participant's media."""
        room_id = str(event.payload["room_id"])
        p = Participant.from_json(event.payload["participant"])
        if event.name == "participant.muted":
            await live.emit_to_participant(p.id, "room:muted", {"by": event.payload["by"]})
            await live.emit_to_room(room_id, "participant:updated", {"participant": p.public()})
            await live.run_hooks("muted", p)
        elif event.name == "participant.unmute_requested":
            await live.emit_to_participant(
                p.id, "room:unmute_requested", {"by": event.payload["by"]}
            )
            await live.emit_to_room(room_id, "participant:updated", {"participant": p.public()})
        elif event.name == "participant.removed":
            await live.state.remove(room_id, p.id)
            if p.kind == "guest":  # all their connections, on every node, end now
                await live.app[SESSIONS].store.delete_for_subject(uuid.UUID(p.subject_id))
                await live.end_subjects([p.subject_id], "room:removed", {"room_id": room_id})
                await live.participant_left(p, "removed")
                return
            await live.emit_to_participant(p.id, "room:removed", {"room_id": room_id})
            await live.participant_left(p, "removed")
            if p.sid:
                await live.disconnect_sid(p.sid)

    live.app[DB].bus.subscribe("room.", on_room_event)
    live.app[DB].bus.subscribe("participant.", on_participant_event)
