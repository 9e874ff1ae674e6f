"""Issue 16 through the pages, from planning to the consultation report: a practitioner plans
a téléconsultation from the dossier page, the patient receives the invitation and the
quarter-hour reminder (local SMTP server; the reminder runner driven with a clock), the
practitioner enters from the dossier page and the patient from the link, a capture and a
file sent in the call land in the dossier as « Pendant la téléconsultation du … », then the
practitioner writes, signs and sends the report (vault to the patient, MSSanté to the
médecin traitant) and the activity view shows each step. At 390 and 1440 px: nothing wider
than the screen, axe-core clean, screenshots in test-results/."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.context import DB
from core.paris_time import PARIS
from dossier.teleconsult.actions import send_due_reminders
from tests.support.documents import make_dossier, pdf_bytes, png_bytes
from tests.ui.conftest import open_session, shot
from tests.ui.test_accessibility import audit
from tests.ui.test_walkthrough_screens import DESKTOP, PHONE, fits

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

PATIENT = "jean.martin@example.org"
GP_MSS = "jacques.bernard@medecin.mssante.fr"
STEP_FILTER = "Téléconsultation"


async def _screens(page: Any, name: str) -> None:
    for size_name, size in (("390", PHONE), ("1440", DESKTOP)):
        await page.set_viewport_size(size)
        await fits(page, f"{name}-{size_name}")
        assert await audit(page, f"{name}-{size_name}") == []
        await shot(page, f"{name}-{size_name}")


async def _activity_shows(page: Any, step: str, label: str) -> None:
    """The activity view lists the dossier under that step when filtered on it."""
    await page.goto("/app/")
    await page.get_by_label(STEP_FILTER, exact=True).select_option(step)
    await page.locator("tbody tr", has_text=label).first.wait_for()
    assert await page.locator("tbody tr").count() == 1


async def test_plan_remind_enter_then_write_sign_and_send_the_report(
    pages, app, users, smtp, tmp_path
):
    dossier_id = await make_dossier(app[DB], users)
    page = await pages.new(viewport=DESKTOP, bypass_csp=True)
    await open_session(page, app, users["requester"])
    watch = await pages.new(viewport=DESKTOP, bypass_csp=True)  # the activity view
    await open_session(watch, app, users["requester"])

    # Planned in twenty minutes (Paris time, as the page's inputs are).
    at = (datetime.now(PARIS) + timedelta(minutes=21)).replace(second=0, microsecond=0)
    await page.goto(f"/app/dossiers/{dossier_id}")
    await page.get_by_role("button", name="Planifier une téléconsultation").click()
    plan = page.get_by_role("dialog", name="Planifier une téléconsultation")
    await plan.get_by_label("Date").fill(at.date().isoformat())
    await plan.get_by_label("Heure").fill(f"{at:%H:%M}")
    patient_box = plan.get_by_role("group", name="Patient invité")
    await patient_box.get_by_label("Adresse e-mail").fill(PATIENT)
    await patient_box.get_by_label("Téléphone portable (SMS)").fill("+33612345678")
    await plan.get_by_role("button", name="Planifier et envoyer les invitations").click()
    await plan.wait_for(state="hidden")
    await page.get_by_text(f"Salle prévue le {at:%d/%m/%Y} à {at:%H:%M}").wait_for()
    (invitation,) = await smtp.wait_for(PATIENT)
    link = re.search(r"/join/[A-Za-z0-9._~-]+", smtp.text_of(invitation))
    assert link, smtp.text_of(invitation)
    await _activity_shows(watch, "planned", "Téléconsultation planifiée")

    # The reminder, driven by the runner's clock: a quarter of an hour before.
    at_utc = at.astimezone(UTC)
    assert await send_due_reminders(app, now=at_utc - timedelta(minutes=16)) == 0
    assert await send_due_reminders(app, now=at_utc - timedelta(minutes=15)) == 1
    mails = await smtp.wait_for(PATIENT, count=2)
    assert mails[-1]["Subject"] == "Rappel : téléconsultation dans 15 minutes"
    assert link.group(0) in smtp.text_of(mails[-1])

    # The practitioner enters from the dossier page, the patient from the link.
    await page.get_by_role("link", name="Entrer dans la salle").click()
    await page.wait_for_url(re.compile(r"/app/rooms/[0-9a-f-]{36}$"))
    await page.get_by_text("Dr Claire Martin (vous)").wait_for()
    patient = await pages.new(viewport=PHONE, bypass_csp=True)
    await patient.goto(link.group(0))
    await patient.get_by_role("button", name="C'est bien moi").click()
    await patient.get_by_role("button", name="Suivant").click()
    await patient.get_by_role("button", name="Rejoindre la salle d'attente").click()
    await page.get_by_role("button", name="1 en salle d'attente").click()
    await page.get_by_role("button", name="Faire entrer").click()
    await patient.get_by_text("(vous)").first.wait_for()
    await page.get_by_role("button", name="Fermer").click()

    # A capture and a file sent in the call land in the dossier.
    await page.get_by_role("button", name="Capture d'écran").click()
    await page.get_by_role("dialog").get_by_role("button", name="Ajouter au dossier").click()
    await page.get_by_text("Capture ajoutée au dossier.").wait_for()
    photo = tmp_path / "photo-plaie.png"
    photo.write_bytes(png_bytes())
    await page.get_by_role("button", name="Envoyer un document").click()
    send = page.get_by_role("dialog", name="Envoyer un document")
    await send.get_by_role("button", name="Depuis mon ordinateur").click()
    await send.locator("#send-file").set_input_files(str(photo))
    await send.get_by_role("button", name="Envoyer", exact=True).click()
    await page.get_by_text("Document « photo-plaie.png » envoyé.").wait_for(timeout=180_000)

    # Back on the dossier: the call's files under its date, not in « Images ».
    await page.goto(f"/app/dossiers/{dossier_id}")
    heading = f"Pendant la téléconsultation du {at:%d/%m/%Y} (2)"
    group = page.locator(".doc-cat", has=page.get_by_role("heading", name=heading, exact=True))
    await group.wait_for()
    await group.get_by_text("photo-plaie.png").wait_for()
    assert await page.get_by_role("heading", name=re.compile(r"^Images")).count() == 0

    # « Réalisée », then the report.
    await page.get_by_role("button", name="Marquer comme réalisée").click()
    await page.get_by_text("Téléconsultation réalisée").first.wait_for()
    await _activity_shows(watch, "done", "Téléconsultation réalisée")
    await page.get_by_role("button", name="Rédiger le compte-rendu").click()
    report = page.get_by_role("dialog", name="Compte-rendu de téléconsultation")
    await report.get_by_label("Motif").fill("Suivi d'une plaie du talon.")
    await report.get_by_label("Examen clinique / constatations").fill(
        "Plaie propre, bourgeonnante, sans signe d'infection."
    )
    await report.get_by_label("Conclusion").fill("Poursuite des soins locaux, revoir à 15 jours.")
    rx = tmp_path / "ordonnance.pdf"
    rx.write_bytes(pdf_bytes(1, "Ordonnance : soins infirmiers"))
    await report.locator("input[type=file]").set_input_files(str(rx))
    chosen = report.get_by_label("Prescriptions (ordonnance jointe)")
    await chosen.locator("option:checked", has_text="ordonnance.pdf").wait_for(state="attached")
    gp = report.get_by_role("group", name="Médecin traitant")
    await gp.get_by_label("Nom").fill("Dr Jacques Bernard")
    await gp.get_by_label("Adresse MSSanté").fill(GP_MSS)
    await _screens(page, "teleconsultation-report-form")
    await report.get_by_role("button", name="Signer le compte-rendu").click()
    await report.wait_for(state="hidden")

    # Sent: to the patient through the vault, to the médecin traitant by MSSanté.
    send_report = page.get_by_role("dialog", name="Envoyer le compte-rendu")
    await send_report.wait_for()
    assert await send_report.get_by_label("Adresse e-mail").input_value() == PATIENT
    assert await send_report.get_by_label("Adresse MSSanté").input_value() == GP_MSS
    await _screens(page, "teleconsultation-report-send")
    await send_report.get_by_role("button", name="Envoyer", exact=True).click()
    await send_report.wait_for(state="hidden")
    mails = await smtp.wait_for(PATIENT, count=3)
    assert "/vault/" in smtp.text_of(mails[-1])
    (to_gp,) = await smtp.wait_for(GP_MSS)
    assert any(p.get_content_type() == "application/pdf" for p in to_gp.iter_attachments())

    # The dossier: the step, the signature, the sendings, the report among its documents.
    await page.get_by_text("Compte-rendu signé par Dr Claire Martin le").wait_for()
    await page.get_by_text(f"Envoyé par MSSanté à {GP_MSS}").wait_for()
    await page.get_by_text(re.compile(rf"Envoyé au patient \({re.escape(PATIENT)}\)")).wait_for()
    reports = page.locator(".doc-cat", has=page.get_by_role("heading", name="Comptes-rendus (1)"))
    await reports.get_by_text(re.compile(r"^teleconsultation\.crpt ")).wait_for()
    await _screens(page, "teleconsultation-report-dossier")
    await _activity_shows(watch, "report_signed", "Compte-rendu signé")
    await _screens(watch, "teleconsultation-report-activity")
    assert pages.errors == []
