"""The webhook delivery worker: sends each due delivery, signed, and retries with
exponential back-off while its receiver fails.

Every node runs one. A delivery is *claimed* before it is sent, by an update that succeeds
only if the row is still as the worker read it (same attempt count, still due), moving its
next attempt past the request's timeout: two nodes never send the same delivery at once, and
a node that dies mid-request leaves a delivery that another sends again once that lease ends
(receivers deduplicate on ``webhook-id``, as Standard Webhooks asks).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
from sqlalchemy import func, select, update

from core.config import Settings
from core.db import Database, utcnow
from ops import signing
from ops.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from ops.outbox import OutboxWorker

log = logging.getLogger(__name__)

BATCH = 50
PARALLEL = 8


@dataclass
class Job:
    delivery_id: uuid.UUID
    attempt: int
    url: str
    secret: str
    msg_id: str
    body: bytes


@dataclass
class Outcome:
    ok: bool
    status: int | None
    error: str


class Deliverer(OutboxWorker):
    label = "webhook delivery"

    def __init__(self, db: Database, settings: Settings) -> None:
        super().__init__()
        self.db = db
        self.settings = settings
        self.sent = 0
        self.failed_attempts = 0

    def timings(self) -> tuple[float, float, float, float]:
        s = self.settings
        return (
            s.webhook_timeout_seconds,
            s.webhook_poll_seconds,
            s.webhook_retry_base_seconds,
            s.webhook_retry_max_seconds,
        )

    async def run_pass(self, http: aiohttp.ClientSession) -> bool:
        return await self.deliver_due(http)

    async def count_pending(self) -> int:
        async with self.db.read() as s:
            n = await s.scalar(select(func.count()).where(WebhookDelivery.status == "pending"))
        return int(n or 0)

    async def claim(self) -> list[Job]:
        """Take the due deliveries: each is claimed by a conditional update (attempts and
        next attempt as read), so of two nodes reading the same row only one gets it."""
        now = utcnow()
        lease = now + timedelta(seconds=self.settings.webhook_timeout_seconds + 30)
        async with self.db.read() as s:
            due = (
                await s.execute(
                    select(WebhookDelivery.id, WebhookDelivery.attempts)
                    .where(
                        WebhookDelivery.status == "pending",
                        WebhookDelivery.next_attempt_at <= now,
                    )
                    .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.created_at)
                    .limit(BATCH)
                )
            ).all()
        if not due:
            return []
        claimed: list[uuid.UUID] = []
        async with self.db.write() as uow:
            for delivery_id, attempts in due:
                result = await uow.session.execute(
                    update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == delivery_id,
                        WebhookDelivery.status == "pending",
                        WebhookDelivery.attempts == attempts,
                        WebhookDelivery.next_attempt_at <= now,
                    )
                    .values(next_attempt_at=lease, attempts=attempts + 1)
                )
                if getattr(result, "rowcount", 0) == 1:
                    claimed.append(delivery_id)
        if not claimed:
            return []
        async with self.db.read() as s:
            rows = (
                await s.execute(
                    select(WebhookDelivery, WebhookEvent, WebhookEndpoint)
                    .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
                    .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                    .where(WebhookDelivery.id.in_(claimed))
                    .order_by(WebhookEvent.created_at)
                )
            ).all()
        return [
            Job(
                d.id,
                d.attempts,
                ep.url,
                ep.secret,
                str(ev.id),
                json.dumps(ev.payload, separators=(",", ":")).encode(),
            )
            for d, ev, ep in rows
        ]

    async def deliver_due(self, http: aiohttp.ClientSession) -> bool:
        """Send what is due; True when a full batch was claimed (more may be waiting)."""
        jobs = await self.claim()
        if not jobs:
            return False
        gate = asyncio.Semaphore(PARALLEL)

        async def one(job: Job) -> tuple[Job, Outcome]:
            async with gate:
                return job, await self.send(http, job)

        results = await asyncio.gather(*(one(j) for j in jobs))
        async with self.db.write() as uow:
            for job, out in results:
                d = await uow.session.get(WebhookDelivery, job.delivery_id)
                if d is None:
                    continue
                d.last_attempt_at = utcnow()
                d.last_status_code = out.status
                d.last_error = out.error[:500]
                if out.ok:
                    d.status, d.delivered_at = "delivered", d.last_attempt_at
                    self.sent += 1
                elif job.attempt >= self.settings.webhook_max_attempts:
                    d.status = "failed"
                    self.failed_attempts += 1
                else:
                    d.next_attempt_at = d.last_attempt_at + timedelta(
                        seconds=self.backoff(job.attempt)
                    )
                    self.failed_attempts += 1
        return len(jobs) == BATCH

    async def send(self, http: aiohttp.ClientSession, job: Job) -> Outcome:
        ts = int(utcnow().timestamp())
        hdrs = signing.headers(job.secret, job.msg_id, ts, job.body)
        try:
            async with http.post(job.url, data=job.body, headers=hdrs, allow_redirects=False) as r:
                await r.read()
                if 200 <= r.status < 300:
                    return Outcome(True, r.status, "")
                return Outcome(False, r.status, f"HTTP {r.status}")
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            return Outcome(False, None, f"{type(e).__name__}: {e}"[:500])
