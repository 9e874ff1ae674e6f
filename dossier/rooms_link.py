"""Where dossiers meet rooms: who may enter a dossier's room, which dossier a room may name,
and live updates of a dossier pushed to the connected users who may see it.

``rooms`` cannot read dossiers (dependencies point one way), so the dossier package plugs
its rules into the registries ``rooms.access`` offers, and forwards its bus events through
the room layer's per-user Socket.IO channels.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import storage as core_storage
from core.auth import principal as principal_of
from core.context import BUS, DB
from core.db import UnitOfWork, utcnow
from core.errors import Forbidden, NotFound
from core.events import Event
from core.principal import Principal
from dossier import permissions
from dossier.documents import access as doc_access
from dossier.documents import habilitations
from dossier.documents.store import Source, add_document
from dossier.models import Document, Dossier
from dossier.web import RouteTable
from dossier.workflow.dossiers import audience
from rooms import access, attachments
from rooms.attachments_api import AttachmentOut
from rooms.live import LIVE
from rooms.models import Room, RoomAttachment


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

# What a room attachment becomes in the dossier's documents.
_DOCUMENT_SOURCE: dict[str, Source] = {"snapshot": "snapshot", "screenshot": "screenshot"}


async def file_attachment(
    uow: UnitOfWork,
    principal: Principal,
    room: Room,
    filename: str,
    data: AsyncIterable[bytes],
    source: str,
) -> uuid.UUID:
    """The filer rooms call: the file becomes a document of the room's dossier (author, time
    and source recorded; the dossier's write permission checked by ``add_document``)."""
    assert room.dossier_id is not None
    # Which call it came from: the dossier page groups these documents as « Pendant la
    # téléconsultation du … » (the planned day, else the day it was filed).
    call = {
        "room_id": str(room.id),
        "kind": room.kind.value,
        "at": (room.scheduled_at or utcnow()).isoformat(),
    }
    doc = await add_document(
        uow,
        principal,
        room.dossier_id,
        filename,
        data,
        _DOCUMENT_SOURCE.get(source, "chat"),
        meta={"call": call},
    )
    return doc.id


async def send_document_to_room(
    app: web.Application,
    p: Principal,
    room_id: uuid.UUID,
    document_id: uuid.UUID,
    to: str | None,
) -> RoomAttachment:
    """Send a document of the room's dossier into the room, to one participant or to all:
    whoever may read the dossier's documents, never a DICOM study awaiting its identity
    check, and a DICOM file only by a holder of the DICOM habilitation. The room's own write
    path (:func:`rooms.attachments.add_attachment`) files it."""
    async with app[DB].read() as session:
        room, _ = await access.room_for(session, p, room_id)
        if room.dossier_id is None:
            raise NotFound("This room has no dossier", code="document_not_found")
        await doc_access.require_document_read(session, p, room.dossier_id)
        doc = await session.get(Document, document_id)
    if doc is None or doc.dossier_id != room.dossier_id:
        raise NotFound("No such document in the room's dossier", code="document_not_found")
    if doc.pending_identity_check:
        raise Forbidden(
            "Ce document attend la confirmation de l'identité du patient.",
            code="identity_unconfirmed",
        )
    if habilitations.needs_dicom_right(doc):  # sent, it becomes downloadable (seed 002 § 3.1.3)
        await habilitations.require_dicom_download(
            app[DB], p, doc.dossier_id, "room", document_id=str(doc.id), room_id=str(room_id)
        )
    storage = core_storage.of(app)
    return await attachments.add_attachment(
        app,
        p,
        room_id,
        filename=doc.filename,
        data=storage.blobs.open(doc.blob_key),
        source="dossier_document",
        recipient=to,
        dossier_document_id=doc.id,
    )


class FromDocumentIn(BaseModel):
    document_id: uuid.UUID
    # A participant id, account id or guest id; none: everyone in the room.
    to: str | None = Field(None, min_length=1, max_length=200)


routes = RouteTable()


@routes.post(
    "/rooms/{room_id}/attachments/from-document",
    body=FromDocumentIn,
    response=AttachmentOut,
    status=201,
    tags=["rooms"],
    errors=[403, 404, 409, 422, 429],
)
async def send_dossier_document(request: web.Request, body: FromDocumentIn) -> AttachmentOut:
    """Send a document of the room's dossier to a participant (e.g. the patient)."""
    a = await send_document_to_room(
        request.app,
        principal_of(request),
        uuid.UUID(request.match_info["room_id"]),
        body.document_id,
        body.to,
    )
    return AttachmentOut.of(a)


def setup(app: web.Application) -> None:
    access.register(_ACCESS)
    access.register_attach_check(may_attach)
    attachments.register_filer(file_attachment)
    routes.register(app)

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
