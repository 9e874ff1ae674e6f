"""In Chromium, against a real Orthanc: the dossier page searches the PACS and imports an exam
in the background; the secretariat attaches an exam that matched no dossier."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.context import DB
from dossier.identity.patients import search_text_of
from dossier.models import Dossier, Patient
from tests.conftest import free_port, make_settings
from tests.dossier.test_pacs import _study
from tests.support.documents import make_dossier
from tests.support.orthanc import Orthanc, running_orthanc
from tests.ui.conftest import open_session, shot
from tests.ui.test_accessibility import audit

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    with running_orthanc(
        tmp_path_factory.mktemp("orthanc-ui"), consilium_ae="CONSILIUM", consilium_port=free_port()
    ) as o:
        yield o


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp: Any, orthanc: Orthanc) -> Any:
    return make_settings(
        database_url,
        tmp_path / "data",
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        pacs_ae_title="ORTHANC",
        pacs_host="127.0.0.1",
        pacs_port=orthanc.dicom_port,
        pacs_timeout_seconds=60,
    )


@pytest.fixture
def app(settings: Any, orthanc: Orthanc) -> Any:
    from core.app import create_app
    from dossier.documents import dicom_node

    app = create_app(settings)
    dicom_node.start(app, "127.0.0.1", orthanc.consilium_port)
    return app


async def test_an_exam_is_searched_in_the_pacs_and_imported_from_the_dossier_page(
    pages, app, users, orthanc
):
    dossier_id = await make_dossier(app[DB], users, birth_name="BERNARD", ipp="IPP-42")
    for data in _study("BERNARD^JEAN", "19800101", "IPP-42", 2):
        await asyncio.to_thread(orthanc.store, data)

    page = await pages.new(bypass_csp=True)  # axe is injected inline
    await open_session(page, app, users["requester"])
    await page.goto(f"/app/dossiers/{dossier_id}")
    await page.get_by_role("button", name="Rechercher au PACS").click()
    row = page.locator("table.pacs-studies tr", has_text="SCANNER CEREBRAL")
    await row.wait_for(timeout=30_000)
    await row.get_by_role("button", name="Importer l'examen SCANNER CEREBRAL").click()
    await page.get_by_text("2 image(s) ajoutée(s) au dossier").wait_for(timeout=60_000)
    # The documents card lists the imported exam.
    await page.get_by_role("region", name="SCANNER CEREBRAL").wait_for(timeout=30_000)
    await shot(page, "pacs-import")
    assert await audit(page, "pacs-import") == []


async def test_the_secretariat_attaches_an_unmatched_exam_to_a_dossier(pages, app, users, orthanc):
    dossier_id = await make_dossier(
        app[DB], users, birth_name="PETIT", first_name="Lucie", ipp="IPP-8"
    )
    async with app[DB].write() as uow:  # what the identity form computes for the search box
        d = await uow.session.get(Dossier, dossier_id)
        p = await uow.session.get(Patient, d.patient_id)
        p.search_text = search_text_of(p)
    ids = []
    for data in _study("PETITT^LUCIE", "19800101", "EXT-8", 1):
        ids.append((await asyncio.to_thread(orthanc.store, data))["ID"])
    await asyncio.to_thread(orthanc.send_to, "consilium", ids)

    page = await pages.new(bypass_csp=True)  # axe is injected inline
    await open_session(page, app, users["secretary"])
    await page.goto("/app/")
    await page.get_by_role("link", name="Examens à rapprocher").click()
    exam = page.locator("li.inbox-exam", has_text="PETITT LUCIE")
    await exam.wait_for()
    await exam.get_by_label("Chercher le dossier").fill("PETIT")
    await exam.get_by_role("button", name="Chercher", exact=True).click()
    await exam.get_by_label("Dossier", exact=True).wait_for()
    await shot(page, "dicom-inbox")
    assert await audit(page, "dicom-inbox") == []
    await exam.get_by_role("button", name="Rattacher au dossier").click()
    await page.get_by_text("Aucun examen en attente de rapprochement.").wait_for()
