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
def redis_options() -> dict[str, Any]:
    """Options of every Redis client of a node: fail fast and come back fast. A dead server
    is noticed within a few seconds (health checks, timeouts) and each command is retried a
    few times with a short back-off, so a restart of Redis costs seconds, not a back-off of
    the client library's own."""
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError, TimeoutError

    return {
        "health_check_interval": 2,
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
        "socket_keepalive": True,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
        "retry_on_error": [ConnectionError, TimeoutError, OSError],
    }


JOIN_PAGE: web.AppKey[Callable[[web.Request, str], Awaitable[web.StreamResponse]]] = web.AppKey(
    "join_page"
)
