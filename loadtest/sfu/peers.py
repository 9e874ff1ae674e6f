"""Load-generator participants: aiortc for ICE and DTLS-SRTP only, then raw RTP.

A `Participant` negotiates one `RTCPeerConnection` through a `Signal` (the real server's
Socket.IO events in `loadtest.sfu.product`, or the JSON lines of the in-process relay
baseline in `loadtest.sfu.server`), following the pull order of docs/rtc.md. Once DTLS is
up, aiortc's senders and receivers are out of the way (`rtc.aiortc_internals`
`intercept_sender` / `intercept_receiver`): what it publishes is pre-encoded VP8 and Opus
payloads (`loadtest.sfu.media`) stamped with a fresh RTP header and protected with the
negotiated pylibsrtp session (`TransportWriter`: one `srtp_protect` and one `sendto`), and
what it receives is counted per SSRC from the clear RTP header of the SRTP datagrams in the
socket callback (`taps.intercept_srtp_datagrams`): never decrypted, parsed or decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCDtlsTransport,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters, RTCRtpSendParameters

from loadtest.sfu import taps
from loadtest.sfu.media import EncodedMedia
from rtc import aiortc_internals

_HEADER = struct.Struct("!BBHII")
_EXT_LEVEL = struct.Struct("!HHBBH")
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


class Signal(Protocol):
    """One participant's signalling channel (acks already checked: errors raise)."""

    async def join(self) -> dict[str, Any]: ...

    async def offer(self, sdp: str, sources: dict[str, str]) -> dict[str, Any]: ...

    async def pull(self) -> dict[str, Any] | None: ...

    async def answer(self, sdp: str) -> dict[str, Any]: ...


@dataclass(slots=True)
class StreamCount:
    packets: int = 0
    first_seq: int = -1
    last_seq: int = -1
    cycles: int = 0
    last_ts: int = -1

    @property
    def expected(self) -> int:
        return self.cycles + self.last_seq - self.first_seq + 1


@dataclass(slots=True)
class Outgoing:
    writer: aiortc_internals.TransportWriter
    ssrc: int
    payload_type: int
    ext_id: int = 0
    seq: int = 0
    ts: int = 0


@dataclass
class Shared:
    sent_at: dict[int, float] = field(default_factory=dict)  # rtp timestamp -> send time
    measuring: bool = False
    latency: bool = True  # map frames back to their send time (disjoint timestamp ranges)
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)  # the load generator's own loop lag


async def loop_lag(shared: Shared, stop: asyncio.Event) -> None:
    """How late a 5 ms timer fires in the load generator: its own share of the latency."""
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(0.005)
        if shared.measuring:
            shared.lags.append(time.perf_counter() - t0 - 0.005)


