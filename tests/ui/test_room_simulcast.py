"""The real room client publishes its camera in simulcast and reports its tiles' sizes
(issue 15): the SFU receives several RID layers of each camera, every viewer's down-track
knows the size of the tile showing it (`rtc:layout` from the page's ResizeObserver) and
forwards the layer that fits; a phone-sized page gets a smaller layer than the tile needs at
full size would. Read on the server, from the SFU's forwarders and down-tracks."""

from __future__ import annotations

from typing import Any

import pytest

from rtc.signalling import SIGNALLING
from rtc.simulcast import SimulcastForwarder
from tests.ui.room_call import EXPERT, frames_grow, subscription, two_in_a_room, wait_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

PHONE = {"width": 390, "height": 560}


async def test_the_room_client_publishes_layers_and_reports_its_tiles(
    pages: Any, app: Any, users: Any
) -> None:
    c = await two_in_a_room(pages, app, users, host_viewport=PHONE)
    sfu = app[SIGNALLING].sfu
    camera = next(f for f in sfu.peer(c.expert_pid).published.values() if f.kind == "video")
    assert isinstance(camera, SimulcastForwarder)
    # Chromium's fake camera is 640x480: it sends the layers that size allows (2 or 3)
    await wait_server(
        lambda: sum(1 for layer in camera.layers if layer.stats.packets > 0) >= 2,
        "two simulcast layers or more",
        timeout=60,
    )
    downtrack = subscription(app, c.host_pid, c.expert_pid, "camera")
    assert downtrack is not None
    await wait_server(lambda: downtrack.view is not None, "the tile size (rtc:layout)", 30)
    width, height = downtrack.view
    assert 0 < width <= 390 * 3 and height > 0  # device pixels of a phone-sized tile
    await wait_server(lambda: downtrack.layer == downtrack.target, "the layer that fits", 30)
    await frames_grow(c.host, EXPERT, timeout=30)
    stats = sfu.stats(str(c.room_id))["participants"]
    entry = next(f for f in stats[c.expert_pid]["published"] if f.get("simulcast"))
    print(
        f"\nphone tile {downtrack.view} -> layer {downtrack.layer}; layers "
        f"{[(e['rid'], e['width'], e['height'], e['bitrate']) for e in entry['layers']]}"
    )
    # the expert's tile on the host's page says which picture of that camera arrives
    label = c.host.locator('.net[aria-label*="image reçue"]').first
    await label.wait_for(state="attached", timeout=90_000)
    print("host's label of the expert's tile:", await label.get_attribute("aria-label"))
    mine = sfu.stats(str(c.room_id))["participants"][c.host_pid]
    sub = next(s for s in mine["subscribed"] if s.get("layer"))
    assert sub["publisher_id"] == c.expert_pid and sub["source"] == "camera"
    assert mine["bandwidth"]["layers"] or sub["paused"]
    assert not pages.errors, pages.errors
