"""Prometheus metrics at ``/metrics`` (prometheus-client), for this node.

Cheap by construction: HTTP requests are counted by a middleware (by the route's pattern,
never the raw path, so identifiers do not multiply the series); the media counters are the
SFU's own per-track counters, summed by a custom collector when Prometheus scrapes
(:meth:`rtc.sfu.Sfu.totals`), so the forwarding path pays nothing more than it already
did. Live connections, rooms and participants are read off this node's live layer at scrape
time too; the event-loop lag is sampled by a small periodic probe.

Not for the public: only sources in CONSILIUM_METRICS_ALLOWED_NETWORKS (loopback by
default; X-Forwarded-For is believed only from CONSILIUM_TRUSTED_PROXIES), and, when
CONSILIUM_METRICS_TOKEN is set, only with ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from core import heavy
from core.auth import client_ip
from core.context import BUS, SETTINGS
from core.errors import Forbidden, Problem, Unauthorized
from core.events import Event
from rooms.live import Live
from rtc.signalling import SIGNALLING

LAG_INTERVAL = 0.5  # seconds between two event-loop lag probes

METRICS: web.AppKey[Metrics] = web.AppKey("ops_metrics")

# (SfuTotals field, metric name, help, labels)
_RTC_COUNTERS: tuple[tuple[str, str, str, dict[str, str]], ...] = (
    ("received_packets", "rtc_received_packets", "RTP packets received from publishers", {}),
    ("received_bytes", "rtc_received_bytes", "RTP payload bytes received from publishers", {}),
    ("forwarded_packets", "rtc_forwarded_packets", "RTP packets forwarded to subscribers", {}),
    ("forwarded_bytes", "rtc_forwarded_bytes", "RTP bytes forwarded to subscribers", {}),
    (
        "retransmitted_packets",
        "rtc_retransmitted_packets",
        "RTP packets sent again to answer a subscriber's NACK",
        {},
    ),
    (
        "dropped_padding",
        "rtc_dropped_packets",
        "Received RTP packets not forwarded",
        {"reason": "padding"},
    ),
    (
        "nacks_given_up",
        "rtc_dropped_packets",
        "Received RTP packets not forwarded",
        {"reason": "lost_upstream"},
    ),
    ("nacks_received", "rtc_nacks", "RTCP NACKs", {"direction": "from_subscribers"}),
    ("nacks_sent", "rtc_nacks", "RTCP NACKs", {"direction": "to_publishers"}),
    ("plis_received", "rtc_plis", "RTCP PLI/FIR", {"direction": "from_subscribers"}),
    ("plis_sent", "rtc_plis", "RTCP PLI/FIR", {"direction": "to_publishers"}),
    (
        "keyframe_requests",
        "rtc_keyframe_requests",
        "Keyframe requests (coalesced into PLIs)",
        {},
    ),
)


class LiveCollector(Collector):
    """Read at scrape time: the live layer, the SFU's counters, the queues."""

    def __init__(self, app: web.Application, queues: dict[str, Callable[[], int]]) -> None:
        self.app = app
        self.queues = queues

    def collect(self) -> Iterable[Any]:
        live = self.app.get(_LIVE)
        if live is not None:
            conns = list(live.conns.values())
            yield GaugeMetricFamily(
                "consilium_live_connections",
                "Socket.IO connections open on this node",
                value=len(conns),
            )
            rooms = {c.room_id for c in conns if c.room_id is not None}
            yield GaugeMetricFamily(
                "consilium_rooms", "Rooms with a participant connected to this node", len(rooms)
            )
            g = GaugeMetricFamily(
                "consilium_participants",
                "Participants connected to this node, by role",
                labels=["role"],
            )
            roles: dict[str, int] = {"host": 0, "participant": 0, "guest": 0}
            for c in conns:
                if c.participant_id is not None and c.role:
                    roles[c.role] = roles.get(c.role, 0) + 1
            for role, n in sorted(roles.items()):
                g.add_metric([role], n)
            yield g
            lobby = sum(1 for c in conns if c.lobby_room_id is not None)
            yield GaugeMetricFamily("consilium_lobby_waiting", "Guests waiting in a lobby", lobby)
        sig = self.app.get(SIGNALLING)
        totals: dict[str, int] | None = None
        if sig is not None:
            with contextlib.suppress(Exception):  # media not started (yet, or at all)
                totals = sig.sfu.totals()
        if totals is not None:
            yield GaugeMetricFamily("consilium_rtc_rooms", "Rooms with media here", totals["rooms"])
            yield GaugeMetricFamily(
                "consilium_rtc_peers", "Media (WebRTC) connections here", totals["peers"]
            )
            yield GaugeMetricFamily(
                "consilium_rtc_published_tracks", "Tracks published here", totals["tracks"]
            )
            families: dict[str, CounterMetricFamily] = {}
            for field, name, doc, labels in _RTC_COUNTERS:
                fam = families.get(name)
                if fam is None:
                    fam = families[name] = CounterMetricFamily(
                        "consilium_" + name, doc, labels=list(labels)
                    )
                fam.add_metric(list(labels.values()), totals[field])
            yield from families.values()
        q = GaugeMetricFamily("consilium_queue_length", "Work waiting, by queue", labels=["queue"])
        for name, read in sorted(self.queues.items()):
            q.add_metric([name], read())
        yield q


