"""The lobby (salle d'attente): guests wait there until a host admits or refuses them.

A guest's ``room:join`` puts them in the lobby (ack ``status: "lobby"``) and hosts get
``lobby:arrived``. ``room:admit`` sends the guest ``lobby:admitted``: their client then sends
``room:join`` again and enters. ``room:refuse`` sends ``lobby:refused``, closes the guest's
connection, revokes their invitation and ends their guest session.
"""

from __future__ import annotations

import uuid
from typing import Any

from core.context import DB, SESSIONS
from rooms import actions
from rooms.live import Conn, EventError, Live, Payload, channel_guest


class GuestIn(Payload):
    guest_id: uuid.UUID


def register(live: Live) -> None:
    db = live.app[DB]

    @live.event("lobby:list", host=True)
    async def lobby_list(live: Live, conn: Conn, body: Any) -> dict[str, Any]:
        return {"lobby": [e.public() for e in await live.state.lobby(str(conn.room_id))]}

    @live.event("room:admit", GuestIn, host=True)
    async def admit(live: Live, conn: Conn, body: GuestIn) -> dict[str, Any]:
        assert conn.room_id is not None
        room_key, guest_id = str(conn.room_id), str(body.guest_id)
        entry = await live.state.lobby_remove(room_key, guest_id)
        if entry is None:
            raise EventError("Nobody with this id is waiting", code="not_in_lobby")
        await actions.moderate(
            db,
            conn.principal,
            conn.room_id,
            "lobby.admit",
            target_id=guest_id,
            target_label=entry.name,
        )
        await live.state.admit(room_key, guest_id)
        await live.sio.emit("lobby:admitted", {"room_id": room_key}, room=channel_guest(guest_id))
        await live.emit_to_hosts(
            conn.room_id, "lobby:left", {"guest_id": guest_id, "reason": "admitted"}
        )
        return {}

    @live.event("room:refuse", GuestIn, host=True)
    async def refuse(live: Live, conn: Conn, body: GuestIn) -> dict[str, Any]:
        assert conn.room_id is not None
        room_key, guest_id = str(conn.room_id), str(body.guest_id)
        entry = await live.state.lobby_remove(room_key, guest_id)
        if entry is None:
            raise EventError("Nobody with this id is waiting", code="not_in_lobby")
        await actions.remove_identity(
            db,
            conn.principal,
            conn.room_id,
            subject_id=body.guest_id,
            subject_kind="guest",
            label=entry.name,
            reason="refused",
        )
        await live.sio.emit("lobby:refused", {"room_id": room_key}, room=channel_guest(guest_id))
        await live.emit_to_hosts(
            conn.room_id, "lobby:left", {"guest_id": guest_id, "reason": "refused"}
        )
        await live.app[SESSIONS].store.delete_for_subject(body.guest_id)
        await live.disconnect_sid(entry.sid)
        return {}
