"""Second factors change only after a re-authentication (password and a current second
factor, in the last 5 minutes), and the old channel is told: a stolen session alone cannot
take over an account's mobile, code channel, authenticator app or recovery codes."""

from __future__ import annotations

import re

import pyotp
import pytest
from sqlalchemy import select

from core.accounts import User
from core.audit import AuditEntry
from core.context import DB
from core.seed import DEMO_PASSWORD
from tests.conftest import make_settings
from tests.core.conftest import reauthenticated

REQUESTER = "requerant@demo.consilium.fr"
OLD_MOBILE = "+33600000001"


@pytest.fixture
def settings(database_url, tmp_path, smtp, sms_gateway):
    return make_settings(
        database_url,
        tmp_path / "data",
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        sms_gateway_url=sms_gateway.url,
    )


async def reauth_by_email(client, smtp, password=DEMO_PASSWORD):
    before = len(smtp.to(REQUESTER))
    r = await client.post("/api/v1/me/reauth/code", json={"channel": "email"})
    assert r.status == 200, await r.text()
    mails = await smtp.wait_for(REQUESTER, count=before + 1)
    code = re.search(r"\b(\d{6})\b", smtp.text_of(mails[-1])).group(1)
    r = await client.post(
        "/api/v1/me/reauth", json={"password": password, "method": "otp", "code": code}
    )
    return r, code


async def test_a_stolen_session_alone_cannot_change_second_factors(client, users, smtp):
    await client.sign_in_as(users["requester"].id)  # the cookie, without the password
    attempts = [
        ("PATCH", "/api/v1/me", {"mobile": "07 11 22 33 44"}),
        ("PATCH", "/api/v1/me", {"otp_channel": "sms"}),
        ("POST", "/api/v1/me/totp", None),
        ("POST", "/api/v1/me/totp/recovery-codes", {"code": "123456"}),
        ("DELETE", "/api/v1/me/totp", {"code": "123456"}),
    ]
    for method, path, body in attempts:
        r = await client.request(method, path, json=body)
        assert r.status == 403, (method, path, await r.text())
        assert r.headers["Content-Type"].startswith("application/problem+json")
        assert (await r.json())["code"] == "reauth_required"
    # The code alone (the thief reads the mailbox) is not enough without the password.
    r, _ = await reauth_by_email(client, smtp, password="pas-le-bon-mot-de-passe")
    assert r.status == 403 and (await r.json())["code"] == "reauth_failed"
    r = await client.patch("/api/v1/me", json={"mobile": "07 11 22 33 44"})
    assert r.status == 403
    async with client.app[DB].read() as session:
        user = await session.get(User, users["requester"].id)
        assert user.mobile == OLD_MOBILE and not user.totp_enabled
    # Names and notification choices are not second factors: no re-authentication.
    r = await client.patch("/api/v1/me", json={"first_name": "Claire"})
    assert r.status == 200


async def test_after_reauth_the_factors_change_and_the_old_channel_is_told(
    client, users, smtp, sms_gateway
):
    await client.sign_in_as(users["requester"].id)
    r, code = await reauth_by_email(client, smtp)
    assert r.status == 200, await r.text()
    assert "reauth_until" in await r.json()
    # The confirmation code works once.
    r = await client.post(
        "/api/v1/me/reauth", json={"password": DEMO_PASSWORD, "method": "otp", "code": code}
    )
    assert r.status == 403

    before = len(smtp.to(REQUESTER))
    r = await client.patch("/api/v1/me", json={"mobile": "07 11 22 33 44"})
    assert r.status == 200, await r.text()
    assert (await r.json())["mobile"] == "+33711223344"
    sms = await sms_gateway.wait_for(OLD_MOBILE)  # the old number hears of it
    assert "+33711223344" in sms["text"]
    mails = await smtp.wait_for(REQUESTER, count=before + 1)
    assert "sécurité" in mails[-1]["Subject"]
    assert "mobile" in smtp.text_of(mails[-1])

    r = await client.post("/api/v1/me/totp")
    assert r.status == 200, await r.text()
    totp = pyotp.TOTP((await r.json())["secret"])
    r = await client.post("/api/v1/me/totp/confirm", json={"code": totp.now()})
    assert r.status == 200, await r.text()
    mails = await smtp.wait_for(REQUESTER, count=before + 2)
    assert "application d'authentification" in smtp.text_of(mails[-1])

    # Five minutes later the window is closed again.
    await reauthenticated(client, ago=301)
    r = await client.post("/api/v1/me/totp/recovery-codes", json={"code": totp.now()})
    assert r.status == 403 and (await r.json())["code"] == "reauth_required"
    async with client.app[DB].read() as session:
        actions = list((await session.execute(select(AuditEntry.action))).scalars())
    assert "account.reauth" in actions


async def test_a_fresh_sign_in_counts_as_reauthentication(client, users, smtp):
    r = await client.post(
        "/api/v1/auth/login", json={"email": REQUESTER, "password": DEMO_PASSWORD}
    )
    assert r.status == 200
    await client.post("/api/v1/auth/otp", json={"channel": "email"})
    [mail] = await smtp.wait_for(REQUESTER)
    code = re.search(r"\b(\d{6})\b", smtp.text_of(mail)).group(1)
    r = await client.post("/api/v1/auth/verify", json={"method": "otp", "code": code})
    assert r.status == 200
    r = await client.post("/api/v1/me/totp")
    assert r.status == 200, await r.text()


async def test_reauth_routes_are_in_the_openapi_document(client):
    doc = await (await client.get("/api/v1/openapi.json")).json()
    assert "post" in doc["paths"]["/api/v1/me/reauth"]
    assert "post" in doc["paths"]["/api/v1/me/reauth/code"]
