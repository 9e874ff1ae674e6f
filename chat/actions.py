"""The write and read paths of the chat.

:func:`send_message` is the one write path: the message (its id chosen by the client) is
committed, then the ``chat.message`` event is published (the live layer broadcasts it). A
retry with the same id returns the stored message and publishes nothing: stored once,
delivered once.
"""

from __future__ import annotations

import asyncio
import unicodedata
import uuid
import weakref
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
        "attachment": (
            {
                "id": str(m.attachment_id),
                "name": m.document_name,
                "url": f"/api/v1/rooms/{m.room_id}/attachments/{m.attachment_id}/content",
            }
            if m.attachment_id
            else None
        ),
        "created_at": m.created_at.isoformat(),
    }


class GroupCommit:
    """Stores messages in batches: while one transaction commits, newcomers queue for the
    next one. Each caller still returns only once *its* message is committed (stored before
    acknowledged), but a busy room costs one commit per batch instead of one per message."""

    MAX_BATCH = 500

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: list[tuple[Message, dict[str, Any], asyncio.Future[bool]]] = []
        self._task: asyncio.Task[None] | None = None

    async def store(self, msg: Message, routing: dict[str, Any]) -> bool:
        """Commit the message and publish ``chat.message``; False if the id was stored before."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((msg, routing, fut))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.MAX_BATCH], self._queue[self.MAX_BATCH :]
            try:
                async with self.db.write() as uow:
                    uow.session.add_all([m for m, _, _ in batch])
                    await uow.session.flush()
                    for m, routing, _ in batch:
                        uow.emit("chat.message", message_out(m), **routing)
            except IntegrityError:
                # A retry (or a vanished room) in the batch: store each message on its own.
                for m, routing, fut in batch:
                    try:
                        result = await self._store_one(m, routing)
                    except Exception as e:
                        if not fut.done():
                            fut.set_exception(e)
                    else:
                        if not fut.done():
                            fut.set_result(result)
            except Exception as e:
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
            else:
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_result(True)

    async def _store_one(self, msg: Message, routing: dict[str, Any]) -> bool:
        fresh = Message(**{c.key: getattr(msg, c.key) for c in Message.__table__.columns})
        try:
            async with self.db.write() as uow:
                uow.session.add(fresh)
                await uow.session.flush()
                uow.emit("chat.message", message_out(fresh), **routing)
        except IntegrityError:
            return False
        return True


_writers: weakref.WeakKeyDictionary[Database, GroupCommit] = weakref.WeakKeyDictionary()


def writer_of(db: Database) -> GroupCommit:
    if db not in _writers:
        _writers[db] = GroupCommit(db)
    return _writers[db]


async def send_message(
    db: Database,
    sender: Sender,
    *,
    message_id: uuid.UUID,
    text: str,
    room_id: uuid.UUID | None,
    recipient: Sender | None = None,
    document: tuple[uuid.UUID, str] | None = None,
    attachment: tuple[uuid.UUID, str] | None = None,
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
        document_name=(document or attachment or (None, ""))[1][:255],
        attachment_id=attachment[0] if attachment else None,
        created_at=utcnow(),
    )
    if await writer_of(db).store(msg, routing or {}):
        return msg, True
    async with db.read() as session:
        stored = await session.get(Message, message_id)
    if stored is None:  # the conflict was something else (e.g. the room vanished)
        raise NotFound("The room no longer exists", code="room_not_found")
    if stored.sender_id != sender.id or stored.room_id != room_id:
        raise Conflict("This message id is taken", code="duplicate_id")
    return stored, False


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
) -> datetime | None:
    """Move the reader's marker in a scope (``room:<id>`` or ``dm:<a>:<b>``) forward to a
    message; returns when, or None when the marker was already at or past it (a late read
    from another tab or device never moves it back)."""
    for attempt in range(2):
        try:
            async with db.write() as uow:
                target = await uow.session.get(Message, message_id)
                marker = await uow.session.scalar(
                    select(ReadMarker)
                    .where(ReadMarker.scope == scope, ReadMarker.reader_id == reader_id)
                    .with_for_update()
                )
                now = utcnow()
                if marker is None:
                    uow.session.add(
                        ReadMarker(
                            scope=scope, reader_id=reader_id, message_id=message_id, read_at=now
                        )
                    )
                    return now
                current = await uow.session.get(Message, marker.message_id)
                if (
                    target is not None
                    and current is not None
                    and (target.created_at, str(target.id)) <= (current.created_at, str(current.id))
                ):
                    return None
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
