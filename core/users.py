"""Account routes: my profile (``/me``), my password, my authenticator app, the colleague
directory, and the administrators' user management (``/users``)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, EmailStr, Field
from sqlalchemy import or_, select

from core import accounts, mfa, notify
from core.accounts import AccountEmail, Role, User
from core.api import Api
from core.auth import SESSION, principal, set_session_cookie
from core.context import DB, LIMITER, NOTIFIER, SESSIONS, SETTINGS
from core.errors import (
    Forbidden,
    NotFound,
    Problem,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from core.notify import DeliveryError, Email, NotificationKind

Channel = Literal["email", "sms", "both", "none"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProfileOut(BaseModel):
    id: uuid.UUID
    email: str
    role: Role
    title: str
    first_name: str
    last_name: str
    display_name: str
    rpps: str | None
    profession: str
    specialty: str
    establishment: str
    mss_address: str | None
    mobile: str | None
    otp_channel: Literal["email", "sms", "totp"]
    totp_enabled: bool
    recovery_codes_left: int
    notifications: dict[NotificationKind, Channel]
    delegates_for: list[uuid.UUID]
    last_login_at: datetime | None


class ProfileUpdate(_In):
    title: str | None = Field(None, max_length=20)
    first_name: str | None = Field(None, min_length=1, max_length=100)
    last_name: str | None = Field(None, min_length=1, max_length=100)
    mobile: str | None = Field(None, max_length=20)
    mss_address: EmailStr | None = None
    otp_channel: Literal["email", "sms", "totp"] | None = None
    notifications: dict[NotificationKind, Channel] | None = None


class PasswordChange(_In):
    current_password: str = Field(min_length=1, max_length=512)
    new_password: str = Field(min_length=1, max_length=512)


class TotpEnrolOut(BaseModel):
    secret: str
    otpauth_uri: str
    qr_svg: str = Field(description="The otpauth URI as a QR code: an SVG data URI")


class CodeIn(_In):
    code: str = Field(min_length=6, max_length=20)


class ReauthCodeIn(_In):
    channel: Literal["email", "sms"]


class ReauthCodeOut(BaseModel):
    sent_to: str
    expires_in: int


class ReauthIn(_In):
    password: str = Field(min_length=1, max_length=512)
    method: Literal["otp", "totp", "recovery"] = Field(
        description="otp: the code sent by POST /me/reauth/code; totp: the authenticator app"
    )
    code: str = Field(min_length=6, max_length=20)


class ReauthOut(BaseModel):
    reauth_until: datetime = Field(
        description="Second factors can be changed until then (5 minutes)"
    )


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str] = Field(description="Shown once; each works once")


class UserCreate(_In):
    email: AccountEmail
    password: str = Field(min_length=1, max_length=512)
    role: Role
    title: str = Field("", max_length=20)
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    rpps: str | None = Field(None, max_length=20)
    profession: str = Field("", max_length=100)
    specialty: str = Field("", max_length=100)
    establishment: str = Field("", max_length=200)
    mss_address: EmailStr | None = None
    mobile: str | None = Field(None, max_length=20)
    delegates_for: list[uuid.UUID] = Field(default_factory=list, max_length=50)


class UserUpdate(_In):
    active: bool | None = None
    title: str | None = Field(None, max_length=20)
    rpps: str | None = Field(None, max_length=20, description="Empty string removes it")
    profession: str | None = Field(None, max_length=100)
    specialty: str | None = Field(None, max_length=100)
    establishment: str | None = Field(None, max_length=200)
    delegates_for: list[uuid.UUID] | None = Field(None, max_length=50)


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    role: Role
    title: str
    first_name: str
    last_name: str
    display_name: str
    rpps: str | None
    profession: str
    specialty: str
    establishment: str
    mss_address: str | None
    mobile: str | None
    active: bool
    totp_enabled: bool
    delegates_for: list[uuid.UUID]
    created_at: datetime
    last_login_at: datetime | None


class UserQuery(_In):
    q: str | None = Field(None, max_length=100)
    role: Role | None = None
    limit: int = Field(100, ge=1, le=500)
    offset: int = Field(0, ge=0, le=1_000_000)


class DirectoryQuery(_In):
    q: str = Field(min_length=2, max_length=100, description="Part of a first or last name")
    role: Literal["practitioner", "secretary"] | None = None
    limit: int = Field(20, ge=1, le=50)


class ColleagueOut(BaseModel):
    id: uuid.UUID
    display_name: str
    title: str
    first_name: str
    last_name: str
    role: Role
    profession: str
    specialty: str
    establishment: str


def _contains(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its wildcards escaped (with ``\\``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fields(user: User, model: type[BaseModel], **computed: Any) -> dict[str, Any]:
    """The values of ``model``'s fields: ``computed`` ones, the others read off the account."""
    return {
        name: computed[name] if name in computed else getattr(user, name)
        for name in model.model_fields
    }


