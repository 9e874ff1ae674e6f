"""The screens that failed in the walk-throughs (issue 16, item 6), each at the width where it
failed: on a 390 px phone and a 1440 px desktop, nothing wider than the screen (checked by
script), nothing cut inside its box, axe-core clean, a screenshot in test-results/."""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from typing import Any

import pytest

from core.context import DB
from tests.support.documents import make_dossier
from tests.ui.conftest import call_api, open_session, shot, wait_js
from tests.ui.test_accessibility import audit

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
SIZES = (("390", PHONE), ("1440", DESKTOP))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

# The smallest PNG: one white pixel.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4//8/AAX+Av4N70a4AAAAAElFTkSuQmCC"
)


async def fits(page: Any, name: str) -> None:
    """Nothing wider than the screen, and no box of the page that cuts what it holds."""
    sw, iw = await page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
    if sw > iw:
        wide = await page.evaluate(
            """() => [...document.querySelectorAll('body *')]
                .filter((el) => el.getBoundingClientRect().right > innerWidth + 1)
                .slice(0, 12).map((el) => el.tagName + '.' + el.className)"""
        )
        raise AssertionError(f"{name}: the page is {sw} px wide on a {iw} px screen: {wide}")
    cut = await page.evaluate(
        """() => [...document.querySelectorAll('.table-wrap, .card, .card-body')]
            .filter((el) => el.scrollWidth > el.clientWidth + 1 && el.offsetParent !== null)
            .map((el) => el.className + ' ' + el.scrollWidth + '>' + el.clientWidth)"""
    )
    assert not cut, f"{name}: boxes that cut their content: {cut}"


async def upload(page: Any, dossier_id: Any, filename: str, data: bytes, ctype: str) -> Any:
    return await page.evaluate(
        """async ([path, b64, ctype]) => {
            const csrf = (document.cookie.match(/consilium_csrf=([^;]+)/) || [])[1] || "";
            const body = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const r = await fetch(path, {method: "POST", body,
              headers: {"Content-Type": ctype, "X-CSRF-Token": decodeURIComponent(csrf)}});
            if (!r.ok) throw new Error(r.status + " " + await r.text());
            return r.json();
        }""",
        [
            f"/api/v1/dossiers/{dossier_id}/documents?filename={filename}",
            base64.b64encode(data).decode(),
            ctype,
        ],
    )


async def test_dossier_with_signed_report_history_and_refusals(pages, app, users):
    dossier_id = await make_dossier(app[DB], users, state="expertised", signed_parts=True)
    expert = await pages.new(viewport=DESKTOP)
    await open_session(expert, app, users["expert"])
    await expert.goto("/app/")
    await upload(expert, dossier_id, "photo-plaie.png", PIXEL, "image/png")
    report = await call_api(expert, "POST", f"/api/v1/dossiers/{dossier_id}/report")
    assert report["meta"]["signed"] is True
    # Opened three times in a row: one line of the history, not three.
    for _ in range(3):
        await call_api(expert, "GET", f"/api/v1/dossiers/{dossier_id}")

    problems: list[str] = []
    for label, viewport in SIZES:
        page = await pages.new(viewport=viewport, bypass_csp=True)
        await open_session(page, app, users["expert"])
        await page.goto(f"/app/dossiers/{dossier_id}")
        await page.get_by_role("heading", name="Documents").first.wait_for()
        await page.locator(".doc-list li", has_text=report["filename"]).wait_for()
        history = page.get_by_role("region", name="Historique")
        await history.get_by_role("button", name="Afficher").click()
        lines = history.get_by_role("list", name="Historique")
        await lines.get_by_text("a produit le compte-rendu").wait_for()
        text = await lines.inner_text()
        assert "dossier.create" not in text and "document.read" not in text, text
        assert re.search(r"Dr Karim Benali a consulté le dossier \(\d+ fois\)", text), text
        assert "Dr Karim Benali a produit le compte-rendu" in text, text
        assert "Dr Karim Benali a ajouté « photo-plaie.png »" in text, text
        await shot(page, f"walkthrough-dossier-{label}")
        await fits(page, f"dossier-{label}")
        problems += await audit(page, f"walkthrough-dossier-{label}")

        await history.get_by_role("button", name="Modifications").click()
        await wait_js(
            page,
            "() => !document.querySelector('.history-list').innerText.includes('a ouvert')"
            " && !document.querySelector('.history-list').innerText.includes('a consulté')",
        )
        await history.get_by_role("button", name="Lectures").click()
        await lines.get_by_text("a consulté le dossier").first.wait_for()
        assert "a produit le compte-rendu" not in await lines.inner_text()
        await shot(page, f"walkthrough-dossier-history-reads-{label}", full_page=False)

    # Refusals say the server's reason, not « L'opération n'a pas abouti ».
    page = expert
    await page.goto(f"/app/dossiers/{dossier_id}")
    photo = page.locator(".doc-list li", has_text="photo-plaie.png")
    await photo.get_by_role("button", name="Envoyer").click()
    dialog = page.get_by_role("dialog", name="Envoyer le document")
    mss = dialog.get_by_label("Adresses MSSanté des destinataires")
    await mss.fill("dr.durand@hopital.mssante.fr")
    await dialog.get_by_role("button", name="Envoyer").click()
    await dialog.get_by_role("alert").get_by_text("Seuls les documents PDF s'envoient.").wait_for()
    await shot(page, "walkthrough-refusal-mss-photo", full_page=False)
    await dialog.get_by_role("button", name="Fermer").click()

    signed = page.locator(".doc-list li", has_text=report["filename"])
    await signed.get_by_role("button", name="Signature").click()
    stamp = page.get_by_role("dialog", name="Apposer ma signature")
    await stamp.get_by_role("button", name="Signer").click()
    await stamp.get_by_role("alert").get_by_text("signé électroniquement").wait_for()
    await shot(page, "walkthrough-refusal-signed-report", full_page=False)
    assert not problems, "\n".join(problems)
    assert not pages.errors, pages.errors


