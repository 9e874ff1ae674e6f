"""The page starts its media over when the room's media moves to another node (`rtc:moved`,
docs/rtc.md "Media and nodes"): a new peer connection and `rtc:join` on both sides, and
both decode each other's video again, without a reload. One server here: the event is what
a node sends after it placed the room again (tests/faults/test_media_node_loss.py does the
kill with aiortc peers)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from rooms.live import Live
from rtc.signalling import SIGNALLING
from tests.ui.room_call import (
    EXPERT,
    HOST,
    frames_grow,
    two_in_a_room,
    wait_connection,
    wait_server,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


async def test_rtc_moved_restarts_the_media_of_every_page_without_a_reload(
    pages: Any, app: Any, users: Any
) -> None:
    c = await two_in_a_room(pages, app, users)
    sfu = app[SIGNALLING].sfu
    live = Live.of(app)
    before = {pid: sfu.peer(pid).connection_id for pid in (c.host_pid, c.expert_pid)}
    for page in (c.host, c.expert):  # gone if the page reloaded
        await page.evaluate("window.__beforeMove = true")
    told = time.monotonic()
    await live.emit_to_room(c.room_id, "rtc:moved", {"room_id": c.room_id, "node": live.node})

    def restarted() -> bool:
        return all(
            pid in sfu._where and sfu.peer(pid).connection_id != first
            for pid, first in before.items()
        )

    await wait_server(restarted, "both pages to join the media again")
    seen_at = await frames_grow(c.expert, HOST, timeout=30)
    both_at = max(seen_at, await frames_grow(c.host, EXPERT, timeout=30))
    print(f"\nrtc:moved: both pages decode again after {both_at - told:.2f}s")
    await wait_connection(c.host, "connected", timeout=20)
    for page in (c.host, c.expert):
        assert await page.evaluate("window.__beforeMove === true")  # no reload
