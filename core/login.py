"""Sign-in with strong authentication (seed guide 000, section 1.1.3).

1. ``POST /auth/login`` with e-mail and password opens a session at stage ``mfa``.
2. The user picks a second factor: ``POST /auth/otp`` sends a 6-digit one-time code by SMS
   or e-mail (valid 5 minutes, single use), or they type the code of their authenticator app
   (TOTP), or a one-time recovery code.
3. ``POST /auth/verify`` checks it and promotes the session to ``full`` under a new token.

Wrong passwords and codes never lock an account: they slow down the address or device they
come from (:mod:`core.throttle`; 429 ``login_throttled`` with ``Retry-After``), and a burst
on one account alerts its owner and the administrators. Every answer of step 1 is the same
whether the account exists or not: same status, body, headers, counters, and an argon2 check
against a dummy hash for unknown addresses.

While a delay runs, a password is still checked, but the answer is the same whether it is
right or wrong (429 ``login_throttled`` saying that a code was sent *if* the password was
right, and a pending-sign-in cookie either way): only with the right password is a one-time
code sent to the account's channel (at most ``login_throttled_codes`` per 15 minutes), and
``POST /auth/login/confirm`` with that code opens the session at once. The owner gets in
from a new device behind an attacker's address; the attacker learns nothing.

An OpenID Connect provider (Pro Santé Connect) plugs in at step 3: once the provider has
identified the practitioner, its callback calls :func:`core.auth.start_session` with
``stage="full"`` — the account, the session and the cookies are the same (see
:mod:`core.oidc` and docs/security.md).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import select

from core import accounts, audit, mfa, oidc, passwords
from core.accounts import AccountEmail
from core.api import Api
from core.auth import (
    SESSION,
    clear_session_cookie,
    client_ip,
    principal,
    set_session_cookie,
    start_session,
)
from core.context import DB, LIMITER, NOTIFIER, SESSIONS, SETTINGS
from core.errors import BadRequest, Problem, TooManyRequests, Unauthorized
from core.http import problem_response
from core.notify import DeliveryError, Email
from core.throttle import WINDOW, SignInThrottle, Source, account_key, device_hash

log = logging.getLogger(__name__)

Method = Literal["email", "sms", "totp", "recovery"]

DEVICE_COOKIE = "consilium_device"
# A sign-in made while its source was slowed down: a code may have been sent (core docstring).
PENDING_COOKIE = "consilium_signin"
PENDING_KIND = "signin"
DEVICE_MAX_AGE = 400 * 24 * 3600  # the longest browsers keep a cookie
TASKS: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("login_tasks")


class LoginThrottled(TooManyRequests):
    code, title = "login_throttled", "Too many failed attempts from here"


class LoginIn(BaseModel):
    email: AccountEmail
    password: str = Field(min_length=1, max_length=512)


class LoginWithCodeIn(LoginIn):
    """Password and authenticator (or recovery) code in one request: the way in from a new
    device at an address that is being slowed down."""

    method: Literal["totp", "recovery"]
    code: str = Field(min_length=6, max_length=20)


class LoginOut(BaseModel):
    status: Literal["mfa_required"]
    methods: list[Method]
    preferred: Method
    email_hint: str
    mobile_hint: str | None


class ConfirmIn(BaseModel):
    """The code received after a sign-in made while this address was slowed down."""

    code: str = Field(min_length=6, max_length=20)


class OtpIn(BaseModel):
    channel: Literal["email", "sms"]


class OtpOut(BaseModel):
    sent_to: str
    expires_in: int


class VerifyIn(BaseModel):
    method: Literal["otp", "totp", "recovery"]
    code: str = Field(min_length=6, max_length=20)


class SessionOut(BaseModel):
    kind: str
    id: str
    name: str
    role: str
    csrf_token: str
    # "psc" for a Pro Santé Connect session: signing out also ends the provider's session.
    sso: str | None = None
    # After a password + code sign-in that had a Pro Santé Connect identity waiting:
    # "linked", or why it was not ("rpps_mismatch", "rpps_taken").
    psc_link: str | None = None


def mask_email(email: str) -> str:
    name, _, domain = email.partition("@")
    return f"{name[:1]}***@{domain}"


def mask_phone(phone: str | None) -> str | None:
    return f"{phone[:4]}****{phone[-2:]}" if phone else None


def methods_of(user: accounts.User) -> list[Method]:
    methods: list[Method] = ["email"]
    if user.mobile:
        methods.append("sms")
    if user.totp_enabled:
        methods += ["totp", "recovery"]
    return methods


def device_id(request: web.Request) -> str | None:
    """The hash of this browser's device cookie (set at the first good password)."""
    raw = request.cookies.get(DEVICE_COOKIE, "")
    return device_hash(raw) if 20 <= len(raw) <= 64 else None


