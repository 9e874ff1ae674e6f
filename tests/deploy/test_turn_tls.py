"""TURN over TLS for closed networks (docs/coturn.md): Debian's coturn running
deploy/coturn/turnserver.conf on loopback (TLS on a high port instead of 443, a self-signed
certificate), Consilium handing out its time-limited credentials with only the ``turns:``
URL, and Chromium in the room page reaching the SFU through the relay only.

- forced: every peer connection of the expert's page is relay-only (``iceTransportPolicy:
  "relay"`` set by the test), so media can only flow through coturn over TLS.
- fallback: the first connection of the expert's page can reach nothing (as if UDP and the
  relay were blocked: no candidate at all); the page itself (ice-fallback.js) then makes its
  next connection relay-only, and media flows over TURN/TLS.

In both, the host (an unmodified page) and the expert decode each other's video, the
expert's selected candidate pair is a relay over TLS, and no socket of coturn, the server or
Chromium has a non-loopback peer (``ss``).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_settings
from tests.deploy.conftest import (
    Coturn,
    descendants,
    is_loopback_or_any,
    sockets_of,
)
from tests.ui.conftest import open_session
from tests.ui.room_call import EXPERT, HOST, frames_grow, host_opens_dossier_room

pytestmark = [
    pytest.mark.browser,
    pytest.mark.media,
    pytest.mark.slow,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

# Wraps RTCPeerConnection before the page's scripts run: records every connection with the
# configuration the page asked for, and applies the test's mode.
WRAP_JS = """(mode) => {
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  function Wrapped(config) {
    const asked = JSON.parse(JSON.stringify(config || {}));
    let used = config;
    if (mode === "forced") used = { ...config, iceTransportPolicy: "relay" };
    if (mode === "fallback" && window.__pcs.length === 0) {
      used = { ...config, iceServers: [], iceTransportPolicy: "relay" };  // reaches nothing
    }
    const pc = new Native(used);
    window.__pcs.push({ pc, asked });
    return pc;
  }
  Wrapped.prototype = Native.prototype;
  Object.setPrototypeOf(Wrapped, Native);
  window.RTCPeerConnection = Wrapped;
}"""

# The latest connection: its selected pair's local candidate, and decoded video frames.
STATS_JS = """async () => {
  const last = window.__pcs[window.__pcs.length - 1];
  if (!last) return null;
  const report = await last.pc.getStats();
  const byId = new Map();
  report.forEach((s) => byId.set(s.id, s));
  let pair = null;
  report.forEach((s) => {
    const id = s.type === "transport" && s.selectedCandidatePairId;
    if (id) pair = byId.get(id);
  });
  const local = pair ? byId.get(pair.localCandidateId) : null;
  const remote = pair ? byId.get(pair.remoteCandidateId) : null;
  let frames = 0;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0;
  });
  return {
    count: window.__pcs.length,
    asked: last.asked.iceTransportPolicy || "all",
    urls: (last.asked.iceServers || []).flatMap((s) => [].concat(s.urls)),
    state: last.pc.connectionState,
    local: local && {type: local.candidateType, relayProtocol: local.relayProtocol,
                     address: local.address, url: local.url},
    remote: remote && {type: remote.candidateType, address: remote.address},
    frames,
  };
}"""


@pytest.fixture
def settings(database_url: str, tmp_path: Path, coturn: Coturn) -> Any:
    return make_settings(
        database_url,
        tmp_path / "data",
        turn_urls=[f"turns:127.0.0.1:{coturn.tls_port}?transport=tcp"],
        turn_secret=coturn.secret,
        turn_ttl_seconds=600,
        rtc_allowed_addresses=["127.0.0.1"],
    )


async def relay_stats(page: Any, timeout: float) -> dict[str, Any]:
    """Poll until the latest connection decodes video through a TURN/TLS relay."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    stats: dict[str, Any] | None = None
    while True:
        stats = await page.evaluate(STATS_JS)
        if (
            stats
            and stats["state"] == "connected"
            and stats["local"]
            and stats["local"]["type"] == "relay"
            and stats["frames"] > 10
        ):
            return stats
        if loop.time() > deadline:
            raise AssertionError(f"no video over the relay: {stats}")
        await asyncio.sleep(0.25)


@pytest.mark.parametrize("mode", ["forced", "fallback"])
async def test_relay_only_over_turn_tls_decodes_video(
    mode: str, pages: Any, app: Any, users: Any, coturn: Coturn
) -> None:
    opened = await host_opens_dossier_room(pages, app, users)
    expert = await pages.new()
    await expert.add_init_script(script=f"({WRAP_JS})({mode!r})")
    await open_session(expert, app, users["expert"])
    await expert.goto(f"/app/rooms/{opened.room_id}")
    await expert.get_by_text(f"{EXPERT} (vous)").wait_for()

    # fallback: the first connection fails (PC_CONNECT_TIMEOUT_MS at most), then the relay
    stats = await relay_stats(expert, timeout=120)
    assert stats["local"]["relayProtocol"] == "tls", stats
    assert stats["remote"]["address"] == "127.0.0.1", stats
    assert any(u.startswith("turns:") for u in stats["urls"]), stats
    if mode == "fallback":
        assert stats["count"] >= 2, stats
        assert stats["asked"] == "relay", "the page did not fall back to relay-only"
    # both directions decode: the host sees the expert's camera relayed, and vice versa
    await frames_grow(expert, HOST, timeout=60)
    await frames_grow(opened.host, EXPERT, timeout=60)

    # coturn saw the allocation over TLS with the participant's time-limited username
    log = coturn.log_text()
    assert "TLS" in log and "ALLOCATE processed, success" in log, log[-3000:]

    # Nothing leaves loopback. coturn and this process (the server): every socket's both ends;
    # Chromium (a child of this process, through Playwright's driver): every TCP peer (its
    # UDP sockets are unconnected: their traffic is what the server and coturn accept, all
    # on loopback as checked above).
    assert coturn.proc is not None
    ours = {os.getpid()} | descendants(coturn.proc.pid)
    strict = sockets_of(ours)
    assert any(f":{coturn.tls_port}" in s["local"] for s in strict), strict
    strays = [
        s["line"]
        for s in strict
        if not (is_loopback_or_any(s["local"]) and is_loopback_or_any(s["peer"]))
    ]
    chromium = descendants(os.getpid()) - ours
    strays += [
        s["line"]
        for s in sockets_of(chromium)
        if s["proto"] == "tcp" and not is_loopback_or_any(s["peer"])
    ]
    assert not strays, "\n".join(strays)
