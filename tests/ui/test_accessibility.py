"""Accessibility of the main pages, checked by axe-core (the engine behind Lighthouse's and
most hospitals' audits) in Debian's Chromium: WCAG 2.1 A and AA rules, on a desktop and on a
phone. Any violation of impact "serious" or "critical" fails the test and is printed with
the elements it concerns.

axe-core is a development dependency of ui/ (npm, pinned by the lockfile); it is injected
into the page with the CSP bypassed for this context only: the served pages keep their strict
policy, and axe is never served to users."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from core.context import DB
from tests.ui.conftest import call_api, open_session, shot

AXE = Path(__file__).resolve().parents[2] / "ui" / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
PHONE = {"width": 390, "height": 844}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


async def audit(page: Any, name: str) -> list[str]:
    """Run axe on the page as it is now; return the serious and critical violations."""
    if not AXE.exists():
        pytest.fail("ui/node_modules/axe-core missing: run `make ui-assets`", pytrace=False)
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        """async (tags) => {
            const r = await window.axe.run(document, {runOnly: {type: "tag", values: tags}});
            return r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
              nodes: v.nodes.slice(0, 5).map(
                (n) => n.target.join(" ") + " — " + n.failureSummary)}));
        }""",
        TAGS,
    )
    await shot(page, f"a11y-{name}")
    return [
        f"{name}: [{v['impact']}] {v['id']} ({v['help']})\n    " + "\n    ".join(v["nodes"])
        for v in result
        if v["impact"] in ("serious", "critical")
    ]


async def test_main_pages_pass_axe_on_desktop_and_phone(pages, app, users, smtp):
    from dossier.seed import seed_demo

    await seed_demo(app[DB], users)
    problems: list[str] = []
    for label, viewport in (("desktop", None), ("phone", PHONE)):
        anon = await pages.new(viewport=viewport, bypass_csp=True)
        await anon.goto("/app/login")
        await anon.get_by_label("Adresse e-mail").wait_for()
        problems += await audit(anon, f"login-{label}")

        page = await pages.new(viewport=viewport, bypass_csp=True)
        await open_session(page, app, users["requester"])
        await page.goto("/app/")
        await page.get_by_role("heading", name="Vue activité").wait_for()
        await page.locator("tbody tr").first.wait_for()
        problems += await audit(page, f"activity-{label}")

        dossiers = await call_api(page, "GET", "/api/v1/dossiers")
        first = dossiers["items"][0]["id"]
        await page.goto(f"/app/dossiers/{first}")
        await page.get_by_role("heading", name="Documents").first.wait_for()
        problems += await audit(page, f"dossier-{label}")

        await page.goto("/app/dossiers/new")
        await page.get_by_role("heading", name="Recherche de patient").wait_for()
        problems += await audit(page, f"wizard-{label}")

        await page.goto("/app/settings")
        await page.get_by_role("heading", name="Paramètres").wait_for()
        await page.get_by_label("Un dossier attend mon expertise").wait_for()
        problems += await audit(page, f"settings-{label}")

        room = await call_api(
            page, "POST", "/api/v1/rooms", {"kind": "teleconsultation", "title": f"A11y {label}"}
        )
        email = f"patient.{label}@example.org"
        await call_api(
            page,
            "POST",
            f"/api/v1/rooms/{room['id']}/invitations",
            {"name": "Jeanne Dupont", "email": email},
        )
        [mail] = await smtp.wait_for(email)
        link = re.search(r"/join/[A-Za-z0-9._~-]+", smtp.text_of(mail))
        assert link is not None
        patient = await pages.new(viewport=viewport, bypass_csp=True)
        await patient.goto(link.group(0))
        await patient.get_by_role("heading", name="Bienvenue").wait_for()
        problems += await audit(patient, f"join-{label}")

        await page.goto(f"/app/rooms/{room['id']}")
        await page.locator(".tile.local").wait_for()
        problems += await audit(page, f"room-{label}")
        await page.get_by_role("button", name=re.compile("^Participants")).click()
        await page.locator("aside.side").wait_for()
        problems += await audit(page, f"room-people-{label}")
    assert not problems, "\n".join(problems)
