"""Second factors: one-time codes sent by e-mail or SMS, authenticator apps (TOTP) and
one-time recovery codes.

Sign-in (:mod:`core.login`) and enrolment (:mod:`core.users`) both go through these
functions, so a code is checked the same way wherever it is typed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import secrets
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyotp
import segno
from sqlalchemy import ForeignKey, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, IdMixin, UTCDateTime, utcnow

if TYPE_CHECKING:
    from core.accounts import User

ISSUER = "Consilium"
RECOVERY_CODES = 10
OTP_DIGITS = 6


def keyed_hash(secret_key: str, value: str) -> str:
    """HMAC-SHA256 of a high-entropy value (one-time codes, recovery codes)."""
    return hmac.new(secret_key.encode(), value.encode(), hashlib.sha256).hexdigest()


def normalise(code: str) -> str:
    return code.strip().replace(" ", "").replace("-", "").upper()


# -- one-time codes by e-mail or SMS ---------------------------------------------------------


def new_one_time_code(secret_key: str, ttl_seconds: int) -> tuple[str, dict[str, Any]]:
    """A 6-digit code (HOTP over a fresh random secret) and what the session keeps of it:
    its keyed hash and its deadline, never the code itself."""
    code = pyotp.HOTP(pyotp.random_base32(), digits=OTP_DIGITS).at(0)
    state = {
        "mfa_code": keyed_hash(secret_key, code),
        "mfa_expires": time.time() + ttl_seconds,
        "mfa_tries": 0,
    }
    return code, state


def check_one_time_code(secret_key: str, state: dict[str, Any], code: str) -> bool:
    """True when ``code`` matches the pending code and it has not expired. Single use: the
    caller removes ``mfa_code`` from the session on success."""
    expected = state.get("mfa_code")
    fresh = float(state.get("mfa_expires", 0)) > time.time()
    if not expected or not fresh:
        return False
    return hmac.compare_digest(str(expected), keyed_hash(secret_key, normalise(code)))


# -- TOTP (authenticator apps) ---------------------------------------------------------------


def new_totp_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def qr_svg_data_uri(uri: str) -> str:
    """The otpauth URI as a QR code, an SVG in a data URI (no request leaves the page)."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=5, border=2, xmldecl=False)
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode()


def check_totp(user: User, code: str, *, secret: str | None = None) -> bool:
    """Check an authenticator code (one step of clock drift either way), refusing a step
    already used: a code seen once cannot be replayed."""
    secret = secret or user.totp_secret
    code = normalise(code)
    if not secret or len(code) != OTP_DIGITS or not code.isdigit():
        return False
    totp = pyotp.TOTP(secret)
    prefs = dict(user.preferences or {})
    last = int(prefs.get("totp_last_step", -1))
    step = totp.timecode(utcnow())
    for candidate in (step - 1, step, step + 1):
        if candidate > last and hmac.compare_digest(totp.generate_otp(candidate), code):
            prefs["totp_last_step"] = candidate
            user.preferences = prefs
            return True
    return False


# -- recovery codes --------------------------------------------------------------------------


class RecoveryCode(IdMixin, Base):
    """One-time recovery code for a user who lost their authenticator (stored hashed)."""

    __tablename__ = "recovery_codes"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(255))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


def _new_recovery_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(10)).decode()[:10]
    return f"{raw[:5]}-{raw[5:]}"


async def replace_recovery_codes(session: AsyncSession, user: User, secret_key: str) -> list[str]:
    """Issue a fresh set of recovery codes (the old ones stop working); returns them in clear
    once — only their keyed hashes are stored."""
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    for c in codes:
        session.add(RecoveryCode(user_id=user.id, code_hash=keyed_hash(secret_key, normalise(c))))
    await session.flush()
    return codes


async def use_recovery_code(session: AsyncSession, user: User, secret_key: str, code: str) -> bool:
    """Spend one recovery code; False when unknown or already used."""
    digest = keyed_hash(secret_key, normalise(code))
    row = (
        await session.execute(
            select(RecoveryCode).where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == digest,
                RecoveryCode.used_at.is_(None),
            )
        )
    ).scalar_one_or_none()
    if row is None:
        return False
    row.used_at = utcnow()
    return True


async def remaining_recovery_codes(session: AsyncSession, user: User) -> int:
    rows = await session.execute(
        select(RecoveryCode.id).where(
            RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
        )
    )
    return len(rows.all())


async def disable_totp(session: AsyncSession, user: User) -> None:
    user.totp_enabled = False
    user.totp_secret = None
    if user.otp_channel == "totp":
        user.otp_channel = "email"
    prefs = dict(user.preferences or {})
    prefs.pop("totp_last_step", None)
    user.preferences = prefs
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
