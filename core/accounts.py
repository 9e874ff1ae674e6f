"""Accounts: practitioners, secretaries delegating for practitioners, administrators."""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import time
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import email_validator
from pydantic import AfterValidator, Field
from sqlalchemy import JSON, Enum, ForeignKey, String, UniqueConstraint, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core import audit, mfa, passwords
from core.db import Base, Database, IdMixin, TimestampMixin, UTCDateTime, utcnow
from core.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from core.notify import (
    DeliveryError,
    Email,
    notification_channels,
)

if TYPE_CHECKING:
    from core.notify import Notifier
    from core.principal import Principal
    from core.sessions import Sessions

log = logging.getLogger(__name__)

# How long a re-authentication (password and second factor) lets one change second factors.
REAUTH_SECONDS = 5 * 60


class ReauthRequired(Forbidden):
    code, title = "reauth_required", "Confirm your password and a second factor first"


# Kept importable from here: the model lives with the code that uses it.
RecoveryCode = mfa.RecoveryCode


class Role(enum.StrEnum):
    practitioner = "practitioner"
    secretary = "secretary"
    admin = "admin"


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=20))
    title: Mapped[str] = mapped_column(String(20), default="")  # "Dr", "Pr", "" …
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    # "first last" folded to lower-case ASCII for the colleague directory (accents ignored).
    search_name: Mapped[str] = mapped_column(String(201), default="", index=True)
    rpps: Mapped[str | None] = mapped_column(String(11), unique=True)
    profession: Mapped[str] = mapped_column(String(100), default="")
    specialty: Mapped[str] = mapped_column(String(100), default="")
    establishment: Mapped[str] = mapped_column(String(200), default="")
    mss_address: Mapped[str | None] = mapped_column(String(254))
    mobile: Mapped[str | None] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(default=True)
    # Strong authentication
    otp_channel: Mapped[str] = mapped_column(String(10), default="email")  # email | sms | totp
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled: Mapped[bool] = mapped_column(default=False)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    preferences: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    @property
    def display_name(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return f"{self.title} {name}".strip() if self.title else name

    @property
    def is_admin(self) -> bool:
        return self.role is Role.admin


class Delegation(IdMixin, Base):
    """A secretary acting "en délégation de" a practitioner."""

    __tablename__ = "delegations"
    __table_args__ = (UniqueConstraint("secretary_id", "practitioner_id"),)

    secretary_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    practitioner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))


def fold_case_and_accents(text: str) -> str:
    """Lower case without accents, punctuation kept: "Hélène Dupré-Ré" -> "helene dupre-re".
    (``dossier.identity.fold`` also turns punctuation into spaces, for identity matching.)"""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower().strip()


def search_name_of(first_name: str, last_name: str) -> str:
    return fold_case_and_accents(f"{first_name} {last_name}")[:201]


def normalise_email(address: str) -> str:
    """The one check of an account's e-mail address, wherever it is typed: the
    ``consilium create-user`` command, the administrators' API and the sign-in form. Valid
    syntax with a domain that can receive mail (special-use names such as ``.test``,
    ``.local`` or ``localhost`` cannot); returned lower-cased. No DNS look-up."""
    try:
        valid = email_validator.validate_email(address.strip(), check_deliverability=False)
    except email_validator.EmailNotValidError as e:
        raise ValidationFailed(f"Not a usable e-mail address: {e}", code="invalid_email") from e
    return valid.normalized.lower()


def _email_field(address: str) -> str:
    try:
        return normalise_email(address)
    except ValidationFailed as e:
        raise ValueError(e.detail) from None  # pydantic turns it into a 422 on the field


# The type of every request field that names an account by its e-mail address.
AccountEmail = Annotated[str, Field(max_length=254), AfterValidator(_email_field)]


_MOBILE = re.compile(r"^\+[1-9]\d{7,14}$")


def normalise_mobile(mobile: str) -> str:
    """A mobile number in E.164 (``+33612345678``); French national form is accepted."""
    m = re.sub(r"[\s.()-]", "", mobile)
    if m.startswith("00"):
        m = "+" + m[2:]
    elif re.fullmatch(r"0[67]\d{8}", m):
        m = "+33" + m[1:]
    if not _MOBILE.match(m):
        raise ValidationFailed(
            "A mobile number looks like +33612345678 or 06 12 34 56 78", code="invalid_mobile"
        )
    return m


