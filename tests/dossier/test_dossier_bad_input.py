"""Junk sent to every dossier route answers a 4xx problem+json, never a 500."""

from __future__ import annotations

from tests.dossier.dossier_fixtures import *  # noqa: F403
from tests.dossier.dossier_fixtures import ENDO, draft_ready_to_sign

BODIES = [
    None,
    [],
    "x",
    1,
    {"x": 1},
    {"values": []},
    {"values": {"motif": {"a": [1]}}},
    {"care_offer_ids": ["not-a-uuid"]},
    {"care_offer_ids": []},
    {"consent": "peut-être", "comment": 3},
    {"patient_id": "../../etc/passwd"},
    {"code": "x" * 500},
    {"birth_name": "\u0000", "first_name": "a", "sex": "F", "birth_date": "0000-00-00"},
    {"consent": True, "comment": "nul\u0000"},
    {"reason": "nul\u0000"},
    {"birth_name": "Nul\u0000", "first_name": "a", "sex": "F", "birth_date": "1990-01-01"},
    {"values": {"motif": "Autre", "question": "nul\u0000"}},
    {"values": {"hba1c": 1e308}},
    {"values": {"date_hba1c": "2026-02-30"}},
]
QUERIES = [
    {"q": "'; DROP TABLE patients; --"},
    {"q": "%_%"},
    {"birth_date": "31/12/1999"},
    {"q": "ab\u0000c"},
    {"radius_km": "NaN"},
    {"radius_km": "1e999"},
    {"page": "-1"},
    {"per_page": "1000"},
    {"sort": "id"},
    {"near": "\u0000"},
    {"ins": "2A" * 10},
    {"urgent": "peut-être"},
]


async def test_junk_never_makes_a_500(demo, as_user):
    c = await as_user(demo["users"]["requester"])
    d = await draft_ready_to_sign(c, str(demo["offers"][ENDO].id), code="tlx_diabeto-endocrino")
    url = f"/api/v1/dossiers/{d['id']}"
    writes = [
        ("post", "/api/v1/patients"),
        ("patch", f"/api/v1/patients/{d['patient']['id']}"),
        ("post", "/api/v1/dossiers"),
        ("put", f"{url}/consent"),
        ("put", f"{url}/recipients"),
        ("put", f"{url}/request-type"),
        ("put", f"{url}/forms/requester"),
        ("put", f"{url}/forms/nobody"),
        ("post", f"{url}/forms/requester/sign"),
        ("post", f"{url}/closure-request"),
    ]
    for method, path in writes:
        for body in BODIES:
            r = await getattr(c, method)(path, json=body)
            assert r.status < 500, (method, path, body, await r.text())
            if r.status >= 400:
                assert r.content_type == "application/problem+json", (path, body)
    for path in ("/api/v1/patients", "/api/v1/care-offers", "/api/v1/dossiers"):
        for q in QUERIES:
            r = await c.get(path, params=q)
            assert r.status < 500, (path, q, await r.text())
    r = await c.put(f"{url}/consent", json={"consent": True, "comment": "nul\u0000"})
    assert r.status == 422 and (await r.json())["code"] == "nul_character"
    for path in (f"{url}x", "/api/v1/dossiers/not-a-uuid/history", "/api/v1/patients/0"):
        r = await c.get(path)
        assert r.status == 404
    # The draft came through all of that unchanged.
    after = await (await c.get(url)).json()
    assert after["state"] == "draft" and after["forms"][0]["values"] == {}


async def test_nul_characters_are_refused_in_every_body_and_query(demo, as_user):
    """core.api refuses NUL (PostgreSQL cannot store it) before any dossier handler runs."""
    c = await as_user(demo["users"]["requester"])
    d = await draft_ready_to_sign(c, str(demo["offers"][ENDO].id))
    url = f"/api/v1/dossiers/{d['id']}"
    writes = [
        ("post", "/api/v1/patients"),
        ("patch", f"/api/v1/patients/{d['patient']['id']}"),
        ("post", "/api/v1/dossiers"),
        ("post", "/api/v1/dossiers/lookup"),
        ("put", f"{url}/consent"),
        ("put", f"{url}/recipients"),
        ("put", f"{url}/request-type"),
        ("put", f"{url}/forms/requester"),
        ("post", f"{url}/forms/requester/sign"),
        ("post", f"{url}/closure-request"),
    ]
    for method, path in writes:
        for body in ({"reason": "nul\u0000"}, {"values": {"nul\u0000": "x"}}, ["\u0000"]):
            r = await getattr(c, method)(path, json=body)
            assert r.status == 422, (method, path, body, await r.text())
            assert (await r.json())["code"] == "nul_character"
    for path in ("/api/v1/patients", "/api/v1/care-offers", "/api/v1/dossiers"):
        for q in ({"q": "ab\u0000c"}, {"near": "\u0000"}, {"ipp": "1\u0000"}):
            r = await c.get(path, params=q)
            assert r.status == 422, (path, q, await r.text())
            assert (await r.json())["code"] == "nul_character"
    after = await (await c.get(url)).json()
    assert after["state"] == "draft"
