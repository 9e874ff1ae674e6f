"""The app factory: reads as the list of what the server is made of."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from aiohttp import web

from core import audit, filetypes, heavy
from core import routes as core_routes
from core.config import Settings
from core.context import BUS, DB, LIMITER, NOTIFIER, REDIS, SESSIONS, SETTINGS, redis_options
from core.db import Database
from core.events import EventBus
from core.http import request_middleware, security_headers
from core.notify import Notifier
from core.ratelimit import RateLimiter
from core.sessions import Sessions, make_store

# Feature packages, in dependency order. Each exposes ``setup(app)``. Named here as strings
# so that ``core`` never imports them: they import ``core``.
FEATURES = ("rooms", "chat", "rtc", "dossier", "ops", "ui")


def create_app(settings: Settings, *, features: tuple[str, ...] = FEATURES) -> web.Application:
    from core.auth import session_middleware

    app = web.Application(
        middlewares=[security_headers, request_middleware, session_middleware],
        client_max_size=settings.max_json_bytes,
    )
    audit.configure_chain(settings.secret_key)
    filetypes.set_max_image_pixels(settings.max_image_pixels)
    heavy.configure(
        workers=settings.heavy_workers,
        memory_mb=settings.heavy_memory_mb,
        max_pixels=settings.max_image_pixels,
    )
    bus = EventBus()
    db = Database(settings.database_url, bus)
    redis: Any = None
    if settings.redis_url:
        import redis.asyncio as aioredis

        redis = aioredis.from_url(settings.redis_url, **redis_options())
    store = make_store(db, redis, settings.redis_prefix)
    app[SETTINGS] = settings
    app[BUS] = bus
    app[DB] = db
    app[REDIS] = redis
    app[SESSIONS] = Sessions(
        store,
        idle=timedelta(minutes=settings.session_idle_minutes),
        absolute=timedelta(hours=settings.session_absolute_hours),
    )
    app[NOTIFIER] = Notifier(settings, db)
    app[LIMITER] = RateLimiter(redis, settings.redis_prefix + "rl:")

    # Cleanup runs in the reverse order of registration: registered before the features, the
    # services close after them (live layer, then its pub/sub, then Redis, then the database).
    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        yield
        if redis is not None:
            await redis.aclose()
        await db.close()

    app.cleanup_ctx.append(lifespan)

    core_routes.setup(app)
    for name in features:
        importlib.import_module(name).setup(app)
    return app
