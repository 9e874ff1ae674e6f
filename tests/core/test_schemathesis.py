"""A bounded schemathesis run over every operation of /api/v1/openapi.json against a live
server on 127.0.0.1, on both databases and as each kind of caller (anonymous, practitioner,
secretary, administrator, invited guest) with the CSRF header: no 5xx, and every response
conforms to the document (status code, content type, body schema).

It is generic: routes added by any package are picked up from the document. Each generated
request gets a fresh session, so operations that end sessions (logout, password change)
cannot starve the others. ``CONSILIUM_SCHEMATHESIS_EXAMPLES`` is the budget of generated
requests shared by all runs (database × caller): a small one covers a slice of the operations
in each run (every operation in some run); CI sets several thousand.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from aiohttp import web
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.app import create_app
from core.config import Settings
from core.context import DB, SESSIONS
from core.seed import seed_accounts
from core.sessions import COOKIE, CSRF_HEADER
from tests.conftest import free_port

# Resumable upload chunks (tus-like) are raw bytes under their own media type.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")

ROLES = ("anonymous", "requester", "secretary", "admin", "guest")
RUNS = len(ROLES) * 2  # × both databases
# CI (CI=true) runs a larger pass: several thousand requests over the ten runs.
BUDGET = int(
    os.environ.get("CONSILIUM_SCHEMATHESIS_EXAMPLES", "3000" if os.environ.get("CI") else "240")
)
MAX_PER_OPERATION = 25
# Comma-separated path fragments (``/server/,/access/``): exercise only those operations.
ONLY = [p for p in os.environ.get("CONSILIUM_SCHEMATHESIS_ONLY", "").split(",") if p]


class LiveServer:
    """The app on a real socket, served by an event loop in a thread of its own."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner = web.AppRunner(app)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def start(self) -> None:
        self.thread.start()

        async def up() -> None:
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

        self.run(up())

    def stop(self) -> None:
        self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    server = LiveServer(create_app(settings))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _operations(schema: Any) -> list[Any]:
    ops = []
    for result in schema.get_all_operations():
        ops.append(result.ok())
    return ops


def _exercise(
    op: Any, mode: Any, examples: int, checks: list[Any], base_url: str, http: Any, auth: Any
) -> None:
    @hypothesis.settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=op.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, session=http, headers=auth(), checks=checks)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        # Nothing to make invalid (no body, no parameters): nothing to test in negative mode.
        if mode != schemathesis.GenerationMode.NEGATIVE:
            raise


def _guest(live: LiveServer, host_id: Any) -> tuple[Any, dict[str, str]]:
    """An invited guest: a room, an invitation, accepted; its id and session data."""
    token, s = live.run(live.app[SESSIONS].create(kind="user", subject_id=host_id, stage="full"))
    http = requests.Session()
    http.headers.update({"Cookie": f"{COOKIE}={token}", CSRF_HEADER: s.csrf_token})
    r = http.post(f"{live.url}/api/v1/rooms", json={"kind": "teleconsultation", "title": "Suivi"})
    assert r.status_code == 201, r.text
    room = r.json()
    r = http.post(
        f"{live.url}/api/v1/rooms/{room['id']}/invitations",
        json={"name": "Mme Jeanne Petit", "email": "jeanne.petit@example.org"},
    )
    assert r.status_code == 201, r.text
    link = r.json()["link"]
    r = requests.post(
        f"{live.url}/api/v1/invitations/{link.rsplit('/join/', 1)[1]}/accept",
        json={"name": "Jeanne Petit"},
    )
    assert r.status_code == 200, r.text
    guest = r.json()
    data = {"label": "Jeanne Petit", "room_id": room["id"], "invitation_id": guest["guest_id"]}
    return guest["guest_id"], data


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("role", ROLES)
def test_no_operation_answers_5xx_or_breaks_its_schema(
    live: LiveServer, role: str, backend: str
) -> None:
    users = live.run(seed_accounts(live.app[DB]))
    schema = schemathesis.openapi.from_url(f"{live.url}/api/v1/openapi.json")
    http = requests.Session()
    calls = 0
    if role == "guest":
        import uuid

        guest_id, guest_data = _guest(live, users["requester"].id)
        subject: tuple[str, Any, dict[str, str]] | None = ("guest", uuid.UUID(guest_id), guest_data)
    elif role == "anonymous":
        subject = None
    else:
        subject = ("user", users[role].id, {})

    def credentials() -> dict[str, str]:
        nonlocal calls
        calls += 1
        if subject is None:
            return {}
        kind, who, data = subject
        token, s = live.run(
            live.app[SESSIONS].create(kind=kind, subject_id=who, stage="full", data=data)
        )
        return {"Cookie": f"{COOKIE}={token}", CSRF_HEADER: s.csrf_token}

    failures: list[str] = []
    operations = _operations(schema)
    assert len(operations) >= 10
    if ONLY:  # a developer's targeted run: only the paths containing one of these
        operations = [op for op in operations if any(part in op.path for part in ONLY)]
    # This run's share of the budget; below one request per operation, a slice of them
    # (a different slice for each run, so that all runs together cover every operation).
    share = max(1, BUDGET // RUNS)
    run_index = ROLES.index(role) + (len(ROLES) if backend == "postgresql" else 0)
    stride = max(1, -(-len(operations) // share))
    mine = [op for i, op in enumerate(operations) if i % stride == run_index % stride]
    positive = min(MAX_PER_OPERATION, max(1, share // len(mine)))
    negative = max(1, positive // 2)
    for op in mine:
        for mode, examples, checks in (
            (
                schemathesis.GenerationMode.POSITIVE,
                positive,
                [
                    not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                ],
            ),
            (
                schemathesis.GenerationMode.NEGATIVE,
                negative,
                [not_a_server_error, status_code_conformance, content_type_conformance],
            ),
        ):
            try:
                _exercise(op, mode, examples, checks, live.url, http, credentials)
            except (Exception, BaseExceptionGroup) as exc:  # collect all, then report
                failures.append(f"{op.method.upper()} {op.path} ({mode.value}): {exc}")
    print(f"schemathesis: {calls} requests to {len(mine)} operations as {role} on {backend}")
    assert not failures, f"as {role} on {backend}:\n\n" + "\n\n".join(failures)
    assert calls >= len(mine)
