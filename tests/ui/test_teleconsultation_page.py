"""Seed 001 through the pages: a practitioner plans a téléconsultation from the dossier page,
the patient's invitation leaves (local SMTP sink), the dossier page then shows « Salle prévue
le … » with the room's occupancy, the activity view shows and filters on the step, and
« Entrer dans la salle » leads to the room. At 390 and
1440 px: nothing wider than the screen, axe-core clean, screenshots in test-results/."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from core.context import DB
from tests.support.documents import make_dossier
from tests.ui.conftest import open_session, shot
from tests.ui.test_accessibility import audit
from tests.ui.test_walkthrough_screens import DESKTOP, PHONE, fits

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


async def test_plan_from_the_dossier_page_then_enter_the_room(pages, app, users, smtp):
    dossier_id = await make_dossier(app[DB], users)
    page = await pages.new(viewport=DESKTOP, bypass_csp=True)
    await open_session(page, app, users["requester"])
    await page.goto(f"/app/dossiers/{dossier_id}")
    await page.get_by_role("heading", name="Téléconsultation", exact=True).wait_for()
    await page.get_by_text("Aucune salle ouverte sur ce dossier.").wait_for()
    await page.get_by_role("button", name="Planifier une téléconsultation").click()
    dialog = page.get_by_role("dialog", name="Planifier une téléconsultation")
    await dialog.wait_for()
    day = date.today() + timedelta(days=2)
    await dialog.get_by_label("Date").fill(day.isoformat())
    await dialog.get_by_label("Heure").fill("14:30")
    await dialog.get_by_label("Durée").select_option("30")
    patient = dialog.get_by_role("group", name="Patient invité")
    await patient.get_by_label("Adresse e-mail").fill("jean.martin@example.org")
    await patient.get_by_label("Téléphone portable (SMS)").fill("+33612345678")
    for name, size in (("1440", DESKTOP), ("390", PHONE)):
        await page.set_viewport_size(size)
        await fits(page, f"teleconsultation-plan-{name}")
        assert await audit(page, f"teleconsultation-plan-{name}") == []
        await shot(page, f"teleconsultation-plan-{name}")
    await dialog.get_by_role("button", name="Planifier et envoyer les invitations").click()
    await dialog.wait_for(state="hidden")
    label = f"Salle prévue le {day:%d/%m/%Y} à 14:30"
    await page.get_by_text(label).wait_for()
    await page.get_by_text("Salle libre").wait_for()
    await page.get_by_text("Téléconsultation planifiée").first.wait_for()
    (invitation,) = await smtp.wait_for("jean.martin@example.org")
    assert "/join/" in smtp.text_of(invitation)
    for name, size in (("390", PHONE), ("1440", DESKTOP)):
        await page.set_viewport_size(size)
        await fits(page, f"teleconsultation-dossier-{name}")
        assert await audit(page, f"teleconsultation-dossier-{name}") == []
        await shot(page, f"teleconsultation-dossier-{name}")
    # « Déplacer »: the room's time follows, the patient gets a new link.
    await page.get_by_role("button", name="Déplacer", exact=True).click()
    move = page.get_by_role("dialog", name="Déplacer")
    await move.get_by_label("Heure").fill("15:00")
    await shot(page, "teleconsultation-reschedule-1440")
    await move.get_by_role("button", name="Déplacer et prévenir les participants").click()
    await move.wait_for(state="hidden")
    await page.get_by_text(f"Salle prévue le {day:%d/%m/%Y} à 15:00").wait_for()
    await smtp.wait_for("jean.martin@example.org", count=2)
    # The activity view shows the step and filters on it.
    await page.goto("/app/")
    await page.get_by_label("Téléconsultation", exact=True).select_option("planned")
    row = page.locator("tbody tr", has_text="Téléconsultation planifiée")
    await row.first.wait_for()
    assert await page.locator("tbody tr").count() == 1
    for name, size in (("390", PHONE), ("1440", DESKTOP)):
        await page.set_viewport_size(size)
        await fits(page, f"teleconsultation-activity-{name}")
        assert await audit(page, f"teleconsultation-activity-{name}") == []
    await page.get_by_label("Téléconsultation", exact=True).select_option("done")
    await page.get_by_text("Aucun dossier ne correspond").wait_for()
    await page.goto(f"/app/dossiers/{dossier_id}")
    await page.get_by_role("link", name="Entrer dans la salle").click()
    await page.wait_for_url(re.compile(r"/app/rooms/[0-9a-f-]{36}$"))
    await page.get_by_text("Dr Claire Martin (vous)").wait_for()
    # The expert opens the dossier: the room shows who is inside, and they enter it too.
    expert = await pages.new(viewport=PHONE, bypass_csp=True)
    await open_session(expert, app, users["expert"])
    await expert.goto(f"/app/dossiers/{dossier_id}")
    await expert.get_by_text(f"Salle prévue le {day:%d/%m/%Y} à 15:00").wait_for()
    await expert.get_by_text("1 participant : Dr Claire Martin").wait_for()
    await fits(expert, "teleconsultation-occupied-390")
    assert await audit(expert, "teleconsultation-occupied-390") == []
    await shot(expert, "teleconsultation-occupied-390")
    await expert.get_by_role("link", name="Entrer dans la salle").click()
    await expert.get_by_text("Dr Karim Benali (vous)").wait_for()
    await page.locator(".tile:not(.local)").get_by_text("Dr Karim Benali").wait_for()
    assert pages.errors == []
