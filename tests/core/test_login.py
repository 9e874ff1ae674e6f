"""Sign-in: password, then a one-time code (e-mail, SMS), an authenticator app or a recovery
code; repeated failures slow their source down (never lock the owner out) and alert the
owner and the administrators; answers that do not reveal which accounts exist."""

from __future__ import annotations

import asyncio
import base64
import re
import time

import pyotp
import pytest
from sqlalchemy import select

from core.accounts import User
from core.audit import AuditEntry
from core.context import DB, SESSIONS
from core.seed import DEMO_PASSWORD
from core.sessions import COOKIE, _hash
from core.throttle import SignInThrottle, Source
from tests.conftest import make_settings
from tests.core.conftest import reauthenticated

REQUESTER = "requerant@demo.consilium.fr"
MAX_FAILURES = 3
FIRST_DELAY = 30
ALERT_AFTER = 8
ATTACKER = {"X-Forwarded-For": "203.0.113.66"}


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
        login_first_delay_seconds=FIRST_DELAY,
        login_alert_failures=ALERT_AFTER,
        trusted_proxies=["127.0.0.1/32"],  # so each test client can say where it comes from
    )


@pytest.fixture(autouse=True)
async def _sends_settled(app):
    """Sign-ins during a delay send codes from background tasks: let them finish before the
    SMTP and SMS servers stop."""
    yield
    await settle(app)


def session_token(client) -> str:
    for cookie in client.client.session.cookie_jar:
        if cookie.key == COOKIE:
            return cookie.value
    return ""


async def password_step(client, email=REQUESTER, password=DEMO_PASSWORD, headers=None):
    return await client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}, headers=headers
    )


