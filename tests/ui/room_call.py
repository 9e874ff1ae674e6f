"""Two practitioners in a room with video flowing, and what the room tests read from the
pages (decoded frames, tiles) and from the server (the SFU's subscriptions, presence)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from core.context import DB
from rtc.signalling import SIGNALLING
from tests.ui.conftest import call_api, open_session, wait_js

HOST, EXPERT = "Dr Claire Martin", "Dr Karim Benali"


@dataclass
class TwoInARoom:
    host: Any
    expert: Any
    room_id: str
    host_pid: str
    expert_pid: str


@dataclass
class DossierRoom:
    host: Any  # the requester's page, inside the room
    room_id: str
    dossier_id: str


async def host_opens_dossier_room(
    pages: Any,
    app: Any,
    users: Any,
    *,
    kind: str = "expertise",
    title: str = "Avis diabétologie — Mme Sevestre",
    host_viewport: dict[str, int] | None = None,
    bypass_csp: bool = False,
) -> DossierRoom:
    """The demo dossiers seeded; the requester (host) creates a room on the first one with
    the expert as member, and enters it."""
    from dossier.models import Dossier
    from dossier.seed import seed_demo

    await seed_demo(app[DB], users)
    async with app[DB].read() as s:
        dossier_id = str((await s.execute(select(Dossier.id).limit(1))).scalar_one())
    host = await pages.new(viewport=host_viewport, bypass_csp=bypass_csp)
    await open_session(host, app, users["requester"])
    await host.goto("/app/")
    room = await call_api(
        host, "POST", "/api/v1/rooms", {"kind": kind, "title": title, "dossier_id": dossier_id}
    )
    await call_api(
        host,
        "POST",
        f"/api/v1/rooms/{room['id']}/members",
        {"user_id": str(users["expert"].id), "role": "participant"},
    )
    await host.goto(f"/app/rooms/{room['id']}")
    await host.get_by_text(f"{HOST} (vous)").wait_for()
    return DossierRoom(host, room["id"], dossier_id)


async def two_in_a_room(
    pages: Any,
    app: Any,
    users: Any,
    *,
    host_viewport: dict[str, int] | None = None,
    bypass_csp: bool = False,
) -> TwoInARoom:
    """The requester (host) opens a dossier's room, the expert joins; each sees the other's
    video playing."""
    opened = await host_opens_dossier_room(
        pages, app, users, host_viewport=host_viewport, bypass_csp=bypass_csp
    )
    host = opened.host
    expert = await pages.new()
    await open_session(expert, app, users["expert"])
    await expert.goto(f"/app/rooms/{opened.room_id}")
    await expert.get_by_text(f"{EXPERT} (vous)").wait_for()
    await frames_grow(host, EXPERT, timeout=30)
    await frames_grow(expert, HOST, timeout=30)
    return TwoInARoom(host, expert, opened.room_id, await own_pid(host), await own_pid(expert))


async def own_pid(page: Any) -> str:
    pid = await page.evaluate(
        "() => document.querySelector('.tile.local[data-source=\"camera\"]').dataset.participant"
    )
    assert pid
    return str(pid)


FRAMES_JS = """([name, source]) => {
    const tile = [...document.querySelectorAll(".tile[data-participant]:not(.local)")]
      .find((t) => t.dataset.source === source && t.textContent.includes(name));
    const v = tile && tile.querySelector("video");
    return v && v.videoWidth > 0 ? v.getVideoPlaybackQuality().totalVideoFrames : -1;
}"""


async def frames(page: Any, name: str, source: str = "camera") -> int:
    """Frames Chromium decoded so far for the remote tile of `name` (-1: no video)."""
    return int(await page.evaluate(FRAMES_JS, [name, source]))


async def frames_grow(
    page: Any, name: str, source: str = "camera", *, by: int = 5, timeout: float = 20.0
) -> float:
    """Wait until the tile's decoded frame count grows by `by` from now (new frames decoded,
    not a frozen picture); returns when that happened (time.monotonic())."""
    start = await frames(page, name, source)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        now = await frames(page, name, source)
        if start >= 0 and now >= start + by:
            return time.monotonic()
        if start < 0 and now >= 0:
            start = now  # the video just appeared: count from its first frames
        if loop.time() > deadline:
            raise AssertionError(f"{name}'s {source} video: frames {start} → {now} in {timeout}s")
        await asyncio.sleep(0.1)


def subscription(app: Any, viewer: str, publisher: str, source: str) -> Any:
    """The SFU's down-track sending `publisher`'s `source` video to `viewer` (None if none)."""
    sfu = app[SIGNALLING].sfu
    try:
        peer = sfu.peer(viewer)
    except Exception:
        return None
    for slot in peer.subscriptions.values():
        forwarder = slot.downtrack.forwarder
        if (
            forwarder is not None
            and forwarder.publisher_id == publisher
            and forwarder.kind == "video"
            and forwarder.source == source
        ):
            return slot.downtrack
    return None


async def wait_server(predicate: Any, what: str, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def wait_paused(app: Any, viewer: str, publisher: str, source: str, paused: bool) -> Any:
    def ok() -> bool:
        dt = subscription(app, viewer, publisher, source)
        return dt is not None and dt.paused is paused

    await wait_server(ok, f"{source} of {publisher} {'paused' if paused else 'resumed'}")
    return subscription(app, viewer, publisher, source)


async def packets_stopped(downtrack: Any, timeout: float = 8.0) -> None:
    """Nothing is forwarded on a paused down-track: within `timeout` its packet count stands
    still for a whole second (the frame in flight when the pause came is let through first;
    a video that is still sent grows by dozens of packets a second)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    counts = [downtrack.stats.packets]
    while True:
        await asyncio.sleep(1.0)
        counts.append(downtrack.stats.packets)
        if counts[-1] == counts[-2]:
            assert downtrack.paused
            return
        if loop.time() > deadline:
            raise AssertionError(f"packets still forwarded while paused: {counts}")


# Records, in the page, the most tiles and participant-list rows each name ever had at once
# (a MutationObserver sees every render): "never two" is checked, not sampled.
WATCH_DUPLICATES_JS = """() => {
    window.__most = {};
    const count = () => {
        const seen = {};
        const cameras = '.tile[data-participant][data-source="camera"]';
        for (const t of document.querySelectorAll(cameras)) {
            const k = "tile:" + (t.classList.contains("local") ? "me" : t.dataset.participant);
            seen[k] = (seen[k] || 0) + 1;
        }
        for (const li of document.querySelectorAll(".people li")) {
            const k = "row:" + li.querySelector(".grow").firstChild.textContent.trim();
            seen[k] = (seen[k] || 0) + 1;
        }
        seen.tiles = document.querySelectorAll(".tile[data-participant]").length;
        for (const [k, n] of Object.entries(seen)) {
            window.__most[k] = Math.max(window.__most[k] || 0, n);
        }
    };
    new MutationObserver(count).observe(document.body, {childList: true, subtree: true});
    count();
}"""


async def watch_duplicates(page: Any) -> None:
    await page.evaluate(WATCH_DUPLICATES_JS)


async def most_seen(page: Any) -> dict[str, int]:
    return dict(await page.evaluate("() => window.__most"))


async def connection_status(page: Any) -> str:
    return str(await page.evaluate("() => document.querySelector('.room').dataset.connection"))


async def wait_connection(page: Any, status: str, timeout: float = 30.0) -> None:
    await wait_js(
        page,
        "(s) => document.querySelector('.room')?.dataset.connection === s",
        status,
        timeout=timeout,
    )
