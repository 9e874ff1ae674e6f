"""Sign-in with strong authentication (seed guide 000, section 1.1.3).

1. ``POST /auth/login`` with e-mail and password opens a session at stage ``mfa``.
2. The user picks a second factor: ``POST /auth/otp`` sends a 6-digit one-time code by SMS
   or e-mail (valid 5 minutes, single use), or they type the code of their authenticator app
   (TOTP), or a one-time recovery code.
3. ``POST /auth/verify`` checks it and promotes the session to ``full`` under a new token.

Failures count per account (``login_max_failures``, then a lockout of
``login_lockout_minutes``: 423 with ``Retry-After``); unknown e-mail addresses are counted the
same way in the rate limiter, so the answers do not reveal which accounts exist.

An OpenID Connect provider (Pro Santé Connect) plugs in at step 3: once the provider has
identified the practitioner, its callback calls :func:`core.auth.start_session` with
``stage="full"`` — the account, the session and the cookies are the same (see
:mod:`core.oidc` and docs/security.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from datetime import timedelta
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from core import accounts, audit, mfa, passwords
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
from core.config import Settings
from core.context import DB, LIMITER, NOTIFIER, SESSIONS, SETTINGS
from core.db import utcnow
from core.errors import BadRequest, Problem, TooManyRequests, Unauthorized
from core.notify import DeliveryError, Email

Method = Literal["email", "sms", "totp", "recovery"]


class Locked(Problem):
    status, code, title = 423, "account_locked", "Account temporarily locked"


class LoginIn(BaseModel):
    email: AccountEmail
    password: str = Field(min_length=1, max_length=512)


class LoginOut(BaseModel):
    status: Literal["mfa_required"]
    methods: list[Method]
    preferred: Method
    email_hint: str
    mobile_hint: str | None


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


def _unknown_key(email: str) -> str:
    return "login-unknown:" + hashlib.sha256(email.lower().encode()).hexdigest()[:32]


def _lock(
    session: AsyncSession, user: accounts.User, settings: Settings, ip: str
) -> tuple[bool, int]:
    """Count one failure; lock the account when the limit is reached. Returns (locked, secs)."""
    user.failed_logins += 1
    if user.failed_logins < settings.login_max_failures:
        return False, 0
    user.failed_logins = 0
    user.locked_until = utcnow() + timedelta(minutes=settings.login_lockout_minutes)
    audit.record(
        session,
        "auth.lockout",
        object_type="user",
        object_id=user.id,
        ip=ip,
        outcome="denied",
        actor_label=user.email,
        minutes=settings.login_lockout_minutes,
    )
    return True, settings.login_lockout_minutes * 60


def _locked_for(user: accounts.User) -> int:
    if user.locked_until is None:
        return 0
    return max(0, math.ceil((user.locked_until - utcnow()).total_seconds()))


def setup(app: web.Application) -> None:
    api = Api.of(app)

    @api.post(
        "/auth/login",
        body=LoginIn,
        response=LoginOut,
        auth="none",
        tags=["auth"],
        errors=[401, 423, 429],
    )
    async def login(request: web.Request, body: LoginIn) -> web.StreamResponse:
        """Check e-mail and password; the second factor comes next."""
        settings = request.app[SETTINGS]
        db = request.app[DB]
        limiter = request.app[LIMITER]
        ip = client_ip(request)
        if not await limiter.hit(f"login-ip:{ip}", limit=30, window=60):
            raise TooManyRequests(
                "Too many sign-in attempts from this address; wait a minute", retry_after=60
            )
        email = body.email
        async with db.read() as session:
            user = await accounts.get_by_email(session, email)
        locked_for = _locked_for(user) if user is not None else 0
        # argon2 runs in a worker thread (it releases the GIL): a burst of sign-ins does not
        # stall the event loop that also carries media. Unknown and locked accounts are
        # checked against a dummy hash: same work, same time.
        stored = user.password_hash if user is not None and not locked_for else None
        ok = await asyncio.to_thread(passwords.verify_password, stored, body.password)
        failed = not locked_for and (user is None or not ok or not user.active)
        new_hash = None
        if ok and stored and passwords.needs_rehash(stored):
            new_hash = await asyncio.to_thread(passwords.hash_password, body.password)
        if locked_for or failed or new_hash:
            async with db.write() as uow:
                row = (
                    await uow.session.get(accounts.User, user.id, with_for_update=True)
                    if user
                    else None
                )
                if locked_for:
                    audit.record(
                        uow.session,
                        "auth.login",
                        object_type="user",
                        object_id=user.id if user else "",
                        ip=ip,
                        outcome="denied",
                        actor_label=email,
                        reason="locked",
                    )
                elif failed:
                    audit.record(
                        uow.session,
                        "auth.login",
                        object_type="user",
                        object_id=user.id if user else "",
                        ip=ip,
                        outcome="failure",
                        actor_label=email,
                    )
                    if row is not None:
                        _lock(uow.session, row, settings, ip)
                elif row is not None and new_hash:
                    row.password_hash = new_hash
        if locked_for:
            raise Locked("Too many failed attempts; try again later", retry_after=locked_for)
        if failed:
            if user is None:
                # Count failures on unknown addresses like on real accounts (anti-enumeration).
                window = settings.login_lockout_minutes * 60
                if not await limiter.hit(
                    _unknown_key(email), limit=settings.login_max_failures, window=window
                ):
                    raise Locked("Too many failed attempts; try again later", retry_after=window)
            raise Unauthorized("Wrong e-mail or password", code="invalid_credentials")
        assert user is not None
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
        await start_session(request, resp, kind="user", subject_id=user.id, stage="mfa")
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
        text = (
            f"Votre code de connexion Consilium : {code}\n"
            f"Il est valable {settings.otp_ttl_seconds // 60} minutes et ne sert qu'une fois.\n"
            "Si vous n'êtes pas à l'origine de cette demande, ignorez ce message."
        )
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
        errors=[401, 423, 429],
    )
    async def verify(request: web.Request, body: VerifyIn) -> web.StreamResponse:
        """Check the second factor and open the full session."""
        s = request.get(SESSION)
        if s is None or s.stage != "mfa":
            raise Unauthorized("Enter your password first", code="password_required")
        settings = request.app[SETTINGS]
        db = request.app[DB]
        sessions = request.app[SESSIONS]
        ip = client_ip(request)
        locked_for = 0
        async with db.write() as uow:
            user = await uow.session.get(accounts.User, s.subject_id, with_for_update=True)
            if user is None or not user.active:
                raise Unauthorized("Enter your password first", code="password_required")
            locked_for = _locked_for(user)
            ok = False
            if locked_for:
                pass
            elif body.method == "otp":
                ok = mfa.check_one_time_code(settings.secret_key, s.data, body.code)
            elif body.method == "totp" and user.totp_enabled:
                ok = mfa.check_totp(user, body.code)
            elif body.method == "recovery" and user.totp_enabled:
                ok = await mfa.use_recovery_code(uow.session, user, settings.secret_key, body.code)
            if locked_for:
                pass
            elif not ok:
                s.data["mfa_tries"] = int(s.data.get("mfa_tries", 0)) + 1
                audit.record(
                    uow.session,
                    "auth.otp_failed",
                    object_type="user",
                    object_id=user.id,
                    ip=ip,
                    outcome="failure",
                    actor_label=user.email,
                    method=body.method,
                )
                _, locked_for = _lock(uow.session, user, settings, ip)
            else:
                user.failed_logins = 0
                user.last_login_at = utcnow()
                if body.method == "otp" and s.data.get("mfa_channel") in ("email", "sms"):
                    user.otp_channel = str(s.data["mfa_channel"])  # remembered for next time
                elif body.method == "totp":
                    user.otp_channel = "totp"
                for action in ("auth.otp_used", "auth.login"):
                    audit.record(
                        uow.session,
                        action,
                        actor_id=user.id,
                        actor_kind="user",
                        actor_label=user.email,
                        object_type="user",
                        object_id=user.id,
                        ip=ip,
                        method=body.method,
                    )
            label, role = user.display_name, user.role.value
        if locked_for:
            # The pending sign-in ends with the lockout: start again with the password.
            await sessions.end(s.id)
            raise Locked("Too many failed attempts; try again later", retry_after=locked_for)
        if not ok:
            if s.data["mfa_tries"] >= settings.login_max_failures:
                s.data.pop("mfa_code", None)  # too many guesses: ask for a new code
            await sessions.update(s)
            raise Unauthorized("Wrong or expired code", code="invalid_code")
        tokens: list[str] = []
        new = await sessions.promote(s, tokens)
        out = SessionOut(
            kind="user", id=str(new.subject_id), name=label, role=role, csrf_token=new.csrf_token
        )
        resp = web.json_response(out.model_dump(mode="json"))
        set_session_cookie(request, resp, tokens[0], new)
        return resp

    @api.get("/auth/session", response=SessionOut, auth="principal", tags=["auth"])
    async def current(request: web.Request) -> SessionOut:
        """Who I am, and the CSRF token to send with every change."""
        p = principal(request)
        s = request.get(SESSION)
        assert s is not None
        return SessionOut(
            kind=p.kind, id=str(p.subject_id), name=p.label, role=p.role, csrf_token=s.csrf_token
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
