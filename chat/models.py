"""Chat messages (durable; the id is chosen by the sending client) and read markers."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime, utcnow

MAX_TEXT = 4000


class Message(Base):
    __tablename__ = "chat_messages"
    __table_args__ = (
        Index("ix_chat_messages_room_created", "room_id", "created_at"),
        Index("ix_chat_messages_pair_created", "conversation", "created_at"),
    )

    # Chosen by the client: a retry after a lost ack carries the same id and is stored once.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Null for a direct conversation between two signed-in users outside any room.
    room_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    # "dm:<lower id>:<higher id>" for conversations outside rooms, else "".
    conversation: Mapped[str] = mapped_column(String(80), default="")
    sender_id: Mapped[uuid.UUID] = mapped_column(index=True)  # user id or guest id
    sender_kind: Mapped[str] = mapped_column(String(10))  # user | guest
    sender_name: Mapped[str] = mapped_column(String(200))
    recipient_id: Mapped[uuid.UUID | None] = mapped_column(index=True)  # direct message
    recipient_name: Mapped[str] = mapped_column(String(200), default="")
    text: Mapped[str] = mapped_column(Text)
    document_id: Mapped[uuid.UUID | None] = mapped_column()  # a dossier document
    document_name: Mapped[str] = mapped_column(String(255), default="")
    # A file sent in the room (rooms.models.RoomAttachment): the downloadable chat item.
    attachment_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReadMarker(Base):
    """How far a reader has read a room's chat or a direct conversation."""

    __tablename__ = "chat_read_markers"
    __table_args__ = (UniqueConstraint("scope", "reader_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(80))  # "room:<id>" or "dm:<a>:<b>"
    reader_id: Mapped[uuid.UUID] = mapped_column()
    message_id: Mapped[uuid.UUID] = mapped_column()
    read_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