async def test_settings_page_fits_a_phone(pages, app, users):
    from sqlalchemy import update

    from core.accounts import User

    # A hospital address as long as real ones are.
    async with app[DB].write() as uow:
        await uow.session.execute(
            update(User)
            .where(User.id == users["expert"].id)
            .values(email="secretariat.endocrinologiediabetologie@chulyonsud.example.fr")
        )
    problems: list[str] = []
    for label, viewport in SIZES:
        page = await pages.new(viewport=viewport, bypass_csp=True)
        await open_session(page, app, users["expert"])
        await page.goto("/app/settings")
        await page.get_by_role("heading", name="Paramètres").first.wait_for()
        await page.locator("section.card").last.wait_for()
        await shot(page, f"walkthrough-settings-{label}")
        await fits(page, f"settings-{label}")
        problems += await audit(page, f"walkthrough-settings-{label}")
    assert not problems, "\n".join(problems)
    assert not pages.errors, pages.errors


async def test_wizard_patient_tables_keep_their_button_in_the_box(pages, app, users):
    from dossier.seed import seed_demo

    await seed_demo(app[DB], users)
    problems: list[str] = []
    for label, viewport in SIZES:
        page = await pages.new(viewport=viewport, bypass_csp=True)
        await open_session(page, app, users["requester"])
        await page.goto("/app/dossiers/new")
        await page.get_by_role("heading", name="Recherche de patient").wait_for()
        await page.get_by_label("Nom, prénom").fill("Sevestre")
        await page.get_by_role("button", name="Rechercher").click()
        use = page.get_by_role("button", name="Sélectionner").first
        await use.wait_for()
        await shot(page, f"walkthrough-wizard-results-{label}")
        await fits(page, f"wizard-results-{label}")
        assert await use.is_visible()
        problems += await audit(page, f"walkthrough-wizard-results-{label}")

        found = await call_api(page, "GET", "/api/v1/patients?q=Sevestre")
        p = found[0]
        await page.get_by_role("button", name="Créer une identité").click()
        await page.get_by_label("Nom de naissance *").fill(p["birth_name"])
        await page.get_by_label("1er prénom *").fill(p["first_name"])
        await page.get_by_label("Sexe *").select_option(p["sex"])
        await page.get_by_label("Date de naissance *").fill(p["birth_date"])
        await page.get_by_role("button", name="Valider").click()
        await page.get_by_text("Identités ressemblantes").wait_for()
        use = page.get_by_role("button", name="Utiliser").first
        await use.wait_for()
        await shot(page, f"walkthrough-wizard-duplicates-{label}")
        await fits(page, f"wizard-duplicates-{label}")
        # Readable cells: none squeezed to a letter a line.
        narrow = await page.evaluate(
            "() => Math.min(...[...document.querySelectorAll('.patient-table td')]"
            ".map((td) => td.getBoundingClientRect().width))"
        )
        assert narrow >= 48, f"wizard-duplicates-{label}: a cell {narrow} px wide"
        problems += await audit(page, f"walkthrough-wizard-duplicates-{label}")
    assert not problems, "\n".join(problems)
    assert not pages.errors, pages.errors


