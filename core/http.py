"""HTTP middlewares: request id and structured access log, problem+json errors, security headers."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import ssl
import time
import uuid
from typing import Any

import structlog
from aiohttp import ClientConnectionResetError, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestHandler
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.errors import PROBLEM_TYPE, Problem, Unavailable

log = structlog.get_logger("consilium.http")

REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")

# The client is served by this process: nothing is loaded from elsewhere (clinics' networks
# are closed) and no page may be framed by another site.
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "connect-src 'self'; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


REDIS_RETRY_AFTER = 2  # seconds; Redis restarts in about that


def problem_response(p: Problem, request: web.Request) -> web.Response:
    body = p.body(instance=request.path)
    body["request_id"] = request.get(REQUEST_ID, "")
    resp = web.Response(
        status=p.status, text=json.dumps(body), content_type=PROBLEM_TYPE, charset="utf-8"
    )
    if p.status == 405 and "allow" in p.extra:
        resp.headers["Allow"] = ",".join(p.extra["allow"])
    if "retry_after" in p.extra:
        resp.headers["Retry-After"] = str(int(p.extra["retry_after"]))
    return resp


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, timing log, and every error turned into problem+json."""
    rid = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex
    request[REQUEST_ID] = rid
    structlog.contextvars.bind_contextvars(request_id=rid)
    start = time.perf_counter()
    status = 500
    try:
        try:
            resp = await handler(request)
        except Problem as p:
            resp = problem_response(p, request)
        except HttpProcessingError as e:  # a body that breaks HTTP framing while being read
            resp = problem_response(
                Problem(f"Malformed request body: {e.message}", code="malformed_body"), request
            )
        except (ConnectionResetError, ClientConnectionResetError):
            # The client went away mid-body: nothing broken on our side, and nobody to answer.
            log.info("client aborted", path=request.path, method=request.method)
            resp = problem_response(
                Problem("The client closed the connection", code="client_aborted"), request
            )
            status = 499  # nginx's "client closed request", for the access log only
            return resp
        except web.HTTPException as e:
            if e.status < 400:
                raise
            extra = {}
            if isinstance(e, web.HTTPMethodNotAllowed):
                extra["allow"] = sorted(e.allowed_methods)
            resp = problem_response(
                Problem(
                    e.text if e.text and not e.text.startswith(str(e.status)) else None,
                    status=e.status,
                    code=_HTTP_CODES.get(e.status, "http_error"),
                    title=e.reason,
                    **extra,
                ),
                request,
            )
        except (RedisConnectionError, RedisTimeoutError):
            # Redis (rate limits, the session cache, fan-out) is out for a moment: say so.
            log.warning("redis unavailable", path=request.path, method=request.method)
            resp = problem_response(
                Unavailable(
                    "A service of the server is unavailable; try again shortly",
                    code="redis_unavailable",
                    retry_after=REDIS_RETRY_AFTER,
                ),
                request,
            )
        except Exception:
            log.exception("unhandled error", path=request.path, method=request.method)
            resp = problem_response(
                Problem(
                    "An internal error occurred",
                    status=500,
                    code="internal_error",
                    title="Internal server error",
                ),
                request,
            )
        status = resp.status
        resp.headers["X-Request-Id"] = rid
        return resp
    finally:
        if not request.path.startswith(("/static/", "/healthz")):
            log.info(
                "request",
                method=request.method,
                path=request.path,
                status=status,
                ms=round((time.perf_counter() - start) * 1000, 1),
            )
        structlog.contextvars.unbind_contextvars("request_id")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    resp = await handler(request)
    h = resp.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Permissions-Policy", "camera=(self), microphone=(self), display-capture=(self)")
    h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.secure:
        h.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.path.startswith("/api/"):
        h.setdefault("Cache-Control", "no-store")
    return resp


# -- protocol-level errors ---------------------------------------------------------------
# A request line too long, too many headers, a NUL in a header or broken chunking is refused
# by aiohttp's parser before any middleware runs; its handler answers text/plain. This one
# answers problem+json like every other error.

_PROTOCOL_CODES = {
    400: "malformed_http",
    413: "too_large",
    414: "uri_too_long",
    431: "headers_too_large",
}


class ProblemRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500 or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        detail = exc.message if isinstance(exc, HttpProcessingError) else (message or "")
        log.info("malformed http", status=status, error=str(detail)[:200])
        p = Problem(
            f"Malformed HTTP request: {str(detail)[:200]}" if detail else "Malformed HTTP request",
            status=status,
            code=_PROTOCOL_CODES.get(status, "malformed_http"),
            title="Malformed HTTP request",
        )
        resp = web.Response(
            status=status, text=json.dumps(p.body()), content_type=PROBLEM_TYPE, charset="utf-8"
        )
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Cache-Control"] = "no-store"
        resp.force_close()
        return resp


class ProblemServer(web.Server):
    def __call__(self) -> RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class ProblemAppRunner(web.AppRunner):
    """An AppRunner whose connections answer protocol errors as problem+json."""

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()
        return ProblemServer(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=base._loop,
            **base._kwargs,
        )


async def serve_app(
    app: web.Application,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    shutdown_timeout: float = 5,
    reuse_port: bool = False,
    own_port: int = 0,
) -> None:
    """Serve until SIGINT or SIGTERM, then shut down gracefully (as ``web.run_app``).
    ``reuse_port``: share the port with the other workers of ``consilium serve --workers``
    (SO_REUSEPORT: the kernel spreads new connections over them, core/workers.py);
    ``own_port``: a second port of this process alone (a worker's, for scrapes and checks)."""
    runner = ProblemAppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(
            runner, host, port, ssl_context=ssl_context, reuse_port=reuse_port or None
        )
        await site.start()
        if own_port:
            await web.TCPSite(runner, host, own_port, ssl_context=ssl_context).start()
        await stop.wait()
    finally:
        await runner.cleanup()


def configure_logging(level: str, fmt: str, *, worker: int = 0) -> None:
    """``worker``: the number of this process under ``consilium serve --workers`` (its parent
    prefixes console lines with it; JSON lines carry it as a field instead)."""
    logging.basicConfig(level=level, format="%(message)s")
    if worker and fmt == "json":
        structlog.contextvars.bind_contextvars(worker=worker)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=True,
    )
