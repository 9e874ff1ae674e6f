"""Authentication glue: the session cookie, the principal of a request, CSRF, access levels.

The login flow itself (password, then a one-time code or an authenticator app) lives in
:mod:`core.login`; it ends by calling :func:`start_session`, which is also where an OpenID
Connect provider (Pro Santé Connect) will land once it has identified the practitioner.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import uuid
from collections.abc import Sequence
from typing import Literal

from aiohttp import web
from aiohttp.typedefs import Handler

from core.context import DB, SESSIONS, SETTINGS
from core.errors import Forbidden, Unauthorized
from core.principal import Principal, for_session
from core.sessions import COOKIE, CSRF_HEADER, SessionData

CSRF_COOKIE = "consilium_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PRINCIPAL: web.RequestKey[Principal | None] = web.RequestKey("principal")
SESSION: web.RequestKey[SessionData | None] = web.RequestKey("session")

Level = Literal["none", "principal", "user", "admin"]


@functools.lru_cache(maxsize=8)
def _networks(
    trusted: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(t, strict=False) for t in trusted)


def forwarded_ip(remote: str, forwarded_for: str, trusted: Sequence[str]) -> str:
    """The client's address: the connection's, unless it comes from a trusted proxy; then the
    right-most address of X-Forwarded-For that is not a trusted proxy (the left-most entries
    are whatever the client wrote)."""
    nets = _networks(tuple(trusted))

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in n for n in nets)

    if not nets or not is_trusted(remote):
        return remote
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return remote  # garbage where an address should be: keep the proxy's
    return hops[0] if hops else remote


def client_ip(request: web.Request) -> str:
    return forwarded_ip(
        request.remote or "",
        request.headers.get("X-Forwarded-For", ""),
        request.app[SETTINGS].trusted_proxies,
    )


async def _principal_of(request: web.Request, s: SessionData) -> Principal | None:
    async with request.app[DB].read() as session:
        return await for_session(session, s, ip=client_ip(request))


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Load the session and principal; refuse unsafe requests without the CSRF token."""
    request[SESSION] = None
    request[PRINCIPAL] = None
    token = request.cookies.get(COOKIE)
    if token:
        s = await request.app[SESSIONS].load(token)
        if s is not None:
            request[SESSION] = s
            if s.stage == "full":
                request[PRINCIPAL] = await _principal_of(request, s)
            if request.method not in SAFE_METHODS and request.path.startswith("/api/"):
                sent = request.headers.get(CSRF_HEADER, "")
                if not sent or not hmac.compare_digest(sent.encode(), s.csrf_token.encode()):
                    raise Forbidden(f"Missing or wrong {CSRF_HEADER} header", code="csrf_failed")
    return await handler(request)


async def require(request: web.Request, level: Level) -> Principal | None:
    if level == "none":
        return request.get(PRINCIPAL)
    p = request.get(PRINCIPAL)
    if p is None:
        s = request.get(SESSION)
        if s is not None and s.stage == "mfa":
            raise Unauthorized("The second factor is still expected", code="mfa_required")
        raise Unauthorized("Sign in first", code="unauthenticated")
    if level in ("user", "admin") and not p.is_user:
        raise Forbidden("Reserved to professionals with an account", code="account_required")
    if level == "admin" and not p.is_admin:
        raise Forbidden("Reserved to administrators", code="admin_required")
    return p


def principal(request: web.Request) -> Principal:
    """The principal of an authenticated route (after ``require``)."""
    p = request.get(PRINCIPAL)
    if p is None:
        raise Unauthorized("Sign in first", code="unauthenticated")
    return p


def set_session_cookie(
    request: web.Request, response: web.StreamResponse, token: str, s: SessionData
) -> None:
    settings = request.app[SETTINGS]
    secure = settings.https
    response.set_cookie(COOKIE, token, httponly=True, samesite="Lax", secure=secure, path="/")
    # Readable by the page's JavaScript, which echoes it in the X-CSRF-Token header.
    response.set_cookie(
        CSRF_COOKIE, s.csrf_token, httponly=False, samesite="Strict", secure=secure, path="/"
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")
    response.del_cookie(CSRF_COOKIE, path="/")


async def start_session(
    request: web.Request,
    response: web.StreamResponse,
    *,
    kind: Literal["user", "guest"],
    subject_id: uuid.UUID,
    stage: Literal["mfa", "full"],
    data: dict[str, object] | None = None,
) -> SessionData:
    """Open a session (replacing any the request came with) and set its cookies."""
    sessions = request.app[SESSIONS]
    old = request.get(SESSION)
    if old is not None:
        await sessions.end(old.id)
    token, s = await sessions.create(
        kind=kind,
        subject_id=subject_id,
        stage=stage,
        ip=client_ip(request),
        user_agent=request.headers.get("User-Agent", ""),
        data=dict(data or {}),
    )
    set_session_cookie(request, response, token, s)
    return s
