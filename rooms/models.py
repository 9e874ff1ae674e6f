"""Rooms, their hosts and members, patient invitations and removals (bans).

Live state (who is inside right now, media state, lobby) is not here: it lives behind
:class:`rooms.presence.LiveState` (process memory, or Redis shared by every node).
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Enum, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, IdMixin, TimestampMixin, UTCDateTime, utcnow


class RoomKind(enum.StrEnum):
    teleconsultation = "teleconsultation"
    estaff = "estaff"
    expertise = "expertise"


class RoomStatus(enum.StrEnum):
    open = "open"
    closed = "closed"


class MemberRole(enum.StrEnum):
    host = "host"
    participant = "participant"


class Room(IdMixin, TimestampMixin, Base):
    __tablename__ = "rooms"

    kind: Mapped[RoomKind] = mapped_column(Enum(RoomKind, native_enum=False, length=20))
    title: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    # A plain column for now: the dossier package gives it its meaning (access, filing).
    dossier_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    capacity: Mapped[int] = mapped_column(default=12)
    locked: Mapped[bool] = mapped_column(default=False)
    status: Mapped[RoomStatus] = mapped_column(
        Enum(RoomStatus, native_enum=False, length=10), default=RoomStatus.open, index=True
    )
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RoomMember(IdMixin, Base):
    """A professional given a role in a room (the owner is a host without a row here)."""

    __tablename__ = "room_members"
    __table_args__ = (UniqueConstraint("room_id", "user_id"),)

    room_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[MemberRole] = mapped_column(Enum(MemberRole, native_enum=False, length=20))
    added_by: Mapped[uuid.UUID | None] = mapped_column()
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Invitation(IdMixin, Base):
    """A link sent to a person without an account (the patient) to enter one room."""

    __tablename__ = "invitations"

    room_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("rooms.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    mobile: Mapped[str | None] = mapped_column(String(20))
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    token_id: Mapped[str] = mapped_column(String(32), unique=True)  # the token's public half
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    single_use: Mapped[bool] = mapped_column(default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Guest(IdMixin, Base):
    """One guest session opened with an invitation: the guest's identity in the room (their
    lobby place, admission, participant entry, messages and files). A multi-use link opens
    several, each admitted on its own; the invitation's expiry or revocation ends them all."""

    __tablename__ = "room_guests"

    invitation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("invitations.id", ondelete="CASCADE"), index=True
    )
    room_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("rooms.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    # invitation_revoked | invitation_expired | room_closed
    end_reason: Mapped[str | None] = mapped_column(String(30))


class Removal(IdMixin, Base):
    """An identity (account or guest) removed from a room by a host: it may not come back."""

    __tablename__ = "room_removals"
    __table_args__ = (Index("ix_room_removals_room_subject", "room_id", "subject_id"),)

    room_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    subject_id: Mapped[uuid.UUID] = mapped_column()  # user id, or a guest id
    subject_kind: Mapped[str] = mapped_column(String(10))  # user | guest
    label: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(String(20), default="removed")  # removed | refused
    removed_by: Mapped[uuid.UUID | None] = mapped_column()
    removed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RoomAttachment(IdMixin, Base):
    """A file sent during a call (from disk, from the dossier, or a capture of a video).

    The "room attachment table": a room without a dossier keeps its files here; with a
    dossier, a file filed into it also points at the dossier document made from it.
    """

    __tablename__ = "room_attachments"
    __table_args__ = (Index("ix_room_attachments_room_created", "room_id", "created_at"),)

    room_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    uploaded_by_kind: Mapped[str] = mapped_column(String(10))  # user | guest
    uploaded_by_id: Mapped[uuid.UUID] = mapped_column()  # user id, or a guest id
    uploaded_by_label: Mapped[str] = mapped_column(String(200), default="")
    # Addressed to one person (user id or guest id); null: everyone in the room.
    recipient_kind: Mapped[str | None] = mapped_column(String(10))
    recipient_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    recipient_label: Mapped[str] = mapped_column(String(200), default="")
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(20))  # upload|snapshot|screenshot|dossier_document
    # The dossier document it was filed as, or (source dossier_document) copied from.
    dossier_document_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