def _device_value(request: web.Request) -> str:
    """This browser's device cookie, or a new one (remembered by the account at sign-in)."""
    raw = request.cookies.get(DEVICE_COOKIE, "")
    return raw if 20 <= len(raw) <= 64 else secrets.token_urlsafe(24)


def _set_device_cookie(
    request: web.Request, response: web.StreamResponse, raw: str | None = None
) -> None:
    raw = raw or _device_value(request)
    response.set_cookie(
        DEVICE_COOKIE,
        raw,
        max_age=DEVICE_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=request.app[SETTINGS].https,
        path="/api/v1/auth/",
    )


def _source(request: web.Request, user: accounts.User | None) -> Source:
    device = device_id(request)
    known = device if user is not None and accounts.knows_device(user, device) else None
    return Source(ip=client_ip(request), known_device=known)


async def _attempts_allowed(request: web.Request, source: Source, bucket: str) -> None:
    """At most 30 attempts a minute per address (argon2 is costly), counted per known device
    for the browsers an account knows: a flood from a shared address does not reach them."""
    key = (
        f"{bucket}-dev:{source.known_device}" if source.known_device else f"{bucket}-ip:{source.ip}"
    )
    if not await request.app[LIMITER].hit(key, limit=30, window=60):
        raise TooManyRequests(
            "Too many sign-in attempts from this address; wait a minute", retry_after=60
        )


def _spawn(app: web.Application, coro: Any) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    app[TASKS].add(task)
    task.add_done_callback(app[TASKS].discard)


async def _alert(app: web.Application, email: str, ip: str, failures: int) -> None:
    """Tell the owner and every active administrator about a burst of failed sign-ins."""
    async with app[DB].read() as session:
        user = await accounts.get_by_email(session, email)
        admins = (
            await session.execute(
                select(accounts.User.email).where(
                    accounts.User.role == accounts.Role.admin, accounts.User.active.is_(True)
                )
            )
        ).scalars()
        admin_emails = [a for a in admins if a != email]
    if user is None:
        return
    await audit.record_now(
        app[DB],
        "auth.login_alert",
        object_type="user",
        object_id=user.id,
        ip=ip,
        outcome="denied",
        actor_label=email,
        failures=failures,
    )
    owner_text = (
        f"Bonjour {user.display_name},\n\n"
        f"{failures} tentatives de connexion à votre compte Consilium ont échoué ces dernières "
        f"minutes (dernière adresse : {ip}).\nVotre compte n'est pas bloqué : les tentatives "
        "sont ralenties à leur source. Si ce n'était pas vous, changez votre mot de passe et "
        "prévenez l'administrateur de votre établissement.\n\nConsilium"
    )
    admin_text = (
        f"{failures} tentatives de connexion au compte {email} ont échoué ces dernières "
        f"minutes (dernière adresse : {ip}). Les tentatives sont ralenties à leur source ; "
        "le journal d'audit (auth.login, auth.otp_failed) donne le détail.\n\nConsilium"
    )
    messages = [Email(to=email, subject="Consilium — tentatives de connexion", text=owner_text)]
    messages += [
        Email(to=a, subject="Consilium — tentatives de connexion suspectes", text=admin_text)
        for a in admin_emails
    ]
    for msg in messages:
        try:
            await app[NOTIFIER].send_email(msg)
        except Exception:
            log.exception("sign-in alert to %s failed", msg.to)


async def _failed(
    request: web.Request, throttle: SignInThrottle, email: str, source: Source
) -> int:
    """Count a failure; returns the delay it started (0 if none)."""
    f = await throttle.failure(email, source)
    if f.delay:
        await audit.record_now(
            request.app[DB],
            "auth.throttle",
            object_type="sign-in",
            ip=source.ip,
            outcome="denied",
            actor_label=email,
            delay=f.delay,
            failures=f.failures,
            source="device" if source.known_device else "address",
        )
    if f.alert:
        _spawn(request.app, _alert(request.app, email, source.ip, f.account_failures))
    return f.delay


