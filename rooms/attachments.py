"""Files sent during a call: from disk, from the dossier, or captured from a video.

:func:`add_attachment` is the one write path. It checks that the sender is in the room and
may address the recipient, streams the bytes into the blob store (size-limited, type checked
from the bytes, never from the name), writes the :class:`RoomAttachment` row and its audit
entry, and — when asked and the room has a dossier — files the file into the dossier through
the registered *filer* (rooms cannot import the dossier package: it plugs itself in with
:func:`register_filer`). Everything is one transaction: if filing fails, the attachment is not
kept either, and the blob is removed again.

After the commit, the ``room.attachment`` event is published; the live layer forwards it as
``attachment:added`` to the recipient only (or to the whole room), and the chat posts the
downloadable chat item.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any, Literal

from aiohttp import web
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit, filetypes
from core import storage as core_storage
from core.accounts import User
from core.context import BUS, DB, LIMITER
from core.db import UnitOfWork, utcnow
from core.errors import Conflict, Forbidden, NotFound, TooManyRequests, ValidationFailed
from core.events import Event
from core.heavy import run_heavy
from core.principal import Principal
from core.storage import Storage
from rooms import access
from rooms.live import LIVE, channel_guest, channel_hosts, channel_room, channel_user
from rooms.models import Guest, Room, RoomAttachment, RoomStatus

Source = Literal["upload", "snapshot", "screenshot", "dossier_document"]
SOURCES: tuple[str, ...] = ("upload", "snapshot", "screenshot", "dossier_document")
CAPTURES = ("snapshot", "screenshot")
# Files sent during a call stay small next to dossier uploads (videos of a whole exam go
# through the dossier's resumable uploads).
MAX_ATTACHMENT_BYTES = 100 * 1024 * 1024
FILES_PER_MINUTE = 60  # per sender: a flood of uploads is refused with 429

Data = bytes | AsyncIterable[bytes]

# Files an attachment into the room's dossier, in the caller's transaction; returns the id of
# the dossier document made from it. Registered by the dossier package.
Filer = Callable[
    [UnitOfWork, Principal, Room, str, AsyncIterable[bytes], str], Awaitable[uuid.UUID]
]
_filers: list[Filer] = []


def register_filer(fn: Filer) -> None:
    """Register the function filing attachments into a room's dossier (one is enough)."""
    if fn not in _filers:
        _filers.append(fn)


class GuestCannotFile(Forbidden):
    code = "guest_cannot_file"
    title = "A guest cannot file into the dossier"


class NoDossier(ValidationFailed):
    code = "no_dossier"
    title = "This room is not opened on a dossier"


def storage_of(app: web.Application) -> Storage:
    return core_storage.of(app)


def attachment_out(a: RoomAttachment) -> dict[str, Any]:
    return {
        "id": str(a.id),
        "room_id": str(a.room_id),
        "filename": a.filename,
        "content_type": a.content_type,
        "size": a.size,
        "sha256": a.sha256,
        "source": a.source,
        "uploaded_by": {
            "kind": a.uploaded_by_kind,
            "id": str(a.uploaded_by_id),
            "label": a.uploaded_by_label,
        },
        "recipient": (
            {"kind": a.recipient_kind, "id": str(a.recipient_id), "label": a.recipient_label}
            if a.recipient_id
            else None
        ),
        "dossier_document_id": str(a.dossier_document_id) if a.dossier_document_id else None,
        "created_at": a.created_at.isoformat(),
    }


# -- who may address whom -----------------------------------------------------------------


async def _recipient(
    app: web.Application, session: AsyncSession, room: Room, to: str
) -> tuple[str, uuid.UUID, str, access.RoomRole]:
    """(kind, subject id, label, role) of ``to``: a live participant id of the room, or the
    id of an account or guest who may enter it. 404 ``recipient_not_found`` otherwise."""
    missing = NotFound("Nobody with this id in the room", code="recipient_not_found")
    live = app.get(LIVE)
    if live is not None:
        p = await live.state.get(str(room.id), to)
        if p is not None:
            return p.kind, uuid.UUID(p.subject_id), p.name, p.role
    try:
        subject = uuid.UUID(to)
    except ValueError:
        raise missing from None
    guest = await session.get(Guest, subject)
    if guest is not None:
        if guest.room_id != room.id:
            raise missing
        as_principal = Principal.for_guest(guest.id, guest.name, data={"room_id": str(room.id)})
        role = await access.role_in(session, as_principal, room)
        if role is None:
            raise missing
        return "guest", guest.id, guest.name, role
    user = await session.get(User, subject)
    if user is None or not user.active:
        raise missing
    from core.accounts import delegators_of

    who = Principal.for_user(user, delegates_for=await delegators_of(session, user.id))
    role = await access.role_in(session, who, room)
    if role is None:
        raise missing
    return "user", user.id, user.display_name, role


