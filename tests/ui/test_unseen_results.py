"""Unseen imaging results on the home page (issue 16 item 5, seed 002 § 3.1.1): the expert
adds a CT exam and the signed report; the requester's home page lists both under « Derniers
résultats non vus »; opening the report or « Marquer comme vu » removes them (also after a
reload); a practitioner without access to the dossier has no such list. The dossier page
shows the exams history by visit (§ 3.1.2), and no DICOM download without the habilitation
(§ 3.1.3). At 390 and 1440 px: no horizontal overflow, axe clean, screenshots."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.uid import generate_uid

from core import accounts
from core.context import DB, SETTINGS
from core.principal import Principal
from dossier.documents import store
from dossier.report.pdf import file_report
from tests.support.dicom_series import Study, series_slice
from tests.support.documents import make_dossier
from tests.ui.conftest import open_session, shot, wait_js
from tests.ui.test_accessibility import audit

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
NO_OVERFLOW = "() => document.documentElement.scrollWidth <= window.innerWidth"


async def _chunks(data: bytes) -> Any:
    yield data


async def _results(app: Any, users: dict[str, Any]) -> str:
    db = app[DB]
    dossier_id = await make_dossier(app[DB], users, signed_parts=True)
    expert = Principal.for_user(users["expert"])
    study = Study(description="SCANNER CEREBRAL")
    series = generate_uid()
    for n in (1, 2, 3):
        await store.upload_document(
            db,
            expert,
            dossier_id,
            f"coupe-{n}.dcm",
            _chunks(series_slice(study, series, instance=n, level_hu=40.0, z=5.0 * n)),
        )
    await file_report(db, expert, dossier_id, app[SETTINGS].data_dir)
    return str(dossier_id)


async def _home(page: Any) -> None:
    async with page.expect_response(lambda r: "/api/v1/me/unseen-results" in r.url) as resp:
        await page.goto("/app/")
    assert (await resp.value).ok
    await page.get_by_role("heading", name="Vue activité").wait_for()


async def _fits_and_passes_axe(page: Any, name: str) -> None:
    assert await page.evaluate(NO_OVERFLOW), f"{name}: wider than the screen"
    problems = await audit(page, name)
    assert not problems, "\n".join(problems)


async def test_unseen_results_appear_and_leave_when_opened_or_marked_seen(pages, app, users):
    dossier_id = await _results(app, users)
    for label, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        page = await pages.new(viewport=viewport, bypass_csp=True)
        await open_session(page, app, users["requester"])
        await _home(page)
        section = page.get_by_role("region", name="Derniers résultats non vus")
        await section.wait_for()
        items = section.locator("li.unseen-item")
        if label == "phone":
            assert await items.count() == 2
            await section.get_by_text("SCANNER CEREBRAL").wait_for()
            await section.get_by_text("Examen d'imagerie (3 fichier(s))").wait_for()
            await section.get_by_text("Compte-rendu", exact=False).first.wait_for()
            await _fits_and_passes_axe(page, f"unseen-results-{label}")
            await shot(page, f"unseen-results-{label}")

            # Opening the report (new tab) takes it off the list, for good.
            async with page.context.expect_page() as popup:
                await section.get_by_role("link", name="Ouvrir le compte-rendu").click()
            opened = await popup.value
            await opened.wait_for_load_state()
            await opened.close()
            await _home(page)
            await section.wait_for()
            assert await items.count() == 1
            await section.get_by_text("SCANNER CEREBRAL").wait_for()
            await shot(page, f"unseen-results-after-open-{label}")
        else:
            # The phone's « Ouvrir » is remembered: only the exam is left.
            assert await items.count() == 1
            await _fits_and_passes_axe(page, f"unseen-results-{label}")
            await shot(page, f"unseen-results-{label}")
            await section.get_by_role("button", name="Marquer comme vu").click()
            await section.wait_for(state="detached")
            await page.get_by_text("marqué comme vu").wait_for()
            await _home(page)
            await page.locator("tbody tr").first.wait_for()
            assert await page.get_by_role("region", name="Derniers résultats non vus").count() == 0
            await shot(page, f"unseen-results-empty-{label}")

            # Still reachable from the dossier: the exams history by visit, the report.
            await page.goto(f"/app/dossiers/{dossier_id}")
            history = page.get_by_role("region", name="Résultats d'imagerie")
            await history.wait_for()
            await history.get_by_text("SCANNER CEREBRAL").first.wait_for()
            await history.get_by_role("link", name="CR :").wait_for()
            await history.get_by_role("button", name="Afficher les images").wait_for()
            # No DICOM download without the habilitation: no download link on its files.
            await page.get_by_role("heading", name="Documents").first.wait_for()
            assert await page.get_by_role("link", name="Télécharger coupe-1.dcm").count() == 0
            await wait_js(page, NO_OVERFLOW)
            await _fits_and_passes_axe(page, f"exam-history-{label}")
            await shot(page, f"exam-history-{label}")


async def test_a_practitioner_without_access_has_no_unseen_results(pages, app, users):
    await _results(app, users)
    async with app[DB].write() as uow:
        other = await accounts.create_user(
            uow.session,
            email="autre@exemple.fr",
            password=None,
            role=accounts.Role.practitioner,
            first_name="Paul",
            last_name="Autre",
            title="Dr",
        )
    for label, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        page = await pages.new(viewport=viewport, bypass_csp=True)
        await open_session(page, app, other)
        await _home(page)
        await page.get_by_text("Aucun télédossier").wait_for()
        assert await page.get_by_role("region", name="Derniers résultats non vus").count() == 0
        assert await page.get_by_text("SCANNER CEREBRAL").count() == 0
        await _fits_and_passes_axe(page, f"unseen-results-stranger-{label}")
        await shot(page, f"unseen-results-stranger-{label}")
    assert not pages.errors, pages.errors


async def test_the_viewer_offers_the_series_as_dicom_only_with_the_habilitation(
    pages, app, users, tmp_path
):
    from dossier.documents import habilitations
    from dossier.models import Habilitation

    dossier_id = await _results(app, users)
    download = "Télécharger la série au format DICOM"
    for holder in (False, True):
        if holder:
            admin = Principal.for_user(users["admin"])
            await habilitations.grant(
                app[DB], admin, users["requester"].id, Habilitation.dicom_download
            )
        page = await pages.new(viewport=DESKTOP)
        await open_session(page, app, users["requester"])
        await page.goto(f"/app/dossiers/{dossier_id}")
        await page.get_by_role("button", name="Ouvrir la série").click()
        pane = page.locator("figure.dicom-pane")
        await pane.locator("img.dicom-img").first.wait_for()
        link = pane.get_by_role("link", name=download)
        if not holder:
            assert await link.count() == 0
            continue
        async with page.expect_download() as dl:
            await link.click()
        path = tmp_path / "serie.zip"
        await (await dl.value).save_as(path)
        import zipfile

        names = zipfile.ZipFile(path).namelist()
        assert sorted(n for n in names if n.endswith(".dcm")) == [
            "0001-coupe-1.dcm",
            "0002-coupe-2.dcm",
            "0003-coupe-3.dcm",
        ]
        await shot(page, "dicom-series-download-desktop")
    assert not pages.errors, pages.errors
