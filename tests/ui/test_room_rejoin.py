"""The room gets back by itself after a dropped connection (issue 6, item 5; docs/ui.md
"Staying in the call").

Two practitioners with video flowing. (1) The host's Socket.IO connection is closed by the
server, then lost with the network (Chromium offline): each time the page says so, joins
again as the same participant, gets the chat said meanwhile once, and the video never stops
(the media does not ride on the socket). (2) The host's media is removed on the server, once
announced (`rtc:state` closed) and once silently (the browser's connection fails by itself):
the page starts its media over and both sides decode new frames. What the others see never
shows the host twice. Times from the drop to the recovery are printed (not asserted)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from rooms.live import Live
from rtc.signalling import SIGNALLING
from tests.ui.conftest import shot, wait_js
from tests.ui.room_call import (
    EXPERT,
    HOST,
    connection_status,
    frames,
    frames_grow,
    most_seen,
    own_pid,
    two_in_a_room,
    wait_connection,
    wait_server,
    watch_duplicates,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


def host_conns(app: Any, pid: str) -> list[Any]:
    return [c for c in Live.of(app).conns.values() if c.participant_id == pid]


async def in_room(app: Any, room_id: str) -> list[Any]:
    live = Live.of(app)
    return list(await live.state.participants(room_id, live.grace))


async def open_panel(page: Any, name: str) -> None:
    await page.get_by_role("button", name=re.compile(f"^{name}")).click()


async def test_a_dropped_connection_rejoins_as_the_same_participant(
    pages: Any, app: Any, users: Any
) -> None:
    c = await two_in_a_room(pages, app, users)
    live = Live.of(app)
    await open_panel(c.expert, "Participants")
    await watch_duplicates(c.expert)
    await watch_duplicates(c.host)

    # --- 1. The server closes the host's connection, and is slow to take it back ----------
    gate = asyncio.Event()
    principal = live._principal
    [conn] = host_conns(app, c.host_pid)
    host_token = conn.token

    async def slow_for_the_host(environ: dict[str, Any]) -> Any:
        if host_token in environ.get("HTTP_COOKIE", ""):
            await gate.wait()
        return await principal(environ)

    live._principal = slow_for_the_host  # type: ignore[method-assign]
    seen_before = await frames(c.expert, HOST)
    dropped = time.monotonic()
    await live.sio.disconnect(conn.sid)
    await wait_connection(c.host, "reconnecting", timeout=10)
    lost = "Connexion perdue — reconnexion en cours…"
    await c.host.get_by_role("status").filter(has_text=lost).wait_for()
    await shot(c.host, "room-reconnecting", full_page=False)
    # the others see the host as reconnecting, once
    await c.expert.locator(".people li", has_text=HOST).get_by_text("reconnexion…").wait_for()
    # said while the host is away
    await open_panel(c.expert, "Discussion")
    await c.expert.get_by_label("Message", exact=True).fill("Je reprends le dossier page 3.")
    await c.expert.get_by_role("button", name="Envoyer", exact=True).click()
    await c.expert.locator(".chat-msg", has_text="page 3").wait_for()
    # the media does not ride on the socket: the expert keeps decoding the host's video
    await frames_grow(c.expert, HOST, by=10)
    assert await frames(c.expert, HOST) > seen_before

    gate.set()
    released = time.monotonic()
    await wait_connection(c.host, "connected", timeout=30)
    back = time.monotonic()
    await c.host.get_by_text("Reconnecté", exact=True).wait_for()
    live._principal = principal  # type: ignore[method-assign]
    print(
        f"\nsocket closed by the server: held off {released - dropped:.2f}s, "
        f"rejoined {back - released:.2f}s after the server let it in"
    )
    assert await c.host.locator(".conn-banner").count() == 0
    # the same participant, connected, on a new socket; nobody else in the room
    assert [x.sid for x in host_conns(app, c.host_pid)] != [conn.sid]
    entries = await in_room(app, c.room_id)
    assert sorted(p.id for p in entries) == sorted([c.host_pid, c.expert_pid])
    assert all(p.connected for p in entries)
    host_entry = next(p for p in entries if p.id == c.host_pid)
    assert host_entry.role == "host"
    await (
        c.expert.locator(".people li", has_text=HOST)
        .get_by_text("reconnexion…")
        .wait_for(state="detached")
    )
    # the chat said meanwhile arrives once
    await open_panel(c.host, "Discussion")
    await c.host.locator(".chat-msg", has_text="page 3").wait_for()
    assert await c.host.locator(".chat-msg", has_text="page 3").count() == 1
    # media both ways, still the same server connection (it was kept, not restarted)
    await frames_grow(c.expert, HOST)
    await frames_grow(c.host, EXPERT)

    # --- 2. The host's network goes away (Chromium offline closes its WebSocket) -----------
    peer = app[SIGNALLING].sfu.peer(c.host_pid)
    await c.host.context.set_offline(True)
    dropped = time.monotonic()
    await wait_connection(c.host, "reconnecting", timeout=10)
    await wait_server(lambda: not host_conns(app, c.host_pid), "the server to see the drop")
    await c.expert.get_by_label("Message", exact=True).fill("Vous m'entendez toujours ?")
    await c.expert.get_by_role("button", name="Envoyer", exact=True).click()
    await c.host.context.set_offline(False)
    online = time.monotonic()
    await wait_connection(c.host, "connected", timeout=30)
    print(
        f"network lost for {online - dropped:.2f}s: rejoined "
        f"{time.monotonic() - online:.2f}s after it came back"
    )
    await c.host.locator(".chat-msg", has_text="entendez toujours").wait_for()
    assert await c.host.locator(".chat-msg", has_text="entendez toujours").count() == 1
    assert await c.host.locator(".chat-msg", has_text="page 3").count() == 1
    assert app[SIGNALLING].sfu.peer(c.host_pid) is peer  # kept through the drop
    await frames_grow(c.expert, HOST)
    await frames_grow(c.host, EXPERT)
    assert sorted(p.id for p in await in_room(app, c.room_id)) == sorted([c.host_pid, c.expert_pid])

    # --- 3. Away longer than the grace period: the server lets the host go, media included;
    # back, the page joins as a new participant and starts its media over ------------------
    live.grace = 1.0
    await c.host.context.set_offline(True)
    dropped = time.monotonic()
    await c.expert.locator(f'.tile[data-participant="{c.host_pid}"]').wait_for(state="detached")
    await wait_server(lambda: c.host_pid not in sfu_where(app), "the host's media removed")
    await c.host.context.set_offline(False)
    online = time.monotonic()
    await wait_connection(c.host, "connected", timeout=40)
    new_pid = await own_pid(c.host)
    assert new_pid != c.host_pid
    seen_at = await frames_grow(c.expert, HOST, timeout=30)
    both_at = max(seen_at, await frames_grow(c.host, EXPERT, timeout=30))
    print(
        f"away {online - dropped:.2f}s (grace {live.grace:.0f}s): new participant, frames "
        f"again both ways {both_at - online:.2f}s after the network came back"
    )
    entries = await in_room(app, c.room_id)
    assert sorted(p.id for p in entries) == sorted([new_pid, c.expert_pid])
    assert next(p for p in entries if p.id == new_pid).role == "host"
    assert sorted(f.source for f in app[SIGNALLING].sfu.peer(new_pid).published.values()) == [
        "audio",
        "camera",
    ]
    assert await c.host.locator(".chat-msg", has_text="page 3").count() == 1

    # never two of anyone, on either side
    expert_saw, host_saw = await most_seen(c.expert), await most_seen(c.host)
    assert expert_saw[f"tile:{c.host_pid}"] == 1 and expert_saw[f"tile:{new_pid}"] == 1
    assert expert_saw["tile:me"] == 1 and expert_saw["tiles"] == 2, expert_saw
    assert expert_saw[f"row:{HOST}"] == 1, expert_saw
    assert host_saw["tile:me"] == 1 and host_saw[f"tile:{c.expert_pid}"] == 1, host_saw
    assert await connection_status(c.expert) == "connected"
    # Chromium logs its refused connection attempts while offline; no script error otherwise
    offline = "ERR_INTERNET_DISCONNECTED"
    assert not [e for e in pages.errors if offline not in e], pages.errors


def sfu_where(app: Any) -> Any:
    return app[SIGNALLING].sfu._where


async def test_media_lost_on_the_server_is_started_again_by_the_page(
    pages: Any, app: Any, users: Any
) -> None:
    c = await two_in_a_room(pages, app, users)
    sfu = app[SIGNALLING].sfu
    live = Live.of(app)
    await watch_duplicates(c.expert)
    await watch_duplicates(c.host)
    # the host's microphone is off: it must stay off through the restart
    await c.host.get_by_role("button", name="Couper le micro").click()
    await wait_server(
        lambda: live.state._rooms[c.room_id][c.host_pid].media.audio is False,  # type: ignore[attr-defined]
        "the host's microphone off in presence",
    )

    # --- 1. announced: the server closes the host's media and says so (rtc:state) ---------
    first = sfu.peer(c.host_pid).connection_id
    dropped = time.monotonic()
    await sfu.remove(c.host_pid)
    await wait_server(
        lambda: c.host_pid in sfu._where and sfu.peer(c.host_pid).connection_id != first,
        "the host's media to join again",
    )
    seen_at = await frames_grow(c.expert, HOST, timeout=30)
    both_at = max(seen_at, await frames_grow(c.host, EXPERT, timeout=30))
    print(f"\nmedia removed on the server (announced): frames again after {both_at - dropped:.2f}s")
    await wait_connection(c.host, "connected", timeout=20)
    await check_republished(app, c, live)

    # --- 2. silent: the media goes away without a word; the browser's connection fails -----
    signalling = app[SIGNALLING]
    on_event = signalling.on_event

    async def no_state_for_the_host(room_id: str, target: Any, event: str, payload: Any) -> None:
        if not (event == "rtc:state" and target == c.host_pid):
            await on_event(room_id, target, event, payload)

    signalling._sfu._on_event = no_state_for_the_host  # type: ignore[union-attr]
    second = sfu.peer(c.host_pid).connection_id
    dropped = time.monotonic()
    await sfu.remove(c.host_pid)
    await wait_connection(c.host, "reconnecting", timeout=20)
    await shot(c.host, "room-media-reconnecting", full_page=False)
    await wait_server(
        lambda: c.host_pid in sfu._where and sfu.peer(c.host_pid).connection_id != second,
        "the host's media to join again",
        timeout=30,
    )
    seen_at = await frames_grow(c.expert, HOST, timeout=30)
    both_at = max(seen_at, await frames_grow(c.host, EXPERT, timeout=30))
    print(f"media removed silently: frames again after {both_at - dropped:.2f}s")
    signalling._sfu._on_event = on_event  # type: ignore[union-attr]
    await wait_connection(c.host, "connected", timeout=20)
    await c.host.get_by_text("Reconnecté", exact=True).wait_for()
    await check_republished(app, c, live)

    expert_saw, host_saw = await most_seen(c.expert), await most_seen(c.host)
    assert expert_saw[f"tile:{c.host_pid}"] == 1, expert_saw
    assert host_saw["tile:me"] == 1 and host_saw[f"tile:{c.expert_pid}"] == 1, host_saw
    assert expert_saw["tiles"] == 2 and host_saw["tiles"] == 2, (expert_saw, host_saw)
    assert not pages.errors, pages.errors


async def check_republished(app: Any, c: Any, live: Any) -> None:
    """The host publishes camera and microphone again on one connection, the microphone
    still off for the others (presence, and the mic-off mark on the expert's tile)."""
    sfu = app[SIGNALLING].sfu
    await wait_server(
        lambda: (
            sorted(f.source for f in sfu.peer(c.host_pid).published.values()) == ["audio", "camera"]
        ),
        "camera and microphone published again",
    )
    await wait_server(
        lambda: (
            live.state._rooms[c.room_id][c.host_pid].media.audio is False
            and live.state._rooms[c.room_id][c.host_pid].media.video is True
        ),
        "presence: camera on, microphone off",
    )
    await wait_js(
        c.expert,
        """(name) => { const t = [...document.querySelectorAll('.tile:not(.local)')]
                         .find((x) => x.textContent.includes(name));
                       return t && !!t.querySelector('[aria-label="micro coupé"]'); }""",
        HOST,
    )


async def test_after_the_time_limit_the_page_says_so_and_retries_on_request(
    pages: Any, app: Any, users: Any
) -> None:
    """Offline past the time limit (60 s in the product, 3 s here): the page stops trying and
    says so, with « Réessayer »; it does not come back by itself, and the button does."""
    c = await two_in_a_room(pages, app, users)
    await c.host.add_init_script("window.CONSILIUM_GIVE_UP_MS = 3000;")
    await c.host.reload()
    await c.host.get_by_text(f"{HOST} (vous)").wait_for()
    await frames_grow(c.expert, HOST, timeout=30)
    host_pid = await own_pid(c.host)

    await c.host.context.set_offline(True)
    await wait_connection(c.host, "failed", timeout=20)
    failed = c.host.get_by_role("alert").filter(has_text="La connexion n'a pas pu être rétablie.")
    await failed.wait_for()
    await shot(c.host, "room-reconnect-failed", full_page=False)
    await c.host.context.set_offline(False)
    # longer than socket.io's longest back-off (4 s): it would have connected by now
    await asyncio.sleep(5)
    assert not host_conns(app, host_pid) and await connection_status(c.host) == "failed"

    await failed.get_by_role("button", name="Réessayer").click()
    await wait_connection(c.host, "connected", timeout=30)
    await c.host.get_by_text("Reconnecté", exact=True).wait_for()
    assert await own_pid(c.host) == host_pid
    await frames_grow(c.expert, HOST)
    await frames_grow(c.host, EXPERT)
    offline = "ERR_INTERNET_DISCONNECTED"
    assert not [e for e in pages.errors if offline not in e], pages.errors
