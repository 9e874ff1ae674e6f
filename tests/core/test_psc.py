"""Pro Santé Connect sign-in against a real OpenID provider (node-oidc-provider, configured
like PSC) that the suite starts: the whole authorisation code flow over HTTP, the refusals
(forged, expired, wrong nonce, replayed code or state) and their audit rows, the link of an
unknown RPPS to an existing account, and the end of the provider's session at sign-out."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from joserfc.jwk import RSAKey
from sqlalchemy import select
from yarl import URL

from core.accounts import User, rpps_with_key
from core.audit import AuditEntry
from core.context import DB
from core.seed import DEMO_PASSWORD
from tests.conftest import free_port, make_settings
from tests.support.oidc import ACCOUNT_PASSWORD, CLIENT_ID, CLIENT_SECRET, OidcPeer, psc_account

pytestmark = pytest.mark.slow

REQUESTER_RPPS = rpps_with_key("1000000001")  # Dr Claire Martin (seeded)
NEWCOMER_RPPS = rpps_with_key("1000000077")  # no Consilium account holds it
CALLBACK = "/api/v1/auth/oidc/psc/callback"


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
async def peer(tmp_path: Path, port: int) -> AsyncIterator[OidcPeer]:
    p = OidcPeer(
        tmp_path,
        consilium_url=f"http://127.0.0.1:{port}",
        accounts={
            "8" + REQUESTER_RPPS: psc_account(
                REQUESTER_RPPS, sub="psc-sub-claire", given="CLAIRE", family="MARTIN"
            ),
            "8" + NEWCOMER_RPPS: psc_account(
                NEWCOMER_RPPS, sub="psc-sub-sophie", given="SOPHIE", family="DURAND"
            ),
        },
    )
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp: Any, port: int, peer: OidcPeer) -> Any:
    return make_settings(
        database_url,
        tmp_path / "data",
        public_url=f"http://127.0.0.1:{port}",
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        psc_issuer=peer.issuer,
        psc_client_id=CLIENT_ID,
        psc_client_secret=CLIENT_SECRET,
    )


@pytest.fixture
async def server(app: web.Application, port: int) -> AsyncIterator[TestServer]:
    srv = TestServer(app, host="127.0.0.1", port=port)
    await srv.start_server()
    try:
        yield srv
    finally:
        await srv.close()


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client with a cookie jar, standing in for the practitioner's browser."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        yield s


class Flow:
    def __init__(self, http: aiohttp.ClientSession, base: str, peer: OidcPeer) -> None:
        self.http = http
        self.base = base
        self.peer = peer

    async def start(self) -> str:
        """Consilium's start route: the provider's authorisation URL."""
        r = await self.http.get(self.base + "/api/v1/auth/oidc/psc/start", allow_redirects=False)
        assert r.status == 303, await r.text()
        return r.headers["Location"]

    async def _follow(self, r: aiohttp.ClientResponse) -> tuple[str, aiohttp.ClientResponse]:
        """Follow the provider's redirects; stop at the first one back to Consilium."""
        while r.status in (302, 303):
            loc = r.headers["Location"]
            url = loc if loc.startswith("http") else self.peer.issuer + loc
            if url.startswith(self.base):
                return url, r
            r = await self.http.get(url, allow_redirects=False)
        return "", r

    async def at_provider(self, auth_url: str, login: str) -> str:
        """Sign in and consent at the provider; returns the callback URL it redirects to."""
        r = await self.http.get(auth_url, allow_redirects=False)
        back, r = await self._follow(r)
        if back:
            return back  # the provider's session still holds
        page = await r.text()
        action = re.search(r'action="([^"]+/login)"', page)
        assert action, page
        r = await self.http.post(
            self.peer.issuer + action.group(1),
            data={"login": login, "password": ACCOUNT_PASSWORD},
            allow_redirects=False,
        )
        back, r = await self._follow(r)
        if back:
            return back
        page = await r.text()
        action = re.search(r'action="([^"]+/confirm)"', page)
        assert action, page
        r = await self.http.post(self.peer.issuer + action.group(1), allow_redirects=False)
        back, r = await self._follow(r)
        assert back, await r.text()
        return back

    async def callback(self, url: str) -> aiohttp.ClientResponse:
        return await self.http.get(url, allow_redirects=False)

    async def session(self) -> aiohttp.ClientResponse:
        return await self.http.get(self.base + "/api/v1/auth/session")


@pytest.fixture
def flow(browser: aiohttp.ClientSession, server: TestServer, peer: OidcPeer, users: Any) -> Flow:
    return Flow(browser, f"http://127.0.0.1:{server.port}", peer)


