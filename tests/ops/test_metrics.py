"""/metrics: Prometheus text that prometheus-client's own parser reads, whose counters move
during a real call (aiortc peers through the real server), refused to other sources and
without the token."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from core.app import create_app
from rooms.live import Live
from tests.conftest import make_settings
from tests.rooms.conftest import create_room
from tests.rtc.clients import wait_decoded
from tests.rtc.test_signalling import SockClient, settle
from tests.support.live import open_socket

pytestmark = [pytest.mark.media, pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]

TOKEN = "scrape-token-0123456789"


@pytest.fixture
def settings(database_url: str, tmp_path: Any) -> Any:
    return make_settings(
        database_url,
        tmp_path / "data",
        rtc_allowed_addresses=["127.0.0.1"],
        metrics_token=TOKEN,
        trusted_proxies=["127.0.0.1"],  # so a test can speak for another source
    )


@pytest.fixture
def app(settings: Any) -> web.Application:
    app = create_app(settings)
    Live.of(app).grace = 1.0
    return app


async def scrape(api: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = await api.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(await r.text()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_parse_and_move_during_a_call(app: Any, make_client: Any, users: Any) -> None:
    host_api = await make_client()
    await host_api.sign_in_as(users["requester"].id)
    before = await scrape(host_api)
    room = await create_room(host_api, kind="estaff", title="RCP")
    r = await host_api.post(
        f"/api/v1/rooms/{room['id']}/members",
        json={"user_id": str(users["expert"].id), "role": "participant"},
    )
    assert r.status in (200, 201)
    expert_api = await make_client()
    await expert_api.sign_in_as(users["expert"].id)
    clients = []
    try:
        for api in (host_api, expert_api):
            sock = await open_socket(api)
            joined = await sock.ok("room:join", {"room_id": room["id"]})
            clients.append(SockClient(sock, joined["participant_id"]))
        for c in clients:
            await c.join()
        for c in clients:
            await c.publish()
            await settle(clients, app)
        await wait_decoded([(clients[0], clients[1].id), (clients[1], clients[0].id)], 20)
        await clients[0].sock.ok("chat:send", {"id": str(uuid.uuid4()), "text": "Bonjour"})

        during = await scrape(host_api)
        assert value(during, "consilium_live_connections") == 2
        assert value(during, "consilium_rooms") == 1
        assert value(during, "consilium_participants", role="host") == 1
        assert value(during, "consilium_participants", role="participant") == 1
        assert value(during, "consilium_rtc_peers") == 2
        assert value(during, "consilium_rtc_published_tracks") == 4
        for name in (
            "consilium_rtc_received_packets_total",
            "consilium_rtc_received_bytes_total",
            "consilium_rtc_forwarded_packets_total",
            "consilium_rtc_forwarded_bytes_total",
            "consilium_rtc_keyframe_requests_total",
        ):
            assert value(during, name) > value(before, name), name
        assert value(during, "consilium_chat_messages_total") == 1
        assert ("consilium_queue_length", (("queue", "webhooks"),)) in during
        assert ("consilium_queue_length", (("queue", "heavy"),)) in during
        assert ("consilium_rtc_nacks_total", (("direction", "from_subscribers"),)) in during
        assert ("consilium_rtc_plis_total", (("direction", "to_publishers"),)) in during
        assert ("consilium_rtc_dropped_packets_total", (("reason", "padding"),)) in during
        # requests counted by the route's pattern, never by the raw path
        route = "/api/v1/rooms/{room_id}/members"
        assert (
            value(during, "consilium_http_requests_total", method="POST", route=route, status="201")
            + value(
                during, "consilium_http_requests_total", method="POST", route=route, status="200"
            )
            == 1
        )
        assert not any(room["id"] in str(labels) for _, labels in during)
        r = await host_api.get("/api/v1/rooms/not-a-room-at-all/nothing")
        assert r.status == 404

        # the counters go on
        fwd = value(during, "consilium_rtc_forwarded_packets_total")
        again: dict[Any, float] = {}

        async def moved() -> bool:
            again.update(await scrape(host_api))
            return value(again, "consilium_rtc_forwarded_packets_total") > fwd

        await wait_for_async(moved, 30)
        assert (
            value(
                again,
                "consilium_http_requests_total",
                method="GET",
                route="unmatched",
                status="404",
            )
            >= 1
        )
        assert ("consilium_event_loop_lag_seconds", ()) in again
        assert value(again, "consilium_event_loop_lag_count") >= 1
    finally:
        for c in clients:
            await c.close()
            await c.sock.close()

    # counts of ended tracks are kept: counters never go back
    after: dict[Any, float] = {}

    async def closed() -> bool:
        after.update(await scrape(host_api))
        return value(after, "consilium_rtc_peers") == 0

    await wait_for_async(closed, 30)
    for name in ("consilium_rtc_forwarded_packets_total", "consilium_rtc_received_bytes_total"):
        assert value(after, name) >= value(again, name), name


async def wait_for_async(predicate: Any, timeout: float) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


async def test_metrics_are_refused_to_other_sources_and_without_the_token(client: Any) -> None:
    r = await client.get("/metrics")
    assert r.status == 401
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert (await r.json())["code"] == "metrics_token"
    r = await client.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert r.status == 401
    r = await client.get(
        "/metrics",
        headers={"Authorization": f"Bearer {TOKEN}", "X-Forwarded-For": "203.0.113.7"},
    )
    assert r.status == 403
    assert (await r.json())["code"] == "metrics_forbidden"
    r = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status == 200
    list(text_string_to_metric_families(await r.text()))
