"""Launch from the hospital record (DPI): a signed launch token minted with the DPI's API key,
carrying the FHIR Patient and the practitioner, opens a signed-in session on the new-request
wizard pre-filled with that patient; forged, replayed, ungranted tokens and invalid FHIR are
refused."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest
from sqlalchemy import func, select

from core.context import DB, SETTINGS
from dossier.models import Patient
from ops import apikeys

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def fhir_patient(ipp: str, ipp_system: str, **over: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "meta": {"profile": ["https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient"]},
        "identifier": [{"system": ipp_system, "value": ipp}],
        "name": [{"use": "official", "family": "LEFEVRE", "given": ["Claire", "Marie"]}],
        "gender": "female",
        "birthDate": "1975-04-12",
        **over,
    }


def mint(key_id: str, secret: str, claims: dict[str, Any], ttl: int = 120) -> str:
    now = int(time.time())
    body = {"iss": key_id, "sub": "dpi-user-42", "iat": now, "exp": now + ttl}
    body["jti"] = uuid.uuid4().hex
    return jwt.encode({**body, **claims}, secret, algorithm="HS256")


@pytest.fixture
async def dpi_key(app: Any, users: Any) -> tuple[str, str]:
    key, secret = await apikeys.create_key(
        app[DB], app[SETTINGS], name="DPI", user_email=users["requester"].email, actor=None
    )
    return key.id, secret


async def patients_named(app: Any, name: str) -> int:
    async with app[DB].read() as s:
        n = await s.scalar(select(func.count()).where(Patient.birth_name == name))
    return int(n or 0)


async def test_a_launch_opens_the_wizard_signed_in_with_the_patient(
    app: Any, client: Any, make_client: Any, users: Any, dpi_key: tuple[str, str]
) -> None:
    key_id, secret = dpi_key
    system = app[SETTINGS].fhir_ipp_system
    claims = {"grants": {"launch": True}, "patient": fhir_patient("IPP-9", system)}
    token = mint(key_id, secret, claims)
    r = await client.get(f"/launch?token={token}", allow_redirects=False)
    assert r.status == 303, await r.text()
    location = r.headers["Location"]
    assert location.startswith("/app/dossiers/new?patient=")
    patient_id = location.split("patient=")[1]
    # Signed in, without a password or a code.
    r = await client.get(f"/api/v1/patients/{patient_id}")
    assert r.status == 200, await r.text()
    p = await r.json()
    assert p["birth_name"] == "LEFEVRE" and p["ipp"] == "IPP-9"
    assert p["first_names"] == "Claire Marie" and p["birth_date"] == "1975-04-12"

    # The same token again: refused.
    other = await make_client()
    r = await other.get(f"/launch?token={token}", allow_redirects=False)
    assert r.status == 401
    # A second launch for the same patient finds the identity instead of doubling it.
    token2 = mint(key_id, secret, claims)
    r = await other.get(f"/launch?token={token2}", allow_redirects=False)
    assert r.status == 303
    assert r.headers["Location"] == location
    assert await patients_named(app, "LEFEVRE") == 1


async def test_bad_launch_tokens_are_refused(
    app: Any, client: Any, users: Any, dpi_key: tuple[str, str]
) -> None:
    key_id, secret = dpi_key
    system = app[SETTINGS].fhir_ipp_system
    good = {"grants": {"launch": True}, "patient": fhir_patient("IPP-9", system)}
    cases = [
        (mint(key_id, "not-the-secret-of-this-dpi-key-at-all", good), 401),  # signed by another key
        (mint(key_id, secret, good, ttl=-60), 401),  # expired
        (mint(key_id, secret, {**good, "grants": {"fhir_read": True}}), 403),
        (mint(key_id, secret, good, ttl=3600), 400),  # lives too long for a launch
        (mint(key_id, secret, {**good, "patient": {"resourceType": "Patient", "gender": 3}}), 400),
        (mint(key_id, secret, {**good, "patient": fhir_patient("", system, identifier=[])}), 400),
        (mint(key_id, secret, {**good, "user": {"rpps": "10000000000"}}), 403),
        ("garbage", 401),
    ]
    for token, status in cases:
        r = await client.get(f"/launch?token={token}", allow_redirects=False)
        assert r.status == status, (status, await r.text())
        assert "refusée" in await r.text()
    r = await client.get("/api/v1/me")
    assert r.status == 401  # never signed in
    assert await patients_named(app, "LEFEVRE") == 0


async def test_a_launch_token_used_concurrently_opens_one_session(
    app: Any, make_client: Any, users: Any, dpi_key: tuple[str, str]
) -> None:
    import asyncio

    key_id, secret = dpi_key
    claims = {
        "grants": {"launch": True},
        "patient": fhir_patient("IPP-7", app[SETTINGS].fhir_ipp_system),
    }
    token = mint(key_id, secret, claims)
    clients = [await make_client() for _ in range(5)]
    answers = await asyncio.gather(
        *(c.get(f"/launch?token={token}", allow_redirects=False) for c in clients)
    )
    assert sorted(r.status for r in answers) == [303, 401, 401, 401, 401]
