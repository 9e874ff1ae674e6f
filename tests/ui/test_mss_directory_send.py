"""The send dialog's MSSanté directory: a signed report is sent to a recipient found in the
directory (imported from the Annuaire Santé extract) and to a typed address; the operator's
relay (a local aiosmtpd) receives the message, with its XDM archive, for both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.context import DB
from dossier.mssdirectory.importer import import_file
from tests.conftest import make_settings
from tests.support.documents import make_dossier
from tests.ui.conftest import call_api, open_session, shot
from tests.ui.test_accessibility import audit

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "mss_directory_extract.txt"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp: Any) -> Any:
    # The MSSanté relay is the local SMTP sink (mss_smtp_*), as an operator's relay would be.
    return make_settings(
        database_url,
        tmp_path / "data",
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        mss_smtp_host=smtp.host,
        mss_smtp_port=smtp.port,
    )


async def test_a_report_is_sent_to_a_recipient_found_in_the_directory(pages, app, users, smtp):
    await import_file(app[DB], SAMPLE)
    dossier_id = await make_dossier(app[DB], users, state="expertised", signed_parts=True)
    page = await pages.new(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    await open_session(page, app, users["expert"])
    await page.goto("/app/")
    report = await call_api(page, "POST", f"/api/v1/dossiers/{dossier_id}/report")
    assert report["meta"]["signed"] is True

    await page.goto(f"/app/dossiers/{dossier_id}")
    row = page.locator(".doc-list li", has_text=report["filename"])
    await row.get_by_role("button", name="Envoyer").click()
    dialog = page.get_by_role("dialog", name="Envoyer le document")
    search = dialog.get_by_label(
        "Rechercher dans l'annuaire MSSanté : nom, RPPS, spécialité, commune"
    )
    # Without accents, a name and a commune: the one match shows its specialty and address.
    await search.fill("helene lyon")
    results = dialog.get_by_role("region", name="Résultats de l'annuaire MSSanté")
    pick = results.get_by_role(
        "button", name="Ajouter Hélène LEFÈVRE (helene.lefevre@test.mssante.fr) aux destinataires"
    )
    await pick.wait_for()
    text = await results.inner_text()
    assert "Cardiologie et maladies vasculaires" in text and "Lyon" in text, text
    assert "helene.lefevre@test.mssante.fr" in text
    await shot(page, "mss-directory-results", full_page=False)
    await pick.click()
    chosen = dialog.get_by_role("region", name="Destinataires choisis dans l'annuaire")
    await chosen.get_by_role("button", name="Retirer Hélène LEFÈVRE des destinataires").wait_for()
    # A search with no match says so; Enter searches and does not send.
    await search.fill("personne inconnue")
    await search.press("Enter")
    await results.get_by_text("Aucune adresse de l'annuaire ne correspond.").wait_for()
    assert not smtp.messages
    # An address typed as before goes too.
    await dialog.get_by_label("Autres adresses MSSanté (saisies, séparées par des virgules)").fill(
        "dr.durand@hopital.test.mssante.fr"
    )
    await shot(page, "mss-directory-send-dialog", full_page=False)
    problems = await audit(page, "mss-directory-send-dialog")
    await dialog.get_by_role("button", name="Envoyer", exact=True).click()
    await dialog.wait_for(state="hidden")

    for address in ("helene.lefevre@test.mssante.fr", "dr.durand@hopital.test.mssante.fr"):
        [mail] = await smtp.wait_for(address, timeout=30)
        names = [p.get_filename() for p in mail.iter_attachments()]
        assert report["filename"] in names and "IHE_XDM.ZIP" in names, names
        assert mail["X-MSS-CODECDA"]
    assert not problems, "\n".join(problems)
    assert not pages.errors, pages.errors
