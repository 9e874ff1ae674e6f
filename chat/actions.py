"""The write and read paths of the chat.

:func:`send_message` is the one write path: the message (its id chosen by the client) is
committed, then the ``chat.message`` event is published (the live layer broadcasts it). A
retry with the same id returns the stored message and publishes nothing: stored once,
delivered once.
"""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError

from chat.models import MAX_TEXT, Message, ReadMarker
from core.db import Database, utcnow
from core.errors import Conflict, NotFound, ValidationFailed


@dataclass(frozen=True)
class Sender:
    id: uuid.UUID
    kind: str
    name: str


def clean_text(text: str) -> str:
    """Plain text only: control characters (but newlines and tabs) dropped, length-limited."""
    text = "".join(
        ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs")
    ).strip()
    if not text:
        raise ValidationFailed("The message is empty", code="empty_message")
    if len(text) > MAX_TEXT:
        raise ValidationFailed(f"A message holds at most {MAX_TEXT} characters", code="too_long")
    return text


def dm_scope(a: uuid.UUID, b: uuid.UUID) -> str:
    lo, hi = sorted((str(a), str(b)))
    return f"dm:{lo}:{hi}"


def message_out(m: Message) -> dict[str, Any]:
    return {
        "id": str(m.id),
        "room_id": str(m.room_id) if m.room_id else None,
        "sender": {"id": str(m.sender_id), "kind": m.sender_kind, "name": m.sender_name},
        "to": {"id": str(m.recipient_id), "name": m.recipient_name} if m.recipient_id else None,
        "text": m.text,
        "document": {"id": str(m.document_id), "name": m.document_name} if m.document_id else None,
        "created_at": m.created_at.isoformat(),
    }


async def send_message(
    db: Database,
    sender: Sender,
    *,
    message_id: uuid.UUID,
    text: str,
    room_id: uuid.UUID | None,
    recipient: Sender | None = None,
    document: tuple[uuid.UUID, str] | None = None,
    routing: dict[str, Any] | None = None,
) -> tuple[Message, bool]:
    """Store a message; returns it and whether it is new (False: a retry of a stored one)."""
    text = clean_text(text)
    msg = Message(
        id=message_id,
        room_id=room_id,
        conversation="" if room_id else dm_scope(sender.id, recipient.id) if recipient else "",
        sender_id=sender.id,
        sender_kind=sender.kind,
        sender_name=sender.name[:200],
        recipient_id=recipient.id if recipient else None,
        recipient_name=recipient.name[:200] if recipient else "",
        text=text,
        document_id=document[0] if document else None,
        document_name=document[1][:255] if document else "",
        created_at=utcnow(),
    )
    try:
        async with db.write() as uow:
            uow.session.add(msg)
            await uow.session.flush()
            uow.emit("chat.message", message_out(msg), **(routing or {}))
    except IntegrityError:
        async with db.read() as session:
            stored = await session.get(Message, message_id)
        if stored is None:  # the conflict was something else (e.g. the room vanished)
            raise NotFound("The room no longer exists", code="room_not_found") from None
        if stored.sender_id != sender.id or stored.room_id != room_id:
            raise Conflict("This message id is taken", code="duplicate_id") from None
        return stored, False
    return msg, True


async def history(
    db: Database,
    reader_id: uuid.UUID,
    *,
    room_id: uuid.UUID | None = None,
    peer_id: uuid.UUID | None = None,
    before: uuid.UUID | None = None,
    limit: int = 50,
) -> tuple[list[Message], bool]:
    """A page of messages the reader may see, newest first, and whether older ones exist."""
    stmt = select(Message)
    if room_id is not None:
        stmt = stmt.where(
            Message.room_id == room_id,
            or_(
                Message.recipient_id.is_(None),
                Message.recipient_id == reader_id,
                Message.sender_id == reader_id,
            ),
        )
    else:
        assert peer_id is not None
        stmt = stmt.where(Message.conversation == dm_scope(reader_id, peer_id))
    async with db.read() as session:
        if before is not None:
            anchor = await session.get(Message, before)
            if anchor is None:
                raise NotFound("No message with this id", code="message_not_found")
            stmt = stmt.where(
                or_(
                    Message.created_at < anchor.created_at,
                    and_(Message.created_at == anchor.created_at, Message.id < anchor.id),
                )
            )
        rows = await session.execute(
            stmt.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit + 1)
        )
        messages = list(rows.scalars())
    return messages[:limit], len(messages) > limit


async def mark_read(
    db: Database, reader_id: uuid.UUID, scope: str, message_id: uuid.UUID
) -> datetime:
    """Move the reader's marker in a scope (``room:<id>`` or ``dm:<a>:<b>``) to a message."""
    for attempt in range(2):
        try:
            async with db.write() as uow:
                marker = await uow.session.scalar(
                    select(ReadMarker).where(
                        ReadMarker.scope == scope, ReadMarker.reader_id == reader_id
                    )
                )
                now = utcnow()
                if marker is None:
                    uow.session.add(
                        ReadMarker(
                            scope=scope, reader_id=reader_id, message_id=message_id, read_at=now
                        )
                    )
                else:
                    marker.message_id, marker.read_at = message_id, now
                return now
        except IntegrityError:
            if attempt:
                raise
    raise AssertionError("unreachable")


async def read_marker(db: Database, reader_id: uuid.UUID, scope: str) -> uuid.UUID | None:
    async with db.read() as session:
        return await session.scalar(
            select(ReadMarker.message_id).where(
                ReadMarker.scope == scope, ReadMarker.reader_id == reader_id
            )
        )


async def message_in_scope(db: Database, message_id: uuid.UUID, scope: str) -> bool:
    async with db.read() as session:
        m = await session.get(Message, message_id)
    if m is None:
        return False
    return (f"room:{m.room_id}" if m.room_id else m.conversation) == scope
