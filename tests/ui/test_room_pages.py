"""A téléconsultation through the pages: the host opens the room from the activity view and
invites the patient by e-mail; the patient follows the link (name, browser check, camera and
microphone test), waits in the lobby, is admitted with a sound, chats, and is removed."""

from __future__ import annotations

import re

import pytest

from tests.ui.conftest import call_api, open_session, shot, wait_js

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


async def video_playing(page, selector: str) -> bool:
    """Frames are decoded: the element has a size and its time advances."""
    await wait_js(
        page,
        "(sel) => { const v = document.querySelector(sel); return v && v.videoWidth > 0; }",
        selector,
    )
    return await page.evaluate(
        """async (sel) => {
            const v = document.querySelector(sel);
            if (!v) return false;
            const t0 = v.currentTime;
            await new Promise((r) => setTimeout(r, 400));
            return v.videoWidth > 0 && v.currentTime > t0;
        }""",
        selector,
    )


async def test_patient_joins_through_lobby_chats_and_is_removed(pages, app, users, smtp, settings):
    host = await pages.new()
    await open_session(host, app, users["requester"])
    await host.goto("/app/")
    room = await call_api(
        host,
        "POST",
        "/api/v1/rooms",
        {"kind": "teleconsultation", "title": "Téléconsultation — EHPAD Les Tilleuls"},
    )
    await host.reload()
    card = host.locator(".room-item", has_text="Téléconsultation — EHPAD Les Tilleuls")
    await card.get_by_text("Salle libre").wait_for()
    await card.get_by_role("link", name="Entrer dans la salle").click()
    await host.get_by_text("Dr Claire Martin (vous)").wait_for()
    assert await video_playing(host, ".tile.local video")

    # Invite the patient by e-mail from the room.
    await host.get_by_role("button", name="Inviter").click()
    await host.get_by_label("Nom de la personne").fill("Jeanne Dupont")
    await host.get_by_label("Adresse e-mail").fill("jeanne.dupont@example.org")
    await host.get_by_role("button", name="Envoyer l'invitation").click()
    await host.get_by_text("Invitation envoyée à Jeanne Dupont.").wait_for()
    [mail] = await smtp.wait_for("jeanne.dupont@example.org")
    link = re.search(r"/join/[A-Za-z0-9._~-]+", smtp.text_of(mail)).group(0)

    patient = await pages.new(viewport={"width": 412, "height": 860})
    await patient.goto(link)
    await patient.get_by_role("heading", name="Bienvenue").wait_for()
    await patient.get_by_text("Dr Claire Martin vous invite").wait_for()
    assert await patient.get_by_label("Votre nom et prénom").input_value() == "Jeanne Dupont"
    await shot(patient, "join-name")
    await patient.get_by_role("button", name="C'est bien moi").click()
    await patient.get_by_text("Votre navigateur est compatible.").wait_for()
    await patient.get_by_role("button", name="Suivant").click()
    await patient.get_by_role("heading", name="Test de la caméra et du micro").wait_for()
    assert await video_playing(patient, ".preview video")
    await shot(patient, "join-devices")
    await patient.get_by_role("button", name="Rejoindre la salle d'attente").click()
    await patient.get_by_role("heading", name="Salle d'attente").wait_for()
    await shot(patient, "join-lobby")

    # The host hears the arrival and admits the patient.
    await host.get_by_text("Jeanne Dupont est en salle d'attente.").wait_for()
    await host.get_by_role("button", name="1 en salle d'attente").click()
    await host.get_by_role("button", name="Faire entrer").click()
    await patient.get_by_text("Jeanne Dupont (vous)").wait_for()
    await (
        host.locator(".tile[data-participant]:not(.local)").get_by_text("Jeanne Dupont").wait_for()
    )

    # Chat both ways.
    await patient.get_by_role("button", name=re.compile("^Discussion")).click()
    await patient.get_by_label("Message", exact=True).fill("Bonjour docteur")
    await patient.get_by_role("button", name="Envoyer", exact=True).click()
    await host.get_by_role("button", name=re.compile("^Discussion")).click()
    await host.locator(".chat-msg", has_text="Bonjour docteur").wait_for()
    await host.get_by_label("Message", exact=True).fill(
        "Bonjour Madame Dupont, je vous entends bien."
    )
    await host.get_by_role("button", name="Envoyer", exact=True).click()
    await patient.locator(".chat-msg", has_text="je vous entends bien").wait_for()
    await shot(host, "room-host-chat", full_page=False)
    await shot(patient, "room-patient", full_page=False)

    # Remove the patient.
    await host.get_by_role("button", name=re.compile("^Participants")).click()
    await host.get_by_role("button", name="Faire sortir").click()
    await patient.get_by_role("heading", name="Vous avez été retiré de la salle").wait_for()
    await host.locator(".tile:not(.local)").wait_for(state="detached")
    assert room["id"] in host.url
    assert not pages.errors, pages.errors
