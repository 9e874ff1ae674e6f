"""Sign-in with strong authentication (seed guide 000, section 1.1.3).

1. ``POST /auth/login`` with e-mail and password opens a session at stage ``mfa``.
2. The user picks a second factor: ``POST /auth/otp`` sends a 6-digit one-time code by SMS
   or e-mail (valid 5 minutes, single use), or they type the code of their authenticator app
   (TOTP), or a one-time recovery code.
3. ``POST /auth/verify`` checks it and promotes the session to ``full`` under a new token.

An OpenID Connect provider (Pro Santé Connect) plugs in at step 3: once the provider has
identified the practitioner, its callback calls :func:`core.auth.start_session` with
``stage="full"`` — the account, the session and the cookies are the same.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import timedelta
from typing import Literal

import pyotp
from aiohttp import web
from pydantic import BaseModel, EmailStr, Field
from sqlalchemy import select

from core import accounts, audit, passwords
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
from core.db import utcnow
from core.errors import BadRequest, Problem, TooManyRequests, Unauthorized
from core.notify import DeliveryError, Email


class Locked(Problem):
    status, code, title = 423, "account_locked", "Account temporarily locked"


class LoginIn(BaseModel):
    email: EmailStr
    password: str = Field(min_length=1, max_length=512)


class LoginOut(BaseModel):
    status: Literal["mfa_required"]
    methods: list[Literal["email", "sms", "totp", "recovery"]]
    preferred: str
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


def _mask_email(email: str) -> str:
    name, _, domain = email.partition("@")
    return f"{name[:1]}***@{domain}"


def _mask_phone(phone: str | None) -> str | None:
    return f"{phone[:4]}****{phone[-2:]}" if phone else None


def _code_hash(secret_key: str, code: str) -> str:
    return hmac.new(secret_key.encode(), code.encode(), hashlib.sha256).hexdigest()


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
        ip = client_ip(request)
        if not await request.app[LIMITER].hit(f"login-ip:{ip}", limit=30, window=60):
            raise TooManyRequests("Too many sign-in attempts from this address; wait a minute")
        async with db.write() as uow:
            user = await accounts.get_by_email(uow.session, body.email)
            now = utcnow()
            if user is not None and user.locked_until and user.locked_until > now:
                audit.record(
                    uow.session,
                    "auth.login",
                    object_type="user",
                    object_id=user.id,
                    ip=ip,
                    outcome="denied",
                    actor_label=body.email,
                    reason="locked",
                )
                raise Locked(
                    "Too many failed attempts; try again later",
                    retry_after=int((user.locked_until - now).total_seconds()),
                )
            ok = passwords.verify_password(user.password_hash if user else None, body.password)
            if user is None or not ok or not user.active:
                if user is not None:
                    user.failed_logins += 1
                    if user.failed_logins >= settings.login_max_failures:
                        user.locked_until = now + timedelta(minutes=settings.login_lockout_minutes)
                        user.failed_logins = 0
                        audit.record(
                            uow.session,
                            "auth.lockout",
                            object_type="user",
                            object_id=user.id,
                            ip=ip,
                            outcome="denied",
                            actor_label=body.email,
                        )
                audit.record(
                    uow.session,
                    "auth.login",
                    object_type="user",
                    object_id=user.id if user else "",
                    ip=ip,
                    outcome="failure",
                    actor_label=body.email,
                )
                failed = True
            else:
                failed = False
                if user.password_hash and passwords.needs_rehash(user.password_hash):
                    user.password_hash = passwords.hash_password(body.password)
        if failed:
            raise Unauthorized("Wrong e-mail or password", code="invalid_credentials")
        assert user is not None
        methods: list[Literal["email", "sms", "totp", "recovery"]] = ["email"]
        if user.mobile:
            methods.append("sms")
        if user.totp_enabled:
            methods += ["totp", "recovery"]
        out = LoginOut(
            status="mfa_required",
            methods=methods,
            preferred=user.otp_channel if user.otp_channel in methods else "email",
            email_hint=_mask_email(user.email),
            mobile_hint=_mask_phone(user.mobile),
        )
        resp = web.json_response(out.model_dump(mode="json"))
        await start_session(request, resp, kind="user", subject_id=user.id, stage="mfa")
        return resp

    @api.post(
        "/auth/otp", body=OtpIn, response=OtpOut, auth="none", tags=["auth"], errors=[401, 429, 502]
    )
    async def send_otp(request: web.Request, body: OtpIn) -> OtpOut:
        """Send a one-time code by e-mail or SMS (6 digits, 5 minutes, single use)."""
        s = request.get(SESSION)
        if s is None or s.stage != "mfa":
            raise Unauthorized("Enter your password first", code="password_required")
        if not await request.app[LIMITER].hit(f"otp-send:{s.subject_id}", limit=5, window=600):
            raise TooManyRequests("Too many codes requested; wait a few minutes")
        settings = request.app[SETTINGS]
        async with request.app[DB].read() as session:
            user = await session.get(accounts.User, s.subject_id)
        if user is None:
            raise Unauthorized("Enter your password first", code="password_required")
        if body.channel == "sms" and not user.mobile:
            raise BadRequest("No mobile number on this account", code="no_mobile")
        secret = pyotp.random_base32()
        code = pyotp.HOTP(secret, digits=6).at(0)
        s.data.update(
            mfa_code=_code_hash(settings.secret_key, code),
            mfa_expires=time.time() + settings.otp_ttl_seconds,
            mfa_tries=0,
        )
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
                sent_to = _mask_phone(user.mobile) or ""
            else:
                await notifier.send_email(
                    Email(to=user.email, subject="Votre code de connexion Consilium", text=text)
                )
                sent_to = _mask_email(user.email)
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
        ip = client_ip(request)
        code = body.code.strip().replace(" ", "")
        async with db.write() as uow:
            user = await uow.session.get(accounts.User, s.subject_id)
            if user is None or not user.active:
                raise Unauthorized("Enter your password first", code="password_required")
            if user.locked_until and user.locked_until > utcnow():
                raise Locked("Too many failed attempts; try again later")
            ok = False
            if body.method == "otp":
                expected = s.data.get("mfa_code")
                fresh = float(s.data.get("mfa_expires", 0)) > time.time()
                ok = (
                    bool(expected)
                    and fresh
                    and hmac.compare_digest(str(expected), _code_hash(settings.secret_key, code))
                )
                if ok:  # single use
                    s.data.pop("mfa_code", None)
            elif body.method == "totp" and user.totp_enabled and user.totp_secret:
                totp = pyotp.TOTP(user.totp_secret)
                last = int(user.preferences.get("totp_last_step", -1))
                step = totp.timecode(utcnow())
                for candidate in (step - 1, step, step + 1):
                    if candidate > last and hmac.compare_digest(totp.generate_otp(candidate), code):
                        ok = True
                        user.preferences = {**user.preferences, "totp_last_step": candidate}
                        break
            elif body.method == "recovery" and user.totp_enabled:
                rows = await uow.session.execute(
                    select(accounts.RecoveryCode).where(
                        accounts.RecoveryCode.user_id == user.id,
                        accounts.RecoveryCode.used_at.is_(None),
                    )
                )
                for rc in rows.scalars():
                    if passwords.verify_password(rc.code_hash, code.upper()):
                        rc.used_at = utcnow()
                        ok = True
                        break
            if not ok:
                tries = int(s.data.get("mfa_tries", 0)) + 1
                s.data["mfa_tries"] = tries
                user.failed_logins += 1
                if user.failed_logins >= settings.login_max_failures:
                    user.locked_until = utcnow() + timedelta(minutes=settings.login_lockout_minutes)
                    user.failed_logins = 0
                    audit.record(
                        uow.session,
                        "auth.lockout",
                        object_type="user",
                        object_id=user.id,
                        ip=ip,
                        outcome="denied",
                        actor_label=user.email,
                    )
                audit.record(
                    uow.session,
                    "auth.otp_verify",
                    object_type="user",
                    object_id=user.id,
                    ip=ip,
                    outcome="failure",
                    actor_label=user.email,
                    method=body.method,
                )
            else:
                user.failed_logins = 0
                user.last_login_at = utcnow()
                audit.record(
                    uow.session,
                    "auth.otp_verify",
                    object_type="user",
                    object_id=user.id,
                    ip=ip,
                    actor_label=user.email,
                    method=body.method,
                )
                audit.record(
                    uow.session,
                    "auth.login",
                    object_type="user",
                    object_id=user.id,
                    ip=ip,
                    actor_label=user.email,
                    method=body.method,
                )
            label, role = user.display_name, user.role.value
        if not ok:
            await request.app[SESSIONS].update(s)
            raise Unauthorized("Wrong or expired code", code="invalid_code")
        tokens: list[str] = []
        new = await request.app[SESSIONS].promote(s, tokens)
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
                )
        resp = web.Response(status=204)
        clear_session_cookie(resp)
        return resp
