"""Webhooks reach a real receiver (an aiohttp server on loopback) once each, signed, also
when the receiver came up only after the events happened."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import pytest
from aiohttp import web

from core.context import DB
from ops import signing
from rooms.live import Live
from tests.conftest import free_port, make_settings
from tests.rooms.conftest import create_room
from tests.support.documents import make_dossier
from tests.support.live import open_socket

SECRET = signing.new_secret()


class Receiver:
    """A webhook receiver that can be started late and stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def hook(request: web.Request) -> web.Response:
            self.got.append((dict(request.headers), await request.read()))
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", hook)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.got]

    def types(self) -> Counter[str]:
        return Counter(e["type"] for e in self.events())


@pytest.fixture
def receiver_port() -> int:
    return free_port()


@pytest.fixture
def settings(database_url: str, tmp_path: Any, receiver_port: int) -> Any:
    return make_settings(
        database_url,
        tmp_path / "data",
        webhook_urls=[f"http://127.0.0.1:{receiver_port}/hook"],
        webhook_secret=SECRET,
        webhook_retry_base_seconds=0.2,
        webhook_retry_max_seconds=1.0,
        webhook_poll_seconds=0.2,
    )


@pytest.fixture
async def receiver(receiver_port: int) -> Any:
    r = Receiver(receiver_port)
    yield r
    await r.stop()


async def wait_until(pred: Any, timeout: float = 180.0, what: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"condition not met in time: {what and what()}"
        await asyncio.sleep(0.05)


async def test_each_event_reaches_a_receiver_that_came_up_late_once_signed(
    app: Any, client: Any, make_client: Any, users: Any, receiver: Receiver
) -> None:
    Live.of(app).grace = 0.5
    # Events happen while nobody listens at the endpoint.
    await client.sign_in_as(users["requester"].id)
    room = await create_room(client, title="Téléconsultation")
    sock = await open_socket(client)
    await sock.ok("room:join", {"room_id": room["id"]})
    await sock.ok("room:leave")
    await sock.close()
    r = await client.post(f"/api/v1/rooms/{room['id']}/close")
    assert r.status in (200, 204), await r.text()

    dossier_id = await make_dossier(app[DB], users, state="expertised", signed_parts=True)
    expert = await make_client()
    await expert.sign_in_as(users["expert"].id)
    r = await expert.post(f"/api/v1/dossiers/{dossier_id}/report")
    assert r.status == 201, await r.text()
    report = await r.json()
    r = await client.post(
        f"/api/v1/dossiers/{dossier_id}/closure-request", json={"reason": "Avis rendu"}
    )
    assert r.status == 200, await r.text()

    # The deliveries failed and wait for their next attempt.
    admin = await make_client()
    await admin.sign_in_as(users["admin"].id)

    async def log() -> list[dict[str, Any]]:
        r = await admin.get("/api/v1/webhooks/deliveries?limit=1000")
        assert r.status == 200, await r.text()
        return await r.json()  # type: ignore[no-any-return]

    deadline = time.monotonic() + 180
    while not any(d["attempts"] >= 1 and d["last_error"] for d in await log()):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)

    await receiver.start()
    expected = {
        "room.created": 1,
        "room.started": 1,
        "participant.joined": 1,
        "participant.left": 1,
        "room.ended": 1,
        "room.closed": 1,
        "report.signed": 1,
        "dossier.state_changed": 1,
    }

    def all_in() -> bool:
        return all(receiver.types()[t] >= n for t, n in expected.items())

    await wait_until(all_in, what=receiver.types)
    # whatever else is pending goes too; then nothing is delivered twice
    while any(d["status"] == "pending" for d in await log()):
        await asyncio.sleep(0.1)
    ids = [h["webhook-id"] for h, _ in receiver.got]
    assert len(ids) == len(set(ids)), "an event was delivered twice"
    assert receiver.types() == Counter(expected)
    now = int(time.time())
    for headers, body in receiver.got:
        headers = {k.lower(): v for k, v in headers.items()}
        assert signing.verify(SECRET, headers, body, now=now), headers
        assert not signing.verify("whsec_" + "A" * 44, headers, body, now=now)
    by_type = {e["type"]: e["data"] for e in receiver.events()}
    assert by_type["room.created"]["room_id"] == room["id"]
    assert by_type["participant.joined"]["room_id"] == room["id"]
    assert by_type["report.signed"] == {
        "dossier_id": str(dossier_id),
        "document_id": report["id"],
        "sha256": by_type["report.signed"]["sha256"],
    }
    assert by_type["dossier.state_changed"]["state"] == "closure_requested"
    # The log keeps the failed attempts and the success.
    entries = await log()
    assert {d["status"] for d in entries} == {"delivered"}
    assert any(d["attempts"] > 1 for d in entries)
    assert all(d["last_status_code"] == 204 for d in entries)

    # A receiver that goes away again: the next event waits, then arrives once.
    await receiver.stop()
    room2 = await create_room(client, title="Seconde")
    await asyncio.sleep(0)  # let the worker try while the receiver is down
    deadline = time.monotonic() + 180
    while not any(d["attempts"] >= 1 and d["status"] == "pending" for d in await log()):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await receiver.start()
    await wait_until(lambda: receiver.types()["room.created"] >= 2)
    while any(d["status"] == "pending" for d in await log()):
        await asyncio.sleep(0.1)
    created = [e for e in receiver.events() if e["type"] == "room.created"]
    assert [e["data"]["room_id"] for e in created] == [room["id"], room2["id"]]


async def test_endpoints_are_managed_by_administrators_only(
    client: Any, users: Any, receiver: Receiver
) -> None:
    await client.sign_in_as(users["requester"].id)
    r = await client.post("/api/v1/webhooks/endpoints", json={"url": "http://127.0.0.1:9/x"})
    assert r.status == 403
    assert r.headers["Content-Type"].startswith("application/problem+json")
    await client.sign_in_as(users["admin"].id)
    r = await client.post(
        "/api/v1/webhooks/endpoints",
        json={"url": "http://127.0.0.1:9/x", "events": ["room.created"]},
    )
    assert r.status == 201, await r.text()
    ep = await r.json()
    assert ep["secret"].startswith("whsec_")
    r = await client.post("/api/v1/webhooks/endpoints", json={"url": "ftp://x", "events": []})
    assert r.status == 422
    r = await client.post(
        "/api/v1/webhooks/endpoints", json={"url": "http://a.example/", "events": ["nope"]}
    )
    assert r.status == 422
    r = await client.get("/api/v1/webhooks/endpoints")
    listed = await r.json()
    assert {e["url"] for e in listed} >= {"http://127.0.0.1:9/x"}
    assert all("secret" not in e for e in listed)
    r = await client.delete(f"/api/v1/webhooks/endpoints/{ep['id']}")
    assert r.status == 204
    r = await client.delete(f"/api/v1/webhooks/endpoints/{ep['id']}")
    assert r.status == 404