def validate_mss_address(address: str) -> str:
    """MSSanté addresses live under the mssante.fr domain (e.g. ``x@hopital.mssante.fr``)."""
    address = address.strip().lower()
    domain = address.rpartition("@")[2]
    if not (domain == "mssante.fr" or domain.endswith(".mssante.fr")):
        raise ValidationFailed("An MSSanté address ends in mssante.fr", code="invalid_mss_address")
    return address


_RPPS = re.compile(r"^\d{11}$")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def validate_rpps(rpps: str) -> str:
    """An RPPS number is 11 digits whose last one is a Luhn check digit."""
    rpps = rpps.strip().replace(" ", "")
    if not _RPPS.match(rpps):
        raise ValidationFailed("An RPPS number has 11 digits", code="invalid_rpps")
    if not luhn_ok(rpps):
        raise ValidationFailed("This RPPS number has a wrong check digit", code="invalid_rpps")
    return rpps


def rpps_with_key(first10: str) -> str:
    """Complete 10 digits with their Luhn key (demo data and tests)."""
    for key in "0123456789":
        if luhn_ok(first10 + key):
            return first10 + key
    raise AssertionError("unreachable")


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.execute(select(User).where(func.lower(User.email) == email.lower()))
    return result.scalar_one_or_none()


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str | None,
    role: Role,
    first_name: str,
    last_name: str,
    title: str = "",
    rpps: str | None = None,
    delegates_for: list[uuid.UUID] | None = None,
    **fields: Any,
) -> User:
    """Create an account in the caller's transaction (see :func:`create_account`)."""
    email = normalise_email(email)
    if await get_by_email(session, email) is not None:
        raise Conflict("An account with this e-mail exists", code="email_taken")
    if rpps:
        rpps = validate_rpps(rpps)
        if (await session.execute(select(User).where(User.rpps == rpps))).first():
            raise Conflict("An account with this RPPS number exists", code="rpps_taken")
    if password is not None:
        passwords.check_strength(password)
    if fields.get("mobile"):
        fields["mobile"] = normalise_mobile(fields["mobile"])
    if fields.get("mss_address"):
        fields["mss_address"] = validate_mss_address(fields["mss_address"])
    for practitioner_id in delegates_for or []:
        other = await session.get(User, practitioner_id)
        if other is None or other.role is not Role.practitioner:
            raise ValidationFailed(
                "A secretary delegates for existing practitioners only", code="invalid_delegation"
            )
    if delegates_for and role is not Role.secretary:
        raise ValidationFailed("Only secretaries act for others", code="invalid_delegation")
    user = User(
        email=email,
        password_hash=passwords.hash_password(password) if password else None,
        role=role,
        first_name=first_name,
        last_name=last_name,
        search_name=search_name_of(first_name, last_name),
        title=title,
        rpps=rpps or None,
        preferences={},
        **fields,
    )
    session.add(user)
    await session.flush()
    for practitioner_id in delegates_for or []:
        session.add(Delegation(secretary_id=user.id, practitioner_id=practitioner_id))
    await session.flush()
    return user


async def delegators_of(session: AsyncSession, secretary_id: uuid.UUID) -> list[uuid.UUID]:
    """The practitioners a secretary acts for."""
    rows = await session.execute(
        select(Delegation.practitioner_id).where(Delegation.secretary_id == secretary_id)
    )
    return list(rows.scalars())


