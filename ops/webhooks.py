"""Webhooks: which domain events leave, the transactional outbox they are written to, and
the endpoints that receive them (one write path per action: create, remove an endpoint).

Events of database changes (a room created or closed, a dossier changing state, a report
signed) are written into the outbox *inside the transaction of the change*, by a hook the
unit of work calls just before committing (``Database.before_commit``): they commit with the
change, or not at all. Presence events (room started/ended, participant joined/left) have no
transaction of their own; they are written when the live layer's hooks run, on the node that
holds the participant's connection, so each is written once. The delivery worker
(:mod:`ops.delivery`) sends each row once to each endpoint, retrying while it is down.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.config import Settings
from core.db import Database, utcnow
from core.errors import NotFound
from core.events import Event
from core.principal import Principal
from ops import signing
from ops.models import WebhookDelivery, WebhookEndpoint, WebhookEvent

# The event types a receiver may subscribe to (an endpoint with none listed gets them all).
EVENT_TYPES = (
    "room.created",
    "room.closed",
    "room.started",
    "room.ended",
    "participant.joined",
    "participant.left",
    "dossier.state_changed",
    "report.signed",
)
# The dossier changes that move its state (dossier/workflow/dossiers.py).
STATE_CHANGES = {"submitted", "expertised", "closure_requested", "closure_withdrawn", "closed"}


def _room(p: dict[str, Any]) -> dict[str, Any]:
    return {"room_id": p["room_id"], "kind": p.get("kind"), "status": p.get("status")}


def webhook_of(event: Event) -> tuple[str, dict[str, Any]] | None:
    """The webhook (type, data) of a domain event, or None when none leaves for it. Data
    carries identifiers and states, never a patient's identity or a form's content."""
    p = event.payload
    if event.name == "room.created":
        return "room.created", _room(p)
    if event.name == "room.closed":
        return "room.closed", _room(p)
    if event.name == "dossier.updated" and p.get("change") in STATE_CHANGES:
        return "dossier.state_changed", {
            "dossier_id": p["dossier_id"],
            "state": p["state"],
            "change": p["change"],
        }
    if event.name == "report.signed":
        return "report.signed", {
            "dossier_id": p["dossier_id"],
            "document_id": p["document_id"],
            "sha256": p.get("sha256"),
        }
    return None


def envelope(event_type: str, data: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The JSON body (the Standard Webhooks shape: type, timestamp, data)."""
    return {"type": event_type, "timestamp": at.astimezone(UTC).isoformat(), "data": data}


async def _enqueue(session: AsyncSession, items: list[tuple[str, dict[str, Any]]]) -> int:
    """Outbox rows, and one delivery per active endpoint that wants each."""
    endpoints = list(
        (await session.execute(select(WebhookEndpoint).where(WebhookEndpoint.active))).scalars()
    )
    rows = []
    for event_type, data in items:
        row = WebhookEvent(id=uuid.uuid4(), name=event_type, payload={}, created_at=utcnow())
        row.payload = envelope(event_type, data, row.created_at)
        session.add(row)
        rows.append(row)
    await session.flush()  # the events first: the deliveries point at them
    made = 0
    for row in rows:
        for ep in endpoints:
            if ep.events and row.name not in ep.events:
                continue
            session.add(
                WebhookDelivery(
                    id=uuid.uuid4(),
                    event_id=row.id,
                    endpoint_id=ep.id,
                    next_attempt_at=row.created_at,
                )
            )
            made += 1
    return made


class Outbox:
    """The transactional outbox: plugged into ``Database.before_commit``; ``on_written`` is
    called after a presence event was written (the worker wakes up)."""

    def __init__(self, db: Database, on_written: Callable[[], None] = lambda: None) -> None:
        self.db = db
        self.on_written = on_written

    async def before_commit(self, session: AsyncSession, events: list[Event]) -> None:
        items = [w for w in map(webhook_of, events) if w is not None]
        if items:
            await _enqueue(session, items)

    async def record(self, event_type: str, data: dict[str, Any]) -> None:
        """A presence event, written in a transaction of its own."""
        async with self.db.write() as uow:
            await _enqueue(uow.session, [(event_type, data)])
        self.on_written()


# -- endpoints (administrators) ---------------------------------------------------------------


async def create_endpoint(
    db: Database, principal: Principal, *, url: str, events: list[str], secret: str | None
) -> WebhookEndpoint:
    async with db.write() as uow:
        ep = WebhookEndpoint(
            id=uuid.uuid4(), url=url, secret=secret or signing.new_secret(), events=events
        )
        uow.session.add(ep)
        await uow.session.flush()
        audit.record(
            uow.session,
            "webhook.endpoint_create",
            actor=principal,
            object_type="webhook_endpoint",
            object_id=ep.id,
            url=url,
            events=events,
        )
    return ep


async def remove_endpoint(db: Database, principal: Principal, endpoint_id: uuid.UUID) -> None:
    """Stop delivering to an endpoint (its delivery log stays)."""
    async with db.write() as uow:
        ep = await uow.session.get(WebhookEndpoint, endpoint_id)
        if ep is None or not ep.active:
            raise NotFound("No webhook endpoint with this id", code="webhook_endpoint_not_found")
        ep.active = False
        await uow.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == ep.id, WebhookDelivery.status == "pending")
            .values(status="failed", last_error="endpoint removed")
        )
        audit.record(
            uow.session,
            "webhook.endpoint_remove",
            actor=principal,
            object_type="webhook_endpoint",
            object_id=ep.id,
            url=ep.url,
        )


def settings_endpoint_id(url: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, "consilium-webhook:" + url)


async def sync_settings_endpoints(db: Database, settings: Settings) -> None:
    """Make the endpoints of CONSILIUM_WEBHOOK_URLS active (and only those among the
    endpoints that came from settings); every node does it at start-up, idempotently."""
    wanted = {settings_endpoint_id(u): u for u in settings.webhook_urls}
    async with db.write() as uow:
        s = uow.session
        rows = (
            await s.execute(select(WebhookEndpoint).where(WebhookEndpoint.from_settings))
        ).scalars()
        for ep in rows:
            ep.active = ep.id in wanted
            if ep.active:
                ep.secret = settings.webhook_secret
    for ep_id, url in wanted.items():
        try:
            async with db.write() as uow:
                if await uow.session.get(WebhookEndpoint, ep_id) is None:
                    uow.session.add(
                        WebhookEndpoint(
                            id=ep_id,
                            url=url,
                            secret=settings.webhook_secret,
                            events=[],
                            from_settings=True,
                        )
                    )
        except IntegrityError:
            pass  # another node added it at the same moment
