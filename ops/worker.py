"""Wiring of the webhooks into the app: the outbox on the database's commits, the delivery
worker's life, and the wake-up after each commit that wrote to the outbox."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from core.context import BUS, DB, SETTINGS
from core.events import Event
from ops.delivery import Deliverer
from ops.webhooks import Outbox, sync_settings_endpoints, webhook_of

DELIVERER: web.AppKey[Deliverer] = web.AppKey("ops_deliverer")
OUTBOX: web.AppKey[Outbox] = web.AppKey("ops_outbox")


def setup(app: web.Application) -> Deliverer:
    db, settings = app[DB], app[SETTINGS]
    deliverer = Deliverer(db, settings)
    outbox = Outbox(db, deliverer.wake)
    app[DELIVERER], app[OUTBOX] = deliverer, outbox
    db.before_commit.append(outbox.before_commit)

    async def committed(event: Event) -> None:
        if webhook_of(event) is not None:
            deliverer.wake()

    for prefix in ("room.", "dossier.updated", "report.signed"):
        app[BUS].subscribe(prefix, committed)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        task = None
        with contextlib.suppress(Exception):  # no database yet: endpoints synced next start
            await sync_settings_endpoints(db, settings)
        task = asyncio.get_running_loop().create_task(deliverer.run(), name="ops-webhooks")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(lifespan)
    return deliverer