async def _apply_profile(
    session: AsyncSession, user: User, changes: dict[str, Any], *, actor: Principal
) -> list[str]:
    """Apply a user's own profile changes and audit them; returns the changed fields."""
    changed: list[str] = []
    for name in ("title", "first_name", "last_name"):
        if name in changes and changes[name] is not None:
            setattr(user, name, str(changes[name]).strip())
            changed.append(name)
    if "mobile" in changes:
        user.mobile = normalise_mobile(changes["mobile"]) if changes["mobile"] else None
        if not user.mobile and user.otp_channel == "sms":
            user.otp_channel = "email"
        changed.append("mobile")
    if "mss_address" in changes:
        addr = changes["mss_address"]
        user.mss_address = validate_mss_address(addr) if addr else None
        changed.append("mss_address")
    if changes.get("otp_channel") is not None:
        channel = changes["otp_channel"]
        if channel == "sms" and not user.mobile:
            raise ValidationFailed("Add a mobile number first", code="no_mobile")
        if channel == "totp" and not user.totp_enabled:
            raise ValidationFailed("Enrol an authenticator app first", code="totp_not_enrolled")
        user.otp_channel = channel
        changed.append("otp_channel")
    if changes.get("notifications"):
        prefs = dict(user.preferences or {})
        notify = notification_channels(user)
        for kind, channel in changes["notifications"].items():
            if channel in ("sms", "both") and not user.mobile:
                raise ValidationFailed("Add a mobile number first", code="no_mobile")
            notify[str(kind)] = str(channel)
        prefs["notify"] = notify
        user.preferences = prefs
        changed.append("notifications")
    if {"first_name", "last_name"} & set(changed):
        user.search_name = search_name_of(user.first_name, user.last_name)
    if changed:
        audit.record(
            session,
            "account.update",
            actor=actor,
            object_type="user",
            object_id=user.id,
            fields=changed,
        )
    return changed


async def _apply_password(
    session: AsyncSession, user: User, current: str, new: str, *, actor: Principal
) -> None:
    """Change a password after checking the current one."""
    if not passwords.verify_password(user.password_hash, current):
        raise Forbidden("The current password is wrong", code="wrong_password")
    passwords.check_strength(new)
    if passwords.verify_password(user.password_hash, new):
        raise ValidationFailed(
            "Choose a password different from the current one", code="same_password"
        )
    user.password_hash = passwords.hash_password(new)
    audit.record(
        session, "account.password_change", actor=actor, object_type="user", object_id=user.id
    )


async def _apply_admin_changes(
    session: AsyncSession, user: User, changes: dict[str, Any], *, actor: Principal
) -> list[str]:
    """Apply an administrator's changes to an account and audit them; returns the changed
    fields."""
    changed: list[str] = []
    for name in ("title", "profession", "specialty", "establishment"):
        if changes.get(name) is not None:
            setattr(user, name, str(changes[name]).strip())
            changed.append(name)
    if "rpps" in changes:
        rpps = validate_rpps(changes["rpps"]) if changes["rpps"] else None
        if rpps and rpps != user.rpps:
            taken = await session.execute(select(User.id).where(User.rpps == rpps))
            if taken.first():
                raise Conflict("An account with this RPPS number exists", code="rpps_taken")
        user.rpps = rpps
        changed.append("rpps")
    if changes.get("delegates_for") is not None:
        if user.role is not Role.secretary:
            raise ValidationFailed("Only secretaries act for others", code="invalid_delegation")
        wanted = list(dict.fromkeys(changes["delegates_for"]))
        for practitioner_id in wanted:
            other = await session.get(User, practitioner_id)
            if other is None or other.role is not Role.practitioner:
                raise ValidationFailed(
                    "A secretary delegates for existing practitioners only",
                    code="invalid_delegation",
                )
        await session.execute(delete(Delegation).where(Delegation.secretary_id == user.id))
        for practitioner_id in wanted:
            session.add(Delegation(secretary_id=user.id, practitioner_id=practitioner_id))
        changed.append("delegates_for")
    if changes.get("active") is not None and bool(changes["active"]) != user.active:
        if user.id == actor.subject_id:
            raise ValidationFailed(
                "You cannot deactivate your own account", code="self_deactivation"
            )
        user.active = bool(changes["active"])
        changed.append("active")
    if changed:
        await session.flush()
        audit.record(
            session,
            "user.deactivate"
            if changes.get("active") is False and "active" in changed
            else "user.update",
            actor=actor,
            object_type="user",
            object_id=user.id,
            fields=changed,
        )
    return changed


# -- second factors: re-authentication and notices -----------------------------------------


def require_recent_reauth(actor: Principal) -> None:
    """Changing a second factor needs a sign-in or a re-authentication (password and current
    second factor, ``POST /me/reauth``) in the last :data:`REAUTH_SECONDS`: a stolen session
    alone cannot replace the factors that protect the account."""
    at = float(actor.data.get("reauth_at", 0) or 0)  # type: ignore[arg-type]
    if time.time() - at > REAUTH_SECONDS:
        raise ReauthRequired(
            "Confirm your password and a second factor (POST /api/v1/me/reauth), then retry",
            reauth_seconds=REAUTH_SECONDS,
        )


