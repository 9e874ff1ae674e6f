"""Installable app (seed 002, 1.3) whose last searches stay readable offline (2.3)."""

from __future__ import annotations

import pytest

from core.context import DB
from tests.ui.conftest import open_session, shot, wait_js

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


async def test_last_searches_are_shown_offline(pages, app, users):
    from dossier.seed import seed_demo

    await seed_demo(app[DB], users)
    page = await pages.new(service_workers="allow")
    await open_session(page, app, users["requester"])
    await page.goto("/app/")
    manifest = await page.evaluate(
        "fetch(document.querySelector('link[rel=manifest]').href).then(r => r.json())"
    )
    assert manifest["display"] == "standalone"
    await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    await wait_js(page, "() => navigator.serviceWorker.controller !== null")

    await page.get_by_label("Rechercher un dossier").fill("Sevestre")
    row = page.get_by_role("link", name="SEVESTRE Véronique")
    await row.click()
    await page.get_by_text("SEVESTRE Véronique").first.wait_for()
    await page.goto("/app/")
    recent = page.get_by_role("region", name="Mes dernières recherches")
    await recent.get_by_text("SEVESTRE Véronique").wait_for()

    await page.context.set_offline(True)
    await page.reload()
    await page.get_by_text("Vous êtes hors ligne").wait_for()
    await (
        page.get_by_role("region", name="Mes dernières recherches")
        .get_by_text("SEVESTRE Véronique")
        .wait_for()
    )
    await shot(page, "offline-recent-searches")
    await page.context.set_offline(False)
