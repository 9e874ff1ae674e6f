"""The seam where an OpenID Connect provider (Pro Santé Connect) plugs into sign-in.

Nothing here talks to the network yet. A provider's callback route, once it has exchanged
the authorisation code and validated the ID token (issuer, audience, nonce, signature), hands
the verified claims to :func:`complete_sign_in`. The practitioner is found by RPPS (PSC's
``SubjectNameID`` is the national identifier ``8`` + RPPS), then the same server-side
session as after a password and a one-time code is opened, directly at stage ``full``: a CPS
card or the e-CPS app is itself a strong authentication. See docs/security.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.accounts import User
from core.auth import client_ip, start_session
from core.context import DB
from core.db import utcnow
from core.errors import Forbidden
from core.sessions import SessionData


@dataclass(frozen=True)
class OidcProvider:
    """Static configuration of one provider (discovery document fetched at start-up later)."""

    name: str  # "psc": used in routes (/api/v1/auth/oidc/{name}/…) and audit rows
    issuer: str  # e.g. https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet
    client_id: str
    client_secret: str = field(repr=False, default="")
    scopes: tuple[str, ...] = ("openid", "scope_all")
    acr_values: str = "eidas1"  # PSC: a CPS card or the e-CPS app
    id_claims: tuple[str, ...] = ("SubjectNameID", "preferred_username")

    @property
    def callback_path(self) -> str:
        return f"/api/v1/auth/oidc/{self.name}/callback"


def rpps_from_claims(provider: OidcProvider, claims: dict[str, Any]) -> str | None:
    """The RPPS number in verified claims: an 11-digit value, or ``8`` + RPPS (IdNat_PS)."""
    for name in provider.id_claims:
        value = str(claims.get(name) or "").strip()
        if len(value) == 12 and value.startswith("8") and value.isdigit():
            return value[1:]
        if len(value) == 11 and value.isdigit():
            return value
    return None


async def account_for(
    session: AsyncSession, provider: OidcProvider, claims: dict[str, Any]
) -> User | None:
    """The active account the claims identify, by RPPS; None when there is none."""
    rpps = rpps_from_claims(provider, claims)
    if rpps is None:
        return None
    user = (await session.execute(select(User).where(User.rpps == rpps))).scalar_one_or_none()
    return user if user is not None and user.active else None


async def complete_sign_in(
    request: web.Request,
    response: web.StreamResponse,
    provider: OidcProvider,
    claims: dict[str, Any],
) -> SessionData:
    """Open a full session for the practitioner the provider identified (or refuse, 403)."""
    ip = client_ip(request)
    async with request.app[DB].write() as uow:
        user = await account_for(uow.session, provider, claims)
        if user is not None:
            user.last_login_at = utcnow()
            audit.record(
                uow.session,
                "auth.login",
                actor_id=user.id,
                actor_kind="user",
                actor_label=user.email,
                object_type="user",
                object_id=user.id,
                ip=ip,
                method=f"oidc:{provider.name}",
            )
    if user is None:
        await audit.record_now(
            request.app[DB],
            "auth.login",
            ip=ip,
            outcome="failure",
            actor_label=str(claims.get("sub", ""))[:200],
            method=f"oidc:{provider.name}",
            reason="no_account",
        )
        raise Forbidden("No Consilium account holds this RPPS number", code="no_account")
    # A fresh PSC sign-in (CPS card or e-CPS) counts as a re-authentication (docs/security.md).
    return await start_session(
        request,
        response,
        kind="user",
        subject_id=user.id,
        stage="full",
        data={"reauth_at": time.time()},
    )