def code_text(ttl_seconds: int, code: str, *, throttled: bool = False) -> str:
    text = (
        f"Votre code de connexion Consilium : {code}\n"
        f"Il est valable {ttl_seconds // 60} minutes et ne sert qu'une fois.\n"
    )
    if throttled:
        return text + (
            "Votre mot de passe vient d'être saisi depuis une adresse où les tentatives de "
            "connexion sont ralenties. Si ce n'était pas vous, ne communiquez ce code à "
            "personne, changez votre mot de passe et prévenez l'administrateur."
        )
    return text + "Si vous n'êtes pas à l'origine de cette demande, ignorez ce message."


async def _send_pending_code(
    app: web.Application, user: accounts.User, channel: str, code: str, ip: str
) -> None:
    """Send the code of a sign-in made during a delay (in the background: the answer must
    not take longer when the password was right)."""
    settings = app[SETTINGS]
    text = code_text(settings.otp_ttl_seconds, code, throttled=True)
    outcome = "success"
    try:
        if channel == "sms" and user.mobile:
            await app[NOTIFIER].send_sms(user.mobile, text)
        else:
            await app[NOTIFIER].send_email(
                Email(to=user.email, subject="Votre code de connexion Consilium", text=text)
            )
    except DeliveryError:
        log.warning("sign-in code for a throttled source could not be sent by %s", channel)
        outcome = "failure"
    await audit.record_now(
        app[DB],
        "auth.otp_sent",
        object_type="user",
        object_id=user.id,
        ip=ip,
        outcome=outcome,
        actor_label=user.email,
        channel=channel,
        while_throttled=True,
    )


async def _alert_code_cap(app: web.Application, user: accounts.User, ip: str) -> None:
    """The right password keeps coming from a slowed-down address past the code limit: tell
    the owner (once per window). Her password is known to someone else, or she is trying."""
    await audit.record_now(
        app[DB],
        "auth.login_alert",
        object_type="user",
        object_id=user.id,
        ip=ip,
        outcome="denied",
        actor_label=user.email,
        reason="code_limit",
    )
    text = (
        f"Bonjour {user.display_name},\n\n"
        "Votre mot de passe Consilium a été saisi correctement à plusieurs reprises depuis une "
        f"adresse où les tentatives de connexion sont ralenties (dernière adresse : {ip}).\n"
        f"Plus aucun code ne sera envoyé pendant {WINDOW // 60} minutes. Si ce n'était pas "
        "vous, votre mot de passe est connu de quelqu'un d'autre : changez-le et prévenez "
        "l'administrateur de votre établissement.\n\nConsilium"
    )
    try:
        await app[NOTIFIER].send_email(
            Email(
                to=user.email, subject="Consilium — mot de passe saisi depuis ailleurs", text=text
            )
        )
    except Exception:
        log.exception("code-limit alert failed")


