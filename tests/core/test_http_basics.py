from __future__ import annotations

import pytest

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


async def test_healthz_and_readyz_answer(client):
    r = await client.get("/healthz")
    assert r.status == 200
    r = await client.get("/readyz")
    assert r.status == 200
    assert (await r.json())["checks"]["database"] == "ok"


async def test_unknown_route_is_problem_json(client):
    r = await client.get("/api/v1/nothing-here")
    assert r.status == 404
    assert r.content_type == "application/problem+json"
    body = await r.json()
    assert body["code"] == "not_found"


async def test_security_headers_on_every_response(client):
    r = await client.get("/api/v1/nothing-here")
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "same-origin"
    assert r.headers["X-Request-Id"]


async def test_openapi_document_is_3_1_and_lists_routes(client):
    r = await client.get("/api/v1/openapi.json")
    doc = await r.json()
    assert doc["openapi"] == "3.1.0"
    assert "/api/v1/auth/login" in doc["paths"]
    assert "Problem" in doc["components"]["schemas"]


async def test_malformed_json_is_400_problem(client):
    r = await client.post(
        "/api/v1/auth/login", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status == 400
    assert (await r.json())["code"] == "malformed_json"


async def test_wrong_types_and_missing_fields_are_422(client):
    r = await client.post("/api/v1/auth/login", json={"email": 3})
    assert r.status == 422
    body = await r.json()
    assert body["code"] == "validation_failed"
    assert {tuple(e["loc"]) for e in body["errors"]} >= {("password",)}


async def test_oversized_body_is_413(client):
    big = b'{"email": "' + b"a" * 2_000_000 + b'"}'
    r = await client.post(
        "/api/v1/auth/login", data=big, headers={"Content-Type": "application/json"}
    )
    assert r.status == 413
    assert r.content_type == "application/problem+json"


async def test_non_json_content_type_is_415(client):
    r = await client.post(
        "/api/v1/auth/login", data="email=a", headers={"Content-Type": "text/plain"}
    )
    assert r.status == 415
