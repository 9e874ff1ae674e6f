"""Sign-in through an OpenID Connect provider: Pro Santé Connect (PSC).

The authorisation code flow with PKCE, ``state`` and ``nonce`` (seed 000, 1.1.1–1.1.2):

1. ``GET /api/v1/auth/oidc/psc/start`` keeps ``state``, ``nonce`` and the PKCE
   ``code_verifier`` server-side, in a short pre-session bound to the ``consilium_psc``
   cookie, and redirects to the provider's authorisation endpoint (found by discovery) with
   ``scope=openid scope_all`` and ``acr_values=eidas1``.
2. ``GET /api/v1/auth/oidc/psc/callback`` takes the pre-session (single use: it is deleted
   before anything else), checks ``state``, exchanges the code (client_secret_basic +
   ``code_verifier``), validates the ID token (signature from the provider's JWKS, issuer,
   audience, expiry, nonce, ``acr``), reads userinfo (same ``sub``), then
   :func:`complete_sign_in` finds the practitioner by RPPS (PSC's ``SubjectNameID`` is
   ``8`` + RPPS) and opens a session at stage ``full``: a CPS card or the e-CPS app is
   itself a strong authentication, so no one-time code follows.
3. An RPPS that no account holds: the verified identity waits in a ``link`` pre-session and
   the login page offers to attach it to an existing account after that account's password
   and one-time code (:func:`link_pending`), or the practitioner stops there.
4. Signing out of a PSC session also ends the provider's session (``end_session_endpoint``
   with ``id_token_hint`` and ``post_logout_redirect_uri``).

Every refusal is audited (``auth.login``, ``method=oidc:psc``, ``reason=<code>``).
Libraries: authlib (PKCE, random tokens) and joserfc (authlib's JOSE library: JWS and JWT
claims). See docs/security.md.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.accounts import User
from core.api import Api
from core.auth import SESSION, clear_session_cookie, client_ip, start_session
from core.config import Settings
from core.context import DB, LIMITER, SESSIONS, SETTINGS
from core.db import utcnow
from core.errors import PROBLEM_TYPE, Forbidden, NotFound, Problem, TooManyRequests
from core.sessions import SessionData

PRE_COOKIE = "consilium_psc"  # the pre-session: pending flow, then pending link
PRE_COOKIE_PATH = "/api/v1/auth/"
PRE_LIFETIME = 600  # seconds to finish at the provider, or to link an account
ALGORITHMS = ["RS256", "PS256", "ES256"]


@dataclass(frozen=True)
class OidcProvider:
    """Static configuration of one provider (its endpoints come from discovery)."""

    name: str  # "psc": used in routes (/api/v1/auth/oidc/{name}/…) and audit rows
    issuer: str  # e.g. https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet
    client_id: str
    client_secret: str = field(repr=False, default="")
    scopes: tuple[str, ...] = ("openid", "scope_all")
    acr_values: str = "eidas1"  # PSC: a CPS card or the e-CPS app
    id_claims: tuple[str, ...] = ("SubjectNameID", "preferred_username")
    leeway: int = 60  # seconds of clock skew tolerated on exp / iat

    @property
    def callback_path(self) -> str:
        return f"/api/v1/auth/oidc/{self.name}/callback"


def psc_of(settings: Settings) -> OidcProvider | None:
    """The Pro Santé Connect provider the settings configure, or None."""
    if not (settings.psc_issuer and settings.psc_client_id):
        return None
    return OidcProvider(
        name="psc",
        issuer=settings.psc_issuer.rstrip("/"),
        client_id=settings.psc_client_id,
        client_secret=settings.psc_client_secret,
        scopes=tuple(settings.psc_scopes.split()),
        acr_values=settings.psc_acr_values,
    )


class OidcRefused(Problem):
    """A sign-in through the provider that cannot be accepted; ``code`` says why."""

    status, code, title = 400, "oidc_refused", "Pro Santé Connect sign-in refused"


def rpps_from_claims(provider: OidcProvider, claims: dict[str, Any]) -> str | None:
    """The RPPS number in verified claims: an 11-digit value, or ``8`` + RPPS (IdNat_PS)."""
    for name in provider.id_claims:
        value = str(claims.get(name) or "").strip()
        if len(value) == 12 and value.startswith("8") and value.isdigit():
            return value[1:]
        if len(value) == 11 and value.isdigit():
            return value
    return None


# -- talking to the provider ---------------------------------------------------------------


class OidcClient:
    """One provider's discovery document, keys and endpoints, over one HTTP session."""

    METADATA_TTL = 3600.0

    def __init__(self, provider: OidcProvider) -> None:
        self.provider = provider
        self._http: aiohttp.ClientSession | None = None
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._lock = asyncio.Lock()

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def _get_json(self, url: str) -> Any:
        try:
            async with self.http.get(url, headers={"Accept": "application/json"}) as r:
                if r.status != 200:
                    raise OidcRefused(f"{url} answered {r.status}", code="provider_unavailable")
                return await r.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            raise OidcRefused("The provider did not answer", code="provider_unavailable") from None

    async def metadata(self) -> dict[str, Any]:
        """The discovery document (``/.well-known/openid-configuration``), cached an hour."""
        async with self._lock:
            if self._metadata is None or time.monotonic() - self._metadata_at > self.METADATA_TTL:
                url = self.provider.issuer + "/.well-known/openid-configuration"
                doc = await self._get_json(url)
                if not isinstance(doc, dict) or doc.get("issuer") != self.provider.issuer:
                    raise OidcRefused(
                        "The discovery document names another issuer", code="provider_unavailable"
                    )
                self._metadata, self._metadata_at = doc, time.monotonic()
                self._keys = None
            return self._metadata

    async def keys(self, *, refresh: bool = False) -> KeySet:
        meta = await self.metadata()
        if self._keys is None or refresh:
            doc = await self._get_json(str(meta["jwks_uri"]))
            try:
                self._keys = KeySet.import_key_set(doc)
            except (JoseError, ValueError, TypeError, KeyError):
                raise OidcRefused("Unreadable JWKS", code="provider_unavailable") from None
        return self._keys

    async def authorization_url(self, redirect_uri: str, pending: dict[str, Any]) -> str:
        meta = await self.metadata()
        params = {
            "response_type": "code",
            "client_id": self.provider.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.provider.scopes),
            "state": pending["state"],
            "nonce": pending["nonce"],
            "code_challenge": create_s256_code_challenge(pending["verifier"]),
            "code_challenge_method": "S256",
            "acr_values": self.provider.acr_values,
        }
        endpoint = str(meta["authorization_endpoint"])
        sep = "&" if "?" in endpoint else "?"
        return endpoint + sep + urlencode(params)

    async def exchange(self, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
        """The token response for an authorisation code (refused: ``code_rejected``)."""
        meta = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        # client_secret_basic (RFC 6749 §2.3.1: both parts form-encoded before base64)
        p = self.provider
        pair = f"{quote(p.client_id, safe='')}:{quote(p.client_secret, safe='')}"
        headers = {
            "Authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
            "Accept": "application/json",
        }
        try:
            async with self.http.post(str(meta["token_endpoint"]), data=form, headers=headers) as r:
                body = await r.json(content_type=None)
                status = r.status
        except (aiohttp.ClientError, TimeoutError, ValueError):
            raise OidcRefused("The provider did not answer", code="provider_unavailable") from None
        if status != 200 or not isinstance(body, dict) or not body.get("id_token"):
            error = body.get("error", "") if isinstance(body, dict) else ""
            raise OidcRefused(
                "The provider refused the authorisation code", code="code_rejected", error=error
            )
        return body

    async def _decode(self, token: str) -> jwt.Token:
        for attempt in (0, 1):
            keys = await self.keys(refresh=attempt == 1)
            try:
                return jwt.decode(token, keys, algorithms=ALGORITHMS)
            except InvalidKeyIdError:
                if attempt == 0:
                    continue  # the provider may have rotated its keys: fetch them once more
                break
            except BadSignatureError:
                break
            except (JoseError, ValueError, TypeError):
                raise OidcRefused("Unreadable ID token", code="invalid_token") from None
        raise OidcRefused("The token's signature is not the provider's", code="invalid_signature")

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The ID token's claims once signature, issuer, audience, expiry, nonce and acr hold."""
        token = await self._decode(id_token)
        claims = dict(token.claims)
        registry = jwt.JWTClaimsRegistry(
            leeway=self.provider.leeway,
            iss={"essential": True, "value": self.provider.issuer},
            aud={"essential": True, "value": self.provider.client_id},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise OidcRefused("The ID token has expired", code="token_expired") from None
        except (InvalidClaimError, MissingClaimError) as e:
            claim = getattr(e, "claim", "")
            raise OidcRefused(
                f"The ID token's {claim or 'claims'} do not match", code=f"invalid_{claim}"[:40]
            ) from None
        except JoseError:
            raise OidcRefused("Invalid ID token claims", code="invalid_token") from None
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.provider.client_id:
            raise OidcRefused("The ID token was issued for another client", code="invalid_aud")
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise OidcRefused("The ID token's nonce is not this sign-in's", code="nonce_mismatch")
        wanted = set(self.provider.acr_values.split())
        if wanted and claims.get("acr") not in wanted:
            raise OidcRefused(
                "The provider did not confirm a CPS card or e-CPS sign-in",
                code="acr_insufficient",
            )
        return claims

    async def userinfo(self, access_token: str, sub: str) -> dict[str, Any]:
        """Userinfo claims (JSON, or a JWT signed by the provider) for the same ``sub``."""
        meta = await self.metadata()
        endpoint = meta.get("userinfo_endpoint")
        if not endpoint:
            return {}
        headers = {"Authorization": f"Bearer {access_token}"}
        try:
            async with self.http.get(str(endpoint), headers=headers) as r:
                status, ctype = r.status, r.content_type
                raw = await r.text()
        except (aiohttp.ClientError, TimeoutError):
            raise OidcRefused("The provider did not answer", code="provider_unavailable") from None
        if status != 200:
            raise OidcRefused("The provider refused userinfo", code="userinfo_failed")
        if ctype == "application/jwt":
            data = dict((await self._decode(raw.strip())).claims)
        else:
            try:
                data = json.loads(raw)
            except ValueError:
                raise OidcRefused("Unreadable userinfo", code="userinfo_failed") from None
        if not isinstance(data, dict) or data.get("sub") != sub:
            raise OidcRefused("Userinfo is about someone else", code="userinfo_mismatch")
        return data

    async def end_session_url(self, id_token: str, post_logout_redirect_uri: str) -> str | None:
        try:
            meta = await self.metadata()
        except OidcRefused:
            return None
        endpoint = meta.get("end_session_endpoint")
        if not endpoint:
            return None
        params = {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": post_logout_redirect_uri,
            "client_id": self.provider.client_id,
        }
        sep = "&" if "?" in str(endpoint) else "?"
        return f"{endpoint}{sep}{urlencode(params)}"


CLIENTS: web.AppKey[dict[str, OidcClient]] = web.AppKey("oidc_clients")


def client_of(app: web.Application, name: str) -> OidcClient | None:
    return app.get(CLIENTS, {}).get(name)


# -- the pre-session ------------------------------------------------------------------------


def new_pending(provider: OidcProvider, next_path: str) -> dict[str, Any]:
    return {
        "provider": provider.name,
        "step": "flow",
        "state": generate_token(32),
        "nonce": generate_token(32),
        "verifier": generate_token(64),  # 64 characters of [A-Za-z0-9]: RFC 7636's range
        "next": next_path,
        "at": time.time(),
    }


async def open_pre_session(
    request: web.Request, response: web.StreamResponse, data: dict[str, Any]
) -> None:
    """Keep ``data`` server-side behind a fresh ``consilium_psc`` cookie (replacing any)."""
    await drop_pre_session(request, response)
    token, _ = await request.app[
        SESSIONS
    ].create(
        kind="oidc",
        subject_id=uuid.uuid4(),  # nobody yet; its own id so no index is shared
        stage=str(data["step"])[:10],
        ip=client_ip(request),
        user_agent=request.headers.get("User-Agent", ""),
        data=data,
    )
    response.set_cookie(
        PRE_COOKIE,
        token,
        max_age=PRE_LIFETIME,
        httponly=True,
        samesite="Lax",  # sent on the provider's top-level redirect back to the callback
        secure=request.app[SETTINGS].https,
        path=PRE_COOKIE_PATH,
    )


async def peek_pre_session(request: web.Request) -> SessionData | None:
    token = request.cookies.get(PRE_COOKIE, "")
    if not token or len(token) > 100:
        return None
    s = await request.app[SESSIONS].load(token)
    if s is None or s.kind != "oidc":
        return None
    if time.time() - float(s.data.get("at", 0)) > PRE_LIFETIME:
        await request.app[SESSIONS].end(s.id)
        return None
    return s


async def take_pre_session(request: web.Request, step: str) -> dict[str, Any] | None:
    """The pre-session's data, deleted as it is read (single use); None if absent."""
    s = await peek_pre_session(request)
    if s is None:
        return None
    await request.app[SESSIONS].end(s.id)
    return s.data if s.data.get("step") == step else None


async def drop_pre_session(request: web.Request, response: web.StreamResponse) -> None:
    s = await peek_pre_session(request)
    if s is not None:
        await request.app[SESSIONS].end(s.id)
    response.del_cookie(PRE_COOKIE, path=PRE_COOKIE_PATH)


# -- accounts -------------------------------------------------------------------------------


async def account_for(
    session: AsyncSession, provider: OidcProvider, claims: dict[str, Any]
) -> User | None:
    """The active account the claims identify, by RPPS; None when there is none."""
    rpps = rpps_from_claims(provider, claims)
    if rpps is None:
        return None
    user = (await session.execute(select(User).where(User.rpps == rpps))).scalar_one_or_none()
    return user if user is not None and user.active else None


async def refuse(request: web.Request, provider: str, reason: str, **details: Any) -> None:
    """The audit row of a refused provider sign-in."""
    await audit.record_now(
        request.app[DB],
        "auth.login",
        ip=client_ip(request),
        outcome="failure",
        object_type="sign-in",
        method=f"oidc:{provider}",
        reason=reason,
        **details,
    )


async def complete_sign_in(
    request: web.Request,
    response: web.StreamResponse,
    provider: OidcProvider,
    claims: dict[str, Any],
    *,
    id_token: str = "",
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
                acr=str(claims.get("acr", "")),
            )
    if user is None:
        await refuse(
            request,
            provider.name,
            "no_account",
            actor_label=str(claims.get("sub", ""))[:200],
            rpps=rpps_from_claims(provider, claims) or "",
        )
        raise Forbidden("No Consilium account holds this RPPS number", code="no_account")
    # A fresh PSC sign-in (CPS card or e-CPS) counts as a re-authentication (docs/security.md).
    data: dict[str, Any] = {"reauth_at": time.time(), "sso": provider.name}
    if id_token:
        data["id_token"] = id_token  # the hint that ends the provider's session at sign-out
    return await start_session(
        request, response, kind="user", subject_id=user.id, stage="full", data=data
    )


@dataclass(frozen=True)
class LinkResult:
    linked: bool
    reason: str = ""


async def link_pending(
    request: web.Request, user_id: uuid.UUID, pending: dict[str, Any]
) -> LinkResult:
    """Attach the RPPS a provider verified to the account that just proved its password and
    one-time code (the pending ``link`` pre-session). Refused when the account holds another
    RPPS, or another account holds this one."""
    rpps = str(pending.get("rpps", ""))
    provider = str(pending.get("provider", ""))
    ip = client_ip(request)
    reason = ""
    async with request.app[DB].write() as uow:
        user = await uow.session.get(User, user_id)
        if user is None or not user.active:
            reason = "no_account"
        elif user.rpps and user.rpps != rpps:
            reason = "rpps_mismatch"
        elif not user.rpps:
            holder = await uow.session.execute(select(User.id).where(User.rpps == rpps))
            if holder.first() is not None:
                reason = "rpps_taken"
            else:
                user.rpps = rpps
        if not reason and user is not None:
            audit.record(
                uow.session,
                "auth.oidc_linked",
                actor_id=user.id,
                actor_kind="user",
                actor_label=user.email,
                object_type="user",
                object_id=user.id,
                ip=ip,
                method=f"oidc:{provider}",
                rpps=rpps,
            )
    if reason:
        await audit.record_now(
            request.app[DB],
            "auth.oidc_linked",
            actor_id=user_id,
            actor_kind="user",
            object_type="user",
            object_id=user_id,
            ip=ip,
            outcome="denied",
            method=f"oidc:{provider}",
            reason=reason,
            rpps=rpps,
        )
    return LinkResult(linked=not reason, reason=reason)


# -- routes ---------------------------------------------------------------------------------


class ProviderOut(BaseModel):
    name: str
    label: str
    start_url: str


class ProvidersOut(BaseModel):
    providers: list[ProviderOut]


class PendingLinkOut(BaseModel):
    provider: str
    rpps: str
    name: str


class LogoutOut(BaseModel):
    redirect: str


def _safe_next(value: str) -> str:
    return value if value.startswith(("/app/", "/join/")) and "//" not in value[1:] else "/app/"


def _wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


def _refusal(request: web.Request, e: Problem) -> web.StreamResponse:
    """A browser goes back to the login page, which says why in French; an API client gets
    problem+json."""
    if _wants_html(request):
        resp: web.StreamResponse = web.Response(
            status=303, headers={"Location": f"/app/login?psc_error={e.code}"}
        )
    else:
        resp = web.json_response(
            e.body(instance=request.path), status=e.status, content_type=PROBLEM_TYPE
        )
    resp.del_cookie(PRE_COOKIE, path=PRE_COOKIE_PATH)
    return resp


def _display_name(claims: dict[str, Any]) -> str:
    return " ".join(
        str(claims.get(k, "")).strip() for k in ("given_name", "family_name") if claims.get(k)
    )[:200]


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    clients: dict[str, OidcClient] = {}
    psc = psc_of(settings)
    if psc is not None:
        clients[psc.name] = OidcClient(psc)
    app[CLIENTS] = clients

    async def close(app: web.Application) -> None:
        for c in app[CLIENTS].values():
            await c.close()

    app.on_cleanup.append(close)
    api = Api.of(app)

    def client_for(request: web.Request) -> OidcClient:
        c = client_of(request.app, request.match_info.get("name", ""))
        if c is None:
            raise NotFound("No such identity provider", code="no_provider")
        return c

    def redirect_uri(request: web.Request, provider: OidcProvider) -> str:
        return request.app[SETTINGS].public_url + provider.callback_path

    @api.get("/auth/oidc/providers", response=ProvidersOut, auth="none", tags=["auth"])
    async def providers(request: web.Request) -> ProvidersOut:
        """The identity providers configured here (the login page shows their buttons)."""
        return ProvidersOut(
            providers=[
                ProviderOut(
                    name=c.provider.name,
                    label="Pro Santé Connect",
                    start_url=f"/api/v1/auth/oidc/{c.provider.name}/start",
                )
                for c in request.app[CLIENTS].values()
            ]
        )

    @api.get(
        "/auth/oidc/{name}/start",
        auth="none",
        tags=["auth"],
        status=303,
        errors=[404, 429, 502],
    )
    async def start(request: web.Request) -> web.StreamResponse:
        """Redirect to the provider's sign-in (state, nonce and PKCE kept server-side)."""
        c = client_for(request)
        ip = client_ip(request)
        if not await request.app[LIMITER].hit(f"oidc-start:{ip}", limit=30, window=60):
            raise TooManyRequests("Too many sign-in attempts from this address", retry_after=60)
        pending = new_pending(c.provider, _safe_next(request.query.get("next", "/app/")))
        try:
            url = await c.authorization_url(redirect_uri(request, c.provider), pending)
        except OidcRefused as e:
            await refuse(request, c.provider.name, e.code)
            down = Problem("Pro Santé Connect cannot be reached", status=502, code=e.code)
            return _refusal(request, down)
        resp = web.Response(status=303, headers={"Location": url, "Cache-Control": "no-store"})
        await open_pre_session(request, resp, pending)
        return resp

    @api.get(
        "/auth/oidc/{name}/callback",
        auth="none",
        tags=["auth"],
        status=303,
        errors=[400, 403, 404],
    )
    async def callback(request: web.Request) -> web.StreamResponse:
        """The provider's redirect back: code exchange, ID token and userinfo checks, then a
        full session (or the offer to link an account, or a refusal)."""
        c = client_for(request)
        provider = c.provider
        q = request.query
        pending = await take_pre_session(request, "flow")
        try:
            if pending is None or pending.get("provider") != provider.name:
                raise OidcRefused(
                    "This sign-in is unknown, expired or was already used", code="state_unknown"
                )
            if not hmac.compare_digest(q.get("state", "").encode(), str(pending["state"]).encode()):
                raise OidcRefused("The state does not match this sign-in", code="state_mismatch")
            if q.get("error"):
                raise OidcRefused(
                    "The provider did not sign the practitioner in",
                    code="provider_error",
                    error=q["error"][:100],
                )
            if q.get("iss") and q["iss"] != provider.issuer:
                raise OidcRefused("The answer comes from another issuer", code="invalid_iss")
            code = q.get("code", "")
            if not code or len(code) > 2048:
                raise OidcRefused("No authorisation code", code="code_missing")
            tokens = await c.exchange(
                code, str(pending["verifier"]), redirect_uri(request, provider)
            )
            id_token = str(tokens["id_token"])
            claims = await c.verify_id_token(id_token, str(pending["nonce"]))
            info: dict[str, Any] = {}
            if tokens.get("access_token"):
                info = await c.userinfo(str(tokens["access_token"]), str(claims["sub"]))
            merged = {**info, **claims}
        except OidcRefused as e:
            await refuse(request, provider.name, e.code, **{k: v for k, v in e.extra.items()})
            return _refusal(request, e)
        resp = web.Response(status=303, headers={"Location": str(pending["next"])})
        resp.del_cookie(PRE_COOKIE, path=PRE_COOKIE_PATH)
        try:
            await complete_sign_in(request, resp, provider, merged, id_token=id_token)
        except Forbidden as e:  # no account holds this RPPS (audited): offer to link one
            rpps = rpps_from_claims(provider, merged)
            if rpps is None:
                return _refusal(request, e)
            out = _refusal(request, e)
            if _wants_html(request):
                out = web.Response(status=303, headers={"Location": "/app/login?psc=link"})
            link = {
                "provider": provider.name,
                "step": "link",
                "rpps": rpps,
                "name": _display_name(merged),
                "id_token": id_token,
                "at": time.time(),
            }
            await open_pre_session(request, out, link)
            return out
        return resp

    @api.get(
        "/auth/oidc/pending",
        response=PendingLinkOut,
        auth="none",
        tags=["auth"],
        errors=[404],
    )
    async def pending(request: web.Request) -> PendingLinkOut:
        """The provider identity waiting to be linked to an account (after its password and
        one-time code), if any."""
        s = await peek_pre_session(request)
        if s is None or s.data.get("step") != "link":
            raise NotFound("No identity waits to be linked", code="no_pending_link")
        return PendingLinkOut(
            provider=str(s.data["provider"]), rpps=str(s.data["rpps"]), name=str(s.data["name"])
        )

    @api.delete("/auth/oidc/pending", auth="none", tags=["auth"], status=204)
    async def decline(request: web.Request) -> web.StreamResponse:
        """Do not link the provider identity: it is forgotten, nobody is signed in."""
        s = await peek_pre_session(request)
        if s is not None and s.data.get("step") == "link":
            await refuse(request, str(s.data["provider"]), "link_declined", rpps=s.data["rpps"])
        resp = web.Response(status=204)
        await drop_pre_session(request, resp)
        return resp

    @api.post("/auth/oidc/logout", response=LogoutOut, auth="principal", tags=["auth"])
    async def logout(request: web.Request) -> web.StreamResponse:
        """End my session and, for a provider session, tell where the browser goes to end the
        provider's session too (``end_session_endpoint``)."""
        s = request.get(SESSION)
        assert s is not None
        await request.app[SESSIONS].end(s.id)
        name = str(s.data.get("sso", ""))
        redirect = "/app/login"
        c = client_of(request.app, name)
        if c is not None and s.data.get("id_token"):
            back = request.app[SETTINGS].public_url + "/app/login"
            redirect = await c.end_session_url(str(s.data["id_token"]), back) or redirect
        await audit.record_now(
            request.app[DB],
            "auth.logout",
            object_type="user",
            object_id=s.subject_id,
            ip=client_ip(request),
            actor_id=s.subject_id,
            actor_kind=s.kind,
            method=f"oidc:{name}" if name else "password",
        )
        resp = web.json_response(LogoutOut(redirect=redirect).model_dump())
        clear_session_cookie(resp)
        return resp
