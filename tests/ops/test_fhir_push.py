"""A signed report is filed back into the establishment's record: pushed to a real FHIR R4
endpoint over HTTP (a small receiver run by the test, which validates what it gets with
fhir.resources and honours ``If-None-Exist`` as a FHIR server does), retried while that
endpoint is down or loses its answer, and there exactly once when it is back."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from fhir.resources.R4B.documentreference import DocumentReference
from pydantic import ValidationError

from core.context import DB
from tests.conftest import free_port, make_settings
from tests.support.documents import make_dossier

FHIR_JSON = "application/fhir+json"


def outcome(status: int, code: str, text: str) -> web.Response:
    return web.json_response(
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}],
        },
        status=status,
        content_type=FHIR_JSON,
    )


class FhirReceiver:
    """A minimal FHIR R4 server for DocumentReference: conditional create, read, search.

    ``mode``: ``up``; ``down`` (503 to everything); ``lose_answer`` (stores, then answers
    500 as if the answer was lost on the way, once)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.mode = "up"
        self.stored: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, str]] = []
        self.refused = 0
        self.runner: web.AppRunner | None = None

    def _find(self, condition: str) -> list[str]:
        name, _, token = condition.partition("=")
        assert name == "identifier", condition
        system, _, value = token.partition("|")
        return [
            rid
            for rid, res in self.stored.items()
            if any(i["system"] == system and i["value"] == value for i in res["identifier"])
        ]

    async def create(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.headers))
        if self.mode == "down":
            self.refused += 1
            return outcome(503, "transient", "Maintenance du DPI")
        if not request.content_type.startswith(FHIR_JSON):
            return outcome(415, "not-supported", "Send application/fhir+json")
        try:
            res = DocumentReference.model_validate_json(await request.read())
        except ValidationError as e:
            return outcome(400, "invalid", str(e)[:500])
        cond = request.headers.get("If-None-Exist")
        if cond:
            found = self._find(cond)
            if len(found) > 1:
                return outcome(412, "duplicate", "Several matches")
            if found:
                return web.json_response(self.stored[found[0]], status=200, content_type=FHIR_JSON)
        rid = str(uuid.uuid4())
        data = res.model_dump(mode="json", by_alias=True, exclude_none=True)
        data["id"] = rid
        self.stored[rid] = data
        if self.mode == "lose_answer":
            self.mode = "up"
            return outcome(500, "exception", "Answer lost")
        return web.json_response(
            data,
            status=201,
            content_type=FHIR_JSON,
            headers={
                "Location": f"http://127.0.0.1:{self.port}/fhir/DocumentReference/{rid}/_history/1"
            },
        )

    async def start(self) -> None:
        app = web.Application(client_max_size=50 * 2**20)
        app.router.add_post("/fhir/DocumentReference", self.create)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
def peer_port() -> int:
    return free_port()


@pytest.fixture
def settings(database_url: str, tmp_path: Any, peer_port: int) -> Any:
    return make_settings(
        database_url,
        tmp_path / "data",
        fhir_push_url=f"http://127.0.0.1:{peer_port}/fhir",
        fhir_push_authorization="Bearer dpi-secret",
        fhir_push_retry_base_seconds=0.2,
        fhir_push_retry_max_seconds=0.5,
        fhir_push_poll_seconds=0.2,
    )


@pytest.fixture
async def peer(peer_port: int) -> Any:
    r = FhirReceiver(peer_port)
    await r.start()
    yield r
    await r.stop()


async def until(cond: Callable[[], Any], what: Callable[[], Any] | None = None) -> None:
    deadline = time.monotonic() + 90
    while not await cond():
        assert time.monotonic() < deadline, f"condition not met in time: {what and what()}"
        await asyncio.sleep(0.1)


async def test_a_signed_report_lands_in_the_dpi_once_after_it_came_back(
    app: Any, client: Any, make_client: Any, users: Any, peer: FhirReceiver
) -> None:
    peer.mode = "down"
    dossier_id = await make_dossier(
        app[DB], users, ipp="IPP-77", state="expertised", signed_parts=True
    )
    expert = await make_client()
    await expert.sign_in_as(users["expert"].id)
    r = await expert.post(f"/api/v1/dossiers/{dossier_id}/report")
    assert r.status == 201, await r.text()
    report = await r.json()
    await client.sign_in_as(users["requester"].id)
    filings_url = f"/api/v1/dossiers/{dossier_id}/report-filings"

    async def filings() -> list[dict[str, Any]]:
        r = await client.get(filings_url)
        assert r.status == 200, await r.text()
        return list(await r.json())

    # While the DPI is down: retried, still pending, the reason visible.
    async def refused_twice() -> bool:
        return peer.refused >= 2

    await until(refused_twice)
    [f] = await filings()
    assert f["document_id"] == report["id"]
    assert f["status"] == "pending" and f["attempts"] >= 2
    assert "503" in f["last_error"] and f["filed_at"] is None
    assert peer.stored == {}

    # Back, but the first answer is lost: the retry finds it through If-None-Exist.
    peer.mode = "lose_answer"

    async def filed() -> bool:
        return (await filings())[0]["status"] == "filed"

    await until(filed, lambda: peer.mode)
    [f] = await filings()
    assert len(peer.stored) == 1
    [(rid, doc)] = peer.stored.items()
    assert f["remote_id"] == rid and f["filed_at"]
    for h in peer.requests:
        assert h["If-None-Exist"] == f"identifier=urn:ietf:rfc:3986|urn:uuid:{report['id']}"
        assert h["Authorization"] == "Bearer dpi-secret"

    # What the DPI holds: the PDF inline with its size and SHA-1, the patient by IPP.
    r = await client.get(f"/api/v1/dossiers/{dossier_id}/documents/{report['id']}/content")
    assert r.status == 200
    pdf = await r.read()
    att = doc["content"][0]["attachment"]
    assert base64.b64decode(att["data"]) == pdf
    assert att["size"] == len(pdf)
    assert att["hash"] == base64.b64encode(hashlib.sha1(pdf).digest()).decode()
    assert att["contentType"] == "application/pdf"
    assert doc["subject"]["identifier"]["value"] == "IPP-77"
    assert doc["author"][0]["display"]
    assert doc["masterIdentifier"]["value"] == f"urn:uuid:{report['id']}"

    # Nothing more is sent afterwards.
    sent = len(peer.requests)
    await asyncio.sleep(0)  # let a wrongly scheduled retry run if there were one
    r = await client.get(filings_url)
    assert (await r.json())[0]["status"] == "filed"
    assert len(peer.requests) == sent and len(peer.stored) == 1


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_without_a_push_url_nothing_is_filed(
    database_url: str, tmp_path: Any, aiohttp_client: Any
) -> None:
    from core.app import create_app
    from core.seed import seed_accounts
    from tests.conftest import ApiClient

    app = create_app(make_settings(database_url, tmp_path / "d2"))
    client = ApiClient(await aiohttp_client(app))
    users = await seed_accounts(app[DB])
    dossier_id = await make_dossier(app[DB], users, state="expertised", signed_parts=True)
    await client.sign_in_as(users["expert"].id)
    r = await client.post(f"/api/v1/dossiers/{dossier_id}/report")
    assert r.status == 201
    r = await client.get(f"/api/v1/dossiers/{dossier_id}/report-filings")
    assert r.status == 200 and await r.json() == []
