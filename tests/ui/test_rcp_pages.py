"""Issue 16 item 3 through the pages: « An e-Staff with an agenda of two dossiers ends with a
signed decision filed in each ». The lead plans the RCP from a dossier (« Inscrire en RCP »),
invites a colleague from the directory and adds a second dossier; both enter the e-Staff
room (two browser contexts); the participant sees the dossier discussed change as the lead
moves through the agenda; the lead writes and signs the « fiche RCP » of each dossier, which
lands in that dossier (PAdES). At 390 and 1440 px: nothing wider than the screen, axe-core
clean, screenshots in test-results/."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from core.context import DB, SETTINGS
from core.storage import of as storage_of
from dossier.models import Document, Dossier
from dossier.report.signing import verify_pdf
from tests.support.documents import make_dossier
from tests.ui.conftest import open_session, shot
from tests.ui.test_accessibility import audit
from tests.ui.test_walkthrough_screens import DESKTOP, PHONE, fits

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


async def _check(page, name: str) -> None:
    for label, size in (("1440", DESKTOP), ("390", PHONE)):
        await page.set_viewport_size(size)
        await fits(page, f"{name}-{label}")
        assert await audit(page, f"{name}-{label}") == []
        await shot(page, f"{name}-{label}")


async def test_an_estaff_with_two_dossiers_ends_with_a_signed_decision_filed_in_each(
    pages, app, users, smtp
):
    d1 = await make_dossier(app[DB], users)
    d2 = await make_dossier(app[DB], users, birth_name="DURAND", first_name="Louise")
    lead = await pages.new(viewport=DESKTOP, bypass_csp=True)
    await open_session(lead, app, users["requester"])
    await lead.goto(f"/app/dossiers/{d1}")
    await lead.get_by_role("link", name="Inscrire en RCP").click()
    await lead.get_by_role("heading", name="Planifier une RCP").wait_for()
    await lead.get_by_label("Intitulé de la réunion").fill("RCP de médecine interne")
    day = date.today() + timedelta(days=1)
    await lead.get_by_label("Date").fill(day.isoformat())
    await lead.get_by_label("Heure").fill("13:00")
    # The dossier it came from is first on the agenda.
    await lead.get_by_text("MARTIN Jean").wait_for()
    await lead.get_by_label("Question posée").first.fill("Faut-il une biopsie ?")
    await lead.get_by_label("Inviter un professionnel").fill("Benali")
    await lead.get_by_role("button", name="Ajouter Dr Karim Benali").click()
    # (make_dossier writes no search text: the second dossier is found by its number)
    async with app[DB].read() as s:
        number = (await s.get(Dossier, d2)).number
    await lead.get_by_label("Ajouter un dossier").fill(number)
    await lead.get_by_role("button", name=f"Ajouter {number}").click()
    await lead.get_by_text("DURAND Louise").wait_for()
    await lead.get_by_label("Question posée").nth(1).fill("Quel traitement de fond ?")
    await _check(lead, "rcp-plan")
    await lead.get_by_role("button", name="Planifier et envoyer les invitations").click()
    await lead.wait_for_url(re.compile(r"/app/rcp/[0-9a-f-]{36}$"))
    await lead.get_by_role("heading", name="RCP de médecine interne").wait_for()
    (invitation,) = await smtp.wait_for("expert@demo.consilium.fr")
    assert "RCP planifiée" in invitation["Subject"]
    await _check(lead, "rcp-meeting")

    # Both enter the e-Staff room; the agenda panel opens by itself.
    await lead.set_viewport_size(DESKTOP)
    await lead.get_by_role("link", name="Entrer dans la salle").click()
    await lead.wait_for_url(re.compile(r"/app/rooms/[0-9a-f-]{36}$"))
    room_url = lead.url
    panel = lead.locator("aside.side")
    await panel.get_by_text("La réunion n'a pas encore commencé.").wait_for()
    member = await pages.new(viewport=PHONE, bypass_csp=True)
    await open_session(member, app, users["expert"])
    await member.goto(room_url)
    seen = member.locator(".rcp-current-dossier")
    await member.get_by_text("La réunion n'a pas encore commencé.").wait_for()

    for patient, question in (("MARTIN Jean", "biopsie"), ("DURAND Louise", "traitement")):
        await panel.get_by_role(
            "button", name=re.compile("Commencer par le premier dossier|Dossier suivant")
        ).click()
        # The participant sees the dossier discussed change.
        await seen.filter(has_text=patient).wait_for(timeout=30000)
        await panel.locator(".rcp-current-dossier", has_text=patient).wait_for()
        assert question in (await panel.get_by_label("Question posée").input_value())
        await panel.get_by_label("Proposition thérapeutique / avis de la RCP").fill(
            f"Avis de la RCP pour {patient} : surveillance à 3 mois."
        )
        present = await panel.get_by_label("Participants présents").input_value()
        assert "Dr Claire Martin" in present and "Dr Karim Benali" in present
        if patient == "MARTIN Jean":
            await _check(lead, "rcp-room-lead")
            await lead.set_viewport_size(DESKTOP)
            await _check(member, "rcp-room-member")
            await member.set_viewport_size(PHONE)
        await panel.get_by_role("button", name="Signer la fiche RCP").click()
        # Rendering, signing and filing the PDF (a preview in a worker process): generous.
        signed = panel.get_by_text(re.compile("Fiche RCP signée le .* par Dr Claire Martin"))
        await signed.wait_for(timeout=180000)
    await panel.get_by_text("Fiche RCP signée", exact=True).nth(1).wait_for()
    await shot(lead, "rcp-room-done-1440")

    # Each dossier holds its signed fiche, shown on its page.
    async with app[DB].read() as s:
        docs = list(
            (
                await s.execute(select(Document).where(Document.filename.like("fiche-rcp %")))
            ).scalars()
        )
    assert sorted(d.dossier_id for d in docs) == sorted([d1, d2])
    storage = storage_of(app)
    for doc in docs:
        pdf = await storage.blobs.read(doc.blob_key)
        assert (await verify_pdf(app[SETTINGS].data_dir, pdf)).ok
    page = await pages.new(viewport=DESKTOP, bypass_csp=True)
    await open_session(page, app, users["expert"])
    await page.goto(f"/app/dossiers/{d2}")
    await page.get_by_text(re.compile(r"fiche-rcp DURAND")).first.wait_for()
    assert pages.errors == []
