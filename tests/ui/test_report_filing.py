"""The dossier page says when the signed report reached the establishment's record (DPI):
« Compte-rendu déposé dans le DPI le … », once the FHIR endpoint run by the test took it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.context import DB
from tests.conftest import free_port, make_settings
from tests.ops.test_fhir_push import FhirReceiver
from tests.support.documents import make_dossier
from tests.ui.conftest import call_api, open_session, wait_js

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def peer_port() -> int:
    return free_port()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp: Any, peer_port: int) -> Any:
    return make_settings(
        database_url,
        tmp_path / "data",
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        fhir_push_url=f"http://127.0.0.1:{peer_port}/fhir",
        fhir_push_retry_base_seconds=0.2,
        fhir_push_retry_max_seconds=0.5,
        fhir_push_poll_seconds=0.2,
    )


@pytest.fixture
async def peer(peer_port: int) -> Any:
    r = FhirReceiver(peer_port)
    await r.start()
    yield r
    await r.stop()


async def test_the_dossier_page_shows_the_report_filed_in_the_dpi(
    app: Any, pages: Any, users: Any, peer: FhirReceiver
) -> None:
    dossier_id = await make_dossier(app[DB], users, state="expertised", signed_parts=True)
    page = await pages.new()
    await open_session(page, app, users["expert"])
    await page.goto(f"/app/dossiers/{dossier_id}")
    made = await call_api(page, "POST", f"/api/v1/dossiers/{dossier_id}/report")
    assert made["category"] == "report", made
    await page.reload()
    text = await wait_js(
        page,
        """() => {
          const el = document.querySelector('.report-filing');
          return el && el.textContent.includes('déposé dans le DPI le') && el.textContent;
        }""",
        timeout=90,
    )
    assert "Compte-rendu déposé dans le DPI le" in text
    assert len(peer.stored) == 1
    assert not pages.errors
