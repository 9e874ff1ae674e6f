"""Pro Santé Connect in Chromium, with real redirects: the login page's button, the provider's
pages (a real node-oidc-provider configured like PSC), back to the activity view without a
one-time code; sign-out through the provider; an unknown RPPS linked to an account."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from core.accounts import rpps_with_key
from core.seed import DEMO_PASSWORD
from tests.conftest import free_port, make_settings
from tests.support.oidc import ACCOUNT_PASSWORD, CLIENT_ID, CLIENT_SECRET, OidcPeer, psc_account
from tests.ui.conftest import shot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

REQUESTER_RPPS = rpps_with_key("1000000001")  # Dr Claire Martin (seeded)
NEWCOMER_RPPS = rpps_with_key("1000000077")


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


async def at_provider(page: Any, login: str) -> None:
    """The provider's pages: identifier and e-CPS code, then the consent."""
    await page.get_by_label("Identifiant national (RPPS)").fill(login)
    await page.get_by_label("Code secret e-CPS").fill(ACCOUNT_PASSWORD)
    await page.get_by_role("button", name="Se connecter avec e-CPS").click()
    await page.get_by_role("button", name="Autoriser").click()


async def test_psc_button_signs_in_and_out_through_the_provider(pages, users, peer):
    page = await pages.new()
    await page.goto("/app/login")
    button = page.get_by_role("link", name="Se connecter avec Pro Santé Connect")
    await button.wait_for()
    await shot(page, "login-psc")
    await button.click()
    await page.wait_for_url(re.compile(re.escape(peer.issuer) + "/interaction/"))
    await at_provider(page, "8" + REQUESTER_RPPS)
    # Back at Consilium, signed in at once: no one-time code after a CPS / e-CPS sign-in.
    await page.get_by_role("heading", name="Vue activité").wait_for()
    await page.get_by_text("Dr Claire Martin").wait_for()
    assert page.url.endswith("/app/")

    # Signing out ends the provider's session too (its end-session page, then back here).
    await page.get_by_role("button", name="Se déconnecter").click()
    await page.wait_for_url(re.compile(re.escape(peer.issuer) + "/session/end"))
    await page.get_by_role("button", name=re.compile("Yes, sign me out")).click()
    await page.wait_for_url(re.compile(r"/app/login"))
    await page.get_by_role("link", name="Se connecter avec Pro Santé Connect").wait_for()
    # The provider forgot the practitioner: the next sign-in asks for the e-CPS again.
    await page.get_by_role("link", name="Se connecter avec Pro Santé Connect").click()
    await page.get_by_label("Identifiant national (RPPS)").wait_for()
    assert not pages.errors


async def test_an_unknown_rpps_is_linked_after_password_and_code(pages, users, peer, smtp):
    page = await pages.new()
    await page.goto("/app/login")
    await page.get_by_role("link", name="Se connecter avec Pro Santé Connect").click()
    await at_provider(page, "8" + NEWCOMER_RPPS)
    await page.get_by_text("Associer votre identité Pro Santé Connect à votre compte").wait_for()
    await page.get_by_text(f"SOPHIE DURAND (RPPS {NEWCOMER_RPPS})").wait_for()
    await shot(page, "login-psc-link")

    email = users["secretary"].email
    await page.get_by_label("Adresse e-mail").fill(email)
    await page.get_by_label("Mot de passe").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Continuer").click()
    await page.get_by_text("Code par e-mail").click()
    await page.get_by_role("button", name="Recevoir mon code").click()
    mails = await smtp.wait_for(email, count=1)
    code = re.search(r"\b(\d{6})\b", smtp.text_of(mails[-1]))
    assert code is not None
    await page.get_by_label("Code à 6 chiffres").fill(code.group(1))
    await page.get_by_role("button", name="Valider").click()
    await page.get_by_role("heading", name="Vue activité").wait_for()
    assert not pages.errors


async def test_declining_the_link_shows_the_refusal_in_french(pages, users, peer):
    page = await pages.new()
    await page.goto("/app/login")
    await page.get_by_role("link", name="Se connecter avec Pro Santé Connect").click()
    await at_provider(page, "8" + NEWCOMER_RPPS)
    await page.get_by_role("button", name="Ne pas associer").click()
    await page.get_by_text(
        "Aucun compte Consilium n'est rattaché à votre identité Pro Santé Connect."
    ).wait_for()
    assert not pages.errors


async def test_psc_login_and_link_pages_pass_axe(pages, users, peer):
    from tests.ui.test_accessibility import PHONE, audit

    problems: list[str] = []
    for label, viewport in (("desktop", None), ("phone", PHONE)):
        page = await pages.new(viewport=viewport, bypass_csp=True)
        await page.goto("/app/login")
        await page.get_by_role("link", name="Se connecter avec Pro Santé Connect").wait_for()
        problems += await audit(page, f"login-psc-{label}")
        await page.get_by_role("link", name="Se connecter avec Pro Santé Connect").click()
        await at_provider(page, "8" + NEWCOMER_RPPS)
        await page.get_by_role("button", name="Ne pas associer").wait_for()
        problems += await audit(page, f"login-psc-link-{label}")
    assert not problems, "\n".join(problems)
