"""A remote video nobody sees is paused on the server and resumes, with new frames, as soon as
it shows again (issue 6, item 5; docs/ui.md "Pausing videos nobody sees").

Two practitioners, the host on a phone. What hides a tile is what the real page does: the
speaker view on a phone hides the other tiles behind the featured screen share
(display:none), the phone's grid scrolls, and a hidden page pauses everything except a video
in Picture-in-Picture. Playwright cannot hide a page or open Picture-in-Picture in headless
Chromium, so those two are emulated in the page (document.visibilityState and
document.pictureInPictureElement overridden, the events dispatched) and go through the
page's own code. Every pause and resume is read on the server, from the SFU's down-track
sending that video to the host; every resume is checked in the page by frames decoded."""

from __future__ import annotations

import re
from typing import Any

import pytest

from rtc.signalling import SIGNALLING
from tests.ui.conftest import shot, wait_js
from tests.ui.room_call import (
    EXPERT,
    frames_grow,
    packets_stopped,
    subscription,
    two_in_a_room,
    wait_paused,
    wait_server,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

PHONE = {"width": 390, "height": 560}  # a phone in landscape-less split screen: the grid scrolls

EMULATE_HIDDEN_JS = """([hidden, pipName]) => {
    const set = (prop, value) =>
        Object.defineProperty(document, prop, {configurable: true, get: () => value});
    set("visibilityState", hidden ? "hidden" : "visible");
    set("hidden", hidden);
    const cameras = '.tile:not(.local)[data-source="camera"]';
    const tile = pipName && [...document.querySelectorAll(cameras)]
      .find((t) => t.textContent.includes(pipName));
    const video = tile ? tile.querySelector("video") : null;
    set("pictureInPictureElement", video);
    if (video) video.dispatchEvent(new Event("enterpictureinpicture", {bubbles: true}));
    document.dispatchEvent(new Event("visibilitychange"));
}"""

SCROLL_JS = """(where) => {
    const grid = document.querySelector(".grid");
    grid.scrollTop = where === "top" ? 0 : grid.scrollHeight;
    const box = grid.getBoundingClientRect();
    const tile = grid.querySelector('.tile:not(.local)[data-source="screen"]')
      .getBoundingClientRect();
    return {grid: [box.top, box.bottom], screen: [tile.top, tile.bottom],
            scrolls: grid.scrollHeight > grid.clientHeight, screenOut: tile.top >= box.bottom,
            screenIn: tile.top >= box.top && tile.bottom <= box.bottom + 1};
}"""


async def test_a_video_nobody_sees_is_paused_and_resumes_with_new_frames(
    pages: Any, app: Any, users: Any
) -> None:
    c = await two_in_a_room(pages, app, users, host_viewport=PHONE)
    host, expert = c.host_pid, c.expert_pid
    camera = await wait_paused(app, host, expert, "camera", False)

    # The expert shares the screen: the host's phone shows it large, and the expert's camera
    # tile is hidden behind it. The camera is paused, the screen share is not.
    await c.expert.get_by_role("button", name="Partager l'écran").click()
    await wait_js(
        c.host,
        """() => { const v = document.querySelector('.featured .tile[data-source="screen"] video');
                   return v && v.videoWidth > 0; }""",
        timeout=20,
    )
    camera = await wait_paused(app, host, expert, "camera", True)
    await packets_stopped(camera)
    screen = subscription(app, host, expert, "screen")
    assert screen is not None and not screen.paused
    await frames_grow(c.host, EXPERT, "screen")
    await shot(c.host, "room-phone-speaker-view", full_page=False)

    # Back to the grid: the camera shows again, resumes from a keyframe, frames are decoded.
    await c.host.get_by_role("button", name="Vue mosaïque").click()
    await wait_paused(app, host, expert, "camera", False)
    await frames_grow(c.host, EXPERT, "camera")

    # The phone's grid scrolls: the screen share scrolled out of view is paused, and resumed
    # once scrolled back.
    where = await c.host.evaluate(SCROLL_JS, "top")
    assert where["scrolls"] and where["screenOut"], where
    screen = await wait_paused(app, host, expert, "screen", True)
    await packets_stopped(screen)
    assert not subscription(app, host, expert, "camera").paused
    where = await c.host.evaluate(SCROLL_JS, "bottom")
    assert where["screenIn"], where
    await wait_paused(app, host, expert, "screen", False)
    await frames_grow(c.host, EXPERT, "screen")
    await shot(c.host, "room-phone-grid-scrolled", full_page=False)

    # The page hidden, the expert's camera in Picture-in-Picture: the screen share is paused,
    # the camera (still seen, in its floating window) is not; audio is never paused.
    await c.host.evaluate(EMULATE_HIDDEN_JS, [True, EXPERT])
    await wait_paused(app, host, expert, "screen", True)
    assert not subscription(app, host, expert, "camera").paused
    [audio] = [
        s.downtrack
        for s in app[SIGNALLING].sfu.peer(host).subscriptions.values()
        if s.downtrack.kind == "audio"
    ]
    heard = audio.stats.packets
    await wait_server(lambda: audio.stats.packets > heard + 25, "audio still forwarded")
    assert not audio.paused
    # Picture-in-Picture closed while the page is hidden: the camera goes too.
    await c.host.evaluate(EMULATE_HIDDEN_JS, [True, None])
    await wait_paused(app, host, expert, "camera", True)
    # The page visible again: both resume, both decode new frames.
    await c.host.evaluate(EMULATE_HIDDEN_JS, [False, None])
    await wait_paused(app, host, expert, "camera", False)
    await wait_paused(app, host, expert, "screen", False)
    await frames_grow(c.host, EXPERT, "camera")
    await frames_grow(c.host, EXPERT, "screen")
    # Nothing of this shows in the page: no banner, no note.
    assert await c.host.locator(".conn-banner").count() == 0
    assert not await c.host.get_by_text(re.compile("pas encore transmise")).count()
    assert not pages.errors, pages.errors
