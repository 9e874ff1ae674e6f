from __future__ import annotations

import re

import pytest

from core.seed import DEMO_PASSWORD
from tests.conftest import make_settings


@pytest.fixture
def settings(database_url, tmp_path, smtp):
    return make_settings(database_url, tmp_path / "data", smtp_host=smtp.host, smtp_port=smtp.port)


async def test_password_then_code_by_email_through_real_smtp(client, users, smtp):
    r = await client.post(
        "/api/v1/auth/login",
        json={"email": "requerant@demo.consilium.fr", "password": DEMO_PASSWORD},
    )
    assert r.status == 200, await r.text()
    assert (await r.json())["status"] == "mfa_required"
    # Not signed in yet: the second factor is expected.
    r = await client.get("/api/v1/auth/session")
    assert r.status == 401
    assert (await r.json())["code"] == "mfa_required"
    r = await client.post("/api/v1/auth/otp", json={"channel": "email"})
    assert r.status == 200, await r.text()
    [mail] = await smtp.wait_for("requerant@demo.consilium.fr")
    code = re.search(r"\b(\d{6})\b", smtp.text_of(mail)).group(1)
    r = await client.post("/api/v1/auth/verify", json={"method": "otp", "code": code})
    assert r.status == 200, await r.text()
    r = await client.get("/api/v1/auth/session")
    assert r.status == 200
    assert (await r.json())["name"] == "Dr Claire Martin"
    # Single use: the same code does not open a second session.
    await client.post("/api/v1/auth/logout")
    await client.post(
        "/api/v1/auth/login",
        json={"email": "requerant@demo.consilium.fr", "password": DEMO_PASSWORD},
    )
    r = await client.post("/api/v1/auth/verify", json={"method": "otp", "code": code})
    assert r.status == 401
