"""An exchange about a dossier in a room (seed 000 § 3.3): two practitioners in two browsers;
the host mutes the other, shares the screen, files a screenshot into the dossier and sends a
document that arrives as a chat item."""

from __future__ import annotations

import re

import pytest

from tests.ui.conftest import call_api, open_session, shot
from tests.ui.room_call import host_opens_dossier_room

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


async def test_two_practitioners_in_a_dossier_room(pages, app, users, tmp_path):
    opened = await host_opens_dossier_room(pages, app, users)
    host, dossier_id = opened.host, opened.dossier_id

    expert = await pages.new()
    await open_session(expert, app, users["expert"])
    await expert.goto("/app/")
    card = expert.locator(".room-item", has_text="Avis diabétologie")
    await card.get_by_text(re.compile("1 participant : Dr Claire Martin")).wait_for()
    await shot(expert, "activity-room-occupancy")
    await card.get_by_role("link", name="Entrer dans la salle").click()
    await expert.get_by_text("Dr Karim Benali (vous)").wait_for()
    await host.locator(".tile:not(.local)").get_by_text("Dr Karim Benali").wait_for()

    # The host asks to mute, then mutes the expert.
    await host.get_by_role("button", name=re.compile("^Participants")).click()
    await host.get_by_role("button", name="Couper son micro").click()
    await expert.get_by_text("Dr Claire Martin a coupé votre micro.").wait_for()
    await expert.get_by_role("button", name="Activer le micro").wait_for()

    # Screen share: a large view of the shared screen.
    await host.get_by_role("button", name="Partager l'écran").click()
    await host.locator('.featured .tile[data-source="screen"]').wait_for()
    await host.get_by_role("button", name="Arrêter le partage").wait_for()
    await shot(host, "room-screen-share", full_page=False)
    await host.get_by_role("button", name="Arrêter le partage").click()

    # Screenshot filed into the dossier.
    await host.get_by_role("button", name="Capture d'écran").click()
    dialog = host.get_by_role("dialog")
    await dialog.get_by_role("button", name="Ajouter au dossier").click()
    await host.get_by_text("Capture ajoutée au dossier.").wait_for()
    docs = await call_api(host, "GET", f"/api/v1/dossiers/{dossier_id}/documents")
    names = [d["filename"] for c in docs["categories"] for d in c["documents"]]
    assert any(n.startswith("capture-") for n in names), names

    # A document of the dossier, sent to the expert, arrives as a downloadable chat item.
    capture = next(n for n in names if n.startswith("capture-"))
    await host.get_by_role("button", name="Envoyer un document").click()
    send = host.get_by_role("dialog", name="Envoyer un document")
    await send.get_by_label("Destinataire").select_option(label="Dr Karim Benali")
    assert (
        await send.get_by_role("button", name="Depuis le dossier").get_attribute("aria-pressed")
        == "true"
    )
    await send.get_by_role("radio", name=re.compile(re.escape(capture))).check()
    await shot(host, "room-send-from-dossier", full_page=False)
    await send.get_by_role("button", name="Envoyer", exact=True).click()
    await host.get_by_text(f"Document « {capture} » envoyé.").wait_for(timeout=180_000)
    await expert.get_by_role("button", name=re.compile("^Discussion")).click()
    link = expert.get_by_role("link", name=capture)
    await link.wait_for()
    async with expert.expect_download() as dl:
        await link.click()
    assert (await dl.value).suggested_filename == capture
    await shot(expert, "room-expert-chat-document", full_page=False)
    assert not pages.errors, pages.errors
