"""Forgotten password: the link comes by the real SMTP server, works once, expires, ends every
session, lifts the sign-in delay of the address it came from, and the answers do not reveal
which addresses have an account."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from sqlalchemy import select

from core import recovery
from core.accounts import User
from core.audit import AuditEntry
from core.context import DB, SETTINGS
from core.seed import DEMO_PASSWORD
from tests.conftest import make_settings

REQUESTER = "requerant@demo.consilium.fr"
NEW_PASSWORD = "Nouveau-mot-de-passe-2026"


@pytest.fixture
def settings(database_url, tmp_path, smtp):
    return make_settings(
        database_url,
        tmp_path / "data",
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        login_max_failures=3,
        login_lockout_minutes=5,
        public_url="http://consilium.example.org",
    )


LINK = re.compile(r"http://consilium\.example\.org/app/reset-password#token=(\S+)")


async def ask_link(client, smtp, email=REQUESTER) -> str:
    """Ask for a reset link and read it off the SMTP server (other mails to the address, such
    as a sign-in code sent in the background, are left aside)."""

    def links() -> list[str]:
        found = (LINK.search(smtp.text_of(m)) for m in smtp.to(email))
        return [m.group(1) for m in found if m]

    before = len(links())
    r = await client.post("/api/v1/auth/password/forgot", json={"email": email})
    assert r.status == 202, await r.text()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(links()) <= before:
        assert loop.time() < deadline, "no reset link by e-mail"
        await asyncio.sleep(0.05)
    return links()[-1]


async def login(client, password):
    return await client.post("/api/v1/auth/login", json={"email": REQUESTER, "password": password})


async def test_link_by_email_sets_the_password_once_and_ends_sessions(
    client, make_client, users, smtp
):
    other = await make_client()
    await other.sign_in_as(users["requester"].id)
    assert (await other.get("/api/v1/me")).status == 200

    token = await ask_link(client, smtp)
    r = await client.post(
        "/api/v1/auth/password/reset", json={"token": token, "password": NEW_PASSWORD}
    )
    assert r.status == 204, await r.text()
    # every session of the account ended; the old password no longer works, the new one does
    assert (await other.get("/api/v1/me")).status == 401
    assert (await login(client, DEMO_PASSWORD)).status == 401
    assert (await login(client, NEW_PASSWORD)).status == 200
    # the owner is told
    notice = await smtp.wait_for(REQUESTER, count=2)
    assert "vient d'être modifié" in smtp.text_of(notice[-1])

    # the same link a second time: refused, nothing changed
    r = await client.post(
        "/api/v1/auth/password/reset", json={"token": token, "password": "Encore-un-autre-2026"}
    )
    assert r.status == 400
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert (await r.json())["code"] == "invalid_token"
    assert (await login(client, NEW_PASSWORD)).status == 200

    async with client.app[DB].read() as session:
        actions = [
            (a.action, a.outcome)
            for a in (await session.execute(select(AuditEntry).order_by(AuditEntry.at))).scalars()
        ]
    assert ("account.password_reset_requested", "success") in actions
    assert ("account.password_reset", "success") in actions


async def test_unknown_address_gets_the_same_answer_and_no_mail(client, users, smtp):
    r = await client.post("/api/v1/auth/password/forgot", json={"email": "nobody@example.org"})
    assert r.status == 202
    known = await client.post("/api/v1/auth/password/forgot", json={"email": REQUESTER})
    assert known.status == 202
    assert await r.json() == await known.json()
    await smtp.wait_for(REQUESTER)
    assert smtp.to("nobody@example.org") == []


async def test_bad_expired_and_superseded_tokens_are_refused(client, users, smtp):
    for bad in ("not-a-token-at-all", "AAAAAAAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBB"):
        r = await client.post(
            "/api/v1/auth/password/reset", json={"token": bad, "password": NEW_PASSWORD}
        )
        assert r.status == 400, await r.text()
        assert (await r.json())["code"] == "invalid_token"

    settings = client.app[SETTINGS]
    async with client.app[DB].read() as session:
        user = await session.get(User, users["requester"].id)
    old = recovery.make_token(settings, user, now=time.time() - 31 * 60)
    r = await client.post(
        "/api/v1/auth/password/reset", json={"token": old, "password": NEW_PASSWORD}
    )
    assert r.status == 400
    assert (await r.json())["code"] == "token_expired"

    # a sign-in after the link was sent makes the link stale
    token = await ask_link(client, smtp)
    assert (await login(client, DEMO_PASSWORD)).status == 200
    code_step = await client.post("/api/v1/auth/otp", json={"channel": "email"})
    assert code_step.status == 200
    mails = await smtp.wait_for(REQUESTER, count=2)
    code = re.search(r"\b(\d{6})\b", smtp.text_of(mails[-1])).group(1)
    verified = await client.post("/api/v1/auth/verify", json={"method": "otp", "code": code})
    assert verified.status == 200
    r = await client.post(
        "/api/v1/auth/password/reset", json={"token": token, "password": NEW_PASSWORD}
    )
    assert r.status == 400 and (await r.json())["code"] == "invalid_token"


async def test_weak_password_is_refused_and_the_delay_is_lifted(client, users, smtp):
    for _ in range(3):
        await login(client, "wrong-password-123")
    assert (await login(client, DEMO_PASSWORD)).status == 429
    token = await ask_link(client, smtp)
    r = await client.post("/api/v1/auth/password/reset", json={"token": token, "password": "court"})
    assert r.status == 422
    assert (await r.json())["code"] == "weak_password"
    r = await client.post(
        "/api/v1/auth/password/reset", json={"token": token, "password": NEW_PASSWORD}
    )
    assert r.status == 204
    assert (await login(client, NEW_PASSWORD)).status == 200