async def audit_rows(app: web.Application, reason: str | None = None) -> list[AuditEntry]:
    async with app[DB].read() as session:
        rows = (
            (await session.execute(select(AuditEntry).where(AuditEntry.action == "auth.login")))
            .scalars()
            .all()
        )
    rows = [r for r in rows if r.details.get("method") == "oidc:psc"]
    return [r for r in rows if reason is None or r.details.get("reason") == reason]


async def assert_refused(r: aiohttp.ClientResponse, app: web.Application, code: str) -> None:
    assert r.status in (400, 403), await r.text()
    assert r.content_type == "application/problem+json"
    assert (await r.json())["code"] == code
    rows = await audit_rows(app, code)
    assert rows and rows[-1].outcome == "failure"


def with_param(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    q[name] = value
    return urlunsplit(parts._replace(query=urlencode(q)))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_practitioner_signs_in_without_a_one_time_code(flow: Flow, app: web.Application):
    auth = await flow.start()
    q = parse_qs(urlsplit(auth).query)
    assert q["scope"] == ["openid scope_all"] and q["acr_values"] == ["eidas1"]
    assert q["code_challenge_method"] == ["S256"] and q["state"] and q["nonce"]
    back = await flow.at_provider(auth, "8" + REQUESTER_RPPS)
    r = await flow.callback(back)
    assert r.status == 303 and r.headers["Location"] == "/app/"
    s = await flow.session()
    assert s.status == 200
    body = await s.json()
    assert body["name"] == "Dr Claire Martin" and body["sso"] == "psc"
    ok = [row for row in await audit_rows(app) if row.outcome == "success"]
    assert len(ok) == 1 and ok[0].details["acr"] == "eidas1"

    # Sign-out ends the provider's session too.
    csrf = next(c.value for c in flow.http.cookie_jar if c.key == "consilium_csrf")
    r = await flow.http.post(flow.base + "/api/v1/auth/oidc/logout", headers={"X-CSRF-Token": csrf})
    assert r.status == 200
    end = (await r.json())["redirect"]
    assert end.startswith(flow.peer.issuer + "/session/end?")
    q = parse_qs(urlsplit(end).query)
    assert q["post_logout_redirect_uri"] == [flow.base + "/app/login"] and q["id_token_hint"]
    assert (await flow.session()).status == 401


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
async def test_a_replayed_state_is_refused(flow: Flow, app: web.Application):
    back = await flow.at_provider(await flow.start(), "8" + REQUESTER_RPPS)
    pre = next(c.value for c in flow.http.cookie_jar if c.key == "consilium_psc")
    assert (await flow.callback(back)).status == 303
    flow.http.cookie_jar.clear()
    # The same answer again, even with the pre-session cookie it came with.
    flow.http.cookie_jar.update_cookies(
        {"consilium_psc": pre}, response_url=URL(flow.base + "/api/v1/auth/")
    )
    r = await flow.callback(back)
    await assert_refused(r, app, "state_unknown")
    assert (await flow.session()).status == 401


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_replayed_code_is_refused(flow: Flow, app: web.Application):
    back = await flow.at_provider(await flow.start(), "8" + REQUESTER_RPPS)
    assert (await flow.callback(back)).status == 303
    old_code = parse_qs(urlsplit(back).query)["code"][0]
    flow.http.cookie_jar.clear()
    # A fresh sign-in of the attacker's own, fed the code already used.
    fresh = parse_qs(urlsplit(await flow.start()).query)["state"][0]
    r = await flow.callback(
        flow.base + CALLBACK + "?" + urlencode({"code": old_code, "state": fresh})
    )
    await assert_refused(r, app, "code_rejected")
    assert (await flow.session()).status == 401


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_wrong_nonce_is_refused(flow: Flow, app: web.Application):
    auth = with_param(await flow.start(), "nonce", "not-the-nonce-consilium-sent")
    r = await flow.callback(await flow.at_provider(auth, "8" + REQUESTER_RPPS))
    await assert_refused(r, app, "nonce_mismatch")
    assert (await flow.session()).status == 401


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kid", ["psc-test", "stranger"])
async def test_an_id_token_signed_by_another_key_is_refused(
    flow: Flow, peer: OidcPeer, app: web.Application, kid: str
):
    peer.tamper = lambda claims: claims  # the same claims, signed by a stranger
    peer.tamper_key = RSAKey.generate_key(
        2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"}, private=True
    )
    r = await flow.callback(await flow.at_provider(await flow.start(), "8" + REQUESTER_RPPS))
    await assert_refused(r, app, "invalid_signature")
    assert (await flow.session()).status == 401


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_an_expired_id_token_is_refused(flow: Flow, peer: OidcPeer, app: web.Application):
    def expired(claims: dict[str, Any]) -> dict[str, Any]:
        now = int(time.time())
        return {**claims, "iat": now - 7200, "exp": now - 3600}  # the provider's own key

    peer.tamper = expired
    r = await flow.callback(await flow.at_provider(await flow.start(), "8" + REQUESTER_RPPS))
    await assert_refused(r, app, "token_expired")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_token_for_another_client_or_a_weaker_acr_is_refused(
    flow: Flow, peer: OidcPeer, app: web.Application
):
    peer.tamper = lambda claims: {**claims, "aud": "another-service"}
    r = await flow.callback(await flow.at_provider(await flow.start(), "8" + REQUESTER_RPPS))
    await assert_refused(r, app, "invalid_aud")
    peer.tamper = lambda claims: {**claims, "acr": "eidas0"}
    r = await flow.callback(await flow.at_provider(await flow.start(), "8" + REQUESTER_RPPS))
    await assert_refused(r, app, "acr_insufficient")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_browser_is_sent_back_to_the_login_page_with_the_reason(
    flow: Flow, app: web.Application
):
    r = await flow.http.get(
        flow.base + CALLBACK + "?code=x&state=y",
        headers={"Accept": "text/html"},
        allow_redirects=False,
    )
    assert r.status == 303 and r.headers["Location"] == "/app/login?psc_error=state_unknown"
    assert await audit_rows(app, "state_unknown")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_an_unknown_rpps_is_linked_after_password_and_code(
    flow: Flow, app: web.Application, smtp: Any, users: Any
):
    r = await flow.callback(await flow.at_provider(await flow.start(), "8" + NEWCOMER_RPPS))
    assert r.status == 403 and (await r.json())["code"] == "no_account"
    assert (await flow.session()).status == 401
    r = await flow.http.get(flow.base + "/api/v1/auth/oidc/pending")
    assert await r.json() == {"provider": "psc", "rpps": NEWCOMER_RPPS, "name": "SOPHIE DURAND"}

    # The secretary's password, then her one-time code: the identity is attached.
    email = users["secretary"].email
    r = await flow.http.post(
        flow.base + "/api/v1/auth/login", json={"email": email, "password": DEMO_PASSWORD}
    )
    assert r.status == 200
    csrf = next(c.value for c in flow.http.cookie_jar if c.key == "consilium_csrf")
    r = await flow.http.post(
        flow.base + "/api/v1/auth/otp", json={"channel": "email"}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status == 200
    mails = await smtp.wait_for(email, count=1)
    code = re.search(r"\b(\d{6})\b", smtp.text_of(mails[-1]))
    assert code
    r = await flow.http.post(
        flow.base + "/api/v1/auth/verify",
        json={"method": "otp", "code": code.group(1)},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status == 200
    body = await r.json()
    assert body["psc_link"] == "linked" and body["sso"] == "psc"
    async with app[DB].read() as session:
        user = (await session.execute(select(User).where(User.email == email))).scalar_one()
    assert user.rpps == NEWCOMER_RPPS

    # From now on, Pro Santé Connect alone signs her in.
    flow.http.cookie_jar.clear()
    r = await flow.callback(await flow.at_provider(await flow.start(), "8" + NEWCOMER_RPPS))
    assert r.status == 303
    assert (await (await flow.session()).json())["name"] == "Sophie Durand"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_declining_the_link_leaves_nobody_signed_in(flow: Flow, app: web.Application):
    r = await flow.http.get(
        await flow.at_provider(await flow.start(), "8" + NEWCOMER_RPPS),
        headers={"Accept": "text/html"},
        allow_redirects=False,
    )
    assert r.headers["Location"] == "/app/login?psc=link"
    r = await flow.http.delete(flow.base + "/api/v1/auth/oidc/pending")
    assert r.status == 204
    r = await flow.http.get(flow.base + "/api/v1/auth/oidc/pending")
    assert r.status == 404
    assert await audit_rows(app, "link_declined")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_provider_that_does_not_answer_is_said_in_french(
    flow: Flow, peer: OidcPeer, app: web.Application
):
    await peer.stop()
    r = await flow.http.get(
        flow.base + "/api/v1/auth/oidc/psc/start",
        headers={"Accept": "text/html"},
        allow_redirects=False,
    )
    assert r.status == 303
    assert r.headers["Location"] == "/app/login?psc_error=provider_unavailable"
    r = await flow.http.get(flow.base + "/api/v1/auth/oidc/psc/start", allow_redirects=False)
    assert r.status == 502 and (await r.json())["code"] == "provider_unavailable"
    assert await audit_rows(app, "provider_unavailable")
