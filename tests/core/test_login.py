"""Sign-in: password, then a one-time code (e-mail, SMS), an authenticator app or a recovery
code; lockout after repeated failures; answers that do not reveal which accounts exist."""

from __future__ import annotations

import base64
import re
import time

import pyotp
import pytest
from sqlalchemy import select

from core.audit import AuditEntry
from core.context import DB, SESSIONS
from core.seed import DEMO_PASSWORD
from core.sessions import COOKIE, _hash
from tests.conftest import make_settings

REQUESTER = "requerant@demo.consilium.fr"
MAX_FAILURES = 3


@pytest.fixture
def settings(database_url, tmp_path, smtp, sms_gateway):
    return make_settings(
        database_url,
        tmp_path / "data",
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        sms_gateway_url=sms_gateway.url,
        sms_gateway_token="gateway-token",
        login_max_failures=MAX_FAILURES,
        login_lockout_minutes=1,
    )


def session_token(client) -> str:
    for cookie in client.client.session.cookie_jar:
        if cookie.key == COOKIE:
            return cookie.value
    return ""


async def password_step(client, email=REQUESTER, password=DEMO_PASSWORD):
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password})


async def audit_actions(client) -> list[tuple[str, str]]:
    async with client.app[DB].read() as session:
        rows = (await session.execute(select(AuditEntry).order_by(AuditEntry.at))).scalars()
        return [(r.action, r.outcome) for r in rows]


async def test_password_then_code_by_email_through_real_smtp(client, users, smtp):
    r = await password_step(client)
    assert r.status == 200, await r.text()
    assert (await r.json())["status"] == "mfa_required"
    # Not signed in yet: the second factor is expected.
    r = await client.get("/api/v1/auth/session")
    assert r.status == 401
    assert (await r.json())["code"] == "mfa_required"
    r = await client.post("/api/v1/auth/otp", json={"channel": "email"})
    assert r.status == 200, await r.text()
    [mail] = await smtp.wait_for(REQUESTER)
    code = re.search(r"\b(\d{6})\b", smtp.text_of(mail)).group(1)
    r = await client.post("/api/v1/auth/verify", json={"method": "otp", "code": code})
    assert r.status == 200, await r.text()
    r = await client.get("/api/v1/auth/session")
    assert r.status == 200
    assert (await r.json())["name"] == "Dr Claire Martin"
    # Single use: the same code does not open a second session.
    await client.post("/api/v1/auth/logout")
    await password_step(client)
    r = await client.post("/api/v1/auth/verify", json={"method": "otp", "code": code})
    assert r.status == 401
    actions = await audit_actions(client)
    for expected in [
        ("auth.otp_sent", "success"),
        ("auth.otp_used", "success"),
        ("auth.login", "success"),
        ("auth.logout", "success"),
        ("auth.otp_failed", "failure"),
    ]:
        assert expected in actions


async def test_code_by_sms_through_the_gateway_and_channel_remembered(client, users, sms_gateway):
    r = await password_step(client)
    body = await r.json()
    assert "sms" in body["methods"]
    assert body["mobile_hint"] == "+336****01"
    r = await client.post("/api/v1/auth/otp", json={"channel": "sms"})
    assert r.status == 200, await r.text()
    assert (await r.json())["sent_to"] == "+336****01"
    sms = await sms_gateway.wait_for("+33600000001")
    assert sms["sender"] == "Consilium"
    assert sms_gateway.headers[-1]["Authorization"] == "Bearer gateway-token"
    code = re.search(r"\b(\d{6})\b", sms["text"]).group(1)
    r = await client.post("/api/v1/auth/verify", json={"method": "otp", "code": code})
    assert r.status == 200, await r.text()
    await client.post("/api/v1/auth/logout")
    r = await password_step(client)
    assert (await r.json())["preferred"] == "sms"


async def test_session_token_changes_after_second_factor(client, make_client, users, smtp):
    await password_step(client)
    mfa_token = session_token(client)
    assert mfa_token
    await client.post("/api/v1/auth/otp", json={"channel": "email"})
    [mail] = await smtp.wait_for(REQUESTER)
    code = re.search(r"\b(\d{6})\b", smtp.text_of(mail)).group(1)
    r = await client.post("/api/v1/auth/verify", json={"method": "otp", "code": code})
    assert r.status == 200
    full_token = session_token(client)
    assert full_token and full_token != mfa_token
    # The token from before the second factor is dead (no session fixation).
    assert await client.app[SESSIONS].load(mfa_token) is None
    assert await client.app[SESSIONS].load(full_token) is not None


async def test_expired_one_time_code_is_refused(client, users, smtp):
    await password_step(client)
    await client.post("/api/v1/auth/otp", json={"channel": "email"})
    [mail] = await smtp.wait_for(REQUESTER)
    code = re.search(r"\b(\d{6})\b", smtp.text_of(mail)).group(1)
    store = client.app[SESSIONS].store
    s = await store.get(_hash(session_token(client)))
    s.data["mfa_expires"] = time.time() - 1  # five minutes later
    await store.put(s)
    r = await client.post("/api/v1/auth/verify", json={"method": "otp", "code": code})
    assert r.status == 401
    assert (await r.json())["code"] == "invalid_code"