async def _throttled_attempt(
    request: web.Request,
    throttle: SignInThrottle,
    body: LoginIn,
    user: accounts.User | None,
    source: Source,
    wait: int,
) -> web.StreamResponse:
    """A password typed while its source waits: one answer whether it is right or wrong.

    Either way the attempt counts as a failure (so the next ``Retry-After`` tells nothing
    either), a pending sign-in is stored behind a fresh cookie and the answer is 429
    ``login_throttled`` with ``code_sent_if_correct``. Only the right password of an active
    account, within the per-account code limit, puts a code in the pending sign-in and sends
    it (in the background); otherwise the pending sign-in is a decoy no code opens."""
    app = request.app
    settings, db, limiter = app[SETTINGS], app[DB], app[LIMITER]
    email = body.email
    stored = user.password_hash if user is not None else None
    ok = await asyncio.to_thread(passwords.verify_password, stored, body.password)
    right = user is not None and ok and user.active
    delay = await _failed(request, throttle, email, source)
    cap_key = f"signin-code:{account_key(email)}"
    send = False
    if right:
        send = await limiter.hit(cap_key, limit=settings.login_throttled_codes, window=WINDOW)
    else:
        await limiter.block_length(cap_key)  # the same round trip, nothing counted
    data: dict[str, Any] = {"email": email, "at": time.time(), "tries": 0}
    code = ""
    if right and send:
        assert user is not None
        channel = "sms" if user.otp_channel == "sms" and user.mobile else "email"
        code, state = mfa.new_one_time_code(settings.secret_key, settings.otp_ttl_seconds)
        data.update(state, mfa_channel=channel)
    token, _ = await app[SESSIONS].create(
        kind=PENDING_KIND,
        subject_id=user.id if right and send and user is not None else uuid.uuid4(),
        stage="pending",
        ip=source.ip,
        user_agent=request.headers.get("User-Agent", ""),
        data=data,
    )
    await audit.record_now(
        db,
        "auth.login",
        object_type="user" if user is not None else "sign-in",
        object_id=user.id if user is not None else "",
        ip=source.ip,
        outcome="denied" if right else "failure",
        actor_label=email,
        reason="throttled_code_sent" if right and send else "throttled",
    )
    if right and user is not None:
        if send:
            _spawn(app, _send_pending_code(app, user, data["mfa_channel"], code, source.ip))
        elif await limiter.first(cap_key + ":alerted", window=WINDOW):
            _spawn(app, _alert_code_cap(app, user, source.ip))
    problem = LoginThrottled(
        "Too many failed attempts from here. If the password was right, a sign-in code has "
        "just been sent to the account's usual channel: type it to sign in now.",
        retry_after=max(wait, delay),
        code_sent_if_correct=True,
        email_hint=mask_email(email),
        expires_in=settings.otp_ttl_seconds,
    )
    resp = problem_response(problem, request)
    resp.set_cookie(
        PENDING_COOKIE,
        token,
        max_age=settings.otp_ttl_seconds,
        httponly=True,
        samesite="Strict",
        secure=settings.https,
        path="/api/v1/auth/",
    )
    return resp


async def _full_session(
    request: web.Request, user_id: uuid.UUID, label: str, role: str, device: str | None
) -> web.Response:
    """Open a full session at once (password and second factor proven in one go): the
    answer carries the session, its CSRF token and the known-device cookie. A full sign-in is
    a fresh re-authentication (docs/security.md)."""
    resp = web.Response(content_type="application/json")
    s = await start_session(
        request,
        resp,
        kind="user",
        subject_id=user_id,
        stage="full",
        data={"reauth_at": time.time()},
    )
    out = SessionOut(kind="user", id=str(user_id), name=label, role=role, csrf_token=s.csrf_token)
    resp.text = out.model_dump_json()
    _set_device_cookie(request, resp, device)
    return resp


