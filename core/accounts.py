"""Accounts: practitioners, secretaries delegating for practitioners, administrators."""

from __future__ import annotations

import enum
import re
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, String, UniqueConstraint, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core import passwords
from core.db import Base, IdMixin, TimestampMixin, UTCDateTime
from core.errors import Conflict, ValidationFailed


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


class RecoveryCode(IdMixin, Base):
    """One-time recovery code for a user who lost their authenticator (stored hashed)."""

    __tablename__ = "recovery_codes"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(255))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


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
    """The one write path that creates an account."""
    email = email.strip().lower()
    if await get_by_email(session, email) is not None:
        raise Conflict("An account with this e-mail exists", code="email_taken")
    if rpps:
        rpps = validate_rpps(rpps)
        if (await session.execute(select(User).where(User.rpps == rpps))).first():
            raise Conflict("An account with this RPPS number exists", code="rpps_taken")
    if password is not None:
        passwords.check_strength(password)
    user = User(
        email=email,
        password_hash=passwords.hash_password(password) if password else None,
        role=role,
        first_name=first_name,
        last_name=last_name,
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