async def _factor_notice(
    notifier: Notifier | None, *, email: str, name: str, what: str, sms_to: str | None
) -> None:
    """Tell the owner, on the channels in place before the change, that a factor changed."""
    if notifier is None:
        return
    text = (
        f"Bonjour {name},\n\n{what}\nSi vous n'êtes pas à l'origine de ce changement, "
        "changez votre mot de passe et prévenez sans attendre l'administrateur de votre "
        "établissement.\n\nConsilium"
    )
    try:
        await notifier.send_email(
            Email(to=email, subject="Consilium — sécurité de votre compte", text=text)
        )
    except DeliveryError:
        log.warning("second-factor notice by e-mail failed")
    if sms_to:
        try:
            await notifier.send_sms(sms_to, f"Consilium : {what}"[:600])
        except DeliveryError:
            log.warning("second-factor notice by SMS failed")


# -- actions: every change to an account goes through one of these ---------------------------
# Each opens its own transaction, checks, writes and audits in it; routes only translate.


def _sms_channel(user: User) -> str | None:
    """The mobile to notify too, when codes go there."""
    return user.mobile if user.otp_channel == "sms" else None


async def _own_account(session: AsyncSession, actor: Principal) -> User:
    user = await session.get(User, actor.user_id, with_for_update=True)
    if user is None or not user.active:
        raise Unauthorized("Sign in first", code="unauthenticated")
    return user


async def create_account(
    db: Database,
    *,
    actor: Principal | None,
    email: str,
    password: str | None,
    role: Role,
    first_name: str,
    last_name: str,
    delegates_for: list[uuid.UUID] | None = None,
    totp: bool = False,
    **fields: Any,
) -> tuple[User, list[uuid.UUID]]:
    """Create an account (an administrator, or the ``consilium`` command when ``actor`` is
    None); returns it with the practitioners it delegates for. ``totp``: enrol an
    authenticator secret at once (``user.totp_secret``, for service accounts whose script
    computes the codes, see docs/accounts.md)."""
    async with db.write() as uow:
        user = await create_user(
            uow.session,
            email=email,
            password=password,
            role=role,
            first_name=first_name.strip(),
            last_name=last_name.strip(),
            delegates_for=delegates_for,
            **fields,
        )
        if totp:
            user.totp_secret = mfa.new_totp_secret()
            user.totp_enabled = True
            user.otp_channel = "totp"
        audit.record(
            uow.session,
            "user.create",
            actor=actor,
            actor_kind="" if actor else "system",
            object_type="user",
            object_id=user.id,
            role=user.role.value,
            email=user.email,
            totp=totp,
        )
    return user, list(delegates_for or [])


async def edit_profile(
    db: Database,
    changes: dict[str, Any],
    *,
    actor: Principal,
    notifier: Notifier | None = None,
) -> list[str]:
    """Change my names, mobile, MSSanté address, code channel or notification channels. The
    mobile and the code channel are second factors: they need a recent re-authentication,
    and the old channel is told of the change."""
    if "mobile" in changes or changes.get("otp_channel") is not None:
        require_recent_reauth(actor)
    async with db.write() as uow:
        user = await _own_account(uow.session, actor)
        old_mobile, old_channel = user.mobile, user.otp_channel
        changed = await _apply_profile(uow.session, user, changes, actor=actor)
        email, name, mobile, channel = user.email, user.display_name, user.mobile, user.otp_channel
    if mobile != old_mobile:
        what = (
            f"Le numéro de mobile de votre compte Consilium est maintenant {mobile}."
            if mobile
            else "Le numéro de mobile de votre compte Consilium a été retiré."
        )
        await _factor_notice(notifier, email=email, name=name, what=what, sms_to=old_mobile)
    elif channel != old_channel:
        what = f"Vos codes de connexion Consilium arrivent désormais par : {channel}."
        sms = old_mobile if old_channel == "sms" else None
        await _factor_notice(notifier, email=email, name=name, what=what, sms_to=sms)
    return changed


async def change_own_password(
    db: Database, sessions: Sessions, current: str, new: str, *, actor: Principal
) -> None:
    """Change my password (the current one checked); every session of mine ends after the
    commit, the caller opens a fresh one for the browser that asked."""
    async with db.write() as uow:
        user = await _own_account(uow.session, actor)
        await _apply_password(uow.session, user, current, new, actor=actor)
    await sessions.store.delete_for_subject(actor.user_id)