def visible_clause(principal: Principal, role: access.RoomRole) -> Any:
    """Attachments a member of the room may see: all for hosts; for the others, what is
    addressed to them or to everyone, and what they sent."""
    if role == "host":
        return None
    return or_(
        RoomAttachment.recipient_id.is_(None),
        RoomAttachment.recipient_id == principal.subject_id,
        RoomAttachment.uploaded_by_id == principal.subject_id,
    )


# -- the write path ---------------------------------------------------------------------


async def _denied(app: web.Application, principal: Principal, room_id: uuid.UUID, why: str) -> None:
    await audit.record_now(
        app[DB],
        "room.attachment.add",
        actor=principal,
        object_type="room",
        object_id=room_id,
        outcome="denied",
        reason=why,
    )


async def add_attachment(
    app: web.Application,
    principal: Principal,
    room_id: uuid.UUID,
    *,
    filename: str,
    data: Data,
    source: str,
    recipient: str | None = None,
    file_into_dossier: bool = False,
    dossier_document_id: uuid.UUID | None = None,
) -> RoomAttachment:
    """Send a file in a room: THE write path for room attachments.

    ``data`` is the bytes or an async iterable of chunks (streamed, never held whole).
    ``recipient`` is a live participant id or the account/guest id of someone who may enter
    the room; None addresses everyone in it. Hosts and participants may address anyone; a
    guest only the hosts or everyone; a capture (snapshot, screenshot) without a recipient is
    addressed to the one who took it. A closed room takes no more files (409
    ``room_closed``); its files stay downloadable. ``file_into_dossier`` also files the file
    into the room's dossier (refused to guests; 422 ``no_dossier`` when the room has none).
    ``dossier_document_id`` records the dossier document a file was copied from.
    """
    if source not in SOURCES:
        raise ValidationFailed(f"source must be one of {', '.join(SOURCES)}", code="bad_source")
    filename = filetypes.sanitize_filename(filename)
    if not await app[LIMITER].hit(
        f"room-files:{principal.subject_id}", limit=FILES_PER_MINUTE, window=60
    ):
        raise TooManyRequests("Too many files sent; wait a minute", code="rate_limited")
    if source in CAPTURES and recipient is None:
        # A capture of someone's video is for the one who took it, unless sent on purpose.
        recipient = str(principal.subject_id)
    db = app[DB]
    async with db.read() as session:
        room, role = await access.room_for(session, principal, room_id)
        if room.status == RoomStatus.closed:
            raise Conflict("This room is closed", code="room_closed")
        to: tuple[str, uuid.UUID, str, access.RoomRole] | None = None
        if recipient is not None:
            to = await _recipient(app, session, room, recipient)
    if principal.kind == "guest" and to is not None and to[3] != "host":
        await _denied(app, principal, room_id, "guest_to_non_host")
        raise Forbidden(
            "A guest may send files only to the hosts or to everyone", code="guest_recipient"
        )
    if file_into_dossier:
        if principal.kind != "user" or role == "guest":
            await _denied(app, principal, room_id, "guest_cannot_file")
            raise GuestCannotFile("Un invité ne peut pas classer de document dans le dossier.")
        if room.dossier_id is None:
            raise NoDossier("Cette salle n'est pas ouverte sur un dossier.")
        if not _filers:
            raise NoDossier("Le classement dans un dossier n'est pas disponible.")

    storage = storage_of(app)
    limit = min(MAX_ATTACHMENT_BYTES, storage.staging.max_bytes)
    staged = await storage.staging.stage(data, limit)
    blob_key: str | None = None
    try:
        if staged.size == 0:
            raise ValidationFailed("Le fichier est vide.", code="empty_file")
        ftype = await asyncio.to_thread(filetypes.check, filename, staged.head, staged.path)
        if ftype is not filetypes.DICOM:
            await run_heavy(filetypes.check_structure, ftype, staged.path, filename)
        blob = await storage.blobs.put(staged)
        blob_key = blob.key
        async with db.write() as uow:
            if file_into_dossier:
                # First, before this transaction writes anything: the dossier checks its own
                # permission and may record a refusal in a transaction of its own.
                filer = _filers[-1]
                dossier_document_id = await filer(
                    uow, principal, room, filename, storage.blobs.open(blob.key), source
                )
            a = RoomAttachment(
                id=uuid.uuid4(),
                room_id=room.id,
                uploaded_by_kind=principal.kind,
                uploaded_by_id=principal.subject_id,
                uploaded_by_label=principal.label[:200],
                recipient_kind=to[0] if to else None,
                recipient_id=to[1] if to else None,
                recipient_label=to[2][:200] if to else "",
                filename=filename,
                content_type=ftype.mime,
                size=blob.size,
                sha256=blob.sha256,
                blob_key=blob.key,
                source=source,
                dossier_document_id=dossier_document_id,
                created_at=utcnow(),
            )
            uow.session.add(a)
            await uow.session.flush()
            audit.record(
                uow.session,
                "room.attachment.add",
                actor=principal,
                object_type="room_attachment",
                object_id=a.id,
                room_id=str(room.id),
                filename=filename,
                size=a.size,
                sha256=a.sha256,
                source=source,
                recipient_id=str(a.recipient_id) if a.recipient_id else None,
                dossier_document_id=str(a.dossier_document_id) if a.dossier_document_id else None,
            )
            uow.emit(
                "room.attachment",
                attachment_out(a),
                room_id=str(room.id),
                recipient_kind=a.recipient_kind,
                recipient_id=str(a.recipient_id) if a.recipient_id else None,
                sender_kind=principal.kind,
                sender_id=str(principal.subject_id),
            )
    except BaseException:
        if blob_key is None:
            storage.staging.discard_file(staged)
        else:
            await storage.blobs.delete(blob_key)
        raise
    return a


