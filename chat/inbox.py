"""The reading side of direct messages between professionals outside rooms ("Messagerie"):
my conversations with their last message and unread count, the unread total for the
navigation badge, the read markers of one conversation, and the colleague search that
starts a conversation.

Unread = the peer's messages after my read marker in that conversation, in the history's
order ``(created_at, id)``. A conversation is the scope ``dm:<lower id>:<higher id>``
(:func:`chat.actions.dm_scope`); only its two members can see it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from chat.actions import dm_scope
from chat.models import Message, ReadMarker
from core.accounts import Role, User, fold_case_and_accents
from core.db import Database

PROFESSIONALS = (Role.practitioner, Role.secretary)
EXCERPT = 160  # characters of the last message shown in the conversation list
MAX_COLLEAGUES = 20


@dataclass(frozen=True)
class Conversation:
    peer_id: uuid.UUID
    peer_name: str  # as stored with the last message (the account may be gone)
    last: Message
    unread: int


@dataclass(frozen=True)
class Marker:
    message_id: uuid.UUID
    message_created_at: datetime
    read_at: datetime


def _after(m: Any, anchor: Any) -> ColumnElement[bool]:
    """``m`` comes after ``anchor`` in the history's order ``(created_at, id)``."""
    return or_(
        m.created_at > anchor.created_at,
        and_(m.created_at == anchor.created_at, m.id > anchor.id),
    )


def _unread_stmt(reader_id: uuid.UUID) -> Select[str, int]:
    """(conversation, count) of the messages sent to ``reader_id`` after their marker."""
    anchor = aliased(Message)
    return (
        select(Message.conversation, func.count(Message.id))
        .outerjoin(
            ReadMarker,
            and_(ReadMarker.scope == Message.conversation, ReadMarker.reader_id == reader_id),
        )
        .outerjoin(anchor, anchor.id == ReadMarker.message_id)
        .where(
            Message.room_id.is_(None),
            Message.recipient_id == reader_id,
            Message.sender_id != reader_id,
            or_(anchor.id.is_(None), _after(Message, anchor)),
        )
        .group_by(Message.conversation)
    )


async def unread_by_conversation(db: Database, reader_id: uuid.UUID) -> dict[str, int]:
    async with db.read() as session:
        rows = await session.execute(_unread_stmt(reader_id))
        return {str(c): int(n) for c, n in rows.all()}


async def unread_total(db: Database, reader_id: uuid.UUID) -> tuple[int, int]:
    """(unread messages, conversations holding some) for the navigation badge."""
    counts = await unread_by_conversation(db, reader_id)
    return sum(counts.values()), len(counts)


async def conversations(db: Database, me: uuid.UUID, *, limit: int = 50) -> list[Conversation]:
    """My direct conversations outside rooms, the most recently active first."""
    mine = and_(
        Message.room_id.is_(None),
        Message.conversation != "",
        or_(Message.sender_id == me, Message.recipient_id == me),
    )
    ranked = (
        select(
            Message.id.label("id"),
            func.row_number()
            .over(
                partition_by=Message.conversation,
                order_by=(Message.created_at.desc(), Message.id.desc()),
            )
            .label("rn"),
        )
        .where(mine)
        .subquery()
    )
    stmt = (
        select(Message)
        .join(ranked, ranked.c.id == Message.id)
        .where(ranked.c.rn == 1)
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit)
    )
    async with db.read() as session:
        last = list((await session.execute(stmt)).scalars())
    unread = await unread_by_conversation(db, me)
    out = []
    for m in last:
        to_me = m.recipient_id == me
        peer_id = m.sender_id if to_me else m.recipient_id
        assert peer_id is not None
        out.append(
            Conversation(
                peer_id=peer_id,
                peer_name=m.sender_name if to_me else m.recipient_name,
                last=m,
                unread=unread.get(m.conversation, 0),
            )
        )
    return out


async def has_conversation(db: Database, me: uuid.UUID, peer: uuid.UUID) -> str | None:
    """The stored name of ``peer`` if we have exchanged messages, else None."""
    async with db.read() as session:
        m = await session.scalar(
            select(Message)
            .where(Message.conversation == dm_scope(me, peer), Message.room_id.is_(None))
            .order_by(Message.created_at.desc())
            .limit(1)
        )
    if m is None:
        return None
    return m.recipient_name if m.sender_id == me else m.sender_name


async def marker(db: Database, reader_id: uuid.UUID, scope: str) -> Marker | None:
    """How far ``reader_id`` has read ``scope``, with the read message's own time."""
    async with db.read() as session:
        row = (
            await session.execute(
                select(ReadMarker.message_id, Message.created_at, ReadMarker.read_at)
                .join(Message, Message.id == ReadMarker.message_id)
                .where(ReadMarker.scope == scope, ReadMarker.reader_id == reader_id)
            )
        ).first()
    if row is None:
        return None
    return Marker(message_id=row[0], message_created_at=row[1], read_at=row[2])


async def users_by_id(db: Database, ids: list[uuid.UUID]) -> dict[uuid.UUID, User]:
    if not ids:
        return {}
    async with db.read() as session:
        rows = await session.execute(select(User).where(User.id.in_(ids)))
        return {u.id: u for u in rows.scalars()}


def _contains(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its wildcards escaped (with ``\\``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def find_colleagues(
    db: Database, me: User, q: str, *, limit: int = MAX_COLLEAGUES
) -> list[User]:
    """Professionals to write to: active practitioner and secretary accounts (never
    administrators, never patients: they have no account), not myself, every word of ``q``
    in the first or last name (accents and case ignored). Colleagues of my establishment
    come first, then by name; at most ``MAX_COLLEAGUES``."""
    words = fold_case_and_accents(q).split()[:4]
    stmt = select(User).where(
        User.active.is_(True),
        User.role.in_(PROFESSIONALS),
        User.id != me.id,
    )
    for w in words:
        stmt = stmt.where(User.search_name.like(_contains(w), escape="\\"))
    if me.establishment:  # my establishment's colleagues first
        stmt = stmt.order_by(case((User.establishment == me.establishment, 0), else_=1))
    stmt = stmt.order_by(User.last_name, User.first_name, User.id).limit(min(limit, MAX_COLLEAGUES))
    async with db.read() as session:
        return list((await session.execute(stmt)).scalars())


def is_professional(user: User | None) -> bool:
    return user is not None and user.active and user.role in PROFESSIONALS