async def email_code_step(client, smtp, email=REQUESTER, headers=None):
    """Ask for a code by e-mail, read it off the SMTP server and type it."""
    before = len(smtp.to(email))
    r = await client.post("/api/v1/auth/otp", json={"channel": "email"}, headers=headers)
    assert r.status == 200, await r.text()
    mails = await smtp.wait_for(email, count=before + 1)
    code = re.search(r"\b(\d{6})\b", smtp.text_of(mails[-1])).group(1)
    return await client.post(
        "/api/v1/auth/verify", json={"method": "otp", "code": code}, headers=headers
    )


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
    await reauthenticated(client)
    r = await client.post("/api/v1/me/totp")
    assert r.status == 200, await r.text()
    enrol = await r.json()
    assert enrol["otpauth_uri"].startswith("otpauth://totp/Consilium:")
    assert enrol["qr_svg"].startswith("data:image/svg+xml;base64,")
    assert b"<svg" in base64.b64decode(enrol["qr_svg"].split(",", 1)[1])
    totp = pyotp.TOTP(enrol["secret"])
    r = await client.post("/api/v1/me/totp/confirm", json={"code": "000000"})
    assert r.status == 422
    enrolled_at = time.time()  # the codes below are relative to it (no 30 s boundary flake)
    r = await client.post("/api/v1/me/totp/confirm", json={"code": totp.at(enrolled_at)})
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
    r = await client.post(
        "/api/v1/auth/verify", json={"method": "totp", "code": totp.at(enrolled_at)}
    )
    assert r.status == 401  # already used at enrolment
    r = await client.post(
        "/api/v1/auth/verify", json={"method": "totp", "code": totp.at(enrolled_at + 30)}
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

    # New recovery codes (with a current app code) replace the old ones.
    async with client.app[DB].write() as uow:  # a minute later: the used steps are past
        user = await uow.session.get(User, users["requester"].id)
        user.preferences = {**user.preferences, "totp_last_step": -1}
    r = await client.post("/api/v1/me/totp/recovery-codes", json={"code": totp.now()})
    assert r.status == 200, await r.text()
    renewed = (await r.json())["recovery_codes"]
    assert len(renewed) == 10 and not set(renewed) & set(codes)
    codes = renewed

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


async def test_an_attacker_who_knows_the_address_does_not_lock_the_owner_out(
    client, make_client, users, smtp
):
    # The attack of the security review: wrong passwords for a practitioner's address, again
    # and again, from one address.
    statuses = []
    for _ in range(MAX_FAILURES * 3):
        r = await password_step(client, password="wrong-password-123", headers=ATTACKER)
        statuses.append(r.status)
    assert statuses[:MAX_FAILURES] == [401] * MAX_FAILURES
    assert set(statuses[MAX_FAILURES:]) == {429}
    r = await password_step(client, headers=ATTACKER)  # even the right password waits
    assert r.status == 429
    body = await r.json()
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert body["code"] == "login_throttled"
    # Every attempt during a delay counts, so the delay has grown to its cap (1 minute here).
    assert body["retry_after"] == int(r.headers["Retry-After"]) == 60
    # The owner, from her own address, signs in with her password and a code.
    owner = await make_client()
    elsewhere = {"X-Forwarded-For": "198.51.100.20"}
    r = await password_step(owner, headers=elsewhere)
    assert r.status == 200, await r.text()
    r = await email_code_step(owner, smtp, headers=elsewhere)
    assert r.status == 200, await r.text()
    assert (await (await owner.get("/api/v1/auth/session")).json())["name"] == "Dr Claire Martin"
    actions = await audit_actions(client)
    # Every wrong password is audited, during the delay too (it is checked, see below).
    assert actions.count(("auth.login", "failure")) == MAX_FAILURES * 3
    assert ("auth.throttle", "denied") in actions
    assert ("auth.login", "denied") in actions
    assert ("auth.login", "success") in actions


async def test_the_owner_gets_in_from_a_known_device_behind_the_attackers_address(
    client, make_client, users, smtp
):
    owner = await make_client()
    hospital = {"X-Forwarded-For": "192.0.2.10"}  # one NAT address for a whole hospital
    await password_step(owner, headers=hospital)
    assert (await email_code_step(owner, smtp, headers=hospital)).status == 200
    await owner.post("/api/v1/auth/logout", headers=hospital)
    # Someone behind the same address hammers her account.
    for _ in range(MAX_FAILURES * 2):
        await password_step(client, password="wrong-password-123", headers=hospital)
    assert (await password_step(client, headers=hospital)).status == 429
    # Her browser has signed in before: its failures and delays are its own.
    r = await password_step(owner, headers=hospital)
    assert r.status == 200, await r.text()
    assert (await email_code_step(owner, smtp, headers=hospital)).status == 200


async def enrol_totp(app, user_id) -> pyotp.TOTP:
    """An authenticator app enrolled on the account (enrolment has its own test)."""
    async with app[DB].write() as uow:
        user = await uow.session.get(User, user_id)
        user.totp_secret, user.totp_enabled = pyotp.random_base32(), True
        return pyotp.TOTP(user.totp_secret)


async def test_the_owner_gets_in_at_once_behind_a_throttled_attackers_address(
    client, make_client, users, smtp
):
    """Attacker and owner share 127.0.0.1. The owner's known device (device cookie) and her
    new device (password and authenticator code in one request) both get a full session at
    once; the attacker stays slowed down, even with the right password."""
    totp = await enrol_totp(client.app, users["requester"].id)
    known = await make_client()
    r = await password_step(known)
    assert r.status == 200, await r.text()
    r = await known.post("/api/v1/auth/verify", json={"method": "totp", "code": totp.now()})
    assert r.status == 200, await r.text()
    await known.post("/api/v1/auth/logout")
    async with client.app[DB].write() as uow:  # the next code may fall in the same step
        user = await uow.session.get(User, users["requester"].id)
        user.preferences = {**user.preferences, "totp_last_step": -1}

    for _ in range(MAX_FAILURES * 2):  # from 127.0.0.1, no device cookie
        await password_step(client, password="wrong-password-123")
    assert (await password_step(client)).status == 429
    # The attacker cannot use the one-request sign-in to get past the delay either.
    r = await client.post(
        "/api/v1/auth/login/code",
        json={
            "email": REQUESTER,
            "password": "wrong-password-123",
            "method": "totp",
            "code": totp.now(),
        },
    )
    assert r.status == 429 and (await r.json())["code"] == "login_throttled"
    r = await client.post(
        "/api/v1/auth/login/code",
        json={"email": REQUESTER, "password": DEMO_PASSWORD, "method": "totp", "code": "123456"},
    )
    assert r.status == 429 and (await r.json())["code"] == "login_throttled"

    # Her known browser: password, then second factor, no delay.
    r = await password_step(known)
    assert r.status == 200, await r.text()
    r = await known.post("/api/v1/auth/verify", json={"method": "totp", "code": totp.now()})
    assert r.status == 200, await r.text()
    await known.post("/api/v1/auth/logout")
    async with client.app[DB].write() as uow:
        user = await uow.session.get(User, users["requester"].id)
        user.preferences = {**user.preferences, "totp_last_step": -1}

    # A new device: password and code in one request, a full session at once.
    fresh = await make_client()
    r = await fresh.post(
        "/api/v1/auth/login/code",
        json={"email": REQUESTER, "password": DEMO_PASSWORD, "method": "totp", "code": totp.now()},
    )
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["name"] == "Dr Claire Martin" and body["csrf_token"]
    assert (await (await fresh.get("/api/v1/auth/session")).json())["name"] == "Dr Claire Martin"
    # That device is now known: its cookie was remembered by the account.
    async with client.app[DB].read() as session:
        user = await session.get(User, users["requester"].id)
        assert len(user.preferences["devices"]) == 2

    # The attacker, at the same address, is still slowed down with the right password.
    r = await password_step(client)
    assert r.status == 429 and (await r.json())["code"] == "login_throttled"


async def test_password_and_code_in_one_request_without_a_delay(client, users):
    totp = await enrol_totp(client.app, users["requester"].id)
    one = {"email": REQUESTER, "password": DEMO_PASSWORD, "method": "totp"}
    r = await client.post("/api/v1/auth/login/code", json={**one, "code": "000000"})
    assert r.status == 401 and (await r.json())["code"] == "invalid_credentials"
    r = await client.post(
        "/api/v1/auth/login/code", json={**one, "password": "wrong-pw-123", "code": totp.now()}
    )
    assert r.status == 401 and (await r.json())["code"] == "invalid_credentials"
    unknown = {**one, "email": "personne@demo.consilium.fr", "code": totp.now()}
    r = await client.post("/api/v1/auth/login/code", json=unknown)
    assert r.status == 401 and (await r.json())["code"] == "invalid_credentials"
    r = await client.post("/api/v1/auth/login/code", json={**one, "code": totp.now()})
    assert r.status == 200, await r.text()
    actions = await audit_actions(client)
    assert ("auth.otp_failed", "failure") in actions
    assert ("auth.login", "success") in actions


async def test_delays_double_with_each_further_failure(app, client, users):
    from core.context import LIMITER, SETTINGS

    settings = app[SETTINGS]
    settings.login_first_delay_seconds = 1  # short delays, so the test can wait them out
    throttle = SignInThrottle(app[LIMITER], settings)
    source = Source(ip=ATTACKER["X-Forwarded-For"])
    for _ in range(MAX_FAILURES):
        assert (
            await password_step(client, password="wrong-pw-123", headers=ATTACKER)
        ).status == 401
    seen = []
    for _ in range(2):  # during the delay every attempt counts: the delay doubles each time
        r = await password_step(client, password="wrong-pw-123", headers=ATTACKER)
        assert r.status == 429
        seen.append((await r.json())["retry_after"])
    await wait_until(lambda: throttle.wait(REQUESTER, source), 0)
    r = await password_step(client, password="wrong-pw-123", headers=ATTACKER)
    assert r.status == 401  # once the delay is over, the next try is checked
    r = await password_step(client, password="wrong-pw-123", headers=ATTACKER)
    seen.append((await r.json())["retry_after"])
    assert seen == [2, 4, 16]


async def wait_until(probe, expected, timeout=30.0):
    """Poll an async probe until it returns ``expected`` (no fixed sleeps)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (value := await probe()) != expected:
        assert loop.time() < deadline, f"still {value!r}, waiting for {expected!r}"
        await asyncio.sleep(0.05)


async def test_a_burst_from_many_addresses_alerts_the_owner_and_admins_once(client, users, smtp):
    admin = users["admin"].email
    for i in range(ALERT_AFTER + 4):  # a botnet: every try from another address
        r = await password_step(
            client, password="wrong-password-123", headers={"X-Forwarded-For": f"203.0.113.{i}"}
        )
        assert r.status == 401  # each address has its own free failures
    [owner_mail] = await smtp.wait_for(REQUESTER)
    assert "tentatives de connexion" in owner_mail["Subject"]
    assert "pas bloqué" in smtp.text_of(owner_mail)
    [admin_mail] = await smtp.wait_for(admin)
    assert REQUESTER in smtp.text_of(admin_mail)
    actions = await audit_actions(client)
    assert actions.count(("auth.login_alert", "denied")) == 1  # once per window
    # The account is not locked: the owner's right password still opens the second step.
    r = await password_step(client, headers={"X-Forwarded-For": "198.51.100.20"})
    assert r.status == 200


async def test_wrong_codes_slow_the_source_and_end_the_pending_sign_in(client, users):
    await password_step(client, headers=ATTACKER)
    for _ in range(MAX_FAILURES - 1):
        r = await client.post(
            "/api/v1/auth/verify", json={"method": "otp", "code": "123456"}, headers=ATTACKER
        )
        assert r.status == 401 and (await r.json())["code"] == "invalid_code"
    r = await client.post(
        "/api/v1/auth/verify", json={"method": "otp", "code": "123456"}, headers=ATTACKER
    )
    assert r.status == 429 and (await r.json())["code"] == "login_throttled"
    # The pending sign-in is over; this source now waits before any password.
    r = await client.post(
        "/api/v1/auth/verify", json={"method": "otp", "code": "123456"}, headers=ATTACKER
    )
    assert r.status == 401
    assert (await r.json())["code"] == "password_required"
    r = await password_step(client, headers=ATTACKER)
    assert r.status == 429 and r.headers["Retry-After"]


def _comparable(body: dict) -> dict:
    # email_hint is the masked *typed* address (r***@…, p***@…): computed from the request.
    return {k: v for k, v in body.items() if k not in ("request_id", "instance", "email_hint")}


# content-length follows the length of the typed address (email_hint): compared apart.
_VARYING_HEADERS = {"date", "x-request-id", "content-length"}


def _headers(r) -> dict[str, str]:
    out = {k.lower(): v for k, v in r.headers.items() if k.lower() not in _VARYING_HEADERS}
    if "set-cookie" in out:  # a random token each time: compare the name and attributes
        out["set-cookie"] = re.sub(r"=[^;]*;", "=…;", out["set-cookie"], count=1)
    return out


async def test_unknown_accounts_get_the_same_answers(client, users):
    """Status, body and headers, through the free failures and the throttle, with time
    passing: nothing tells an address with an account from one without."""
    answers: dict[str, list] = {"known": [], "unknown": []}
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    emails = {"known": REQUESTER, "unknown": "personne@nulle-part.fr"}

    async def attempt_both() -> None:
        for label, email in emails.items():
            start = time.perf_counter()
            r = await password_step(client, email=email, password="wrong-password-123")
            timings[label].append(time.perf_counter() - start)
            answers[label].append((r.status, _comparable(await r.json()), _headers(r)))

    for _ in range(MAX_FAILURES + 1):
        await attempt_both()
    # Time passes during the delay (a countdown computed from when each block began would
    # differ, as it did: 896 s against 900 s).
    loop = asyncio.get_running_loop()
    throttled_at = loop.time()
    await wait_until(lambda: asyncio.sleep(0.05, result=loop.time() - throttled_at > 1.5), True)
    await attempt_both()
    known, unknown = answers["known"], answers["unknown"]
    assert [s for s, _, _ in known] == [401] * MAX_FAILURES + [429, 429]
    assert known == unknown
    assert known[-1][1]["code"] == "login_throttled"
    assert known[-1][1]["retry_after"] == known[-2][1]["retry_after"] == 60
    assert known[-1][1]["code_sent_if_correct"] is True
    # Both paths verify an argon2 hash: an unknown address is not answered faster.
    fastest_known = min(timings["known"][:MAX_FAILURES])
    assert min(timings["unknown"][:MAX_FAILURES]) > fastest_known / 3


# -- a code sent while the address is slowed down (issue 12, finding 2) ---------------------


async def settle(app) -> None:
    """Wait for the background sends and alerts of the sign-in routes."""
    from core.login import TASKS

    while app[TASKS]:
        await asyncio.gather(*list(app[TASKS]), return_exceptions=True)


def pending_cookie(client) -> str:
    for cookie in client.client.session.cookie_jar:
        if cookie.key == "consilium_signin":
            return cookie.value
    return ""


def codes_in(smtp, email=REQUESTER) -> list:
    return [m for m in smtp.to(email) if m["Subject"] == "Votre code de connexion Consilium"]


async def test_an_email_code_owner_gets_in_at_once_from_a_new_device_behind_the_attacker(
    client, make_client, users, smtp
):
    """Attacker and owner share 127.0.0.1 (a hospital's NAT). The owner has no authenticator
    app and her browser is new (no device cookie): password, then the code received by
    e-mail, and she is in at once. The attacker's answers for a wrong password and for the
    right one are the same, nothing is sent for a wrong one, and he stays slowed down."""
    for _ in range(MAX_FAILURES):
        assert (await password_step(client, password="wrong-password-123")).status == 401

    wrong = await password_step(client, password="wrong-password-456")
    wrong_body = await wrong.json()
    await settle(client.app)
    assert codes_in(smtp) == []  # a wrong password sends nothing
    # The attacker types the wrong code on his (decoy) pending sign-in: the answer is the
    # one a real pending sign-in gives.
    r = await client.post("/api/v1/auth/login/confirm", json={"code": "123456"})
    decoy_answer = (r.status, (await r.json())["code"])

    right = await password_step(client)  # the attacker has the password, not the mailbox
    right_body = await right.json()
    assert wrong.status == right.status == 429
    assert wrong_body.keys() == right_body.keys()
    assert _comparable(wrong_body) == _comparable(right_body)
    assert wrong_body["code"] == "login_throttled" and wrong_body["code_sent_if_correct"]
    assert wrong_body["email_hint"] == "r***@demo.consilium.fr"
    assert _headers(wrong) == _headers(right)
    assert wrong.headers["Retry-After"] == right.headers["Retry-After"]
    assert wrong.headers["Content-Length"] == right.headers["Content-Length"]
    assert pending_cookie(client)
    await settle(client.app)
    assert len(codes_in(smtp)) == 1  # the owner got a code (and a warning) she did not ask for
    assert "ralenties" in smtp.text_of(codes_in(smtp)[0])
    r = await client.post("/api/v1/auth/login/confirm", json={"code": "654321"})
    assert (r.status, (await r.json())["code"]) == decoy_answer == (401, "invalid_code")

    # The owner, on a brand-new browser behind the same address.
    owner = await make_client()
    r = await password_step(owner)
    assert r.status == 429 and (await r.json())["code_sent_if_correct"]
    await settle(owner.app)
    assert len(codes_in(smtp)) == 2
    code = re.search(r"\b(\d{6})\b", smtp.text_of(codes_in(smtp)[-1])).group(1)
    r = await owner.post("/api/v1/auth/login/confirm", json={"code": code})
    assert r.status == 200, await r.text()
    assert (await r.json())["name"] == "Dr Claire Martin"
    me = await owner.get("/api/v1/auth/session")
    assert me.status == 200 and (await me.json())["name"] == "Dr Claire Martin"
    # Single use.
    r = await owner.post("/api/v1/auth/login/confirm", json={"code": code})
    assert r.status == 401

    # The attacker is still slowed down, with the right password too.
    r = await password_step(client)
    assert r.status == 429 and (await r.json())["code"] == "login_throttled"
    r = await client.get("/api/v1/auth/session")
    assert r.status == 401
    actions = await audit_actions(client)
    assert ("auth.otp_sent", "success") in actions
    assert ("auth.otp_failed", "failure") in actions
    assert ("auth.login", "success") in actions
    async with client.app[DB].read() as session:
        rows = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "auth.login"))
        ).scalars()
        reasons = {(r.details or {}).get("reason") for r in rows}
    assert {"throttled", "throttled_code_sent"} <= reasons


async def test_codes_sent_while_slowed_down_are_capped_and_the_owner_alerted(
    client, users, smtp, sms_gateway
):
    from core.context import SETTINGS

    cap = client.app[SETTINGS].login_throttled_codes
    async with client.app[DB].write() as uow:  # this owner's codes go by SMS
        user = await uow.session.get(User, users["requester"].id)
        user.otp_channel = "sms"
    for _ in range(MAX_FAILURES):
        await password_step(client, password="wrong-password-123", headers=ATTACKER)
    for _ in range(cap + 3):  # someone who knows the password keeps trying
        r = await password_step(client, headers=ATTACKER)
        assert r.status == 429 and (await r.json())["code_sent_if_correct"]
    await settle(client.app)
    sms = [m for m in sms_gateway.messages if m.get("to") == "+33600000001"]
    assert len(sms) == cap
    assert codes_in(smtp) == []  # by SMS, her channel
    alerts = [m for m in smtp.to(REQUESTER) if "saisi depuis ailleurs" in m["Subject"]]
    assert len(alerts) == 1
    actions = await audit_actions(client)
    assert actions.count(("auth.otp_sent", "success")) == cap
    async with client.app[DB].read() as session:
        rows = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "auth.login_alert"))
        ).scalars()
        assert "code_limit" in {(r.details or {}).get("reason") for r in rows}
