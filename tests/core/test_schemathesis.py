"""A bounded schemathesis run over every operation of /api/v1/openapi.json against a live
server on 127.0.0.1, signed in (in turn as each demo account) with the CSRF header: no 5xx, and
every response conforms to the document (status code, content type, body schema).

It is generic: routes added by any package are picked up from the document. Each generated
request gets a fresh session, so operations that end sessions (logout, password change)
cannot starve the others. ``CONSILIUM_SCHEMATHESIS_EXAMPLES`` sets the request budget.
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

pytestmark = [pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]

# A budget of generated requests shared by all operations (3 to 8 each), so the run stays
# bounded as packages add routes.
BUDGET = int(os.environ.get("CONSILIUM_SCHEMATHESIS_EXAMPLES", "240"))


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


def test_no_operation_answers_5xx_or_breaks_its_schema(live: LiveServer) -> None:
    users = live.run(seed_accounts(live.app[DB]))
    # Requests take turns as each demo account, so routes reserved to practitioners,
    # secretaries or administrators are all exercised beyond their 403.
    people = [users[k].id for k in ("admin", "requester", "expert", "secretary")]
    schema = schemathesis.openapi.from_url(f"{live.url}/api/v1/openapi.json")
    http = requests.Session()
    calls = 0

    def credentials() -> dict[str, str]:
        nonlocal calls
        who = people[calls % len(people)]
        calls += 1
        token, s = live.run(live.app[SESSIONS].create(kind="user", subject_id=who, stage="full"))
        return {"Cookie": f"{COOKIE}={token}", CSRF_HEADER: s.csrf_token}

    failures: list[str] = []
    operations = _operations(schema)
    assert len(operations) >= 10
    positive = min(8, max(3, BUDGET // len(operations)))
    negative = max(2, positive // 2)
    for op in operations:
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
            (schemathesis.GenerationMode.NEGATIVE, negative, [not_a_server_error]),
        ):
            try:
                _exercise(op, mode, examples, checks, live.url, http, credentials)
            except (Exception, BaseExceptionGroup) as exc:  # collect all, then report
                failures.append(f"{op.method.upper()} {op.path} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
    assert calls >= len(operations) * 2