async def test_vault_page_has_the_product_look_and_says_what_is_wrong(pages, app, users, smtp):
    dossier_id = await make_dossier(app[DB], users, state="expertised", signed_parts=True)
    expert = await pages.new()
    await open_session(expert, app, users["expert"])
    await expert.goto("/app/")
    report = await call_api(expert, "POST", f"/api/v1/dossiers/{dossier_id}/report")
    await call_api(
        expert,
        "POST",
        f"/api/v1/dossiers/{dossier_id}/send",
        {
            "document_id": report["id"],
            "channel": "vault",
            "vault_recipients": [{"email": "patient@example.org", "phone": "+33612345678"}],
        },
    )
    [mail] = await smtp.wait_for("patient@example.org")
    link = re.search(r"https?://\S+(/vault/\S+)", smtp.text_of(mail))
    assert link
    path = link.group(1)

    problems: list[str] = []
    for label, viewport in SIZES:
        page = await pages.new(viewport=viewport, bypass_csp=True)
        await page.goto(path)
        await page.get_by_role("heading", name="Un document médical vous a été transmis").wait_for()
        await page.get_by_text(report["filename"]).wait_for()
        await page.get_by_text(re.compile(r"\d+ Ko")).wait_for()
        await page.get_by_text(re.compile(r"Lien valable encore \d+ jours")).wait_for()
        # The application's stylesheet is applied (the page is not bare HTML).
        assert (
            await page.evaluate(
                "() => getComputedStyle(document.querySelector('.btn-primary')).backgroundColor"
            )
            == "rgb(29, 79, 145)"
        )
        await shot(page, f"walkthrough-vault-{label}")
        await fits(page, f"vault-{label}")
        problems += await audit(page, f"walkthrough-vault-{label}")

        await page.get_by_label("Code reçu par SMS").fill("000000")
        await page.get_by_role("button", name="Télécharger le document").click()
        await page.get_by_role("alert").get_by_text(re.compile("Code incorrect")).wait_for()
        await shot(page, f"walkthrough-vault-wrong-code-{label}")
        await fits(page, f"vault-wrong-code-{label}")
        problems += await audit(page, f"walkthrough-vault-wrong-code-{label}")

    from sqlalchemy import update

    from core.db import utcnow
    from dossier.models import VaultDeposit

    async with app[DB].write() as uow:
        await uow.session.execute(
            update(VaultDeposit).values(expires_at=utcnow() - timedelta(minutes=1))
        )
    page = await pages.new(viewport=PHONE, bypass_csp=True)
    response = await page.goto(path)
    assert response is not None and response.status == 410
    await page.get_by_role("heading", name="Ce lien a expiré").wait_for()
    await shot(page, "walkthrough-vault-expired-390")
    await fits(page, "vault-expired-390")
    problems += await audit(page, "walkthrough-vault-expired-390")
    assert not problems, "\n".join(problems)


async def test_a_recent_search_opened_offline_shows_the_cached_identity(pages, app, users):
    from dossier.seed import seed_demo

    await seed_demo(app[DB], users)
    page = await pages.new(viewport=PHONE, service_workers="allow", bypass_csp=True)
    await open_session(page, app, users["requester"])
    await page.goto("/app/")
    await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    await wait_js(page, "() => navigator.serviceWorker.controller !== null")
    await page.get_by_label("Rechercher un dossier").fill("Sevestre")
    await page.get_by_role("link", name="SEVESTRE Véronique").click()
    await page.get_by_role("heading", name="Documents").first.wait_for()
    await page.goto("/app/")
    recent = page.get_by_role("region", name="Mes dernières recherches")
    await recent.get_by_text("SEVESTRE Véronique").wait_for()

    await page.context.set_offline(True)
    await page.reload()
    await page.get_by_text("Vous êtes hors ligne").wait_for()
    await (
        page.get_by_role("region", name="Mes dernières recherches")
        .get_by_text("SEVESTRE Véronique")
        .click()
    )
    await page.get_by_text("Vous êtes hors ligne").wait_for()
    await page.get_by_text("SEVESTRE Véronique").first.wait_for()
    dossiers = page.get_by_role("region", name="Dossiers de ce patient (copie hors ligne)")
    await dossiers.get_by_role("listitem").first.wait_for()
    await shot(page, "walkthrough-offline-dossier-390")
    await fits(page, "offline-dossier-390")
    problems = await audit(page, "walkthrough-offline-dossier-390")
    await page.context.set_offline(False)
    assert not problems, "\n".join(problems)
