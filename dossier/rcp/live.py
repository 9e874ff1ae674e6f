"""The RCP's live side: the agenda item shown now reaches everyone in the meeting's room,
and a client joining (or coming back) gets it in its ``room:join`` acknowledgement."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from core.context import BUS
from core.events import Event
from dossier.rcp import actions
from rooms.live import LIVE, Conn, Live


def setup(app: web.Application) -> None:
    live = app.get(LIVE)
    if live is not None:

        @live.hooks.on_join_ack
        async def rcp_on_join(live: Live, conn: Conn) -> dict[str, Any]:
            assert conn.room_id is not None
            if conn.principal.kind != "user":  # a guest invited by link: not the agenda
                return {}
            current = await actions.current_of_room(app, uuid.UUID(str(conn.room_id)))
            return {"rcp": current} if current is not None else {}

    async def forward(event: Event) -> None:
        live = app.get(LIVE)
        if live is None:
            return
        name = f"rcp:{event.name[4:]}"
        await live.emit_to_room(event.routing["room_id"], name, event.payload)
        # And to the lead and invitees wherever they are (the meeting's own page).
        for user_id in event.routing.get("user_ids", []):
            await live.emit_to_user(user_id, name, event.payload)

    app[BUS].subscribe("rcp.current", forward)
    app[BUS].subscribe("rcp.item_signed", forward)
