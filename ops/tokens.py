"""Access tokens another application mints with its API key (as LiveKit's): a JWT signed
HS256 with the API secret, ``iss`` the key id, ``sub`` the participant's identity in the
application, ``name`` shown in the room, a short ``exp``, and grants::

    {"iss": "CK…", "sub": "patient-4711", "name": "Mme Martin", "iat": …, "exp": …,
     "grants": {"room_join": true, "room": "<room uuid>"}}

``launch`` opens Consilium from the hospital record (``/launch``, :mod:`ops.fhir.launch`);
``fhir_read`` lets the bearer read the FHIR API (``/fhir/R4``) as the key's account;
``room_create`` lets the bearer create rooms (``POST /api/v1/server/rooms``); ``room_join``
with ``room`` lets them enter that room as a guest (through its lobby).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from core.config import Settings
from core.db import Database
from ops import apikeys
from ops.models import ApiKey, UsedToken

LEEWAY = 30  # seconds of clock difference tolerated between the application and us


@dataclass(frozen=True)
class Grants:
    room_create: bool = False
    room_join: bool = False
    room: uuid.UUID | None = None
    fhir_read: bool = False
    launch: bool = False


@dataclass(frozen=True)
class Access:
    key: ApiKey
    user: Any  # core.accounts.User the key acts as
    identity: str
    name: str
    grants: Grants
    token_id: str  # 32 hex characters, the same for every use of one token
    exp: int
    claims: dict[str, Any] = field(default_factory=dict)  # all of them (launch: patient, user)


def mint(
    key_id: str,
    secret: str,
    *,
    identity: str,
    name: str = "",
    ttl: int = 600,
    room_create: bool = False,
    room_join: bool = False,
    room: uuid.UUID | str | None = None,
    fhir_read: bool = False,
) -> str:
    """What the application does (with PyJWT or any JWT library)."""
    now = int(time.time())
    grants: dict[str, Any] = {"room_create": room_create, "room_join": room_join}
    if fhir_read:
        grants["fhir_read"] = True
    if room is not None:
        grants["room"] = str(room)
    claims = {"iss": key_id, "sub": identity, "name": name, "iat": now, "nbf": now}
    claims.update(exp=now + ttl, grants=grants)
    return jwt.encode(claims, secret, algorithm="HS256")


def _grants(raw: Any) -> Grants:
    if not isinstance(raw, dict):
        return Grants()
    room = raw.get("room")
    try:
        room_id = uuid.UUID(str(room)) if room else None
    except ValueError:
        room_id = None
    return Grants(
        room_create=raw.get("room_create") is True,
        room_join=raw.get("room_join") is True,
        room=room_id,
        fhir_read=raw.get("fhir_read") is True,
        launch=raw.get("launch") is True,
    )


async def verify(db: Database, settings: Settings, token: str, *, ip: str) -> Access:
    """The access a token gives; 401 problems (audited) for a malformed, forged or expired
    token and for a revoked key."""
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise await apikeys.refuse(db, "token_invalid", "Malformed access token", ip=ip) from None
    key_id = str(unverified.get("iss", ""))[:40]
    if header.get("alg") != "HS256":
        raise await apikeys.refuse(
            db, "token_invalid", "Access tokens are signed HS256", ip=ip, key_id=key_id
        )
    key, user = await apikeys.active_key(db, key_id, ip=ip)
    secret = apikeys.unseal(settings, key)
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            issuer=key.id,
            leeway=LEEWAY,
            options={"require": ["exp", "iat", "iss", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise await apikeys.refuse(
            db, "token_expired", "The access token has expired", ip=ip, key_id=key.id
        ) from None
    except jwt.InvalidTokenError as e:
        raise await apikeys.refuse(
            db, "token_invalid", f"Invalid access token: {e}", ip=ip, key_id=key.id
        ) from None
    exp, iat = int(claims["exp"]), int(claims["iat"])
    if exp - iat > settings.api_token_max_ttl_seconds:
        raise await apikeys.refuse(
            db,
            "token_invalid",
            f"Access tokens live at most {settings.api_token_max_ttl_seconds} s",
            ip=ip,
            key_id=key.id,
        )
    name = str(claims.get("name") or claims["sub"])[:200].strip() or "Invité"
    return Access(
        key=key,
        user=user,
        identity=str(claims["sub"])[:200],
        name=name,
        grants=_grants(claims.get("grants")),
        token_id=hashlib.sha256(token.encode()).hexdigest()[:32],
        exp=exp,
        claims=dict(claims),
    )


async def consume(db: Database, access: Access) -> bool:
    """Record the single use of ``access``'s token: False when it was used already (by this
    node or another, concurrently or before). Expired records are dropped on the way."""
    now = datetime.now(UTC)
    try:
        async with db.write() as uow:
            await uow.session.execute(delete(UsedToken).where(UsedToken.expires_at < now))
            uow.session.add(
                UsedToken(
                    token_id=access.token_id,
                    used_at=now,
                    expires_at=datetime.fromtimestamp(access.exp, UTC),
                )
            )
    except IntegrityError:
        return False
    return True
