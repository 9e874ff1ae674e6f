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
from core.events import Event
from rooms import actions
from rooms.live import Conn, Live, Payload, channel_guest


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
        await actions.admit_guest(db, live, conn.principal, conn.room_id, body.guest_id)
        return {}

    @live.event("room:refuse", GuestIn, host=True)
    async def refuse(live: Live, conn: Conn, body: GuestIn) -> dict[str, Any]:
        assert conn.room_id is not None
        await actions.refuse_guest(db, live, conn.principal, conn.room_id, body.guest_id)
        return {}

    async def on_lobby_event(event: Event) -> None:
        """After the host's decision committed: tell the guest and the hosts."""
        room_id, guest_id = str(event.payload["room_id"]), str(event.payload["guest_id"])
        if event.name == "lobby.admitted":
            await live.sio.emit(
                "lobby:admitted", {"room_id": room_id}, room=channel_guest(guest_id)
            )
            await live.emit_to_hosts(
                room_id, "lobby:left", {"guest_id": guest_id, "reason": "admitted"}
            )
        elif event.name == "lobby.refused":
            await live.sio.emit("lobby:refused", {"room_id": room_id}, room=channel_guest(guest_id))
            await live.emit_to_hosts(
                room_id, "lobby:left", {"guest_id": guest_id, "reason": "refused"}
            )
            await live.app[SESSIONS].store.delete_for_subject(uuid.UUID(guest_id))
            await live.disconnect_sid(str(event.payload["sid"]))

    db.bus.subscribe("lobby.", on_lobby_event)
