"""Tables of the ops package: server API keys, webhook endpoints, the webhook outbox and its
delivery log (one Alembic branch, ``ops/migrations``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, IdMixin, UTCDateTime, utcnow


class ApiKey(Base):
    """A server API key: ``key_id`` is public (the JWT's ``iss``), the secret is shown once.

    ``secret_hash`` (SHA-256) checks a server-to-server call that sends the secret itself;
    ``secret_sealed`` (Fernet under a key derived from CONSILIUM_SECRET_KEY) is what verifies
    the HS256 signature of the access tokens the application mints: a signature check needs
    the secret, so a hash alone cannot do it, and a database dump alone does not reveal it.
    """

    __tablename__ = "ops_api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "CK" + 20 base32 chars
    name: Mapped[str] = mapped_column(String(200))
    # The account the key acts as: the owner (host) of the rooms it creates.
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    secret_hash: Mapped[str] = mapped_column(String(64))
    secret_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookEndpoint(IdMixin, Base):
    """A receiver of webhooks: its URL, its signing secret, the events it wants (empty: all).
    Endpoints from CONSILIUM_WEBHOOK_URLS are kept in step at start-up (``from_settings``)."""

    __tablename__ = "ops_webhook_endpoints"

    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(200))
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(default=True)
    from_settings: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookEvent(IdMixin, Base):
    """The outbox: one row per domain event, written in the transaction of the change it
    describes (``id`` is the ``webhook-id`` header receivers deduplicate on)."""

    __tablename__ = "ops_webhook_events"

    name: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class WebhookDelivery(IdMixin, Base):
    """One event for one endpoint, and the log of its attempts (the last one's outcome)."""

    __tablename__ = "ops_webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id"),
        Index("ix_ops_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    event_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ops_webhook_events.id", ondelete="CASCADE")
    )
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("ops_webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column()
    last_error: Mapped[str] = mapped_column(String(500), default="")
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UsedToken(Base):
    """A single-use token that was used (a launch token): the primary key makes a second use
    fail at insert, whatever node or concurrent request tries it. Rows go once expired."""

    __tablename__ = "ops_used_tokens"

    token_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
