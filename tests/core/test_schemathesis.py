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
import contextlib
import os
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from aiohttp import web
from schemathesis.checks import not_a_server_error
from schemathesis.config._phases import InferenceConfig
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
schemathesis.serializer.alias("multipart/related", "application/octet-stream")  # STOW-RS

ROLES = ("anonymous", "requester", "secretary", "admin", "guest")
RUNS = len(ROLES) * 2  # × both databases
# CI (CI=true) runs a larger pass: several thousand requests over the ten runs.
BUDGET = int(
    os.environ.get("CONSILIUM_SCHEMATHESIS_EXAMPLES", "2000" if os.environ.get("CI") else "240")
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


# -- stateful phase ----------------------------------------------------------------------------
# Chains of calls that follow the document's OpenAPI links (core/api.py: the id a create
# returns fed to the read, update, delete and actions of that resource, and a new patient's id
# to a new dossier: rooms, invitations, patients, dossiers, documents, accounts), as a
# practitioner and as an administrator, on both databases. The budget (scenarios of up to
# STATEFUL_STEPS calls per run) keeps the four runs within about a minute in CI.
STATEFUL_ROLES = ("requester", "admin")
STATEFUL_SCENARIOS = int(
    os.environ.get(
        "CONSILIUM_SCHEMATHESIS_STATEFUL_EXAMPLES", "20" if os.environ.get("CI") else "6"
    )
)
STATEFUL_STEPS = 6


def _seed_body(case: Any, n: int) -> dict[str, Any] | None:
    """A valid body for two creates in three of patients and accounts, whose random bodies
    nearly never pass their business rules (identity, unique address): the chains that follow
    (read, change, a dossier for the patient, its documents...) then start from a real
    resource. The third keeps its generated body, so the creates are fuzzed too."""
    # Which creates get a valid body depends on the generated case only, so that Hypothesis,
    # replaying a prefix of choices, sees the same outcome (else "flaky strategy").
    if case.method != "POST" or zlib.crc32(repr(case.body).encode()) % 3 == 0:
        return None
    tag = "".join(chr(ord("a") + int(d)) for d in str(n))  # letters only: a valid name
    if case.path == "/api/v1/patients":
        return {
            "birth_name": f"Durand{tag}",
            "first_name": "Anne",
            "sex": "F",
            "birth_date": "1970-01-01",
            "confirm": True,
        }
    if case.path == "/api/v1/users":
        return {
            "email": f"medecin.{tag}@example.org",
            "password": "Un-mot-de-passe-solide-2026",
            "role": "practitioner",
            "first_name": "Anne",
            "last_name": f"Durand{tag}",
        }
    return None


def _linked_operations(doc: dict[str, Any]) -> set[str]:
    """The operations the document's links join: each create and what it links to. The
    machine starts only from these, so most of its steps follow a link."""
    ops: set[str] = set()
    for item in doc["paths"].values():
        for op in item.values():
            for response in op.get("responses", {}).values():
                links = response.get("links", {})
                if links:
                    ops.add(op["operationId"])
                    ops |= {link["operationId"] for link in links.values()}
    return ops


CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("role", STATEFUL_ROLES)
def test_linked_calls_never_answer_5xx_or_break_their_schema(
    live: LiveServer, role: str, backend: str
) -> None:
    users = live.run(seed_accounts(live.app[DB]))
    doc = requests.get(f"{live.url}/api/v1/openapi.json", timeout=30).json()
    linked_ops = _linked_operations(doc)
    assert {"rooms_get_room", "dossier_get_dossier", "dossier_get_patient"} <= linked_ops
    schema = schemathesis.openapi.from_dict(doc).include(operation_id=sorted(linked_ops))
    # Only the document's own links: what it promises clients, not what may be guessed.
    schema.config.phases.stateful.inference = InferenceConfig(algorithms=[])
    http = requests.Session()
    steps: list[str] = []
    linked_ok: set[str] = set()  # operations reached through a link that succeeded (2xx)
    scenarios = [0]
    failures: list[str] = []

    def credentials() -> dict[str, str]:
        token, s = live.run(
            live.app[SESSIONS].create(kind="user", subject_id=users[role].id, stage="full")
        )
        return {"Cookie": f"{COOKIE}={token}", CSRF_HEADER: s.csrf_token}

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": live.url, "session": http, "headers": credentials()}

        def setup(self) -> None:
            scenarios[0] += 1

        def before_call(self, case: Any) -> None:
            seeded = _seed_body(case, len(steps))
            if seeded is not None:
                case.body = seeded

        def step(self, input: Any) -> Any:
            output = super().step(input)
            status = output.response.status_code
            steps.append(f"{input.case.method} {input.case.path} {status}")
            if input.transition is not None and input.is_applied and status < 300:
                linked_ok.add(f"{input.case.method} {input.case.path}")
            return output

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            # Collected, not raised: a replay against a server whose state moved on would
            # not reproduce the failure (Hypothesis would report a flaky strategy instead).
            try:
                case.validate_response(response, checks=CONFORMANCE, transport_kwargs=kwargs)
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{case.method} {case.path} -> {response.status_code}: {exc}")

    # Each run is a fresh random exploration. The server's state moves on under Hypothesis,
    # which may then find that replaying a prefix of its choices leads elsewhere (a bundle
    # empty this time): it stops with "flaky strategy", and the next run goes on.
    for _ in range(20):
        with contextlib.suppress(hypothesis.errors.FlakyStrategyDefinition):
            Workflow.run(
                settings=hypothesis.settings(
                    max_examples=STATEFUL_SCENARIOS - scenarios[0],
                    stateful_step_count=STATEFUL_STEPS,
                    deadline=None,
                    database=None,
                    phases=[hypothesis.Phase.generate],
                    suppress_health_check=list(hypothesis.HealthCheck),
                )
            )
        if scenarios[0] >= STATEFUL_SCENARIOS:
            break
    print(f"schemathesis stateful: {len(steps)} calls as {role} on {backend}; through links:")
    print("\n".join(sorted(linked_ok)))
    assert not failures, f"as {role} on {backend}:\n\n" + "\n\n".join(sorted(set(failures)))
    assert len(steps) >= STATEFUL_SCENARIOS and linked_ok
