"""Malformed input (issue 12, item 9): deeply nested JSON, a multipart type without boundary,
a client leaving mid-body, and requests that break HTTP itself. Each is a 4xx problem+json,
never a 500, and none logs a traceback. The protocol errors are sent on raw sockets to the
runner `consilium serve` uses."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog
from aiohttp import web

from core.app import create_app
from core.config import Settings
from core.http import ProblemAppRunner
from tests.conftest import free_port

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
async def served(settings: Settings, users: Any) -> AsyncIterator[tuple[str, int]]:
    """The app behind the same runner as ``consilium serve``, on a free port."""
    app = create_app(settings)
    runner = ProblemAppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield "127.0.0.1", port
    finally:
        await runner.cleanup()


async def raw(addr: tuple[str, int], payload: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes, read the whole answer (the server closes after an error)."""
    reader, writer = await asyncio.open_connection(*addr)
    try:
        writer.write(payload)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def deep(n: int) -> str:
    return "[" * n + "]" * n


async def test_deeply_nested_json_is_a_422_even_without_a_session(client, users):
    r = await client.post(
        "/api/v1/auth/login", data=deep(330), headers={"Content-Type": "application/json"}
    )
    assert r.status == 422, await r.text()
    assert r.content_type == "application/problem+json"
    assert (await r.json())["code"] == "json_too_deep"
    # Deeper than Python's own parser goes: still a 422, not a RecursionError.
    r = await client.post(
        "/api/v1/auth/login", data=deep(100_000), headers={"Content-Type": "application/json"}
    )
    assert r.status == 422, await r.text()
    assert (await r.json())["code"] == "json_too_deep"
    # Ordinary nesting still reaches validation.
    r = await client.post("/api/v1/auth/login", json={"email": [[["x"]]], "password": "y"})
    assert r.status == 422 and (await r.json())["code"] == "validation_failed"


async def test_a_multipart_signature_without_boundary_is_a_400(client, users):
    await client.sign_in_as(users["requester"].id)
    r = await client.put(
        "/api/v1/me/signature", data=b"xx", headers={"Content-Type": "multipart/form-data"}
    )
    assert r.status == 400, await r.text()
    assert r.content_type == "application/problem+json"
    assert (await r.json())["code"] == "malformed_multipart"


async def test_a_client_leaving_mid_body_is_logged_as_an_abort_without_traceback(served):
    with structlog.testing.capture_logs() as logs:
        _, writer = await asyncio.open_connection(*served)
        writer.write(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
            b'{"email": "a'
        )
        await writer.drain()
        await asyncio.sleep(0)  # let the server start reading the body
        writer.close()
        await writer.wait_closed()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not any(e["event"] == "request" for e in logs) and loop.time() < deadline:
            await asyncio.sleep(0.05)
    events = [(e["event"], e["log_level"]) for e in logs]
    assert ("client aborted", "info") in events, logs
    assert not any(e["log_level"] in ("error", "critical") for e in logs), logs
    assert [e["status"] for e in logs if e["event"] == "request"] == [499]


PROTOCOL_ERRORS = {
    "request line too long": b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "header line too long": b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n",
    "too many headers": b"GET / HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    + b"\r\n",
    "NUL in a header": b"GET / HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n",
    "bad chunking": b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
    b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "not HTTP at all": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
}


@pytest.mark.parametrize("case", list(PROTOCOL_ERRORS))
async def test_protocol_errors_are_problem_json(served, case):
    status, headers, body = await raw(served, PROTOCOL_ERRORS[case])
    assert 400 <= status < 500, (status, body)
    assert headers["content-type"].startswith("application/problem+json"), (headers, body)
    problem = json.loads(body)
    assert problem["status"] == status and problem["code"], problem
    assert headers.get("x-content-type-options") == "nosniff"
