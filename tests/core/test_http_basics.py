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


async def test_the_csp_lets_pages_connect_to_this_server_only(client):
    r = await client.get("/api/v1/nothing-here")
    directives = dict(
        d.strip().split(" ", 1) for d in r.headers["Content-Security-Policy"].split(";")
    )
    # `ws: wss:` would let a page's script open a WebSocket to any host.
    assert directives["connect-src"] == "'self'"


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


async def test_wrong_method_is_405_problem_with_allow(client):
    r = await client.client.put("/api/v1/auth/login", json={})
    assert r.status == 405
    assert r.content_type == "application/problem+json"
    assert (await r.json())["code"] == "method_not_allowed"
    assert "POST" in r.headers["Allow"]


async def test_unknown_page_outside_the_api_is_problem_json_too(client):
    r = await client.get("/no/such/page")
    assert r.status == 404
    assert r.content_type == "application/problem+json"
    assert r.headers["X-Content-Type-Options"] == "nosniff"


async def test_request_id_is_echoed_from_the_client(client):
    r = await client.get("/api/v1/nothing-here", headers={"X-Request-Id": "abc-123"})
    assert r.headers["X-Request-Id"] == "abc-123"
    assert (await r.json())["request_id"] == "abc-123"


async def test_readyz_is_503_when_the_database_is_unreachable(backend, tmp_path, aiohttp_client):
    from core.app import create_app
    from tests.conftest import free_port, make_settings

    url = f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/nothing"
    client = await aiohttp_client(create_app(make_settings(url, tmp_path / "data")))
    r = await client.get("/readyz")
    assert r.status == 503
    body = await r.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"].startswith("error")
    assert (await client.get("/healthz")).status == 200  # alive, only not ready


async def test_readyz_checks_redis_when_configured(tmp_path, database_url, aiohttp_client):
    from core.app import create_app
    from tests.conftest import free_port, make_settings

    settings = make_settings(
        database_url, tmp_path / "data", redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    client = await aiohttp_client(create_app(settings))
    r = await client.get("/readyz")
    assert r.status == 503
    assert (await r.json())["checks"]["redis"].startswith("error")


async def test_nul_characters_are_refused_in_bodies_and_queries(client, users):
    r = await client.post("/api/v1/auth/login", json={"email": "a@b.fr", "password": "x\u0000y"})
    assert r.status == 422
    assert (await r.json())["code"] == "nul_character"
    await client.sign_in_as(users["admin"].id)
    r = await client.get("/api/v1/audit", params={"action": "a\u0000"})
    assert r.status == 422
    assert (await r.json())["code"] == "nul_character"


async def test_head_routes_are_documented_with_the_status_they_send(client):
    doc = await (await client.get("/api/v1/openapi.json")).json()
    heads = {path: ops["head"] for path, ops in doc["paths"].items() if "head" in ops}
    assert "/api/v1/uploads/{upload_id}" in heads
    for path, op in heads.items():
        assert "200" in op["responses"] and "204" not in op["responses"], path
