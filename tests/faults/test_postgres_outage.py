"""PostgreSQL stopped under a running node: REST and the live connection's handshake answer
503 problem+json with ``Retry-After`` (never 500), nothing is half-written, and once the
database is back the same sessions and sockets carry on with nothing lost or duplicated."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from core.sessions import COOKIE
from tests.faults.conftest import Clock, figures
from tests.support.live import Sock
from tests.support.nodes import cluster

pytestmark = [pytest.mark.slow]


async def _raw(http, url: str, cookie: str) -> tuple[int, dict, dict]:
    async with http.get(url, headers={"Cookie": cookie}) as r:
        return r.status, dict(r.headers), await r.json(content_type=None)


async def test_postgres_outage_answers_503_then_recovers_with_nothing_lost(tmp_path, pg_server):
    async with cluster(tmp_path, "pgdown", count=1, redis_url="", db_url=pg_server.url) as c:
        node = c.nodes[0]
        host = await c.browser("requester")
        status, room = await host.call(
            "POST", node.url + "/api/v1/rooms", json={"kind": "estaff", "title": "Panne"}
        )
        assert status == 201, room
        sock = await Sock(node.url, host.cookie).connect()
        c.socks.append(sock)
        await sock.ok("room:join", {"room_id": room["id"]})
        before = str(uuid.uuid4())
        await sock.ok("chat:send", {"id": before, "text": "avant la panne"})

        await pg_server.stop("fast")
        down = Clock()
        # REST: 503 problem+json, Retry-After, a stable code; the same for the handshake of
        # the live connection (the engine.io request), never 500.
        status, headers, body = await _raw(c.http, node.url + "/api/v1/me", host.cookie)
        assert status == 503, body
        assert headers["Content-Type"].startswith("application/problem+json")
        assert int(headers["Retry-After"]) > 0
        assert body["code"] == "database_unavailable"
        status, headers, body = await _raw(
            c.http, node.url + "/socket.io/?EIO=4&transport=polling", host.cookie
        )
        assert status == 503, body
        assert int(headers["Retry-After"]) > 0
        # A write during the outage is refused whole: an error ack, nothing stored.
        during = str(uuid.uuid4())
        ack = await sock.call("chat:send", {"id": during, "text": "pendant la panne"}, timeout=20)
        assert ack["ok"] is False and ack["error"]["code"] == "database_unavailable", ack
        outage = down.since()

        await pg_server.start()
        back = Clock()
        while True:
            status, _, _ = await _raw(c.http, node.url + "/api/v1/me", host.cookie)
            if status == 200:
                break
            assert status == 503 and back.since() < 60
            await asyncio.sleep(0.1)
        recovery = back.since()
        # The client retries the refused message with the same id (exactly once).
        await sock.ok("chat:send", {"id": during, "text": "pendant la panne"})
        await sock.ok("chat:send", {"id": during, "text": "pendant la panne"})
        after = str(uuid.uuid4())
        await sock.ok("chat:send", {"id": after, "text": "après la panne"})
        history = await sock.ok("chat:history", {})
        ids = [m["id"] for m in history["messages"]]
        assert sorted(ids) == sorted([before, during, after]), ids
        # A new live connection is accepted again.
        again = await Sock(node.url, f"{COOKIE}={host.cookie.split('=', 1)[1]}").connect()
        c.socks.append(again)
        figures(
            "postgresql stop",
            outage_s=outage,
            recovery_after_restart_s=recovery,
            lost=3 - len(set(ids)),
            duplicated=len(ids) - len(set(ids)),
        )
