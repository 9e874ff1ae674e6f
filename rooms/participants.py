"""Socket events of a participant: ``room:join``, ``room:leave``, ``participant:update``."""

from __future__ import annotations

import uuid
from typing import Any

from core.context import DB
from core.db import Database
from rooms import access
from rooms.live import Conn, EventError, Live, Payload, channel_hosts, channel_participant
from rooms.live import channel_room as room_channel
from rooms.models import Room, RoomStatus
from rooms.presence import LobbyEntry, Participant, RoomFull, new_participant_id


class JoinIn(Payload):
    room_id: uuid.UUID


class UpdateIn(Payload):
    audio: bool | None = None
    video: bool | None = None
    screen: bool | None = None
    hand_raised: bool | None = None


class Empty(Payload):
    pass


def room_info(room: Room) -> dict[str, Any]:
    return {
        "room_id": str(room.id),
        "title": room.title,
        "kind": room.kind.value,
        "locked": room.locked,
        "capacity": room.capacity,
        "dossier_id": str(room.dossier_id) if room.dossier_id else None,
    }


async def load_room(db: Database, conn: Conn, room_id: uuid.UUID) -> tuple[Room, str]:
    async with db.read() as session:
        room = await session.get(Room, room_id)
        if room is None:
            raise EventError("No room with this id", code="room_not_found")
        if await access.is_banned(session, room.id, conn.principal.subject_id):
            raise EventError("You were removed from this room", code="removed")
        if conn.principal.kind == "guest" and access.guest_room_id(conn.principal) == room.id:
            ended = await access.guest_ended(session, conn.principal.subject_id)
            if ended is not None:
                raise EventError("Your invitation can no longer be used", code=ended)
        role = await access.role_in(session, conn.principal, room)
    if role is None:
        raise EventError("No room with this id", code="room_not_found")
    if room.status is RoomStatus.closed:
        raise EventError("This room is closed", code="room_closed")
    return room, role


def register(live: Live) -> None:
    db = live.app[DB]

    @live.event("room:join", JoinIn, in_room=False)
    async def join(live: Live, conn: Conn, body: JoinIn) -> dict[str, Any]:
        if conn.room_id is not None and conn.room_id != body.room_id:
            raise EventError("This connection is already in another room", code="already_in_room")
        room, role = await load_room(db, conn, body.room_id)
        room_key = str(room.id)
        guest_id = str(conn.principal.subject_id)
        if role == "guest" and not await live.state.is_admitted(room_key, guest_id):
            entry = LobbyEntry(guest_id=guest_id, name=conn.principal.label, sid=conn.sid)
            await live.state.lobby_add(room_key, entry)
            conn.lobby_room_id = room.id
            await live.emit_to_hosts(room.id, "lobby:arrived", entry.public())
            return {"status": "lobby", "room": room_info(room)}
        if room.locked and role != "host":
            current = await live.state.participants(room_key, live.grace)
            me = (conn.principal.kind, str(conn.principal.subject_id))
            # someone already inside (their session, or the same person coming back) may return
            if not any(p.key == conn.session_id or p.key_of_subject == me for p in current):
                raise EventError("The room is locked", code="room_locked")
        candidate = Participant(
            id=new_participant_id(),
            room_id=room_key,
            key=conn.session_id,
            subject_id=str(conn.principal.subject_id),
            kind=conn.principal.kind,
            name=conn.principal.label,
            role=role,  # type: ignore[arg-type]
            sid=conn.sid,
            node=live.node,
        )
        try:
            result = await live.state.join(candidate, room.capacity, live.grace)
        except RoomFull:
            raise EventError("The room is full", code="room_full") from None
        p = result.participant
        conn.room_id, conn.participant_id, conn.role = room.id, p.id, role
        if conn.lobby_room_id is not None:
            conn.lobby_room_id = None
            await live.state.lobby_remove(room_key, guest_id)
        await live.sio.enter_room(conn.sid, room_channel(room.id))
        await live.sio.enter_room(conn.sid, channel_participant(p.id))
        if role == "host":
            await live.sio.enter_room(conn.sid, channel_hosts(room.id))
        if result.previous_sid and result.previous_sid != conn.sid:
            # The same session or person joined again (a second tab or device, a reconnect
            # before the old socket timed out): the newest connection wins, one entry.
            await live.sio.emit("room:replaced", {"room_id": room_key}, to=result.previous_sid)
            await live.disconnect_sid(result.previous_sid)
        if result.resumed:
            await live.emit_to_room(
                room.id, "participant:updated", {"participant": p.public()}, skip_sid=conn.sid
            )
        else:
            await live.emit_to_room(
                room.id, "participant:joined", {"participant": p.public()}, skip_sid=conn.sid
            )
            await live.run_hooks("joined", p)
        ack: dict[str, Any] = {
            "status": "joined",
            "resumed": result.resumed,
            "participant_id": p.id,
            "role": role,
            "room": room_info(room),
            "participants": [
                q.public() for q in await live.state.participants(room_key, live.grace)
            ],
        }
        if role == "host":
            ack["lobby"] = [e.public() for e in await live.state.lobby(room_key)]
        for extra in live.hooks.join_extras:
            ack.update(await extra(live, conn))
        return ack

    @live.event("room:leave", Empty)
    async def leave(live: Live, conn: Conn, body: Empty) -> dict[str, Any]:
        assert conn.room_id is not None and conn.participant_id is not None
        room_key, pid = str(conn.room_id), conn.participant_id
        p = await live.state.get(room_key, pid)
        await live.state.remove(room_key, pid)
        await live.sio.leave_room(conn.sid, room_channel(room_key))
        await live.sio.leave_room(conn.sid, channel_participant(pid))
        await live.sio.leave_room(conn.sid, channel_hosts(room_key))
        conn.room_id = conn.participant_id = conn.role = None
        if p is not None:
            await live.participant_left(p, "left")
        return {}

    @live.event("participant:update", UpdateIn)
    async def update(live: Live, conn: Conn, body: UpdateIn) -> dict[str, Any]:
        assert conn.room_id is not None and conn.participant_id is not None
        room_key = str(conn.room_id)
        current = await live.state.get(room_key, conn.participant_id)
        if current is None:
            raise EventError("You are no longer in this room", code="not_in_room")
        if body.audio and current.muted_by_host:
            raise EventError(
                "A host muted you; wait until they ask you to speak", code="muted_by_host"
            )
        media = {
            k: v
            for k, v in {"audio": body.audio, "video": body.video, "screen": body.screen}.items()
            if v is not None
        }
        changes: dict[str, Any] = {}
        if media:
            changes["media"] = media
        if body.hand_raised is not None:
            changes["hand_raised"] = body.hand_raised
        p = await live.state.update(room_key, conn.participant_id, **changes)
        if p is None:
            raise EventError("You are no longer in this room", code="not_in_room")
        await live.emit_to_room(conn.room_id, "participant:updated", {"participant": p.public()})
        await live.run_hooks("updated", p)
        return {"participant": p.public()}
