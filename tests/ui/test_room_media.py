"""Issue 6's first browser test: two practitioners and one invited patient in three browser
contexts. The patient, invited by e-mail (read from the real SMTP server), waits in the
lobby and is admitted; chat messages arrive; a document sent to the patient is downloadable
by them (and by no one else); a screenshot lands in the dossier; a removed participant is
out, for themselves and for the others; everyone decodes the others' video (frames read from
the page) through the SFU."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from tests.ui.conftest import call_api, open_session, shot, wait_js
from tests.ui.room_call import host_opens_dossier_room

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

HOST, EXPERT, PATIENT = "Dr Claire Martin", "Dr Karim Benali", "Jeanne Dupont"


async def decoded_frames(page: Any, name: str, wait_ms: int = 600) -> dict[str, Any]:
    """Evidence that the remote tile of `name` shows live video: its <video> has a size, and
    the number of frames Chromium decoded for it grows while we watch."""
    return await page.evaluate(
        """async ([name, waitMs]) => {
            const tile = [...document.querySelectorAll(".tile[data-participant]:not(.local)")]
              .find((t) => t.dataset.source === "camera" && t.textContent.includes(name));
            const v = tile && tile.querySelector("video");
            if (!v) return {found: false};
            const before = v.getVideoPlaybackQuality().totalVideoFrames;
            await new Promise((r) => setTimeout(r, waitMs));
            const after = v.getVideoPlaybackQuality().totalVideoFrames;
            return {found: true, width: v.videoWidth, height: v.videoHeight, before, after,
                    hidden: v.classList.contains("hidden")};
        }""",
        [name, wait_ms],
    )


async def tiles(page: Any) -> list[dict[str, Any]]:
    """What the page shows, for failure messages."""
    return await page.evaluate(
        """() => [...document.querySelectorAll(".tile[data-participant]")].map((t) => {
            const v = t.querySelector("video");
            return {name: t.textContent.trim(), source: t.dataset.source,
                    video: v ? {w: v.videoWidth, hidden: v.classList.contains("hidden"),
                                tracks: v.srcObject ? v.srcObject.getTracks().map(
                                  (x) => x.kind + ":" + x.readyState + (x.muted ? ":muted" : ""))
                                  : null} : null};
        })"""
    )


async def sees_video_of(page: Any, name: str, timeout: float = 20.0) -> dict[str, Any]:
    try:
        await _video_of(page, name, timeout)
    except AssertionError:
        raise AssertionError(f"no video of {name}: {await tiles(page)}") from None
    ev = await decoded_frames(page, name)
    assert ev["found"] and ev["width"] > 0 and ev["after"] > ev["before"], (name, ev)
    return ev


async def _video_of(page: Any, name: str, timeout: float) -> None:
    await wait_js(
        page,
        """(name) => [...document.querySelectorAll(".tile[data-participant]:not(.local)")]
            .some((t) => t.textContent.includes(name) && t.querySelector("video")
                         && t.querySelector("video").videoWidth > 0)""",
        name,
        timeout=timeout,
    )


@dataclass
class Call:
    host: Any
    expert: Any
    patient: Any
    room_id: str
    dossier_id: str


async def three_in_a_room(pages: Any, app: Any, users: Any, smtp: Any) -> Call:
    """Host and expert enter a dossier's room; the host invites the patient by e-mail; the
    patient follows the link, waits in the lobby and is admitted."""
    opened = await host_opens_dossier_room(
        pages, app, users, kind="teleconsultation", title="Téléconsultation — Mme Dupont"
    )
    host, dossier_id, room_id = opened.host, opened.dossier_id, opened.room_id

    expert = await pages.new()
    await open_session(expert, app, users["expert"])
    await expert.goto(f"/app/rooms/{room_id}")
    await expert.get_by_text(f"{EXPERT} (vous)").wait_for()

    await host.get_by_role("button", name="Inviter").click()
    await host.get_by_label("Nom de la personne").fill(PATIENT)
    await host.get_by_label("Adresse e-mail").fill("jeanne.dupont@example.org")
    await host.get_by_role("button", name="Envoyer l'invitation").click()
    await host.get_by_text(f"Invitation envoyée à {PATIENT}.").wait_for()
    [mail] = await smtp.wait_for("jeanne.dupont@example.org")
    link = re.search(r"/join/[A-Za-z0-9._~-]+", smtp.text_of(mail))
    assert link is not None

    patient = await pages.new(viewport={"width": 412, "height": 860})
    await patient.goto(link.group(0))
    await patient.get_by_role("button", name="C'est bien moi").click()
    await patient.get_by_role("button", name="Suivant").click()
    await patient.get_by_role("button", name="Rejoindre la salle d'attente").click()
    await patient.get_by_role("heading", name="Salle d'attente").wait_for()

    await host.get_by_text(f"{PATIENT} est en salle d'attente.").wait_for()
    await host.get_by_role("button", name="1 en salle d'attente").click()
    await host.get_by_role("button", name="Faire entrer").click()
    await patient.get_by_text(f"{PATIENT} (vous)").wait_for()
    for page, others in (
        (host, (EXPERT, PATIENT)),
        (expert, (HOST, PATIENT)),
        (patient, (HOST, EXPERT)),
    ):
        for name in others:
            await page.locator(
                ".tile[data-participant]:not(.local)", has_text=name
            ).first.wait_for()
    return Call(host, expert, patient, room_id, dossier_id)


async def test_three_people_chat_exchange_files_and_one_is_removed(
    pages, app, users, smtp, tmp_path
):
    c = await three_in_a_room(pages, app, users, smtp)
    await shot(c.host, "room-three-host", full_page=False)
    await shot(c.patient, "room-three-patient", full_page=False)

    # Chat to the room reaches both others.
    await c.patient.get_by_role("button", name=re.compile("^Discussion")).click()
    await c.patient.get_by_label("Message", exact=True).fill("Bonjour docteurs")
    await c.patient.get_by_role("button", name="Envoyer", exact=True).click()
    for page in (c.host, c.expert):
        await page.get_by_role("button", name=re.compile("^Discussion")).click()
        await page.locator(".chat-msg", has_text="Bonjour docteurs").wait_for()
    await c.expert.get_by_label("Message", exact=True).fill(
        "Bonjour Madame, je suis l'endocrinologue."
    )
    await c.expert.get_by_role("button", name="Envoyer", exact=True).click()
    for page in (c.host, c.patient):
        await page.locator(".chat-msg", has_text="je suis l'endocrinologue").wait_for()

    # A document sent to the patient: a chat item they can download; not shown to the expert.
    import pymupdf

    letter = tmp_path / "ordonnance.pdf"
    pdf = pymupdf.open()
    pdf.new_page().insert_text((72, 72), "Ordonnance : metformine 1 g matin et soir")
    letter.write_bytes(pdf.tobytes())
    await c.host.get_by_role("button", name="Envoyer un document").click()
    send = c.host.get_by_role("dialog", name="Envoyer un document")
    # Filed into the room's dossier too, with its preview rendered by a niced worker process:
    # on a busy machine that waits for a CPU (calls and the API come first).
    await send.get_by_label("Destinataire").select_option(label=PATIENT)
    await send.get_by_role("button", name="Depuis mon ordinateur").click()
    await send.get_by_label("Fichier à envoyer").set_input_files(str(letter))
    await send.get_by_role("button", name="Envoyer", exact=True).click()
    await c.host.get_by_text("Document « ordonnance.pdf » envoyé.").wait_for(timeout=180_000)
    link = c.patient.get_by_role("link", name="ordonnance.pdf")
    await link.wait_for()
    async with c.patient.expect_download() as dl:
        await link.click()
    download = await dl.value
    assert download.suggested_filename == "ordonnance.pdf"
    assert (await download.path()).read_bytes() == letter.read_bytes()
    await shot(c.patient, "room-three-patient-document", full_page=False)
    await c.host.locator(".chat-msg", has_text="ordonnance.pdf").wait_for()
    assert await c.expert.get_by_role("link", name="ordonnance.pdf").count() == 0

    # A screenshot filed into the dossier.
    await c.host.get_by_role("button", name="Capture d'écran").click()
    await c.host.get_by_role("dialog").get_by_role("button", name="Ajouter au dossier").click()
    await c.host.get_by_text("Capture ajoutée au dossier.").wait_for()
    docs = await call_api(c.host, "GET", f"/api/v1/dossiers/{c.dossier_id}/documents")
    names = [d["filename"] for cat in docs["categories"] for d in cat["documents"]]
    assert any(n.startswith("capture-") for n in names), names

    # The host removes the expert: out for them, their tile gone for the others.
    await c.host.get_by_role("button", name=re.compile("^Participants")).click()
    await (
        c.host.locator(".people li", has_text=EXPERT)
        .get_by_role("button", name="Faire sortir")
        .click()
    )
    await c.expert.get_by_role("heading", name="Vous avez été retiré de la salle").wait_for()
    for page in (c.host, c.patient):
        await page.locator(".tile[data-participant]:not(.local)", has_text=EXPERT).wait_for(
            state="detached"
        )
        await page.locator(
            ".tile[data-participant]:not(.local)", has_text=PATIENT if page is c.host else HOST
        ).first.wait_for()
    assert not pages.errors, pages.errors


async def test_everyone_sees_the_others_video_and_a_screen_share(pages, app, users, smtp):
    c = await three_in_a_room(pages, app, users, smtp)
    for page, others in (
        (c.host, (EXPERT, PATIENT)),
        (c.expert, (HOST, PATIENT)),
        (c.patient, (HOST, EXPERT)),
    ):
        for name in others:
            await sees_video_of(page, name)
    await shot(c.host, "room-three-video-host", full_page=False)
    await shot(c.patient, "room-three-video-patient", full_page=False)

    await c.expert.get_by_role("button", name="Partager l'écran").click()
    for page in (c.host, c.patient):
        try:
            await wait_js(
                page,
                """() => {
                    const v = document.querySelector('.featured .tile[data-source="screen"] video');
                    return v && v.videoWidth > 0; }""",
                timeout=20,
            )
        except AssertionError:
            raise AssertionError(f"no screen share: {await tiles(page)}") from None
    await shot(c.host, "room-three-screen-share", full_page=False)

    if not await c.host.locator(".people").first.is_visible():
        await c.host.get_by_role("button", name=re.compile("^Participants")).click()
    await (
        c.host.locator(".people li", has_text=EXPERT)
        .get_by_role("button", name="Faire sortir")
        .click()
    )
    await c.expert.get_by_role("heading", name="Vous avez été retiré de la salle").wait_for()
    for page in (c.host, c.patient):
        await page.locator(".tile[data-participant]:not(.local)", has_text=EXPERT).wait_for(
            state="detached"
        )
    await sees_video_of(c.host, PATIENT)
    assert not pages.errors, pages.errors
