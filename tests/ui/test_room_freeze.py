"""Issue 11 item 6: the host shares her screen, stops sharing, later removes a third
participant; the patient's video and audio must keep playing for her.

Three Chromium contexts (host practitioner, patient admitted from the lobby, an expert).
What the host decodes is read from her peer connection's `getStats()` (inbound-rtp of the
patient's tracks: `framesDecoded`, `totalSamplesReceived` and `concealedSamples`): a frozen
stream whose packets still arrive shows up there, not in the DOM. The SDP offers and answers
her page applies are recorded, for the failure message.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, wait_js
from tests.ui.test_room_media import EXPERT, PATIENT, three_in_a_room

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

#: getDisplayMedia answered by itself with Chromium's fake screen
SCREEN_ARGS = ["--auto-select-desktop-capture-source=Entire screen"]

# Runs before the page's scripts: keeps the page's peer connections and the descriptions
# they apply (window.__pcs, window.__sdp).
RECORD_PCS_JS = """(() => {
    const Native = window.RTCPeerConnection;
    window.__pcs = [];
    window.__sdp = [];
    const log = (what, d) => window.__sdp.push({what, type: d && d.type, sdp: d && d.sdp});
    window.RTCPeerConnection = function (...args) {
        const pc = new Native(...args);
        window.__pcs.push(pc);
        const remote = pc.setRemoteDescription.bind(pc);
        pc.setRemoteDescription = (d) => (log("remote", d), remote(d).catch((e) => {
            window.__sdp.push({what: "error", error: String(e)}); throw e; }));
        const local = pc.setLocalDescription.bind(pc);
        pc.setLocalDescription = (d) =>
            local(d).then((r) => (log("local", pc.localDescription), r));
        return pc;
    };
    window.RTCPeerConnection.prototype = Native.prototype;
})();"""

# The patient's tracks on the host's page (the tracks of the patient's camera tile) and what
# the current peer connection's receivers for them decoded so far.
INBOUND_JS = """async (name) => {
    const tile = [...document.querySelectorAll(".tile[data-participant]:not(.local)")]
      .find((t) => t.dataset.source === "camera" && t.textContent.includes(name));
    const v = tile && tile.querySelector("video");
    const pc = window.__pcs[window.__pcs.length - 1];
    if (!v || !v.srcObject || !pc) return null;
    const out = {};
    for (const track of v.srcObject.getTracks()) {
        if (track.readyState !== "live") continue;
        const receiver = pc.getReceivers().find((r) => r.track === track);
        if (!receiver) continue;
        for (const s of (await receiver.getStats()).values()) {
            if (s.type !== "inbound-rtp") continue;
            out[track.kind] = {
                packets: s.packetsReceived, frames: s.framesDecoded,
                samples: s.totalSamplesReceived, concealed: s.concealedSamples,
            };
        }
    }
    return out;
}"""


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Chromium as conftest's, with the fake screen picked for getDisplayMedia."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + SCREEN_ARGS)
        try:
            yield b
        finally:
            await b.close()


async def inbound(page: Any) -> dict[str, Any]:
    return dict(await page.evaluate(INBOUND_JS, PATIENT) or {})


async def keeps_playing(page: Any, *, timeout: float = 40.0) -> dict[str, Any]:
    """The patient's video frames decoded and audio samples received (not concealed) grow on
    the host's page, by at least a second's worth, within `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    first = await inbound(page)
    while True:
        await asyncio.sleep(0.25)
        now = await inbound(page)
        if {"audio", "video"} <= first.keys() <= now.keys():
            a0, a1, v0, v1 = first["audio"], now["audio"], first["video"], now["video"]
            heard = (a1["samples"] - a0["samples"]) - (a1["concealed"] - a0["concealed"])
            if v1["frames"] >= v0["frames"] + 10 and heard >= 48_000:
                return now
        else:
            first = now  # the tile or its tracks just (re)appeared: count from here
        if loop.time() > deadline:
            sdp = await page.evaluate("() => window.__sdp.slice(-4)")
            raise AssertionError(f"{PATIENT} frozen for the host: {first} → {now}\n{sdp}")


async def test_patient_keeps_playing_after_share_and_removal(pages, app, users, smtp):
    # The pages of all three contexts record their peer connections.
    original_new = pages.new

    async def new_recording(**kw: Any) -> Any:
        page = await original_new(**kw)
        page.set_default_timeout(120_000)  # a loaded machine: pages are slow to load
        await page.add_init_script(RECORD_PCS_JS)
        return page

    pages.new = new_recording
    c = await three_in_a_room(pages, app, users, smtp)
    await keeps_playing(c.host)

    # The host shares her screen: the others see it; then she stops sharing.
    await c.host.get_by_role("button", name="Partager l'écran").click()
    await wait_js(
        c.patient,
        """() => {
            const v = document.querySelector('.tile[data-source="screen"] video');
            return v && v.videoWidth > 0; }""",
        timeout=120,
    )
    await c.host.get_by_role("button", name="Arrêter le partage").click()
    await c.patient.locator('.tile[data-source="screen"]').wait_for(
        state="detached", timeout=120_000
    )
    await keeps_playing(c.host)

    # Later she removes the expert: the patient keeps playing for her.
    offers_before = await c.host.evaluate("() => window.__sdp.length")
    if not await c.host.locator(".people").first.is_visible():
        await c.host.get_by_role("button", name=re.compile("^Participants")).click()
    await (
        c.host.locator(".people li", has_text=EXPERT)
        .get_by_role("button", name="Faire sortir")
        .click()
    )
    await c.expert.get_by_role("heading", name="Vous avez été retiré de la salle").wait_for(
        timeout=120_000
    )
    await c.host.locator(".tile[data-participant]:not(.local)", has_text=EXPERT).wait_for(
        state="detached", timeout=120_000
    )
    # The renegotiation that follows the removal has been answered by the host's page.
    await wait_js(
        c.host,
        """(n) => window.__sdp.length > n && window.__sdp.slice(n).some(
                 (x) => x.what === "error" || (x.what === "local" && x.type === "answer"))""",
        offers_before,
        timeout=120,
    )
    # Every description the host's page was given applied (before the fix, the server's answer
    # to her offer stopping the share was refused: "A BUNDLE group in answer contains a MID
    # that was not in the offered group", and her connection could not negotiate any more).
    errors = [x["error"] for x in await c.host.evaluate("() => window.__sdp") if "error" in x]
    assert not errors, errors
    await keeps_playing(c.host)
    await keeps_playing(c.host)  # and still a few seconds later

    # A new share goes out on the idle m-line of the first one.
    await c.host.get_by_role("button", name="Partager l'écran").click()
    await wait_js(
        c.patient,
        """() => {
            const v = document.querySelector('.tile[data-source="screen"] video');
            return v && v.videoWidth > 0; }""",
        timeout=120,
    )
    await keeps_playing(c.host)
    errors = [x["error"] for x in await c.host.evaluate("() => window.__sdp") if "error" in x]
    assert not errors, errors
    assert not pages.errors, pages.errors