async def test_totp_enrolment_login_and_recovery_codes(client, users):
    await client.sign_in_as(users["requester"].id)
    r = await client.post("/api/v1/me/totp")
    assert r.status == 200, await r.text()
    enrol = await r.json()
    assert enrol["otpauth_uri"].startswith("otpauth://totp/Consilium:")
    assert enrol["qr_svg"].startswith("data:image/svg+xml;base64,")
    assert b"<svg" in base64.b64decode(enrol["qr_svg"].split(",", 1)[1])
    totp = pyotp.TOTP(enrol["secret"])
    r = await client.post("/api/v1/me/totp/confirm", json={"code": "000000"})
    assert r.status == 422
    r = await client.post("/api/v1/me/totp/confirm", json={"code": totp.now()})
    assert r.status == 200, await r.text()
    codes = (await r.json())["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    me = await (await client.get("/api/v1/me")).json()
    assert me["totp_enabled"] and me["otp_channel"] == "totp"
    assert me["recovery_codes_left"] == 10
    client.sign_out()

    # Sign in with the app (the next time step: the enrolment code cannot be replayed).
    r = await password_step(client)
    body = await r.json()
    assert body["preferred"] == "totp" and "recovery" in body["methods"]
    r = await client.post("/api/v1/auth/verify", json={"method": "totp", "code": totp.now()})
    assert r.status == 401  # already used at enrolment
    r = await client.post(
        "/api/v1/auth/verify", json={"method": "totp", "code": totp.at(time.time() + 30)}
    )
    assert r.status == 200, await r.text()
    await client.post("/api/v1/auth/logout")

    # A recovery code works once.
    await password_step(client)
    r = await client.post("/api/v1/auth/verify", json={"method": "recovery", "code": codes[0]})
    assert r.status == 200, await r.text()
    await client.post("/api/v1/auth/logout")
    await password_step(client)
    r = await client.post("/api/v1/auth/verify", json={"method": "recovery", "code": codes[0]})
    assert r.status == 401
    r = await client.post(
        "/api/v1/auth/verify", json={"method": "recovery", "code": codes[1].lower()}
    )
    assert r.status == 200

    # Removing the app needs a code.
    r = await client.delete("/api/v1/me/totp", json={"code": "ZZZZZ-ZZZZZ"})
    assert r.status == 422
    r = await client.delete("/api/v1/me/totp", json={"code": codes[2]})
    assert r.status == 204, await r.text()
    me = await (await client.get("/api/v1/me")).json()
    assert not me["totp_enabled"] and me["otp_channel"] == "email"
    actions = await audit_actions(client)
    assert ("account.totp_enrol", "success") in actions
    assert ("account.totp_remove", "success") in actions


async def test_repeated_wrong_passwords_lock_the_account(client, users):
    for _ in range(MAX_FAILURES):
        r = await password_step(client, password="wrong-password-123")
        assert r.status == 401
        assert (await r.json())["code"] == "invalid_credentials"
    # Locked: even the right password is refused for now.
    r = await password_step(client)
    assert r.status == 423
    body = await r.json()
    assert body["code"] == "account_locked"
    assert 0 < int(r.headers["Retry-After"]) <= 60
    assert body["retry_after"] == int(r.headers["Retry-After"])
    actions = await audit_actions(client)
    assert actions.count(("auth.login", "failure")) == MAX_FAILURES
    assert ("auth.lockout", "denied") in actions
    assert ("auth.login", "denied") in actions


async def test_wrong_codes_lock_the_account_and_end_the_pending_sign_in(client, users):
    await password_step(client)
    for _ in range(MAX_FAILURES - 1):
        r = await client.post("/api/v1/auth/verify", json={"method": "otp", "code": "123456"})
        assert r.status == 401
    r = await client.post("/api/v1/auth/verify", json={"method": "otp", "code": "123456"})
    assert r.status == 423
    assert r.headers["Retry-After"]
    r = await client.post("/api/v1/auth/verify", json={"method": "otp", "code": "123456"})
    assert r.status == 401
    assert (await r.json())["code"] == "password_required"
    r = await password_step(client)
    assert r.status == 423


def _comparable(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("request_id", "instance")}


async def test_unknown_accounts_get_the_same_answers(client, users):
    known, unknown = [], []
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    for _ in range(MAX_FAILURES + 1):
        for label, email, bucket in (
            ("known", REQUESTER, known),
            ("unknown", "personne@nulle-part.fr", unknown),
        ):
            start = time.perf_counter()
            r = await password_step(client, email=email, password="wrong-password-123")
            timings[label].append(time.perf_counter() - start)
            bucket.append((r.status, _comparable(await r.json())))
    assert [s for s, _ in known] == [401] * MAX_FAILURES + [423]
    assert [s for s, _ in unknown] == [s for s, _ in known]
    for (_, a), (_, b) in zip(known[:MAX_FAILURES], unknown[:MAX_FAILURES], strict=True):
        assert a == b
    assert known[-1][1]["code"] == unknown[-1][1]["code"] == "account_locked"
    # Both paths verify an argon2 hash: an unknown address is not answered faster.
    fastest_known = min(timings["known"][:MAX_FAILURES])
    assert min(timings["unknown"][:MAX_FAILURES]) > fastest_known / 3
