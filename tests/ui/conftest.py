"""Browser tests: Debian's Chromium driven by Playwright (async API, in the test's event loop,
next to the aiohttp server it talks to on 127.0.0.1).

Chromium is never downloaded (`playwright install` does not work here): the tests use
``$CONSILIUM_CHROMIUM`` (default /usr/bin/chromium), skip when it is absent locally and FAIL
under ``CI=true``. The vendored JavaScript libraries must have been copied by
``make ui-assets`` (``npm ci && npm run build`` in ui/).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from core.seed import DEMO_PASSWORD
from tests.conftest import IN_CI, make_settings
from ui import assets_missing

CHROMIUM = os.environ.get("CONSILIUM_CHROMIUM", "/usr/bin/chromium")
RESULTS = Path(__file__).resolve().parents[2] / "test-results"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


def _unavailable(msg: str) -> None:
    if IN_CI:
        pytest.fail(msg + " — CI must run the browser tests", pytrace=False)
    pytest.skip(msg)


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp: Any) -> Any:
    return make_settings(database_url, tmp_path / "data", smtp_host=smtp.host, smtp_port=smtp.port)


@pytest.fixture
async def server(app: web.Application) -> AsyncIterator[TestServer]:
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    try:
        yield srv
    finally:
        await srv.close()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():
        _unavailable(f"Chromium not found at {CHROMIUM} (set CONSILIUM_CHROMIUM)")
    missing = assets_missing()
    if missing:
        _unavailable(f"UI assets not built ({', '.join(missing)}): run `make ui-assets`")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        # A French workstation: date inputs read jj/mm/aaaa (needs Debian's chromium-l10n).
        env = {**os.environ, "LANG": "fr_FR.UTF-8", "LANGUAGE": "fr"}
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, env=env)
        try:
            yield b
        finally:
            await b.close()


class Pages:
    """Browser contexts on the test server, with console errors collected."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url
        self.errors: list[str] = []
        self.contexts: list[Any] = []

    async def new(
        self,
        *,
        viewport: dict[str, int] | None = None,
        locale: str = "fr-FR",
        service_workers: str = "block",
        bypass_csp: bool = False,
    ) -> Any:
        ctx = await self.browser.new_context(
            base_url=self.base_url,
            viewport=viewport or {"width": 1366, "height": 860},
            locale=locale,
            timezone_id="Europe/Paris",
            permissions=["camera", "microphone"],
            service_workers=service_workers,
            bypass_csp=bypass_csp,
        )
        self.contexts.append(ctx)
        page = await ctx.new_page()
        # Script errors only: a refused request (401, 404) is logged by Chromium too.
        page.on(
            "console",
            lambda m: (
                m.type == "error"
                and not m.text.startswith("Failed to load resource")
                and self.errors.append(m.text)
            ),
        )
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        return page

    async def close(self) -> None:
        for ctx in self.contexts:
            await ctx.close()


@pytest.fixture
async def pages(browser: Any, server: TestServer) -> AsyncIterator[Pages]:
    p = Pages(browser, str(server.make_url("")).rstrip("/"))
    try:
        yield p
    finally:
        await p.close()


async def wait_js(page: Any, fn: str, arg: Any = None, timeout: float = 15.0) -> Any:
    """Poll a JavaScript function until it returns a truthy value. (Playwright's
    wait_for_function evaluates strings, which the pages' CSP forbids: no 'unsafe-eval'.)"""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await page.evaluate(fn, arg)
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {fn}")
        await asyncio.sleep(0.1)


async def shot(page: Any, name: str, *, full_page: bool = True) -> None:
    RESULTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(RESULTS / f"{name}.png"), full_page=full_page)


async def open_session(page: Any, app: web.Application, user: Any) -> None:
    """Sign the page's browser context in directly (the login pages have their own tests)."""
    from core.context import SESSIONS

    token, s = await app[SESSIONS].create(kind="user", subject_id=user.id, stage="full")
    url = page.context._impl_obj._options.get("baseURL") or ""
    await page.context.add_cookies(
        [
            {"name": "consilium_session", "value": token, "url": url},
            {"name": "consilium_csrf", "value": s.csrf_token, "url": url},
        ]
    )


async def call_api(page: Any, method: str, path: str, body: Any = None) -> Any:
    """Call the JSON API from the page, as its scripts do (cookies and CSRF header)."""
    return await page.evaluate(
        """async ([method, path, body]) => {
            const csrf = (document.cookie.match(/consilium_csrf=([^;]+)/) || [])[1] || "";
            const headers = {"Content-Type": "application/json",
              "X-CSRF-Token": decodeURIComponent(csrf)};
            const payload = body === null ? undefined : JSON.stringify(body);
            const r = await fetch(path, {method, headers, body: payload});
            const data = await r.json().catch(() => null);
            if (!r.ok) throw new Error(r.status + " " + JSON.stringify(data));
            return data;
        }""",
        [method, path, body],
    )


async def sign_in(page: Any, smtp: Any, email: str) -> None:
    """The real login: password, "Code par e-mail", the code read from the SMTP server."""
    before = len(smtp.to(email))
    await page.goto("/app/")
    await page.get_by_label("Adresse e-mail").fill(email)
    await page.get_by_label("Mot de passe").fill(DEMO_PASSWORD)
    await page.get_by_role("button", name="Continuer").click()
    await page.get_by_text("Code par e-mail").click()
    await page.get_by_role("button", name="Recevoir mon code").click()
    mails = await smtp.wait_for(email, count=before + 1)
    code = re.search(r"\b(\d{6})\b", smtp.text_of(mails[-1]))
    assert code is not None
    await page.get_by_label("Code à 6 chiffres").fill(code.group(1))
    await page.get_by_role("button", name="Valider").click()
    await page.get_by_role("heading", name="Vue activité").wait_for()