async def file_capture(
    app: web.Application,
    principal: Principal,
    room_id: uuid.UUID,
    *,
    filename: str,
    content: bytes,
    source: str,
) -> dict[str, str | None]:
    """Keep a snapshot or screenshot of a participant's video taken by ``principal``.

    Addressed to the one who took it (they download it from the room's files); filed into the
    room's dossier when the room has one and the principal is a professional who may add to
    it (otherwise kept in the room only). Returns
    ``{"attachment_id", "dossier_document_id"}`` (the latter None when not filed).
    """
    if source not in CAPTURES:
        raise ValidationFailed("source must be snapshot or screenshot", code="bad_source")
    async with app[DB].read() as session:
        room, _ = await access.room_for(session, principal, room_id)
    if room.dossier_id is not None and principal.kind == "user" and _filers:
        try:
            a = await add_attachment(
                app,
                principal,
                room_id,
                filename=filename,
                data=content,
                source=source,
                file_into_dossier=True,
            )
        except (Forbidden, NotFound) as e:
            if e.code == "room_not_found":
                raise
            # In the room but not allowed to add to its dossier: kept for the taker only.
            a = await add_attachment(
                app, principal, room_id, filename=filename, data=content, source=source
            )
    else:
        a = await add_attachment(
            app, principal, room_id, filename=filename, data=content, source=source
        )
    return {
        "attachment_id": str(a.id),
        "dossier_document_id": str(a.dossier_document_id) if a.dossier_document_id else None,
    }


# -- reading ------------------------------------------------------------------------------


async def list_attachments(
    app: web.Application, principal: Principal, room_id: uuid.UUID
) -> list[RoomAttachment]:
    async with app[DB].read() as session:
        _, role = await access.room_for(session, principal, room_id)
        stmt = select(RoomAttachment).where(RoomAttachment.room_id == room_id)
        cond = visible_clause(principal, role)
        if cond is not None:
            stmt = stmt.where(cond)
        rows = await session.execute(stmt.order_by(RoomAttachment.created_at, RoomAttachment.id))
        return list(rows.scalars())


async def get_attachment(
    app: web.Application, principal: Principal, room_id: uuid.UUID, attachment_id: uuid.UUID
) -> RoomAttachment:
    """One attachment the principal may see; 404 otherwise (nothing learnt about others')."""
    async with app[DB].read() as session:
        _, role = await access.room_for(session, principal, room_id)
        stmt = select(RoomAttachment).where(
            RoomAttachment.room_id == room_id, RoomAttachment.id == attachment_id
        )
        cond = visible_clause(principal, role)
        if cond is not None:
            stmt = stmt.where(cond)
        a = await session.scalar(stmt)
    if a is None:
        raise NotFound("No file with this id in the room", code="attachment_not_found")
    return a


async def read_attachment(
    app: web.Application, principal: Principal, room_id: uuid.UUID, attachment_id: uuid.UUID
) -> RoomAttachment:
    """:func:`get_attachment` for a download: the read is audited (who, which file, when)."""
    a = await get_attachment(app, principal, room_id, attachment_id)
    await audit.record_now(
        app[DB],
        "room.attachment.read",
        actor=principal,
        object_type="room_attachment",
        object_id=a.id,
        room_id=str(a.room_id),
        filename=a.filename,
    )
    return a


# -- live forwarding ----------------------------------------------------------------------


def setup(app: web.Application) -> None:
    """Forward ``room.attachment`` to the recipient (and the sender and hosts), or the room."""

    async def forward(event: Event) -> None:
        live = app.get(LIVE)
        if live is None:
            return
        r = event.routing
        data = event.payload
        if r.get("recipient_id") is None:
            await live.sio.emit("attachment:added", data, room=channel_room(r["room_id"]))
            return
        channels = {
            channel_user(r["recipient_id"])
            if r.get("recipient_kind") == "user"
            else channel_guest(r["recipient_id"]),
            channel_user(r["sender_id"])
            if r.get("sender_kind") == "user"
            else channel_guest(r["sender_id"]),
        }
        if data["source"] not in CAPTURES:
            channels.add(channel_hosts(r["room_id"]))
        # One delivery per connection even when it is in several of these channels.
        await live.sio.emit("attachment:added", data, room=sorted(channels))

    app[BUS].subscribe("room.attachment", forward)