def setup(app: web.Application) -> None:
    api = Api.of(app)
    tasks: set[asyncio.Task[None]] = set()
    app[TASKS] = tasks

    async def drain(app: web.Application) -> None:
        # At shutdown, before the cleanup closes the database and the notifier: a send or an
        # alert still running is cancelled and awaited, so none outlives what it uses.
        tasks: list[asyncio.Task[None]] = [*app[TASKS]]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    app.on_shutdown.append(drain)

    def throttle_of(request: web.Request) -> SignInThrottle:
        return SignInThrottle(request.app[LIMITER], request.app[SETTINGS])

    @api.post(
        "/auth/login",
        body=LoginIn,
        response=LoginOut,
        auth="none",
        tags=["auth"],
        errors=[401, 429],
    )
    async def login(request: web.Request, body: LoginIn) -> web.StreamResponse:
        """Check e-mail and password; the second factor comes next. Repeated failures slow
        down the address or device they come from (429 ``login_throttled``), never the
        account's owner elsewhere."""
        settings = request.app[SETTINGS]
        db = request.app[DB]
        ip = client_ip(request)
        email = body.email
        throttle = throttle_of(request)
        async with db.read() as session:
            user = await accounts.get_by_email(session, email)
        source = _source(request, user)
        await _attempts_allowed(request, source, "login")
        wait = await throttle.wait(email, source)
        if await throttle.anomalous(email):
            # Many sources failing on this address: every attempt waits a little (no lock).
            await asyncio.sleep(settings.login_anomaly_delay_ms / 1000)
        if wait:
            return await _throttled_attempt(request, throttle, body, user, source, wait)
        # argon2 runs in a worker thread (it releases the GIL): a burst of sign-ins does not
        # stall the event loop that also carries media. Unknown accounts are checked against
        # a dummy hash: same work, same time.
        stored = user.password_hash if user is not None else None
        ok = await asyncio.to_thread(passwords.verify_password, stored, body.password)
        if user is None or not ok or not user.active:
            await audit.record_now(
                db,
                "auth.login",
                object_type="user",
                object_id=user.id if user is not None else "",
                ip=ip,
                outcome="failure",
                actor_label=email,
            )
            await _failed(request, throttle, email, source)
            raise Unauthorized("Wrong e-mail or password", code="invalid_credentials")
        if stored and passwords.needs_rehash(stored):
            new_hash = await asyncio.to_thread(passwords.hash_password, body.password)
            await accounts.rehash_password(db, user.id, new_hash)
        methods = methods_of(user)
        preferred: Method = user.otp_channel if user.otp_channel in methods else "email"
        out = LoginOut(
            status="mfa_required",
            methods=methods,
            preferred=preferred,
            email_hint=mask_email(user.email),
            mobile_hint=mask_phone(user.mobile),
        )
        resp = web.json_response(out.model_dump(mode="json"))
        _set_device_cookie(request, resp)
        await start_session(request, resp, kind="user", subject_id=user.id, stage="mfa")
        return resp

    @api.post(
        "/auth/login/code",
        body=LoginWithCodeIn,
        response=SessionOut,
        auth="none",
        tags=["auth"],
        errors=[401, 429],
    )
    async def login_with_code(request: web.Request, body: LoginWithCodeIn) -> web.StreamResponse:
        """Password and authenticator-app (or recovery) code in one request: a full sign-in at
        once. Both are checked even while this address is slowed down by someone else's
        failures, so the owner gets in from a new device behind the attacker's address;
        any failure counts and answers like a wrong password (or 429 during a delay)."""
        settings = request.app[SETTINGS]
        db = request.app[DB]
        email = body.email
        throttle = throttle_of(request)
        async with db.read() as session:
            user = await accounts.get_by_email(session, email)
        source = _source(request, user)
        await _attempts_allowed(request, source, "login-code")
        wait = await throttle.wait(email, source)
        if await throttle.anomalous(email):
            await asyncio.sleep(settings.login_anomaly_delay_ms / 1000)

        async def refuse() -> web.StreamResponse:
            delay = await _failed(request, throttle, email, source)
            if wait or delay:
                raise LoginThrottled(
                    "Too many failed attempts from here; try again later",
                    retry_after=max(wait, delay),
                )
            raise Unauthorized("Wrong e-mail, password or code", code="invalid_credentials")

        stored = user.password_hash if user is not None else None
        ok = await asyncio.to_thread(passwords.verify_password, stored, body.password)
        if user is None or not ok or not user.active:
            await audit.record_now(
                db,
                "auth.login",
                object_type="user",
                object_id=user.id if user is not None else "",
                ip=source.ip,
                outcome="failure",
                actor_label=email,
            )
            return await refuse()
        device = _device_value(request)
        result = await accounts.check_second_factor(
            db,
            user.id,
            method=body.method,
            code=body.code,
            pending={},
            secret_key=settings.secret_key,
            ip=source.ip,
            device=device_hash(device),
        )
        if result is None or not result.ok:  # auth.otp_failed is written by the check
            return await refuse()
        if not wait:  # a delay running here may be an attacker's: it is not forgiven
            await throttle.success(email, source)
        if stored and passwords.needs_rehash(stored):
            new_hash = await asyncio.to_thread(passwords.hash_password, body.password)
            await accounts.rehash_password(db, user.id, new_hash)
        return await _full_session(request, user.id, result.label, result.role, device)

    @api.post(
        "/auth/login/confirm",
        body=ConfirmIn,
        response=SessionOut,
        auth="none",
        tags=["auth"],
        errors=[401, 429],
    )
    async def confirm(request: web.Request, body: ConfirmIn) -> web.StreamResponse:
        """The code sent after a right password typed while this address was slowed down
        (429 ``login_throttled`` with ``code_sent_if_correct``): a full session at once. A
        wrong code counts as a failure; a few end the pending sign-in. Decoy pending sign-ins
        (wrong password, unknown address, code limit reached) answer exactly the same."""
        settings = request.app[SETTINGS]
        db = request.app[DB]
        sessions = request.app[SESSIONS]
        raw = request.cookies.get(PENDING_COOKIE, "")
        pending = await sessions.load(raw) if 20 <= len(raw) <= 100 else None
        if pending is not None and (
            pending.kind != PENDING_KIND
            or time.time() - float(pending.data.get("at", 0)) > settings.otp_ttl_seconds
        ):
            if pending.kind == PENDING_KIND:
                await sessions.end(pending.id)
            pending = None
        if pending is None:
            raise Unauthorized("Enter your password first", code="password_required")
        email = str(pending.data.get("email", ""))
        async with db.read() as session:
            user = await session.get(accounts.User, pending.subject_id)
        source = _source(request, user)
        await _attempts_allowed(request, source, "login-confirm")
        device = _device_value(request)
        result = None
        if user is not None:
            result = await accounts.check_second_factor(
                db,
                user.id,
                method="otp",
                code=body.code,
                pending=pending.data,
                secret_key=settings.secret_key,
                ip=source.ip,
                device=device_hash(device),
            )
        if result is None or not result.ok:
            if result is None:  # a decoy: audited here (check_second_factor did the others)
                await audit.record_now(
                    db,
                    "auth.otp_failed",
                    object_type="sign-in",
                    ip=source.ip,
                    outcome="failure",
                    actor_label=email,
                    method="otp",
                )
            await _failed(request, throttle_of(request), email, source)
            pending.data["tries"] = int(pending.data.get("tries", 0)) + 1
            if pending.data["tries"] >= settings.login_max_failures:
                await sessions.end(pending.id)  # too many guesses: start again
            else:
                await sessions.update(pending)
            raise Unauthorized("Wrong or expired code", code="invalid_code")
        await sessions.end(pending.id)  # single use
        # No throttle.success: the delay running at this address may be an attacker's.
        resp = await _full_session(request, pending.subject_id, result.label, result.role, device)
        resp.del_cookie(PENDING_COOKIE, path="/api/v1/auth/")
        return resp

    @api.post(
        "/auth/otp",
        body=OtpIn,
        response=OtpOut,
        auth="none",
        tags=["auth"],
        errors=[401, 429, 502],
    )
    async def send_otp(request: web.Request, body: OtpIn) -> OtpOut:
        """Send a one-time code by e-mail or SMS (6 digits, 5 minutes, single use)."""
        s = request.get(SESSION)
        if s is None or s.stage != "mfa":
            raise Unauthorized("Enter your password first", code="password_required")
        if not await request.app[LIMITER].hit(f"otp-send:{s.subject_id}", limit=5, window=600):
            raise TooManyRequests("Too many codes requested; wait a few minutes", retry_after=600)
        settings = request.app[SETTINGS]
        async with request.app[DB].read() as session:
            user = await session.get(accounts.User, s.subject_id)
        if user is None or not user.active:
            raise Unauthorized("Enter your password first", code="password_required")
        if body.channel == "sms" and not user.mobile:
            raise BadRequest("No mobile number on this account", code="no_mobile")
        code, state = mfa.new_one_time_code(settings.secret_key, settings.otp_ttl_seconds)
        s.data.update(state, mfa_channel=body.channel)
        await request.app[SESSIONS].update(s)
        text = code_text(settings.otp_ttl_seconds, code)
        notifier = request.app[NOTIFIER]
        try:
            if body.channel == "sms":
                assert user.mobile is not None
                await notifier.send_sms(user.mobile, text)
                sent_to = mask_phone(user.mobile) or ""
            else:
                await notifier.send_email(
                    Email(to=user.email, subject="Votre code de connexion Consilium", text=text)
                )
                sent_to = mask_email(user.email)
        except DeliveryError:
            raise Problem(
                "The code could not be sent; try the other channel",
                status=502,
                code="delivery_failed",
                title="Delivery failed",
            ) from None
        await audit.record_now(
            request.app[DB],
            "auth.otp_sent",
            object_type="user",
            object_id=user.id,
            ip=client_ip(request),
            actor_label=user.email,
            channel=body.channel,
        )
        return OtpOut(sent_to=sent_to, expires_in=settings.otp_ttl_seconds)

    @api.post(
        "/auth/verify",
        body=VerifyIn,
        response=SessionOut,
        auth="none",
        tags=["auth"],
        errors=[401, 429],
    )
    async def verify(request: web.Request, body: VerifyIn) -> web.StreamResponse:
        """Check the second factor and open the full session. Wrong codes count like wrong
        passwords (:mod:`core.throttle`); too many on one pending sign-in end it."""
        s = request.get(SESSION)
        if s is None or s.stage != "mfa":
            raise Unauthorized("Enter your password first", code="password_required")
        settings = request.app[SETTINGS]
        db = request.app[DB]
        sessions = request.app[SESSIONS]
        throttle = throttle_of(request)
        async with db.read() as session:
            user = await session.get(accounts.User, s.subject_id)
        if user is None or not user.active:
            raise Unauthorized("Enter your password first", code="password_required")
        source = _source(request, user)
        wait = await throttle.wait(user.email, source)
        if wait:
            await sessions.end(s.id)  # start again with the password, after the delay
            raise LoginThrottled(
                "Too many failed attempts from here; try again later", retry_after=wait
            )
        result = await accounts.check_second_factor(
            db,
            s.subject_id,
            method=body.method,
            code=body.code,
            pending=s.data,
            secret_key=settings.secret_key,
            ip=source.ip,
            device=device_id(request),
        )
        if result is None:
            raise Unauthorized("Enter your password first", code="password_required")
        if not result.ok:
            delay = await _failed(request, throttle, result.email, source)
            s.data["mfa_tries"] = int(s.data.get("mfa_tries", 0)) + 1
            if delay or s.data["mfa_tries"] >= settings.login_max_failures:
                await sessions.end(s.id)  # too many guesses: start again with the password
            else:
                await sessions.update(s)
            if delay:
                raise LoginThrottled(
                    "Too many failed attempts from here; try again later", retry_after=delay
                )
            raise Unauthorized("Wrong or expired code", code="invalid_code")
        await throttle.success(result.email, source)
        s.data["reauth_at"] = time.time()  # a full sign-in is a fresh re-authentication
        # A Pro Santé Connect identity waiting for an account (core.oidc): this account has
        # just proved its password and second factor, so the RPPS is attached to it.
        link = await oidc.take_pre_session(request, "link")
        psc_link = None
        if link is not None:
            linked = await oidc.link_pending(request, s.subject_id, link)
            psc_link = "linked" if linked.linked else linked.reason
            if linked.linked:
                s.data.update(sso=str(link["provider"]), id_token=str(link.get("id_token", "")))
        tokens: list[str] = []
        new = await sessions.promote(s, tokens)
        out = SessionOut(
            kind="user",
            id=str(new.subject_id),
            name=result.label,
            role=result.role,
            csrf_token=new.csrf_token,
            sso=new.data.get("sso"),
            psc_link=psc_link,
        )
        resp = web.json_response(out.model_dump(mode="json"))
        set_session_cookie(request, resp, tokens[0], new)
        _set_device_cookie(request, resp)
        if link is not None:
            resp.del_cookie(oidc.PRE_COOKIE, path=oidc.PRE_COOKIE_PATH)
        return resp

    @api.get("/auth/session", response=SessionOut, auth="principal", tags=["auth"])
    async def current(request: web.Request) -> SessionOut:
        """Who I am, and the CSRF token to send with every change."""
        p = principal(request)
        s = request.get(SESSION)
        assert s is not None
        return SessionOut(
            kind=p.kind,
            id=str(p.subject_id),
            name=p.label,
            role=p.role,
            csrf_token=s.csrf_token,
            sso=s.data.get("sso"),
        )

    @api.post("/auth/logout", auth="none", tags=["auth"], status=204)
    async def logout(request: web.Request) -> web.StreamResponse:
        """End my session."""
        s = request.get(SESSION)
        if s is not None:
            await request.app[SESSIONS].end(s.id)
            if s.kind == "user":
                await audit.record_now(
                    request.app[DB],
                    "auth.logout",
                    object_type="user",
                    object_id=s.subject_id,
                    ip=client_ip(request),
                    actor_id=s.subject_id,
                    actor_kind="user",
                )
        resp = web.Response(status=204)
        clear_session_cookie(resp)
        return resp
