"""Server API keys: one write path each to create and revoke them, and the authentication of
a server-to-server call (``Authorization: Basic`` key id and secret, or ``Bearer`` an access
token minted with the key, :mod:`ops.tokens`). Refusals are audited.

A key acts as an account (``user_id``): the rooms it creates are that account's, and the
guests its tokens let in were invited by it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from datetime import datetime

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select

from core import accounts, audit
from core.accounts import User
from core.config import Settings
from core.db import Database, utcnow
from core.errors import NotFound, Unauthorized, ValidationFailed
from core.principal import Principal
from ops.models import ApiKey

KEY_PREFIX = "CK"


def _fernet(settings: Settings) -> Fernet:
    key = hashlib.sha256(b"consilium api keys\x00" + settings.secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def unseal(settings: Settings, key: ApiKey) -> str:
    try:
        return _fernet(settings).decrypt(key.secret_sealed.encode()).decode()
    except InvalidToken:  # CONSILIUM_SECRET_KEY changed since: the key must be made again
        raise Unauthorized("This API key can no longer be used", code="api_key_invalid") from None


async def create_key(
    db: Database, settings: Settings, *, name: str, user_email: str, actor: Principal | None
) -> tuple[ApiKey, str]:
    """A new key acting as the account ``user_email``; returns it and its secret (shown
    once, never stored in clear)."""
    async with db.write() as uow:
        user = await accounts.get_by_email(uow.session, user_email)
        if user is None or not user.active:
            raise ValidationFailed(f"No active account {user_email}", code="account_not_found")
        key_id = KEY_PREFIX + base64.b32encode(secrets.token_bytes(10)).decode().rstrip("=")
        secret = secrets.token_urlsafe(32)
        key = ApiKey(
            id=key_id,
            name=name.strip()[:200],
            user_id=user.id,
            secret_hash=hash_secret(secret),
            secret_sealed=_fernet(settings).encrypt(secret.encode()).decode(),
            created_at=utcnow(),
        )
        uow.session.add(key)
        audit.record(
            uow.session,
            "api_key.create",
            actor=actor,
            actor_label="" if actor else "consilium CLI",
            object_type="api_key",
            object_id=key_id,
            name=key.name,
            user_id=str(user.id),
        )
    return key, secret


async def list_keys(db: Database) -> list[tuple[ApiKey, str]]:
    """Every key with the e-mail of the account it acts as, newest first."""
    async with db.read() as s:
        rows = await s.execute(
            select(ApiKey, User.email)
            .join(User, User.id == ApiKey.user_id)
            .order_by(ApiKey.created_at.desc())
        )
        return [(k, email) for k, email in rows.all()]


async def revoke_key(db: Database, key_id: str, *, actor: Principal | None) -> ApiKey:
    """Refuse the key and every token minted with it from now on."""
    async with db.write() as uow:
        key = await uow.session.get(ApiKey, key_id)
        if key is None:
            raise NotFound("No API key with this id", code="api_key_not_found")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            audit.record(
                uow.session,
                "api_key.revoke",
                actor=actor,
                actor_label="" if actor else "consilium CLI",
                object_type="api_key",
                object_id=key_id,
            )
    return key


async def refuse(
    db: Database, code: str, detail: str, *, ip: str, key_id: str = "", status: int = 401
) -> Unauthorized:
    """Audit a refused server call or token, and the problem to raise."""
    await audit.record_now(
        db,
        "api_key.refused",
        actor_kind="api_key",
        actor_label=key_id,
        object_type="api_key",
        object_id=key_id,
        ip=ip,
        outcome="failure",
        code=code,
    )
    return Unauthorized(detail, code=code, status=status)


async def active_key(db: Database, key_id: str, *, ip: str) -> tuple[ApiKey, User]:
    async with db.read() as s:
        key = await s.get(ApiKey, key_id) if len(key_id) <= 40 else None
        user = await s.get(User, key.user_id) if key is not None else None
    if key is None or user is None:
        raise await refuse(db, "api_key_invalid", "Unknown API key", ip=ip, key_id=key_id[:40])
    if key.revoked_at is not None:
        raise await refuse(db, "api_key_revoked", "This API key was revoked", ip=ip, key_id=key.id)
    if not user.active:
        raise await refuse(
            db, "api_key_invalid", "The key's account is deactivated", ip=ip, key_id=key.id
        )
    return key, user


async def check_basic(db: Database, header: str, *, ip: str) -> tuple[ApiKey, User]:
    """``Authorization: Basic base64(key_id:secret)``."""
    try:
        key_id, _, secret = base64.b64decode(header, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise await refuse(db, "api_key_invalid", "Malformed Basic credentials", ip=ip) from None
    key, user = await active_key(db, key_id, ip=ip)
    if not hmac.compare_digest(hash_secret(secret), key.secret_hash):
        raise await refuse(db, "api_key_invalid", "Wrong API secret", ip=ip, key_id=key.id)
    return key, user


def principal_of(key: ApiKey, user: User, *, ip: str) -> Principal:
    """The account the key acts as, marked as coming through the key."""
    return Principal.for_user(user, ip=ip, data={"api_key_id": key.id})


def is_expired(at: datetime | None) -> bool:
    return at is not None and at <= utcnow()
