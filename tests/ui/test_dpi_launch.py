"""Opened from the hospital record (DPI) in Chromium: the launch link signs the practitioner
in and shows the new-request wizard with the DPI's patient, no sign-in page on the way."""

from __future__ import annotations

from typing import Any

import pytest

from core.context import DB, SETTINGS
from ops import apikeys
from tests.ops.test_fhir_launch import fhir_patient, mint
from tests.ui.conftest import wait_js

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


async def test_a_dpi_launch_opens_a_prefilled_request_without_signing_in(
    app: Any, pages: Any, users: Any
) -> None:
    key, secret = await apikeys.create_key(
        app[DB], app[SETTINGS], name="DPI", user_email=users["requester"].email, actor=None
    )
    patient = fhir_patient("IPP-31", app[SETTINGS].fhir_ipp_system)
    token = mint(key.id, secret, {"grants": {"launch": True}, "patient": patient})
    page = await pages.new()
    await page.goto(f"/launch?token={token}")
    text = await wait_js(
        page,
        """() => location.pathname === '/app/dossiers/new'
          && document.body.textContent.includes('LEFEVRE') && document.body.textContent""",
        timeout=30,
    )
    assert "Claire" in text
    assert "/login" not in page.url
    assert not pages.errors