class Participant:
    def __init__(self, index: int, signal: Signal, shared: Shared) -> None:
        self.index = index
        self.signal = signal
        self.shared = shared
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.lock = asyncio.Lock()
        self.video: Outgoing | None = None
        self.audio: Outgoing | None = None
        self.streams: dict[int, StreamCount] = {}
        self.hooked: set[int] = set()
        self.answered = 0
        self.closed = False
        self.tasks: set[asyncio.Task[Any]] = set()

    async def join(self) -> None:
        joined = await self.signal.join()
        if joined.get("renegotiate"):  # the SFU has an offer for us: pull it
            await self.pull()

    async def publish(self) -> None:
        async with self.lock:  # transceivers are added in the step of the offer carrying them
            for kind in ("video", "audio"):
                transceiver = self.pc.addTransceiver(kind, direction="sendonly")
                aiortc_internals.intercept_sender(
                    transceiver.sender, self._sending(kind, transceiver)
                )
            self._intercept_receivers()
            await self.pc.setLocalDescription(await self.pc.createOffer())
            sources = {
                t.mid: ("camera" if t.kind == "video" else "audio")
                for t in self.pc.getTransceivers()
                if t.mid is not None and t.direction == "sendonly"
            }
            answer = await self.signal.offer(self.pc.localDescription.sdp, sources)
            await self.pc.setRemoteDescription(
                RTCSessionDescription(sdp=answer["sdp"], type=answer["type"])
            )
        if answer.get("renegotiate"):  # the SFU has an offer for us: pull it (docs/rtc.md)
            await self.pull()

    def on_renegotiate(self) -> None:
        """`rtc:renegotiate`: pull the server's offer once what is under way is done."""
        if self.closed:
            return
        task = asyncio.get_running_loop().create_task(self._pull_quietly())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _pull_quietly(self) -> None:
        with contextlib.suppress(RuntimeError, ConnectionError):  # the server went away
            await self.pull()

    def on_offer(self, payload: dict[str, Any]) -> None:
        """The relay baseline offers by itself (`rtc:offer` pushed)."""
        if self.closed:
            return

        async def answer() -> None:
            with contextlib.suppress(RuntimeError, ConnectionError):
                async with self.lock:
                    await self._apply(payload)

        task = asyncio.get_running_loop().create_task(answer())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _sending(self, kind: str, transceiver: Any) -> Any:
        def on_send(parameters: RTCRtpSendParameters, transport: RTCDtlsTransport) -> Any:
            writer = aiortc_internals.TransportWriter(transport)
            writer.bind()
            ext_id = next(
                (e.id for e in parameters.headerExtensions if e.uri == AUDIO_LEVEL_URI), 0
            )
            out = Outgoing(
                writer,
                aiortc_internals.sender_ssrc(transceiver.sender),
                parameters.codecs[0].payloadType or 0,
                ext_id if kind == "audio" else 0,
                seq=(self.index * 1000) & 0xFFFF,
                # disjoint timestamp ranges, so a frame maps back to its send time
                ts=((self.index * 2 + (kind == "audio")) << 26) & 0xFFFFFFFF,
            )
            if kind == "video":
                self.video = out
            else:
                self.audio = out
            self._hook_receive(transport)
            return _Quiet(out.ssrc)

        return on_send

    def _intercept_receivers(self) -> None:
        for transceiver in self.pc.getTransceivers():
            if id(transceiver) in self.hooked:
                continue
            self.hooked.add(id(transceiver))

            def on_receive(parameters: RTCRtpReceiveParameters, transport: RTCDtlsTransport) -> Any:
                self._hook_receive(transport)
                return _Quiet(0)

            aiortc_internals.intercept_receiver(transceiver.receiver, on_receive)

    def _hook_receive(self, transport: RTCDtlsTransport) -> None:
        if id(transport) in self.hooked:
            return
        if taps.intercept_srtp_datagrams(transport, self._on_rtp):
            self.hooked.add(id(transport))
        # not connected yet: the next receive()/send() of aiortc, after DTLS, hooks it

    def _on_rtp(self, data: bytes) -> None:
        shared = self.shared
        if not shared.measuring:
            return
        _, _, seq, ts, ssrc = _HEADER.unpack_from(data)
        stream = self.streams.get(ssrc)
        if stream is None:
            stream = self.streams[ssrc] = StreamCount(first_seq=seq, last_seq=seq)
        else:
            delta = (seq - stream.last_seq) & 0xFFFF
            if 0 < delta < 0x8000:
                if seq < stream.last_seq:
                    stream.cycles += 0x10000
                stream.last_seq = seq
        stream.packets += 1
        if shared.latency and ts != stream.last_ts:
            stream.last_ts = ts
            sent = shared.sent_at.get(ts)
            if sent is not None:
                shared.latencies.append(time.monotonic() - sent)

    async def pull(self) -> None:
        while True:
            async with self.lock:
                offer = await self.signal.pull()
                if not offer:
                    return
                ack = await self._apply(offer)
            if not ack.get("renegotiate"):
                return

    async def _apply(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=payload["sdp"], type="offer"))
        self._intercept_receivers()
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        ack = await self.signal.answer(self.pc.localDescription.sdp)
        self.answered += 1
        return ack or {}

    @property
    def sending(self) -> bool:
        return all(o is not None and o.writer.rtp is not None for o in (self.video, self.audio))

    def rebind(self) -> None:
        """Writers whose transport was not connected yet when aiortc called send()."""
        for out in (self.video, self.audio):
            if out is not None and out.writer.rtp is None:
                out.writer.bind()
        for transceiver in self.pc.getTransceivers():
            transport = transceiver.receiver.transport
            if transport is not None:
                self._hook_receive(transport)

    def send_video(self, payloads: list[bytes], now: float) -> None:
        out = self.video
        if out is None or out.writer.rtp is None:
            return
        if self.shared.latency:
            self.shared.sent_at[out.ts] = now
        write = out.writer.rtp
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            marker_pt = out.payload_type | (0x80 if i == last else 0)
            write(_HEADER.pack(0x80, marker_pt, out.seq, out.ts, out.ssrc) + payload)
            out.seq = (out.seq + 1) & 0xFFFF
        out.ts = (out.ts + 3000) & 0xFFFFFFFF

    def send_audio(self, payload: bytes, now: float) -> None:
        out = self.audio
        if out is None or out.writer.rtp is None:
            return
        if self.shared.latency:
            self.shared.sent_at[out.ts] = now
        if out.ext_id:
            ext = _EXT_LEVEL.pack(0xBEDE, 1, out.ext_id << 4, 30 + self.index % 60, 0)
            data = _HEADER.pack(0x90, out.payload_type, out.seq, out.ts, out.ssrc) + ext + payload
        else:
            data = _HEADER.pack(0x80, out.payload_type, out.seq, out.ts, out.ssrc) + payload
        out.writer.rtp(data)
        out.seq = (out.seq + 1) & 0xFFFF
        out.ts = (out.ts + 960) & 0xFFFFFFFF

    def reset_counts(self) -> None:
        self.streams.clear()

    async def close(self) -> None:
        self.closed = True
        for out in (self.video, self.audio):
            if out is not None:
                out.writer.unbind()
        for task in list(self.tasks):
            task.cancel()
        await self.pc.close()


