"""« Utiliser un n° de dossier » (seed 002 § 2.2) through the pages.

Dr Claire Martin's dossier for Mme SEVESTRE (seed_demo) is sent to the Lyon Sud
endocrinologists. Dr Thomas Roux, a cardiologist on neither side, is phoned about it: his
name search finds nothing and proposes the dossier number; a wrong birth date is refused in
French; the right one opens the dossier page, whose banner shows the number and says the
access is read-only. Too many failures give the French wait message.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.accounts import User
from core.context import DB
from dossier.identity.lookup import MAX_FAILURES
from dossier.models import Dossier, Patient
from tests.ui.conftest import call_api, open_session, shot, wait_js
from tests.ui.test_accessibility import PHONE, audit

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

NOT_FOUND = "Aucun dossier ne correspond à ce numéro et à cette date de naissance."


async def _demo(app, users):
    from dossier.seed import seed_demo

    await seed_demo(app[DB], users)
    async with app[DB].read() as s:
        d, p = (
            await s.execute(
                select(Dossier, Patient)
                .join(Patient, Patient.id == Dossier.patient_id)
                .where(Patient.ipp == "DEMO-0001")
            )
        ).one()
        roux = (
            await s.execute(select(User).where(User.email == "thomas.roux@demo.consilium.fr"))
        ).scalar_one()
    return d, p, roux


async def test_a_practitioner_not_on_the_dossier_opens_it_by_number_and_birth_date(
    pages, app, users
):
    d, patient, roux = await _demo(app, users)
    assert d.number.startswith("TE-") and patient.birth_date.isoformat() == "1986-02-07"
    page = await pages.new()
    await open_session(page, app, roux)
    await page.goto("/app/")
    await page.get_by_role("heading", name="Vue activité").wait_for()

    # 2.1: his name search finds nothing; the page proposes the dossier number.
    await page.get_by_label("Rechercher un dossier").fill("Sevestre")
    await page.get_by_text("Aucun résultat.").wait_for()
    toggle = page.get_by_role("button", name="Utiliser un n° de dossier")
    assert await toggle.get_attribute("aria-expanded") == "false"
    await page.get_by_role("button", name="Essayez avec un numéro de dossier.").click()
    assert await toggle.get_attribute("aria-expanded") == "true"
    number = page.get_by_label("Numéro de dossier *")
    await number.wait_for()
    assert await page.evaluate("document.activeElement.id") == "lookup-number"

    # The number as said on the phone, a wrong birth date: refused, in French.
    await number.fill(d.number.lower().replace("-", " "))
    await page.get_by_label("Date de naissance du patient *").fill("1986-07-02")
    await page.get_by_role("button", name="Accéder au dossier").click()
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert NOT_FOUND in await alert.inner_text()
    assert page.url.endswith("/app/")
    await shot(page, "activity-dossier-number")

    # The right birth date: the dossier page, with its number in the banner.
    await page.get_by_label("Date de naissance du patient *").fill("1986-02-07")
    await page.get_by_role("button", name="Accéder au dossier").click()
    await page.wait_for_url(f"**/app/dossiers/{d.id}")
    banner = page.get_by_role("region", name="Identité du patient")
    await banner.get_by_text(f"Dossier n° {d.number}").wait_for()
    await banner.get_by_text("Lecture seule · consulté par n° de dossier").wait_for()
    assert "SEVESTRE" in await banner.inner_text()
    # Read-only: no signature button for him.
    assert await page.get_by_role("button", name="Signer").count() == 0
    await page.get_by_role("heading", name="Documents").first.wait_for()
    for action in ("Ajouter un document", "Envoyer", "Générer le compte-rendu PDF"):
        assert await page.get_by_role("button", name=action).count() == 0, action
    await shot(page, "dossier-number-banner")

    # Back on the activity view: that dossier only, marked as consulted by number, and the
    # lookup is in "Mes dernières recherches".
    await page.goto("/app/")
    row = page.locator("tbody tr")
    await row.first.wait_for()
    assert await row.count() == 1
    text = await row.first.inner_text()
    assert "SEVESTRE" in text and d.number in text and "Consulté par n°" in text
    await page.locator(".recent-list").get_by_text(d.number).wait_for()
    await shot(page, "activity-consulted-by-number")

    # Searching by the number finds it too.
    await page.get_by_label("Rechercher un dossier").fill(d.number)
    await wait_js(page, "() => document.querySelectorAll('tbody tr').length === 1")

    # Too many failures: the French wait message.
    for i in range(MAX_FAILURES - 1):  # one was made above
        try:
            await call_api(
                page,
                "POST",
                "/api/v1/dossiers/lookup",
                {"number": f"TE-2020-{i + 1}", "birth_date": "1986-02-07"},
            )
        except Exception as e:  # 404, as expected
            assert "404" in str(e)
    await page.get_by_role("button", name="Utiliser un n° de dossier").click()
    await page.get_by_label("Numéro de dossier *").fill(d.number)
    await page.get_by_label("Date de naissance du patient *").fill("1986-02-07")
    await page.get_by_role("button", name="Accéder au dossier").click()
    await (
        page.get_by_role("alert")
        .get_by_text("Trop de tentatives infructueuses. Réessayez dans 15 min.")
        .wait_for()
    )
    assert pages.errors == []


async def test_the_lookup_fits_a_phone_and_passes_axe(pages, app, users):
    """The form open with a refusal shown, and the reader's dossier page: no horizontal
    scrolling on a 390 px phone, no serious or critical axe violation (WCAG 2.1 AA)."""
    d, _patient, roux = await _demo(app, users)
    problems: list[str] = []
    for label, viewport in (("desktop", None), ("phone", PHONE)):
        page = await pages.new(viewport=viewport, bypass_csp=True)  # bypass: axe injection
        await open_session(page, app, roux)
        await page.goto("/app/")
        await page.get_by_role("button", name="Utiliser un n° de dossier").click()
        await page.get_by_label("Numéro de dossier *").fill(d.number)
        await page.get_by_label("Date de naissance du patient *").fill("1990-01-01")
        await page.get_by_role("button", name="Accéder au dossier").click()
        await page.get_by_role("alert").get_by_text(NOT_FOUND).wait_for()
        width = (viewport or {"width": 1366})["width"]
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, label
        box = await page.get_by_role("button", name="Accéder au dossier").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
        problems += await audit(page, f"activity-dossier-number-{label}")

        await page.get_by_label("Date de naissance du patient *").fill("1986-02-07")
        await page.get_by_role("button", name="Accéder au dossier").click()
        await page.get_by_text(f"Dossier n° {d.number}").wait_for()
        problems += await audit(page, f"dossier-reader-{label}")
    assert problems == [], "\n".join(problems)
    assert pages.errors == []