async def admin_edit_user(
    db: Database,
    sessions: Sessions,
    user_id: uuid.UUID,
    changes: dict[str, Any],
    *,
    actor: Principal,
) -> tuple[User, list[uuid.UUID]]:
    """An administrator changes an account; a deactivated account's sessions end."""
    if not actor.is_admin:
        raise Forbidden("Reserved to administrators", code="admin_required")
    async with db.write() as uow:
        user = await uow.session.get(User, user_id, with_for_update=True)
        if user is None:
            raise NotFound("No user with this id")
        await _apply_admin_changes(uow.session, user, changes, actor=actor)
        delegates = await delegators_of(uow.session, user.id)
    if not user.active:
        await sessions.store.delete_for_subject(user_id)
    return user, delegates


async def begin_totp_enrolment(db: Database, *, actor: Principal) -> tuple[str, str]:
    """Draw a new authenticator secret for my account; returns it with my e-mail (the
    account name in the app). It is enabled by :func:`confirm_totp_enrolment`."""
    require_recent_reauth(actor)
    async with db.write() as uow:
        user = await _own_account(uow.session, actor)
        if user.totp_enabled:
            raise Conflict(
                "An authenticator app is already enrolled; remove it first", code="totp_enabled"
            )
        user.totp_secret = mfa.new_totp_secret()
        return user.totp_secret, user.email


async def confirm_totp_enrolment(
    db: Database,
    code: str,
    *,
    secret_key: str,
    actor: Principal,
    notifier: Notifier | None = None,
) -> list[str]:
    """Enable the authenticator app with its first code; returns 10 fresh recovery codes."""
    async with db.write() as uow:
        user = await _own_account(uow.session, actor)
        if user.totp_enabled or not user.totp_secret:
            raise Conflict("Start the enrolment first", code="totp_not_pending")
        if not mfa.check_totp(user, code):
            raise ValidationFailed("Wrong code; check the phone's clock", code="invalid_code")
        user.totp_enabled = True
        user.otp_channel = "totp"
        codes = await mfa.replace_recovery_codes(uow.session, user, secret_key)
        audit.record(
            uow.session, "account.totp_enrol", actor=actor, object_type="user", object_id=user.id
        )
        email, name, sms = user.email, user.display_name, _sms_channel(user)
    what = "Une application d'authentification a été associée à votre compte Consilium."
    await _factor_notice(notifier, email=email, name=name, what=what, sms_to=sms)
    return codes


async def renew_recovery_codes(
    db: Database,
    code: str,
    *,
    secret_key: str,
    actor: Principal,
    notifier: Notifier | None = None,
) -> list[str]:
    """Replace my recovery codes (with a current authenticator code and a recent
    re-authentication); the old ones die."""
    require_recent_reauth(actor)
    async with db.write() as uow:
        user = await _own_account(uow.session, actor)
        if not user.totp_enabled:
            raise Conflict("No authenticator app is enrolled", code="totp_not_enrolled")
        if not mfa.check_totp(user, code):
            raise ValidationFailed("Wrong code", code="invalid_code")
        codes = await mfa.replace_recovery_codes(uow.session, user, secret_key)
        audit.record(
            uow.session,
            "account.recovery_codes",
            actor=actor,
            object_type="user",
            object_id=user.id,
        )
        email, name, sms = user.email, user.display_name, _sms_channel(user)
    what = "Les codes de secours de votre compte Consilium ont été renouvelés."
    await _factor_notice(notifier, email=email, name=name, what=what, sms_to=sms)
    return codes


async def remove_totp(
    db: Database,
    code: str,
    *,
    secret_key: str,
    actor: Principal,
    notifier: Notifier | None = None,
) -> None:
    """Remove my authenticator app (with a current code or a recovery code, and a recent
    re-authentication)."""
    require_recent_reauth(actor)
    async with db.write() as uow:
        user = await _own_account(uow.session, actor)
        if not user.totp_enabled:
            raise Conflict("No authenticator app is enrolled", code="totp_not_enrolled")
        ok = mfa.check_totp(user, code) or await mfa.use_recovery_code(
            uow.session, user, secret_key, code
        )
        if not ok:
            raise ValidationFailed("Wrong code", code="invalid_code")
        await mfa.disable_totp(uow.session, user)
        audit.record(
            uow.session, "account.totp_remove", actor=actor, object_type="user", object_id=user.id
        )
        email, name, sms = user.email, user.display_name, _sms_channel(user)
    what = "L'application d'authentification de votre compte Consilium a été retirée."
    await _factor_notice(notifier, email=email, name=name, what=what, sms_to=sms)