class _Quiet:
    """RTCP sink for our intercepted senders and receivers: the benchmark ignores feedback."""

    def __init__(self, ssrc: int) -> None:
        self._ssrc = ssrc

    async def _handle_rtcp_packet(self, packet: Any) -> None:
        return None

    async def _handle_rtp_packet(self, packet: Any, arrival_time_ms: int) -> None:
        return None

    def _handle_disconnect(self) -> None:
        return None


async def pace(
    participants: list[Participant], media: EncodedMedia, stop: asyncio.Event, aligned: bool
) -> None:
    """Real-time replay, one pacer per publisher (e-Staff rooms: a few publishers).

    Independent cameras are neither phase-locked nor GOP-aligned: publisher k of n starts its
    frame clock k/n of a frame period later and its replay k/n of a GOP further on, so the 12
    keyframes of a second are spread over it rather than all sent in the same millisecond.
    `aligned` keeps the old worst case: every publisher sends the same frame at the same time.
    """
    n = len(participants)
    start = time.monotonic() + 0.05
    await asyncio.gather(
        *(
            _pace_one(
                p, media, stop, start, 0.0 if aligned else k / n, 0 if aligned else k * 30 // n
            )
            for k, p in enumerate(participants)
        )
    )


async def _pace_one(
    p: Participant,
    media: EncodedMedia,
    stop: asyncio.Event,
    start: float,
    phase: float,
    first_frame: int,
) -> None:
    video_i = audio_i = 0
    video_start = start + phase / 30
    audio_start = start + phase / 50
    sent_at = p.shared.sent_at
    while not stop.is_set():
        next_video = video_start + video_i / 30
        next_audio = audio_start + audio_i / 50
        delay = min(next_video, next_audio) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        now = time.monotonic()
        if next_video <= now:
            p.send_video(media.video[(first_frame + video_i) % len(media.video)], now)
            video_i += 1
        if next_audio <= now:
            p.send_audio(media.audio[audio_i % len(media.audio)], now)
            audio_i += 1
        if len(sent_at) > 200_000:
            sent_at.clear()


class Pacer:
    """Real-time replay for many publishers from one timer (1:1 calls: hundreds of them).

    One asyncio sleep per publisher and per packet would cost the load generator more than
    the packets; here one 5 ms tick sends every frame that fell due, each publisher on its own
    phase (a random camera clock) and its own place in the GOP.
    """

    TICK = 0.005

    def __init__(self, media: EncodedMedia) -> None:
        self.media = media
        self.entries: list[list[Any]] = []  # [participant, next_video, next_audio, vi, ai]
        self.missed = 0  # frames sent more than a tick late (the generator fell behind)
        self.paused = False  # calls stay up, no media (the server's fixed cost alone)

    def add(self, p: Participant, phase: float) -> None:
        now = time.monotonic()
        first = int(phase * len(self.media.video)) % len(self.media.video)
        self.entries.append([p, now + phase / 30, now + phase / 50, first, 0])

    async def run(self, stop: asyncio.Event) -> None:
        video, audio = self.media.video, self.media.audio
        nv, na = len(video), len(audio)
        while not stop.is_set():
            await asyncio.sleep(self.TICK)
            now = time.monotonic()
            if self.paused:
                for e in self.entries:  # resume on schedule, without a burst
                    e[1], e[2] = max(e[1], now), max(e[2], now)
                continue
            for e in self.entries:
                p = e[0]
                while e[1] <= now:
                    if now - e[1] > 2 * self.TICK:
                        self.missed += 1
                    p.send_video(video[e[3] % nv], now)
                    e[3] += 1
                    e[1] += 1 / 30
                while e[2] <= now:
                    p.send_audio(audio[e[4] % na], now)
                    e[4] += 1
                    e[2] += 1 / 50