_LIVE: web.AppKey[Live] = web.AppKey("ops_live")


class Metrics:
    """The registry of one application (one per app, so tests may run several)."""

    def __init__(self, app: web.Application) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "consilium_http_requests",
            "HTTP requests answered, by route pattern and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "consilium_http_request_duration_seconds",
            "Time to answer an HTTP request, by route pattern",
            ["method", "route"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.chat_messages = Counter(
            "consilium_chat_messages", "Chat messages stored on this node", registry=r
        )
        self.loop_lag = Gauge(
            "consilium_event_loop_lag_seconds",
            "Delay of the latest event-loop probe past its due time",
            registry=r,
        )
        self.loop_lag_hist = Histogram(
            "consilium_event_loop_lag",
            "Event-loop lag probes (seconds past due)",
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.queues: dict[str, Callable[[], int]] = {"heavy": heavy.in_flight}
        r.register(LiveCollector(app, self.queues))

    async def lag_probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LAG_INTERVAL
            await asyncio.sleep(LAG_INTERVAL)
            lag = max(0.0, loop.time() - due)
            self.loop_lag.set(lag)
            self.loop_lag_hist.observe(lag)


def _route_of(request: web.Request) -> str:
    info = request.match_info
    resource = info.route.resource if info is not None and info.route is not None else None
    if resource is None or info.http_exception is not None:
        return "unmatched"  # a 404/405: the raw path would let anyone create series
    return resource.canonical


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, web.HTTPException):
        return exc.status
    if isinstance(exc, Problem):
        return exc.status
    return 500


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    m = request.app[METRICS]
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except BaseException as e:
        status = 499 if isinstance(e, asyncio.CancelledError) else _status_of(e)
        raise
    finally:
        route = _route_of(request)
        m.http_requests.labels(request.method, route, str(status)).inc()
        m.http_duration.labels(request.method, route).observe(time.perf_counter() - start)


def _allowed(request: web.Request) -> None:
    settings = request.app[SETTINGS]
    try:
        ip = ipaddress.ip_address(client_ip(request))
    except ValueError:
        ip = None
    nets = [ipaddress.ip_network(n, strict=False) for n in settings.metrics_allowed_networks]
    if ip is None or not any(ip in n for n in nets):
        raise Forbidden("Metrics are not served to this address", code="metrics_forbidden")
    if settings.metrics_token:
        sent = request.headers.get("Authorization", "")
        scheme, _, token = sent.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), settings.metrics_token.encode()
        ):
            raise Unauthorized(
                "Send Authorization: Bearer <CONSILIUM_METRICS_TOKEN>", code="metrics_token"
            )


async def metrics_page(request: web.Request) -> web.Response:
    _allowed(request)
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup(app: web.Application) -> Metrics:
    m = Metrics(app)
    app[METRICS] = m
    app.middlewares.insert(0, metrics_middleware)  # outermost: sees every final status
    with contextlib.suppress(KeyError):  # an app built without the live layer
        app[_LIVE] = Live.of(app)

    async def on_chat(event: Event) -> None:
        m.chat_messages.inc()

    app[BUS].subscribe("chat.message", on_chat)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(m.lag_probe(), name="ops-lag-probe")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(lifespan)
    app.router.add_get("/metrics", metrics_page)
    return m
