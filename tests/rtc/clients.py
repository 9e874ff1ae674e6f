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


class Client:
    """One participant: an aiortc peer connection driven through the Sfu API in-process."""

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
        self._tasks: list[asyncio.Task[Any]] = []
        self.pc.on("track", self._on_track)

    # --- signalling -------------------------------------------------------------------------

    async def join(self, name: str | None = None) -> dict[str, Any]:
        return await self.sfu.join(self.room_id, self.id, name or self.id)

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
        await self.negotiate()

    async def stop_publishing(self, source: str) -> None:
        transceiver = self.published.pop(source)
        transceiver.direction = "inactive"
        await self.negotiate()

    async def negotiate(self) -> dict[str, str]:
        async with self.lock:
            offer = await self.pc.createOffer()
            await self.pc.setLocalDescription(offer)
            sources = {t.mid: s for s, t in self.published.items() if t.mid is not None}
            try:
                answer = await self.sfu.handle_offer(
                    self.id, self.pc.localDescription.sdp, "offer", sources=sources
                )
            except RtcError:
                raise
            await self.pc.setRemoteDescription(
                RTCSessionDescription(sdp=answer["sdp"], type=answer["type"])
            )
            return answer

    def on_event(self, event: str, payload: dict[str, Any]) -> None:
        self.events.append((event, payload))
        if event == "rtc:offer":
            self._tasks.append(asyncio.create_task(self._answer(payload)))

    async def _answer(self, payload: dict[str, Any]) -> None:
        async with self.lock:
            # the server lists every m-line it currently sends: older labels are stale
            self.labels = {info["mid"]: info for info in payload.get("tracks", [])}
            await self.pc.setRemoteDescription(
                RTCSessionDescription(sdp=payload["sdp"], type="offer")
            )
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
            await self.sfu.handle_answer(self.id, self.pc.localDescription.sdp, "answer")
            self.answered_at = time.monotonic()

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
                if client.lock.locked() or any(
                    not t.done() for t in client._tasks[-3:] if t.get_coro().__name__ == "_answer"
                ):
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
        return all(len(c.received_from(p).counters) >= minimum for c, p in pairs)

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