def _user_out(user: User, delegates: list[uuid.UUID]) -> UserOut:
    return UserOut(**_fields(user, UserOut, delegates_for=delegates))


def setup(app: web.Application) -> None:
    api = Api.of(app)

    async def _profile(request: web.Request, user_id: uuid.UUID) -> ProfileOut:
        async with request.app[DB].read() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise Unauthorized("Sign in first", code="unauthenticated")
            delegates = await accounts.delegators_of(session, user.id)
            left = await mfa.remaining_recovery_codes(session, user) if user.totp_enabled else 0
        return ProfileOut(
            **_fields(
                user,
                ProfileOut,
                recovery_codes_left=left,
                notifications=notify.notification_channels(user),
                delegates_for=delegates,
            )
        )

    async def _code_attempt(request: web.Request, user_id: uuid.UUID) -> None:
        if not await request.app[LIMITER].hit(f"account-code:{user_id}", limit=10, window=600):
            raise TooManyRequests("Too many attempts; wait a few minutes", retry_after=600)

    @api.post(
        "/me/reauth/code",
        body=ReauthCodeIn,
        response=ReauthCodeOut,
        tags=["account"],
        errors=[429, 502],
    )
    async def send_reauth_code(request: web.Request, body: ReauthCodeIn) -> ReauthCodeOut:
        """Send a one-time code (e-mail, or SMS to my current mobile) to confirm it is me
        before changing a second factor (then ``POST /me/reauth``)."""
        p = principal(request)
        await _code_attempt(request, p.user_id)
        settings = request.app[SETTINGS]
        async with request.app[DB].read() as session:
            user = await session.get(User, p.user_id)
        if user is None or not user.active:
            raise Unauthorized("Sign in first", code="unauthenticated")
        if body.channel == "sms" and not user.mobile:
            raise ValidationFailed("No mobile number on this account", code="no_mobile")
        code, state = mfa.new_one_time_code(settings.secret_key, settings.otp_ttl_seconds)
        s = request.get(SESSION)
        assert s is not None
        s.data["reauth_otp"] = state
        await request.app[SESSIONS].update(s)
        text = (
            f"Votre code de confirmation Consilium : {code}\n"
            f"Il est valable {settings.otp_ttl_seconds // 60} minutes. Il sert à confirmer "
            "votre identité avant de modifier la sécurité de votre compte.\n"
            "Si vous n'êtes pas à l'origine de cette demande, changez votre mot de passe."
        )
        try:
            if body.channel == "sms":
                assert user.mobile is not None
                await request.app[NOTIFIER].send_sms(user.mobile, text)
                sent_to = f"{user.mobile[:4]}****{user.mobile[-2:]}"
            else:
                await request.app[NOTIFIER].send_email(
                    Email(to=user.email, subject="Votre code de confirmation Consilium", text=text)
                )
                name, _, domain = user.email.partition("@")
                sent_to = f"{name[:1]}***@{domain}"
        except DeliveryError:
            raise Problem(
                "The code could not be sent; try the other channel",
                status=502,
                code="delivery_failed",
                title="Delivery failed",
            ) from None
        return ReauthCodeOut(sent_to=sent_to, expires_in=settings.otp_ttl_seconds)

    @api.post("/me/reauth", body=ReauthIn, response=ReauthOut, tags=["account"], errors=[403, 429])
    async def reauth(request: web.Request, body: ReauthIn) -> ReauthOut:
        """Confirm it is me (current password and a current second factor): for the next
        5 minutes I can change my mobile, code channel, authenticator app and recovery
        codes, which otherwise answer 403 ``reauth_required``."""
        p = principal(request)
        await _code_attempt(request, p.user_id)
        s = request.get(SESSION)
        assert s is not None
        ok = await accounts.reauthenticate(
            request.app[DB],
            password=body.password,
            method=body.method,
            code=body.code,
            pending=dict(s.data.get("reauth_otp") or {}),
            secret_key=request.app[SETTINGS].secret_key,
            actor=p,
        )
        if not ok:
            raise Forbidden("Wrong password or code", code="reauth_failed")
        now = time.time()
        s.data.pop("reauth_otp", None)  # single use
        s.data["reauth_at"] = now
        await request.app[SESSIONS].update(s)
        until = datetime.fromtimestamp(now + accounts.REAUTH_SECONDS, UTC)
        return ReauthOut(reauth_until=until)

    @api.get("/me", response=ProfileOut, tags=["account"])
    async def get_me(request: web.Request) -> ProfileOut:
        """My profile, second-factor settings and notification preferences."""
        return await _profile(request, principal(request).user_id)

    @api.patch("/me", body=ProfileUpdate, response=ProfileOut, tags=["account"])
    async def patch_me(request: web.Request, body: ProfileUpdate) -> ProfileOut:
        """Change my names, mobile, MSSanté address, preferred code channel, notifications."""
        p = principal(request)
        await accounts.edit_profile(
            request.app[DB],
            body.model_dump(exclude_unset=True),
            actor=p,
            notifier=request.app[NOTIFIER],
        )
        return await _profile(request, p.user_id)

    @api.post("/me/password", body=PasswordChange, tags=["account"], status=204, errors=[429])
    async def change_password(request: web.Request, body: PasswordChange) -> web.StreamResponse:
        """Change my password; every other session of mine ends, this one gets a new token."""
        p = principal(request)
        await _code_attempt(request, p.user_id)
        sessions = request.app[SESSIONS]
        current = request.get(SESSION)
        assert current is not None
        await accounts.change_own_password(
            request.app[DB], sessions, body.current_password, body.new_password, actor=p
        )
        token, s = await sessions.create(
            kind="user",
            subject_id=p.user_id,
            stage="full",
            ip=current.ip,
            user_agent=current.user_agent,
            data=current.data,
        )
        resp = web.Response(status=204)
        set_session_cookie(request, resp, token, s)
        return resp

    @api.post("/me/totp", response=TotpEnrolOut, tags=["account"], errors=[409])
    async def enrol_totp(request: web.Request) -> TotpEnrolOut:
        """Start enrolling an authenticator app: scan the QR code, then confirm with a code."""
        p = principal(request)
        secret, email = await accounts.begin_totp_enrolment(request.app[DB], actor=p)
        uri = mfa.provisioning_uri(secret, email)
        return TotpEnrolOut(secret=secret, otpauth_uri=uri, qr_svg=mfa.qr_svg_data_uri(uri))

    @api.post(
        "/me/totp/confirm",
        body=CodeIn,
        response=RecoveryCodesOut,
        tags=["account"],
        errors=[409, 429],
    )
    async def confirm_totp(request: web.Request, body: CodeIn) -> RecoveryCodesOut:
        """Confirm the enrolment with a first code; returns 10 recovery codes, shown once."""
        p = principal(request)
        await _code_attempt(request, p.user_id)
        codes = await accounts.confirm_totp_enrolment(
            request.app[DB],
            body.code,
            secret_key=request.app[SETTINGS].secret_key,
            actor=p,
            notifier=request.app[NOTIFIER],
        )
        return RecoveryCodesOut(recovery_codes=codes)

    @api.post(
        "/me/totp/recovery-codes",
        body=CodeIn,
        response=RecoveryCodesOut,
        tags=["account"],
        errors=[409, 429],
    )
    async def renew_recovery_codes(request: web.Request, body: CodeIn) -> RecoveryCodesOut:
        """Replace my recovery codes (give a current authenticator code); the old ones die."""
        p = principal(request)
        await _code_attempt(request, p.user_id)
        codes = await accounts.renew_recovery_codes(
            request.app[DB],
            body.code,
            secret_key=request.app[SETTINGS].secret_key,
            actor=p,
            notifier=request.app[NOTIFIER],
        )
        return RecoveryCodesOut(recovery_codes=codes)

    @api.delete("/me/totp", body=CodeIn, tags=["account"], status=204, errors=[409, 429])
    async def remove_totp(request: web.Request, body: CodeIn) -> None:
        """Remove my authenticator app (give a current code or a recovery code)."""
        p = principal(request)
        await _code_attempt(request, p.user_id)
        await accounts.remove_totp(
            request.app[DB],
            body.code,
            secret_key=request.app[SETTINGS].secret_key,
            actor=p,
            notifier=request.app[NOTIFIER],
        )

    @api.get(
        "/users/directory", query=DirectoryQuery, response=list[ColleagueOut], tags=["account"]
    )
    async def directory(request: web.Request, query: DirectoryQuery) -> list[ColleagueOut]:
        """Find colleagues by name (at least 2 characters; accents and case ignored)."""
        words = accounts.fold_case_and_accents(query.q).split()
        if len("".join(words)) < 2:
            raise ValidationFailed("Type at least 2 letters", code="query_too_short")
        stmt = select(User).where(User.active.is_(True), User.role != Role.admin)
        for w in words[:4]:
            stmt = stmt.where(User.search_name.like(_contains(w), escape="\\"))
        if query.role:
            stmt = stmt.where(User.role == Role(query.role))
        stmt = stmt.order_by(User.last_name, User.first_name).limit(query.limit)
        async with request.app[DB].read() as session:
            rows = (await session.execute(stmt)).scalars().all()
        return [
            ColleagueOut(
                id=u.id,
                display_name=u.display_name,
                title=u.title,
                first_name=u.first_name,
                last_name=u.last_name,
                role=u.role,
                profession=u.profession,
                specialty=u.specialty,
                establishment=u.establishment,
            )
            for u in rows
        ]

    @api.get("/users", query=UserQuery, response=list[UserOut], auth="admin", tags=["admin"])
    async def list_users(request: web.Request, query: UserQuery) -> list[UserOut]:
        """Every account (administrators)."""
        stmt = select(User)
        if query.q:
            stmt = stmt.where(
                or_(
                    User.search_name.like(
                        _contains(accounts.fold_case_and_accents(query.q)), escape="\\"
                    ),
                    User.email.like(_contains(query.q.lower()), escape="\\"),
                )
            )
        if query.role:
            stmt = stmt.where(User.role == query.role)
        stmt = stmt.order_by(User.last_name, User.first_name).offset(query.offset)
        async with request.app[DB].read() as session:
            users = (await session.execute(stmt.limit(query.limit))).scalars().all()
            return [_user_out(u, await accounts.delegators_of(session, u.id)) for u in users]

    @api.post(
        "/users",
        body=UserCreate,
        response=UserOut,
        status=201,
        auth="admin",
        tags=["admin"],
        errors=[409],
    )
    async def create_user(request: web.Request, body: UserCreate) -> UserOut:
        """Create a practitioner, a secretary (with the practitioners they act for) or an admin."""
        p = principal(request)
        user, delegates = await accounts.create_account(
            request.app[DB],
            actor=p,
            email=body.email,
            password=body.password,
            role=body.role,
            first_name=body.first_name,
            last_name=body.last_name,
            title=body.title.strip(),
            rpps=body.rpps,
            delegates_for=body.delegates_for,
            profession=body.profession,
            specialty=body.specialty,
            establishment=body.establishment,
            mss_address=str(body.mss_address) if body.mss_address else None,
            mobile=body.mobile or None,
        )
        return _user_out(user, delegates)

    @api.get("/users/{user_id}", response=UserOut, auth="admin", tags=["admin"])
    async def get_user(request: web.Request) -> UserOut:
        """One account (administrators)."""
        user_id = uuid.UUID(request.match_info["user_id"])
        async with request.app[DB].read() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise NotFound("No user with this id")
            return _user_out(user, await accounts.delegators_of(session, user.id))

    @api.patch(
        "/users/{user_id}",
        body=UserUpdate,
        response=UserOut,
        auth="admin",
        tags=["admin"],
        errors=[409],
    )
    async def update_user(request: web.Request, body: UserUpdate) -> UserOut:
        """Change an account (administrators): deactivate it (its sessions end), its RPPS,
        profession, establishment, or the practitioners a secretary acts for."""
        user, delegates = await accounts.admin_edit_user(
            request.app[DB],
            request.app[SESSIONS],
            uuid.UUID(request.match_info["user_id"]),
            body.model_dump(exclude_unset=True),
            actor=principal(request),
        )
        return _user_out(user, delegates)
