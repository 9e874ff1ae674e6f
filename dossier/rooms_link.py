"""Where dossiers meet rooms: who may enter a dossier's room, which dossier a room may name,
and live updates of a dossier pushed to the connected users who may see it.

``rooms`` cannot read dossiers (dependencies point one way), so the dossier package plugs
its rules into the registries ``rooms.access`` offers, and forwards its bus events through
the room layer's per-user Socket.IO channels.
"""

from __future__ import annotations

import uuid

from aiohttp import web
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import BUS, DB
from core.events import Event
from core.principal import Principal
from dossier import permissions
from dossier.dossiers import audience
from dossier.models import Dossier
from rooms import access
from rooms.live import LIVE
from rooms.models import Room


class DossierRoomAccess:
    """The people who may see a dossier may enter the rooms opened on it."""

    async def can_enter(self, session: AsyncSession, principal: Principal, room: Room) -> bool:
        if room.dossier_id is None or principal.kind != "user":
            return False
        return await permissions.can_see(session, principal, room.dossier_id)

    def visible(self, principal: Principal) -> ColumnElement[bool] | None:
        if principal.kind != "user":
            return None
        return Room.dossier_id.in_(
            select(Dossier.id).where(permissions.visible_dossiers(principal))
        )


async def may_attach(session: AsyncSession, principal: Principal, dossier_id: uuid.UUID) -> bool:
    """A room may be opened on a dossier by someone who may see that dossier."""
    return await permissions.can_see(session, principal, dossier_id)


_ACCESS = DossierRoomAccess()


def setup(app: web.Application) -> None:
    access.register(_ACCESS)
    access.register_attach_check(may_attach)

    async def forward_update(event: Event) -> None:
        live = app.get(LIVE)
        if live is None:
            return
        for user_id in event.routing.get("user_ids", []):
            await live.emit_to_user(user_id, "dossier:updated", event.payload)

    async def forward_document(event: Event) -> None:
        live = app.get(LIVE)
        if live is None:
            return
        dossier_id = uuid.UUID(str(event.payload["dossier_id"]))
        async with app[DB].read() as session:
            d = await session.get(Dossier, dossier_id)
            if d is None:
                return
            users = await audience(session, d)
        # Only to the professionals who may see the dossier: a guest in a room opened on the
        # dossier sees only what is sent to them.
        for user_id in users:
            await live.emit_to_user(user_id, "dossier:document_added", event.payload)

    app[BUS].subscribe("dossier.updated", forward_update)
    app[BUS].subscribe("document.added", forward_document)
