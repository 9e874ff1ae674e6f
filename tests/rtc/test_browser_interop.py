"""Chromium against the SFU: the interop an aiortc-only suite cannot prove.

A headless Chromium with fake camera and microphone joins through a minimal websocket
signalling page (the real Socket.IO wiring lives in rooms/), publishes, and receives an aiortc
participant's counter video; the aiortc participant receives and decodes Chromium's camera.
Everything stays on 127.0.0.1 (`--allow-loopback-in-peer-connection`, no mDNS hiding, the
server ignores any other candidate).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from rtc.config import RtcConfig
from rtc.errors import RtcError
from rtc.sfu import Sfu
from tests.rtc.clients import Client, wait_for

pytestmark = [pytest.mark.media, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"

PAGE = """<!doctype html><meta charset="utf-8"><title>sfu interop</title>
<body><script>
const ws = new WebSocket(`ws://${location.host}/ws`);
const pending = new Map(); let nextId = 0; let pc; let queue = Promise.resolve();
window.log = []; window.labels = []; window.videos = []; window.answered = 0;
const call = (method, params) => new Promise((resolve, reject) => {
  const id = ++nextId; pending.set(id, {resolve, reject});
  ws.send(JSON.stringify({id, method, params}));
});
const opened = new Promise(r => ws.onopen = r);
ws.onmessage = (m) => {
  const msg = JSON.parse(m.data);
  if (msg.id) {
    const p = pending.get(msg.id); pending.delete(msg.id);
    msg.error ? p.reject(msg.error) : p.resolve(msg.result); return;
  }
  window.log.push(msg.event);
  if (msg.event === 'rtc:renegotiate') pull();
};
// docs/rtc.md: every negotiation from this side, one at a time in `queue`; the server's
// offer is pulled when it says it has one, and answered before anything else
const pull = () => (queue = queue.then(async () => {
  const {offer} = await call('pull', {});
  if (!offer) return;
  await pc.setRemoteDescription({type: 'offer', sdp: offer.sdp});
  await pc.setLocalDescription();
  const ack = await call('answer', {sdp: pc.localDescription.sdp});
  window.labels = offer.tracks; window.answered++;
  if (ack.renegotiate) pull();
}));
window.start = async () => {
  await opened;
  const joined = await call('join', {});
  pc = new RTCPeerConnection({iceServers: joined.ice_servers});
  pc.onicecandidate = (e) => {
    if (e.candidate) call('candidate', {candidate: e.candidate.toJSON()});
  };
  pc.ontrack = (e) => {
    const v = document.createElement('video'); v.autoplay = true; v.muted = true;
    v.srcObject = new MediaStream([e.track]); document.body.appendChild(v);
    window.videos.push({mid: e.transceiver.mid, kind: e.track.kind, element: v});
  };
  const stream = await navigator.mediaDevices.getUserMedia(
    {video: {width: 320, height: 240, frameRate: 15}, audio: true});
  // addTransceiver, not addTrack: addTrack would reuse an m-line the server created for
  // receiving someone else, which the server refuses (it publishes on new m-lines only)
  for (const t of stream.getTracks()) {
    pc.addTransceiver(t, {direction: 'sendonly', streams: [stream]});
  }
  if (joined.renegotiate) pull();
  await (queue = queue.then(async () => {
    await pc.setLocalDescription();
    const answer = await call('offer', {sdp: pc.localDescription.sdp});
    await pc.setRemoteDescription({type: 'answer', sdp: answer.sdp});
    if (answer.renegotiate) pull();
  }));
  return true;
};
// publish changes after start(): one offer, in the queue
const offerNow = () => (queue = queue.then(async () => {
  await pc.setLocalDescription();
  const answer = await call('offer', {sdp: pc.localDescription.sdp});
  await pc.setRemoteDescription({type: 'answer', sdp: answer.sdp});
  window.lastAnswer = answer.sdp;
  if (answer.renegotiate) pull();
}));
// transceiver.stop(): the next offer rejects its m-line (port 0, out of BUNDLE)
window.stopSending = async (kind) => {
  const t = pc.getTransceivers().find(
    (t) => !t.stopped && t.direction === 'sendonly' && t.sender.track
      && t.sender.track.kind === kind);
  const mid = t.mid; t.stop(); await offerNow(); return mid;
};
window.stopReceiving = async (kind) => {
  const t = pc.getTransceivers().find(
    (t) => !t.stopped && t.direction === 'recvonly' && t.receiver.track.kind === kind
      && t.currentDirection === 'recvonly');
  const mid = t.mid; t.stop(); await offerNow(); await queue; return mid;
};
window.publishAgain = async (kind) => {
  const s = await navigator.mediaDevices.getUserMedia(
    kind === 'audio' ? {audio: true} : {video: {width: 320, height: 240, frameRate: 15}});
  const t = pc.addTransceiver(s.getTracks()[0], {direction: 'sendonly', streams: [s]});
  await offerNow();
  return {mid: t.mid, mlines: pc.localDescription.sdp.split('\\r\\nm=').length - 1};
};
// ICE restart on the same connection: new ICE credentials in our own offer
window.restartIce = async () => {
  const before = pc.remoteDescription.sdp.match(/a=ice-ufrag:(\\S+)/)[1];
  await (queue = queue.then(async () => {
    pc.restartIce();
    await pc.setLocalDescription();
    const answer = await call('offer', {sdp: pc.localDescription.sdp});
    await pc.setRemoteDescription({type: 'answer', sdp: answer.sdp});
    if (answer.renegotiate) pull();
  }));
  return {before, after: pc.remoteDescription.sdp.match(/a=ice-ufrag:(\\S+)/)[1],
          ice: pc.iceConnectionState};
};
window.selectedPair = async () => {
  let out = null; const stats = await pc.getStats();
  stats.forEach(s => {
    if (s.type === 'transport' && s.selectedCandidatePairId) {
      const pair = stats.get(s.selectedCandidatePairId);
      const local = stats.get(pair.localCandidateId), remote = stats.get(pair.remoteCandidateId);
      out = {local: local.port, remote: remote.port, state: pc.iceConnectionState};
    }
  });
  return out;
};
window.mlines = () => pc.localDescription.sdp.split('\\r\\nm=').length - 1;
window.inbound = async () => {
  const out = {};
  (await pc.getStats()).forEach(s => {
    if (s.type === 'inbound-rtp') out[s.mid + ':' + s.kind] = {
      packets: s.packetsReceived, frames: s.framesDecoded || 0,
      width: s.frameWidth || 0, keyframes: s.keyFramesDecoded || 0};
  });
  return out;
};
</script></body>
"""


class BrowserBridge:
    """Websocket signalling for one browser participant, translating to Sfu calls."""

    def __init__(self, sfu: Sfu, participant_id: str) -> None:
        self.sfu = sfu
        self.id = participant_id
        self.ws: web.WebSocketResponse | None = None
        self.errors: list[str] = []
        self.candidates: dict[str, bool] = {}

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.ws = ws
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            request_data = json.loads(message.data)
            method, params = request_data["method"], request_data.get("params") or {}
            try:
                result: Any = None
                if method == "join":
                    result = await self.sfu.join("room-1", self.id, "Chromium")
                elif method == "offer":
                    result = await self.sfu.handle_offer(self.id, params["sdp"])
                elif method == "pull":
                    result = {"offer": await self.sfu.pull_offer(self.id)}
                elif method == "answer":
                    result = await self.sfu.handle_answer(self.id, params["sdp"])
                elif method == "candidate":
                    result = await self.sfu.add_candidate(self.id, params["candidate"])
                    ip = params["candidate"]["candidate"].split()[4]
                    self.candidates[ip] = result
                reply = {"id": request_data["id"], "result": result}
            except RtcError as exc:
                if method == "candidate" and exc.code == "candidate_not_allowed":
                    self.candidates[params["candidate"]["candidate"].split()[4]] = False
                else:
                    self.errors.append(exc.code)
                reply = {"id": request_data["id"], "error": exc.as_ack()["error"]}
            await ws.send_str(json.dumps(reply))
        return ws

    async def push(self, event: str, payload: dict[str, Any]) -> None:
        if self.ws is not None and not self.ws.closed:
            await self.ws.send_str(json.dumps({"event": event, "payload": payload}))


@pytest.fixture
async def interop() -> AsyncIterator[tuple[Sfu, BrowserBridge, dict[str, Client], str]]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("needs Chromium at /usr/bin/chromium")
    clients: dict[str, Client] = {}
    bridge_holder: list[BrowserBridge] = []

    async def on_event(room: str, target: str | None, event: str, payload: Any) -> None:
        targets = [target] if target is not None else [*clients, "browser"]
        for name in targets:
            if name == "browser" and bridge_holder:
                await bridge_holder[0].push(event, payload)
            elif name in clients:
                clients[name].on_event(event, payload)

    sfu = Sfu(RtcConfig(allowed_addresses=("127.0.0.1",)), on_event)
    bridge = BrowserBridge(sfu, "browser")
    bridge_holder.append(bridge)
    app = web.Application()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app.router.add_get("/", page)
    app.router.add_get("/ws", bridge.handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield sfu, bridge, clients, f"http://127.0.0.1:{port}/"
    finally:
        for client in clients.values():
            await client.close()
        await sfu.close()
        await runner.cleanup()


@pytest.mark.parametrize("browser_first", [False, True], ids=["aiortc-first", "browser-first"])
async def test_chromium_and_aiortc_exchange_media_through_the_sfu(
    interop: tuple[Sfu, BrowserBridge, dict[str, Client], str], browser_first: bool
) -> None:
    """Browser first: the server's later offers must keep Chromium's extension ids."""
    from playwright.async_api import async_playwright

    sfu, bridge, clients, url = interop
    alice = Client(sfu, "room-1", "alice")

    async def alice_joins() -> None:
        clients["alice"] = alice
        await alice.join()
        await alice.publish()

    if not browser_first:
        await alice_joins()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                "--allow-loopback-in-peer-connection",
                "--disable-features=WebRtcHideLocalIpsWithMdns",
                "--no-sandbox",
            ],
        )
        try:
            page = await browser.new_page()
            await page.goto(url)
            assert await page.evaluate("window.start()")
            if browser_first:
                await wait_for(lambda: len(sfu.tracks("room-1")) == 2, 10)
                await alice_joins()

            async def browser_decodes_alice() -> bool:
                stats = await page.evaluate("window.inbound()")
                video = [s for k, s in stats.items() if k.endswith(":video")]
                audio = [s for k, s in stats.items() if k.endswith(":audio")]
                return bool(
                    video
                    and video[0]["frames"] > 20
                    and video[0]["width"] == 320
                    and audio
                    and audio[0]["packets"] > 50
                )

            await wait_for(browser_decodes_alice, 15, interval=0.25)
            await wait_for(lambda: alice.mids_for("browser", "camera"), 10)
            received = alice.received_from("browser")
            # Chromium's fake camera carries no bar code: count decoded frames instead
            await wait_for(lambda: received.undecodable + len(received.counters) > 20, 10)
            tracks = {(t["participant_id"], t["kind"]) for t in sfu.tracks("room-1")}
            assert ("browser", "video") in tracks and ("browser", "audio") in tracks
            assert await page.evaluate("window.answered") > 0
            assert bridge.errors == [] and alice.errors == []
            stats = sfu.stats("room-1")["participants"]["browser"]
            assert all(f["packets"] > 0 for f in stats["published"])
            # Chromium's receiver feedback reaches the server: RR (RTT) and REMB for alice
            camera = next(f for f in sfu.peer("alice").published.values() if f.kind == "video")
            await wait_for(lambda: camera.remb is not None and camera.remb.last_sent, 8)
            subscribed = sfu.stats("room-1")["participants"]["browser"]["subscribed"]
            await wait_for(
                lambda: any(
                    s["rtt_ms"] is not None
                    for s in sfu.stats("room-1")["participants"]["browser"]["subscribed"]
                ),
                8,
            )
            assert subscribed
            # Chromium offered its other addresses too; the server checked loopback only
            assert True in bridge.candidates.values()
            assert not any(
                accepted for ip, accepted in bridge.candidates.items() if not ip.startswith("127.")
            )
        finally:
            with contextlib.suppress(Exception):
                await browser.close()


def _section(text: str, mid: str) -> tuple[int, bool]:
    """(port, in the BUNDLE group) of one m-section."""
    from rtc.sdp import parse

    description = parse(text)
    media = next(m for m in description.media if m.rtp.muxId == mid)
    bundle = next((g.items for g in description.group if g.semantic == "BUNDLE"), [])
    return media.port, mid in bundle


async def test_chromium_stops_transceivers_and_the_call_goes_on(
    interop: tuple[Sfu, BrowserBridge, dict[str, Client], str],
) -> None:
    """Issue 11: `transceiver.stop()` in Chromium rejects the m-line in its next offer. The
    server answers it rejected (port 0, out of BUNDLE), stops forwarding it, keeps the other
    m-lines working, and a later transceiver reuses the m-line slot."""
    from playwright.async_api import async_playwright

    sfu, bridge, clients, url = interop
    alice = Client(sfu, "room-1", "alice")
    clients["alice"] = alice
    await alice.join()
    await alice.publish()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                "--allow-loopback-in-peer-connection",
                "--disable-features=WebRtcHideLocalIpsWithMdns",
                "--no-sandbox",
            ],
        )
        try:
            page = await browser.new_page()
            await page.goto(url)
            assert await page.evaluate("window.start()")

            async def inbound(kind: str) -> int:
                stats = await page.evaluate("window.inbound()")
                return sum(
                    s["frames"] if kind == "video" else s["packets"]
                    for k, s in stats.items()
                    if k.endswith(":" + kind)
                )

            async def browser_gets_more(kind: str, than: int) -> None:
                async def more() -> bool:
                    return await inbound(kind) > than

                await wait_for(more, 30, interval=0.25)

            await browser_gets_more("video", 20)
            await wait_for(lambda: alice.mids_for("browser", "camera"), 30)

            def from_browser() -> int:
                received = alice.received_from("browser")
                return received.undecodable + len(received.counters)

            # 1. Chromium stops sending its microphone
            mid = await page.evaluate("window.stopSending('audio')")
            assert _section(await page.evaluate("window.lastAnswer"), mid) == (0, False)
            tracks = {(t["participant_id"], t["kind"]) for t in sfu.tracks("room-1")}
            assert ("browser", "audio") not in tracks and ("browser", "video") in tracks
            seen = from_browser()
            await wait_for(lambda: from_browser() > seen + 20, 30)
            await browser_gets_more("video", await inbound("video") + 20)

            # 2. Chromium stops receiving alice's audio (a server m-line): the track moves
            # to a new m-line, the video goes on
            await page.evaluate("window.stopReceiving('audio')")
            await wait_for(lambda: not sfu.peer("browser").negotiating, 30)
            await browser_gets_more("audio", await inbound("audio") + 50)
            await browser_gets_more("video", await inbound("video") + 20)

            # 3. a new microphone reuses the rejected m-line's slot
            before = await page.evaluate("window.mlines()")
            again = await page.evaluate("window.publishAgain('audio')")
            assert again["mid"] != mid
            assert again["mlines"] == before  # recycled, not appended
            await wait_for(
                lambda: (
                    ("browser", "audio")
                    in {(t["participant_id"], t["kind"]) for t in sfu.tracks("room-1")}
                ),
                30,
            )
            forwarder = next(f for f in sfu.peer("browser").published.values() if f.kind == "audio")
            await wait_for(lambda: forwarder.stats.packets > 50, 30)
            seen = from_browser()
            await wait_for(lambda: from_browser() > seen + 20, 30)
            assert bridge.errors == [] and alice.errors == []
            assert sfu.peer("browser").pc.connectionState == "connected"
        finally:
            with contextlib.suppress(Exception):
                await browser.close()


async def test_chromium_sends_transport_cc_feedback_and_the_server_estimates_its_link(
    interop: tuple[Sfu, BrowserBridge, dict[str, Client], str],
) -> None:
    """Issue 15, item 3: the server offers transport-cc on the m-lines it sends, writes the
    transport-wide sequence number on every packet, and Chromium's real feedback (RTPFB
    FMT 15) parses and gives a plausible estimate of Chromium's link; the aiortc participant,
    which does not negotiate it, gets no numbers and goes on decoding (REMB is its feedback)."""
    from playwright.async_api import async_playwright

    from rtc.bandwidth import parse_transport_cc
    from rtc.sdp import parse, transport_cc_ids

    sfu, bridge, clients, url = interop
    alice = Client(sfu, "room-1", "alice")
    clients["alice"] = alice
    await alice.join()
    await alice.publish()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                "--allow-loopback-in-peer-connection",
                "--disable-features=WebRtcHideLocalIpsWithMdns",
                "--no-sandbox",
            ],
        )
        try:
            page = await browser.new_page()
            await page.goto(url)
            assert await page.evaluate("window.start()")
            await wait_for(lambda: sfu.peer("browser").subscriber.subscriptions, 15)
            subscriber = sfu.peer("browser").subscriber
            feedback: list[bytes] = []
            on_feedback = subscriber.transport_cc.on_feedback

            def record(packet: bytes) -> None:
                feedback.append(packet)
                on_feedback(packet)

            subscriber.transport_cc.on_feedback = record  # type: ignore[method-assign]

            # Chromium accepted it in its answer, on every m-line the server sends
            answer = sfu.peer("browser").pc.remoteDescription.sdp
            ids = transport_cc_ids(parse(answer))
            assert set(ids) >= subscriber.mids() and len(set(ids.values())) == 1
            downtracks = [s.downtrack for s in subscriber.subscriptions.values()]
            assert all(dt.transport_cc is not None for dt in downtracks)
            # the aiortc participant did not negotiate it: nothing numbered for it
            alice_downtracks = [
                s.downtrack for s in sfu.peer("alice").subscriber.subscriptions.values()
            ]
            assert all(dt.transport_cc is None for dt in alice_downtracks)

            await wait_for(lambda: len(feedback) >= 20, 15)
            sent = subscriber.transport_cc._seq
            for packet in feedback[:20]:
                _, arrivals = parse_transport_cc(packet)
                assert arrivals
                assert all(0 <= seq < sent + 10 for seq, _ in arrivals)
                received = [at for _, at in arrivals if at is not None]
                assert received == sorted(received) or max(received) - min(received) < 1.0
            # the estimate: non-zero, above what the link carries now, not absurd
            await wait_for(lambda: subscriber.budget_source == "transport-cc", 15)
            estimator = subscriber.transport_cc.estimator
            assert estimator.acked_bitrate is not None
            estimate = subscriber.budget
            assert estimate is not None
            assert 0.8 * estimator.acked_bitrate <= estimate <= 10_000_000
            assert estimate >= 150_000
            report = sfu.stats("room-1")["participants"]["browser"]["bandwidth"]
            print("chromium link:", report, "received bit/s:", estimator.acked_bitrate)
            assert report["source"] == "transport-cc" and report["estimate"] == estimate
            # nothing paused on a loopback link, and both sides still decode
            assert not any(dt.budget_paused for dt in downtracks)
            frames = await page.evaluate("window.inbound()")
            assert any(s["frames"] > 0 for k, s in frames.items() if k.endswith(":video"))
            await wait_for(lambda: alice.mids_for("browser", "camera"), 10)
            received_frames = alice.received_from("browser")
            await wait_for(
                lambda: received_frames.undecodable + len(received_frames.counters) > 20, 10
            )
            assert bridge.errors == [] and alice.errors == []
        finally:
            with contextlib.suppress(Exception):
                await browser.close()


async def test_chromium_restarts_ice_and_video_is_decoded_again(
    interop: tuple[Sfu, BrowserBridge, dict[str, Client], str],
) -> None:
    """`pc.restartIce()` in Chromium: the server answers with new ICE credentials and new
    sockets on the same connection, a new pair is selected, and the video goes on."""
    import time

    from playwright.async_api import async_playwright

    from rtc import aiortc_internals

    sfu, bridge, clients, url = interop
    alice = Client(sfu, "room-1", "alice")
    clients["alice"] = alice
    await alice.join()
    await alice.publish()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                "--allow-loopback-in-peer-connection",
                "--disable-features=WebRtcHideLocalIpsWithMdns",
                "--no-sandbox",
            ],
        )
        try:
            page = await browser.new_page()
            await page.goto(url)
            assert await page.evaluate("window.start()")

            async def frames() -> int:
                stats = await page.evaluate("window.inbound()")
                return max([s["frames"] for k, s in stats.items() if k.endswith(":video")] or [0])

            await wait_for(lambda: _more(frames, 20), 60)
            await wait_for(lambda: alice.mids_for("browser", "camera"), 30)
            received = alice.received_from("browser")

            def alice_frames() -> int:
                # Chromium's fake camera carries no bar code: count decoded frames instead
                return received.undecodable + len(received.counters)

            await wait_for(lambda: alice_frames() > 10, 60)
            before_pair = await page.evaluate("window.selectedPair()")
            server = sfu.peer("browser")
            seen = await frames()
            alice_seen = alice_frames()

            started = time.monotonic()
            result = await page.evaluate("window.restartIce()")
            assert result["before"] != result["after"], result  # new server credentials
            await wait_for(
                lambda: server.ice_restart is not None and server.ice_restart.count == 1, 30
            )
            nominated = time.monotonic() - started
            await wait_for(lambda: _more(frames, seen + 15), 60)
            decoded = time.monotonic() - started
            await wait_for(lambda: alice_frames() > alice_seen + 15, 60)
            assert before_pair is not None

            async def new_pair_selected() -> bool:
                now = await page.evaluate("window.selectedPair()")
                return bool(now and now["remote"] != before_pair["remote"])

            await wait_for(new_pair_selected, 30)
            after_pair = await page.evaluate("window.selectedPair()")
            transport = aiortc_internals.ice_transport(server.pc)
            assert transport is not None
            assert (
                aiortc_internals.selected_pair(transport._connection).local_addr[1]
                == (after_pair["remote"])
            )
            assert server.connection_id == sfu.peer("browser").connection_id
            assert server.pc.connectionState == "connected"
            assert not bridge.errors, bridge.errors
            print(
                f"\nChromium restartIce(): new pair nominated on the server after "
                f"{nominated * 1000:.0f} ms, 15 more frames decoded after {decoded * 1000:.0f} ms"
            )
        finally:
            await browser.close()


async def _more(frames: Any, than: int) -> bool:
    return bool(await frames() >= than)


@contextlib.contextmanager
def _dropped_udp_port(port: int) -> Any:
    """Drop every loopback datagram to or from `port` (Chromium's old ICE socket), as when
    the network it was on goes away: a table of its own, removed afterwards."""
    import shutil
    import subprocess

    if os.geteuid() != 0 or shutil.which("nft") is None:
        pytest.skip("needs root and nft to cut a path")
    table = f"consilium_icerestart_{os.getpid()}"
    rules = (
        f"add table inet {table}\n"
        f"add chain inet {table} c {{ type filter hook input priority 0; }}\n"
        f"add rule inet {table} c iif lo udp dport {port} drop\n"
        f"add rule inet {table} c iif lo udp sport {port} drop\n"
    )
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
    try:
        yield
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], check=False)


async def test_chromium_whose_path_broke_gets_video_back_after_restart_ice(
    interop: tuple[Sfu, BrowserBridge, dict[str, Client], str],
) -> None:
    """Chromium's ICE socket stops passing anything (dropped on `lo`); `restartIce()`
    gathers new sockets, the server restarts ICE on the same connection, video comes back."""
    import time

    from playwright.async_api import async_playwright

    sfu, bridge, clients, url = interop
    alice = Client(sfu, "room-1", "alice")
    clients["alice"] = alice
    await alice.join()
    await alice.publish()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                "--allow-loopback-in-peer-connection",
                "--disable-features=WebRtcHideLocalIpsWithMdns",
                "--no-sandbox",
            ],
        )
        try:
            page = await browser.new_page()
            await page.goto(url)
            assert await page.evaluate("window.start()")

            async def frames() -> int:
                stats = await page.evaluate("window.inbound()")
                return max([s["frames"] for k, s in stats.items() if k.endswith(":video")] or [0])

            await wait_for(lambda: _more(frames, 20), 60)
            pair = await page.evaluate("window.selectedPair()")
            assert pair is not None
            server = sfu.peer("browser")
            with _dropped_udp_port(pair["local"]):
                # the path is dead: no frame for a while
                stalled = await frames()
                cut = time.monotonic()
                await wait_for(lambda: page.evaluate("pc.iceConnectionState !== 'connected'"), 60)
                detected = time.monotonic() - cut
                assert await frames() < stalled + 30
                started = time.monotonic()
                result = await page.evaluate("window.restartIce()")
                assert result["before"] != result["after"], result
                await wait_for(
                    lambda: server.ice_restart is not None and server.ice_restart.count == 1, 30
                )
                nominated = time.monotonic() - started
                back_from = await frames()
                await wait_for(lambda: _more(frames, back_from + 1), 60)
                first = time.monotonic() - started
                await wait_for(lambda: _more(frames, back_from + 15), 60)

                async def new_pair_selected() -> bool:
                    now = await page.evaluate("window.selectedPair()")
                    return bool(now and now["local"] != pair["local"])

                # Chromium may report its selected pair a moment after the media moved
                await wait_for(new_pair_selected, 30)
                after = await page.evaluate("window.selectedPair()")
            assert after["state"] in ("connected", "completed"), after
            assert server is sfu.peer("browser") and server.pc.connectionState == "connected"
            assert not bridge.errors, bridge.errors
            print(
                f"\nChromium path cut: browser saw it after {detected * 1000:.0f} ms; after "
                f"restartIce(): server nominated a new pair {nominated * 1000:.0f} ms, first "
                f"frame decoded again {first * 1000:.0f} ms"
            )
        finally:
            await browser.close()
