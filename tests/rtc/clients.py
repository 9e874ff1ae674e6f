"""Real aiortc participants for the SFU tests, on 127.0.0.1 only.

Each participant publishes synthetic media: a video whose frames carry a counter and a send
timestamp as a bar code of big blocks (decodable after VP8/H.264 loss), and a tone whose level
drives RFC 6464 audio levels. Receivers decode on their side and read the bar code back.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import time
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from rtc import aiortc_internals
from rtc.errors import RtcError
from rtc.sfu import Sfu

WIDTH, HEIGHT = 320, 240
BLOCKS = 16  # per row
ROWS = 6  # counter (2 rows), timestamp (2 rows), inverted counter (2 rows)
FPS = 15
VIDEO_CLOCK = 90000


def encode_bars(counter: int, stamp_ms: int) -> np.ndarray:
    """A gray image whose block rows spell counter, timestamp and ~counter (16 bits a row)."""
    words = [
        counter >> 16,
        counter & 0xFFFF,
        (stamp_ms >> 16) & 0xFFFF,
        stamp_ms & 0xFFFF,
        (~counter >> 16) & 0xFFFF,
        ~counter & 0xFFFF,
    ]
    bits = np.array([[(w >> (15 - i)) & 1 for i in range(BLOCKS)] for w in words], dtype=np.uint8)
    blocks = np.where(bits == 1, 235, 16).astype(np.uint8)
    img = np.kron(blocks, np.ones((HEIGHT // ROWS, WIDTH // BLOCKS), dtype=np.uint8))
    return img


def decode_bars(gray: np.ndarray) -> tuple[int, int] | None:
    """(counter, stamp_ms) read from a decoded frame, None if the check row disagrees."""
    h, w = gray.shape
    bh, bw = h // ROWS, w // BLOCKS
    words = []
    for r in range(ROWS):
        word = 0
        for c in range(BLOCKS):
            y, x = r * bh + bh // 2, c * bw + bw // 2
            value = int(gray[y - 2 : y + 3, x - 2 : x + 3].mean())
            word = (word << 1) | (1 if value > 128 else 0)
        words.append(word)
    counter = (words[0] << 16) | words[1]
    check = (words[4] << 16) | words[5]
    if counter ^ check != 0xFFFFFFFF:
        return None
    return counter, (words[2] << 16) | words[3]


class CounterVideoTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.counter = 0
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self.counter / FPS
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        stamp = int(time.time() * 1000) & 0xFFFFFFFF
        gray = encode_bars(self.counter, stamp)
        frame = av.VideoFrame.from_ndarray(np.stack([gray] * 3, axis=-1), format="rgb24")
        frame.pts = self.counter * (VIDEO_CLOCK // FPS)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.counter += 1
        return frame


class ToneAudioTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, amplitude: float = 0.3) -> None:
        super().__init__()
        self.amplitude = amplitude
        self._samples = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._samples / 48000
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        n = 960
        t = (np.arange(n) + self._samples) / 48000
        wave = (np.sin(2 * math.pi * 440 * t) * self.amplitude * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, 48000)
        self._samples += n
        return frame


@dataclass
class Received:
    """What a participant decoded from one incoming video m-line."""

    counters: list[int] = field(default_factory=list)
    delays_ms: list[float] = field(default_factory=list)
    first_frame_at: float | None = None
    undecodable: int = 0
    #: monotonic time of each decoded frame (freeze measurements)
    times: list[float] = field(default_factory=list)
    #: size of the last decoded frame (simulcast layers), and frames decoded in all
    last_size: tuple[int, int] | None = None
    frames: int = 0


class Client:
    """One participant: an aiortc peer connection driven through the Sfu API in-process.

    It follows docs/rtc.md, "Negotiation: who offers": every negotiation runs under
    ``self.lock``, one at a time; its own offers when it publishes; the server's offer pulled
    (``pull_offer``) after ``rtc:renegotiate`` or an acknowledgement that says
    ``renegotiate``, and answered before anything else. No rollback (aiortc has none).
    Subclasses replace the four ``_send_*`` methods to signal over another transport.
    """

    def __init__(self, sfu: Sfu, room_id: str, participant_id: str) -> None:
        self.sfu = sfu
        self.room_id = room_id
        self.id = participant_id
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.lock = asyncio.Lock()
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.labels: dict[str, dict[str, Any]] = {}  # mid -> track info from the server
        self.video: dict[str, Received] = {}  # mid -> decoded frames
        self.published: dict[str, RTCRtpTransceiver] = {}  # source -> transceiver
        self.tracks: dict[str, MediaStreamTrack] = {}
        self.answered_at: float | None = None
        self.connection_id: str | None = None
        #: the code of every error acknowledgement this client got, in order
        self.errors: list[str] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._pull_task: asyncio.Task[None] | None = None
        self._pull_again = False
        self.ice_restart: aiortc_internals.IceRestart | None = None
        self.pc.on("track", self._on_track)

    # --- transport (overridden to signal over Socket.IO) ------------------------------------

    async def _send_join(self, name: str) -> dict[str, Any]:
        return await self.sfu.join(self.room_id, self.id, name)

    async def _send_offer(self, sdp: str, sources: dict[str, str]) -> dict[str, Any]:
        return await self.sfu.handle_offer(self.id, sdp, "offer", sources=sources)

    async def _send_pull(self) -> dict[str, Any] | None:
        return await self.sfu.pull_offer(self.id)

    async def _send_answer(self, sdp: str) -> dict[str, Any]:
        return await self.sfu.handle_answer(self.id, sdp, "answer")

    async def _signal(self, call: Any) -> Any:
        try:
            return await call
        except RtcError as e:
            self.errors.append(e.code)
            raise

    # --- signalling -------------------------------------------------------------------------

    async def join(self, name: str | None = None, *, pull: bool = True) -> dict[str, Any]:
        """`rtc:join`; with `pull=False` the server's first offer is left for later (the
        next negotiation's acknowledgement says `renegotiate` again)."""
        ack = await self._signal(self._send_join(name or self.id))
        self.connection_id = ack.get("connection_id")
        if ack.get("renegotiate") and pull:
            self.want_offer()
        return ack  # type: ignore[no-any-return]

    async def publish(
        self,
        *,
        camera: bool = True,
        audio: bool = True,
        screen: bool = False,
        codec: str = "VP8",
        amplitude: float = 0.3,
    ) -> None:
        wanted = [("camera", camera), ("screen", screen), ("audio", audio)]
        async with self.lock:
            # Added and offered in one step of the queue: aiortc would bind a transceiver
            # that has no mid yet to a new m-line of the server's next offer (browsers only
            # do that for addTrack's), and then offer on the server's m-line.
            for source, on in wanted:
                if not on or source in self.published:
                    continue
                track: MediaStreamTrack = (
                    ToneAudioTrack(amplitude) if source == "audio" else CounterVideoTrack()
                )
                transceiver = self.pc.addTransceiver(track, direction="sendonly")
                if track.kind == "video":
                    caps = RTCRtpSender.getCapabilities("video").codecs
                    transceiver.setCodecPreferences([c for c in caps if c.name == codec])
                self.published[source] = transceiver
                self.tracks[source] = track
            answer = await self._offer()
        self._after(answer)

    async def stop_publishing(self, source: str) -> None:
        async with self.lock:
            transceiver = self.published.pop(source)
            transceiver.direction = "inactive"
            answer = await self._offer()
        self._after(answer)

    async def negotiate(self) -> dict[str, Any]:
        """Offer what this client publishes now; a server offer to pull comes after."""
        async with self.lock:
            answer = await self._offer()
        self._after(answer)
        return answer

    async def _offer(self) -> dict[str, Any]:
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        sources = {t.mid: s for s, t in self.published.items() if t.mid is not None}
        answer = await self._signal(self._send_offer(self.pc.localDescription.sdp, sources))
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        return answer  # type: ignore[no-any-return]

    async def restart_ice(self, *, lose_old_path: bool = False) -> asyncio.Task[bool]:
        """What a browser's `restartIce()` does, on this aiortc client: new ICE credentials
        and new sockets (new local ports), offered in one negotiation; returns the task that
        ends when a new pair is nominated (True) or the restart failed (False).

        `lose_old_path`: the old sockets close first, as when the network the client was on
        goes away (Wi-Fi to 4G): nothing reaches the old address any more.
        """
        async with self.lock:
            if self.ice_restart is None:
                transport = aiortc_internals.ice_transport(self.pc)
                assert transport is not None
                self.ice_restart = aiortc_internals.IceRestart(transport)
            restart = self.ice_restart
            old = restart.previous or restart.connection._nominated.get(1)
            await restart.prepare()
            if lose_old_path and old is not None:
                old.protocol.transport.close()
            answer = await self._offer()
            ice = next(
                m.ice
                for m in aiortc_internals.SessionDescription.parse(answer["sdp"]).media
                if m.ice is not None
            )
            task = restart.start(ice.usernameFragment, ice.password, ice.iceLite)
        self._after(answer)
        return task

    def _after(self, ack: dict[str, Any]) -> None:
        if ack.get("renegotiate"):
            self.want_offer()

    def on_event(self, event: str, payload: dict[str, Any]) -> None:
        self.events.append((event, payload))
        # a notice may come before the acknowledgement of `rtc:join` names the connection
        about = payload.get("connection_id") if isinstance(payload, dict) else None
        if event == "rtc:renegotiate" and (
            about is None or self.connection_id is None or about == self.connection_id
        ):
            self.want_offer()

    def want_offer(self) -> None:
        """Pull the server's offer once the negotiation under way (if any) is done."""
        self._pull_again = True
        if self._pull_task is None or self._pull_task.done():
            self._pull_task = asyncio.create_task(self._pull())
            self._tasks.append(self._pull_task)

    @property
    def pulling(self) -> bool:
        return self._pull_task is not None and not self._pull_task.done()

    async def _pull(self) -> None:
        while self._pull_again:
            self._pull_again = False
            async with self.lock:
                if self.pc.signalingState == "closed":
                    return
                offer = await self._signal(self._send_pull())
                if offer is None:
                    continue
                # the server lists every m-line it currently sends: older labels are stale
                self.labels = {info["mid"]: info for info in offer.get("tracks", [])}
                await self.pc.setRemoteDescription(
                    RTCSessionDescription(sdp=offer["sdp"], type="offer")
                )
                await self._set_local_answer(await self.pc.createAnswer())
                ack = await self._signal(self._send_answer(self.pc.localDescription.sdp))
                self.answered_at = time.monotonic()
            if ack.get("renegotiate"):
                self._pull_again = True

    async def _set_local_answer(self, answer: RTCSessionDescription) -> None:
        await self.pc.setLocalDescription(answer)

    # --- receiving --------------------------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        mid = next((t.mid for t in self.pc.getTransceivers() if t.receiver.track is track), None)
        if mid is None:
            return
        if track.kind == "video":
            received = self.video.setdefault(mid, Received())
            self._tasks.append(asyncio.create_task(self._read_video(track, received)))
        else:
            self._tasks.append(asyncio.create_task(self._drain(track)))

    async def _read_video(self, track: MediaStreamTrack, received: Received) -> None:
        await read_video(track, received)

    async def _drain(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()

    def mids_for(self, participant_id: str, source: str) -> list[str]:
        return [
            mid
            for mid, info in self.labels.items()
            if info["participant_id"] == participant_id and info["source"] == source
        ]

    def decoded(self, participant_id: str, source: str = "camera") -> int:
        """Frames decoded so far from that participant's source (0 before it is labelled)."""
        return len(self.decoded_counters(participant_id, source))

    def decoded_counters(self, participant_id: str, source: str = "camera") -> list[int]:
        """The counters decoded on that participant's source's m-line ([] before labelled)."""
        mids = self.mids_for(participant_id, source)
        return self.video[mids[-1]].counters if mids and mids[-1] in self.video else []

    def received_from(self, participant_id: str, source: str = "camera") -> Received:
        mids = self.mids_for(participant_id, source)
        assert mids, f"{self.id} has no {source} m-line from {participant_id}: {self.labels}"
        return self.video.setdefault(mids[-1], Received())

    async def packets_received(self, mid: str) -> int:
        for transceiver in self.pc.getTransceivers():
            if transceiver.mid == mid:
                report = await transceiver.receiver.getStats()
                return sum(s.packetsReceived for s in report.values() if s.type == "inbound-rtp")
        raise KeyError(mid)

    async def close(self) -> None:
        if self.ice_restart is not None:
            await self.ice_restart.close()
        for task in self._tasks:
            task.cancel()
        for track in self.tracks.values():
            track.stop()
        await self.pc.close()


class Harness:
    """An Sfu and its clients; events go straight to the target client (or all of them)."""

    def __init__(self, sfu_factory: Any) -> None:
        self.clients: dict[str, Client] = {}
        self.room_events: list[tuple[str, dict[str, Any]]] = []
        self.sfu: Sfu = sfu_factory(self._on_event)

    def _on_event(
        self, room_id: str, target: str | None, event: str, payload: dict[str, Any]
    ) -> None:
        if target is None:
            self.room_events.append((event, payload))
            for client in list(self.clients.values()):
                client.on_event(event, payload)
        elif target in self.clients:
            self.clients[target].on_event(event, payload)

    async def add(self, participant_id: str, room_id: str = "room-1") -> Client:
        client = Client(self.sfu, room_id, participant_id)
        self.clients[participant_id] = client
        await client.join()
        return client

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until every negotiation (server offers included) is finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            busy = False
            for client in self.clients.values():
                if client.lock.locked() or client.pulling:
                    busy = True
                try:
                    peer = self.sfu.peer(client.id)
                except RtcError:
                    continue
                if peer.negotiating:
                    busy = True
            if not busy:
                return
        raise AssertionError("negotiations did not settle")

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()
        await self.sfu.close()


async def wait_for(predicate: Any, timeout: float, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(interval)
    raise AssertionError("condition not met in time")


async def wait_decoded(
    pairs: list[tuple[Client, str]], minimum: int, timeout: float = 30.0
) -> None:
    """Until each (receiver, publisher id) pair has decoded ``minimum`` frames: a count, not
    a duration, so a busy machine makes the test slower, not red."""

    def enough() -> bool:
        return all(c.decoded(p) >= minimum for c, p in pairs)

    # on timeout, the assertions that follow say which pair fell short
    with contextlib.suppress(AssertionError):
        await wait_for(enough, timeout)


async def read_video(track: MediaStreamTrack, received: Received) -> None:
    """Decode `track` until it ends, reading each frame's bar code into `received`."""
    with contextlib.suppress(MediaStreamError):
        while True:
            frame = await track.recv()
            now = time.monotonic()
            if received.first_frame_at is None:
                received.first_frame_at = now
            received.last_size = (frame.width, frame.height)  # type: ignore[union-attr]
            received.frames += 1
            gray = frame.to_ndarray(format="gray")  # type: ignore[union-attr]
            decoded = decode_bars(gray) if gray.shape == (HEIGHT, WIDTH) else None
            if decoded is None:
                received.undecodable += 1
                continue
            counter, stamp = decoded
            received.counters.append(counter)
            received.times.append(now)
            now_ms = int(time.time() * 1000) & 0xFFFFFFFF
            received.delays_ms.append((now_ms - stamp) & 0xFFFFFFFF)
