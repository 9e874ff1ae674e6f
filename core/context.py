"""Typed keys under which the app factory stores the process-wide services."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from core.config import Settings
    from core.db import Database
    from core.events import EventBus
    from core.notify import Notifier
    from core.ratelimit import RateLimiter
    from core.sessions import Sessions

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
DB: web.AppKey[Database] = web.AppKey("db")
BUS: web.AppKey[EventBus] = web.AppKey("bus")
SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions")
NOTIFIER: web.AppKey[Notifier] = web.AppKey("notifier")
LIMITER: web.AppKey[RateLimiter] = web.AppKey("limiter")
REDIS: web.AppKey[Any] = web.AppKey("redis")  # redis.asyncio.Redis or None
# The browser client's page for an invitation link: rooms/ checks the token and, when it is
# good, asks ui/ (which registers this) for the page. Here so neither imports the other.
JOIN_PAGE: web.AppKey[Callable[[web.Request, str], Awaitable[web.StreamResponse]]] = web.AppKey(
    "join_page"
)
