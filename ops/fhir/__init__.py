"""FHIR R4 for the hospital side (issue 13, docs/integration.md): the read API under
``/fhir/R4`` (:mod:`ops.fhir.api`) and the signed reports filed back into the
establishment's record (:mod:`ops.fhir.push`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import BUS, DB, SETTINGS
from core.events import Event

if TYPE_CHECKING:
    from ops.fhir.push import Pusher

PUSHER: web.AppKey[Pusher] = web.AppKey("ops_fhir_pusher")


def pusher_of(app: web.Application) -> Pusher:
    return app[PUSHER]


def setup(app: web.Application) -> None:
    from ops.fhir import api, launch, push

    api.setup(app)
    launch.setup(app)
    db, settings = app[DB], app[SETTINGS]
    pusher = push.Pusher(db, settings)
    app[PUSHER] = pusher

    async def before_commit(session: AsyncSession, events: list[Event]) -> None:
        await push.enqueue(session, events, settings)

    db.before_commit.append(before_commit)

    async def signed(event: Event) -> None:
        pusher.wake()

    app[BUS].subscribe("report.signed", signed)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        task = None
        if settings.fhir_push_url:
            task = asyncio.get_running_loop().create_task(pusher.run(), name="ops-fhir-push")
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.cleanup_ctx.append(lifespan)
