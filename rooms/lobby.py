"""The lobby (salle d'attente): guests wait there until a host admits or refuses them.

A guest's ``room:join`` puts them in the lobby (ack ``status: "lobby"``) and hosts get
``lobby:arrived``. ``room:admit`` sends the guest ``lobby:admitted``: their client then sends
``room:join`` again and enters. ``room:refuse`` sends ``lobby:refused``, closes the guest's
connection, revokes their invitation and ends their guest session.

A guest is one use of an invitation (:class:`rooms.models.Guest`): each waits and is admitted
alone. When an invitation expires or is withdrawn, every guest it opened is ended
(``guests.ended``): told ``session:ended`` with the reason, out of the lobby or the room,
disconnected, session deleted. Each node sweeps for expired invitations periodically.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from core.context import DB, SESSIONS
from core.events import Event
from rooms import actions, invitations
from rooms.live import Conn, Live, Payload, channel_guest

log = logging.getLogger(__name__)


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
            await live.emit_to_hosts(
                room_id, "lobby:left", {"guest_id": guest_id, "reason": "refused"}
            )
            await live.app[SESSIONS].store.delete_for_subject(uuid.UUID(guest_id))
            # Every connection of this guest, on every node, is told and closed.
            await live.end_subjects([guest_id], "lobby:refused", {"room_id": room_id})

    async def on_guests_ended(event: Event) -> None:
        """Guest sessions ended (invitation withdrawn or expired, room closed): each is told
        why, leaves the lobby or the room, and loses its session and its connections on every
        node at once (not at the next session check)."""
        room_id, reason = str(event.payload["room_id"]), str(event.payload["reason"])
        guest_ids = [str(g) for g in event.payload["guest_ids"]]
        for guest_id in guest_ids:
            entry = await live.state.lobby_remove(room_id, guest_id)
            if entry is not None:
                await live.emit_to_hosts(
                    room_id, "lobby:left", {"guest_id": guest_id, "reason": "gone"}
                )
            for p in await live.state.participants(room_id, live.grace):
                if p.subject_id == guest_id and await live.state.remove(room_id, p.id):
                    await live.participant_left(p, "removed")
            await live.app[SESSIONS].store.delete_for_subject(uuid.UUID(guest_id))
        await live.end_subjects(guest_ids, "session:ended", {"reason": reason, "room_id": room_id})

    async def sweep_guests() -> None:
        while True:
            await asyncio.sleep(live.config.guest_check_seconds)
            try:
                await invitations.end_expired_guests(db)
            except Exception:
                log.warning("ending the guests of expired invitations failed", exc_info=True)

    async def sweeping(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(sweep_guests())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    db.bus.subscribe("lobby.", on_lobby_event)
    db.bus.subscribe("guests.ended", on_guests_ended)
    live.app.cleanup_ctx.append(sweeping)