# -- sign-in: what the second step writes ---------------------------------------------------

KNOWN_DEVICES = 10  # the devices an account remembers (see core.throttle)


def knows_device(user: User, device: str | None) -> bool:
    return bool(device) and device in (user.preferences or {}).get("devices", [])


async def rehash_password(db: Database, user_id: uuid.UUID, new_hash: str) -> None:
    """Store a password hash recomputed with current parameters (after a good password)."""
    async with db.write() as uow:
        user = await uow.session.get(User, user_id, with_for_update=True)
        if user is not None:
            user.password_hash = new_hash


@dataclass
class SecondFactor:
    ok: bool
    label: str = ""
    role: str = ""
    email: str = ""


async def check_second_factor(
    db: Database,
    user_id: uuid.UUID,
    *,
    method: str,
    code: str,
    pending: dict[str, Any],
    secret_key: str,
    ip: str,
    device: str | None,
) -> SecondFactor | None:
    """The second step of sign-in: check a one-time code, authenticator code or recovery code
    against the pending sign-in's state (``pending``), audit the outcome and, on success,
    remember the sign-in (time, preferred channel, this device). None when the account is
    gone or deactivated."""
    async with db.write() as uow:
        user = await uow.session.get(User, user_id, with_for_update=True)
        if user is None or not user.active:
            return None
        ok = False
        if method == "otp":
            ok = mfa.check_one_time_code(secret_key, pending, code)
        elif method == "totp" and user.totp_enabled:
            ok = mfa.check_totp(user, code)
        elif method == "recovery" and user.totp_enabled:
            ok = await mfa.use_recovery_code(uow.session, user, secret_key, code)
        who = {"actor_label": user.email, "object_type": "user", "object_id": user.id, "ip": ip}
        if not ok:
            audit.record(uow.session, "auth.otp_failed", outcome="failure", method=method, **who)
            return SecondFactor(ok=False, email=user.email)
        user.last_login_at = utcnow()
        if method == "otp" and pending.get("mfa_channel") in ("email", "sms"):
            user.otp_channel = str(pending["mfa_channel"])  # remembered for next time
        elif method == "totp":
            user.otp_channel = "totp"
        if device:
            prefs = dict(user.preferences or {})
            devices = [d for d in prefs.get("devices", []) if d != device]
            prefs["devices"] = [device, *devices][:KNOWN_DEVICES]
            user.preferences = prefs
        for action in ("auth.otp_used", "auth.login"):
            audit.record(
                uow.session, action, actor_id=user.id, actor_kind="user", method=method, **who
            )
        return SecondFactor(
            ok=True, label=user.display_name, role=user.role.value, email=user.email
        )


async def reauthenticate(
    db: Database,
    *,
    password: str,
    method: str,
    code: str,
    pending: dict[str, Any],
    secret_key: str,
    actor: Principal,
) -> bool:
    """Check my password and a current second factor (a code sent for this purpose, kept in
    ``pending``, my authenticator app or a recovery code); audited either way. The caller
    marks the session as re-authenticated on success."""
    async with db.read() as session:
        stored = await session.scalar(select(User.password_hash).where(User.id == actor.user_id))
    password_ok = await asyncio.to_thread(passwords.verify_password, stored, password)
    async with db.write() as uow:
        user = await _own_account(uow.session, actor)
        ok = False
        if password_ok:
            if method == "otp":
                ok = mfa.check_one_time_code(secret_key, pending, code)
            elif method == "totp" and user.totp_enabled:
                ok = mfa.check_totp(user, code)
            elif method == "recovery" and user.totp_enabled:
                ok = await mfa.use_recovery_code(uow.session, user, secret_key, code)
        audit.record(
            uow.session,
            "account.reauth",
            actor=actor,
            object_type="user",
            object_id=user.id,
            outcome="success" if ok else "failure",
            method=method,
        )
    return ok
