"""SFU benchmark: an e-Staff room of N participants, every one publishing and subscribing.

    python -m loadtest.sfu.bench_sfu --participants 2,4,8,12 --seconds 20

Publishers replay pre-encoded VP8 (~1 Mbit/s, 30 fps) and Opus (20 ms) with real-time pacing;
subscribers count and timestamp the RTP they receive without decrypting, parsing or decoding
it (the RTP header is in clear in SRTP: the socket callback reads SSRC, sequence number and
timestamp and returns). The
server runs in its own process (loadtest/sfu/server.py) and its CPU time is read from
/proc/<pid>/stat over the measured window. The same room then goes through a naive aiortc
MediaRelay server (decode once, encode per subscriber) as the baseline.

Latency: publishers give each stream a disjoint range of RTP timestamps; the server keeps
timestamps (it rewrites SSRC and sequence numbers), so a subscriber maps the first packet of
each frame back to the moment the publisher sent it (same process, same clock). It measures
the server plus both loopback hops plus the load generator's own scheduling delay.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCDtlsTransport,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters, RTCRtpSendParameters

from loadtest.sfu import taps
from loadtest.sfu.media import EncodedMedia, load_media
from rtc import aiortc_internals

CLK_TCK = os.sysconf("SC_CLK_TCK")
_HEADER = struct.Struct("!BBHII")
_EXT_LEVEL = struct.Struct("!HHBBH")
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


def runqueue_wait(pid: int) -> float:
    """Seconds the process was runnable but waiting for a CPU (other load on the machine)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as f:
            total += int(f.read().split()[1])
    return total / 1e9


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


# --- signalling with the server process ------------------------------------------------------


class Signalling:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.handlers: dict[str, Any] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.task = asyncio.create_task(self._read())

    async def call(self, method: str, **params: Any) -> Any:
        request_id = next(self.ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        message = {"id": request_id, "method": method, "params": params}
        self.writer.write((json.dumps(message) + "\n").encode())
        return await future

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self._read_lines()

    async def _read_lines(self) -> None:
        while line := await self.reader.readline():
            message = json.loads(line)
            if "event" in message:
                handler = self.handlers.get(message["target"])
                if handler is not None:
                    task = asyncio.create_task(handler(message["event"], message["payload"]))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
            else:
                future = self.pending.pop(message["id"])
                if "error" in message:
                    future.set_exception(RuntimeError(message["error"]))
                else:
                    future.set_result(message.get("result"))


# --- participants ----------------------------------------------------------------------------


@dataclass
class StreamCount:
    packets: int = 0
    first_seq: int = -1
    last_seq: int = -1
    cycles: int = 0
    last_ts: int = -1


@dataclass
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
    def __init__(self, index: int, signalling: Signalling, shared: Shared) -> None:
        self.index = index
        self.id = f"p{index:02d}"
        self.signalling = signalling
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
        signalling.handlers[self.id] = self.on_event

    async def join(self) -> None:
        joined = await self.signalling.call("join", participant=self.id)
        if (joined or {}).get("renegotiate"):  # the SFU has an offer for us: pull it
            await self._pull()

    async def publish(self) -> None:
        for kind in ("video", "audio"):
            transceiver = self.pc.addTransceiver(kind, direction="sendonly")
            aiortc_internals.intercept_sender(transceiver.sender, self._sending(kind, transceiver))
        self._intercept_receivers()
        async with self.lock:
            await self.pc.setLocalDescription(await self.pc.createOffer())
            answer = await self.signalling.call(
                "offer", participant=self.id, sdp=self.pc.localDescription.sdp
            )
            await self.pc.setRemoteDescription(
                RTCSessionDescription(sdp=answer["sdp"], type=answer["type"])
            )
        if answer.get("renegotiate"):  # the SFU has an offer for us: pull it (docs/rtc.md)
            await self._pull()

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
                seq=self.index * 1000,
                ts=(self.index * 2 + (kind == "audio")) << 26,  # disjoint timestamp ranges
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
        self.hooked.add(id(transport))
        if not taps.intercept_srtp_datagrams(transport, self._on_rtp):
            taps.intercept_rtp_data(transport, lambda data, ms: self._on_rtp(data))

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
        if ts != stream.last_ts:
            stream.last_ts = ts
            sent = shared.sent_at.get(ts)
            if sent is not None:
                shared.latencies.append(time.monotonic() - sent)

    async def on_event(self, event: str, payload: dict[str, Any]) -> None:
        if self.closed:
            return
        with contextlib.suppress(RuntimeError, ConnectionError):  # the server went away
            if event == "rtc:offer":  # the relay baseline offers by itself
                await self._answer(payload)
            elif event == "rtc:renegotiate":  # the SFU: pull its offer when ready
                await self._pull()

    async def _pull(self) -> None:
        while True:
            async with self.lock:
                offer = (await self.signalling.call("pull", participant=self.id))["offer"]
                if not offer:
                    return
                ack = await self._apply(offer)
            if not (ack or {}).get("renegotiate"):
                return

    async def _answer(self, payload: dict[str, Any]) -> None:
        async with self.lock:
            await self._apply(payload)

    async def _apply(self, payload: dict[str, Any]) -> Any:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=payload["sdp"], type="offer"))
        self._intercept_receivers()
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        ack = await self.signalling.call(
            "answer", participant=self.id, sdp=self.pc.localDescription.sdp
        )
        self.answered += 1
        return ack

    def send_video(self, payloads: list[bytes], now: float) -> None:
        out = self.video
        if out is None or out.writer.rtp is None:
            return
        self.shared.sent_at[out.ts] = now
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            marker_pt = out.payload_type | (0x80 if i == last else 0)
            out.writer.rtp(_HEADER.pack(0x80, marker_pt, out.seq, out.ts, out.ssrc) + payload)
            out.seq = (out.seq + 1) & 0xFFFF
        out.ts = (out.ts + 3000) & 0xFFFFFFFF

    def send_audio(self, payload: bytes, now: float) -> None:
        out = self.audio
        if out is None or out.writer.rtp is None:
            return
        self.shared.sent_at[out.ts] = now
        if out.ext_id:
            ext = _EXT_LEVEL.pack(0xBEDE, 1, out.ext_id << 4, 30 + self.index, 0)
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
    """Real-time replay, one pacer per publisher.

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


# --- one run ---------------------------------------------------------------------------------


@dataclass
class Result:
    mode: str
    participants: int
    seconds: float
    cpu: float
    packets: int
    expected: int
    latencies: list[float]
    forwarded_tracks: int
    received_tracks: int
    generator_cpu: float
    loadavg: str
    server_wait: float
    generator_lags: list[float]
    probes: dict[str, Any]

    def row(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(q: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 2) if lat else None

        track_seconds = self.forwarded_tracks * self.seconds
        return {
            "mode": self.mode,
            "N": self.participants,
            "tracks": f"{self.forwarded_tracks // 2}v+{self.forwarded_tracks // 2}a",
            "receiving": self.received_tracks,
            "pkts/s": round(self.packets / self.seconds),
            "cpu %core": round(100 * self.cpu / self.seconds, 1),
            "cpu s/track-s": round(self.cpu / track_seconds, 5) if track_seconds else None,
            "us/pkt": round(self.cpu / self.packets * 1e6, 1) if self.packets else None,
            "loss %": round(100 * (1 - self.packets / self.expected), 2) if self.expected else None,
            "p50 ms": pct(0.5),
            "p99 ms": pct(0.99),
            "loadgen %core": round(100 * self.generator_cpu / self.seconds, 1),
            "loadavg": self.loadavg,
            # share of the window the SFU was runnable but had no CPU: other processes
            "srv runq %": round(100 * self.server_wait / self.seconds, 1),
            # the server's own share: socket callback entry to the last copy's sendto
            "srv res p50/p99 ms": f"{self.probes.get('residence_p50_ms')}"
            f"/{self.probes.get('residence_p99_ms')}",
            "srv lag p99 ms": self.probes.get("lag_p99_ms"),
            "gen lag p99 ms": round(
                sorted(self.generator_lags)[int(0.99 * (len(self.generator_lags) - 1))] * 1000, 2
            )
            if self.generator_lags
            else None,
        }


async def run(
    mode: str, n: int, seconds: float, media: EncodedMedia, profile: str | None, aligned: bool
) -> Result:
    args = [sys.executable, "-m", "loadtest.sfu.server", "--mode", mode]
    if profile:
        args += ["--profile", profile]
    process = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
    try:
        return await _measure(process, mode, n, seconds, media, profile, aligned)
    finally:
        if process.returncode is None:  # never leave a server behind, even on failure
            process.kill()
            await process.wait()


async def _measure(
    process: asyncio.subprocess.Process,
    mode: str,
    n: int,
    seconds: float,
    media: EncodedMedia,
    profile: str | None,
    aligned: bool,
) -> Result:
    assert process.stdout is not None
    ready = (await process.stdout.readline()).decode().split()
    port = int(ready[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    signalling = Signalling(reader, writer)
    shared = Shared()
    participants = [Participant(i, signalling, shared) for i in range(n)]
    stop = asyncio.Event()
    pacer = asyncio.create_task(pace(participants, media, stop, aligned))
    lag_probe = asyncio.create_task(loop_lag(shared, stop))
    try:
        for p in participants:  # one at a time, to measure a settled room
            await p.join()  # pulls the SFU's offer of what the room already publishes
            await settle(signalling, participants)
            await p.publish()
            await settle(signalling, participants)
        await asyncio.sleep(2.5)  # every subscriber past its first keyframe
        for p in participants:
            p.reset_counts()
        shared.latencies.clear()
        if profile:
            await signalling.call("profile", on=True)
        await signalling.call("probes", on=True)
        shared.measuring = True
        cpu0, t0, gen0 = cpu_seconds(process.pid), time.monotonic(), cpu_seconds(os.getpid())
        wait0 = runqueue_wait(process.pid)
        await asyncio.sleep(seconds)
        shared.measuring = False
        probes = await signalling.call("probes", on=False)
        cpu1, t1, gen1 = cpu_seconds(process.pid), time.monotonic(), cpu_seconds(os.getpid())
        wait1 = runqueue_wait(process.pid)
        with open("/proc/loadavg") as f:
            loadavg = f.read().split()[0]  # other processes on the machine skew latency
        if profile:
            await signalling.call("profile", on=False)
    finally:
        stop.set()
        await pacer
        await lag_probe
    packets = sum(s.packets for p in participants for s in p.streams.values())
    expected = sum(
        s.cycles + s.last_seq - s.first_seq + 1 for p in participants for s in p.streams.values()
    )
    received_tracks = sum(len(p.streams) for p in participants)
    for p in participants:
        p.closed = True
    with contextlib.suppress(Exception):
        await asyncio.wait_for(signalling.call("shutdown"), 5)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(process.wait(), 10)
    if process.returncode is None:
        process.kill()
        await process.wait()
    writer.close()
    for p in participants:
        await p.close()
    return Result(
        mode=mode,
        participants=n,
        seconds=t1 - t0,
        cpu=cpu1 - cpu0,
        packets=packets,
        expected=max(expected, packets),
        latencies=shared.latencies,
        forwarded_tracks=2 * n * (n - 1),
        received_tracks=received_tracks,
        generator_cpu=gen1 - gen0,
        loadavg=loadavg,
        server_wait=wait1 - wait0,
        generator_lags=shared.lags,
        probes=probes or {},
    )


async def settle(signalling: Signalling, participants: list[Participant]) -> None:
    for _ in range(400):
        await asyncio.sleep(0.05)
        if await signalling.call("idle") and not any(p.lock.locked() for p in participants):
            await asyncio.sleep(0.05)
            if await signalling.call("idle"):
                return
    raise RuntimeError("negotiations did not settle")


def print_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    print("  ".join(k.rjust(widths[k]) for k in keys))
    for r in rows:
        print("  ".join(str(r[k]).rjust(widths[k]) for k in keys))
    sys.stdout.flush()


async def main_async(args: argparse.Namespace) -> None:
    aiortc_internals.restrict_host_addresses(["127.0.0.1"])
    media = load_media()
    print(
        f"media: VP8 {media.video_bitrate / 1e6:.2f} Mbit/s 30 fps "
        f"({sum(len(f) for f in media.video) / len(media.video) * 30:.0f} pkt/s) + Opus 50 pkt/s; "
        f"{args.seconds:.0f} s measured per run; {os.cpu_count()} cores",
        flush=True,
    )
    rows = []
    for mode, counts in (("sfu", args.participants), ("relay", args.relay_participants)):
        for n in counts:
            profile = f"loadtest/out/sfu-{n}.prof" if args.profile and mode == "sfu" else None
            result = await run(mode, n, args.seconds, media, profile, args.aligned)
            rows.append(result.row())
            print_table([rows[-1]])
            print("   server probes:", result.probes, flush=True)
    print()
    print_table(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", default="2,4,8,12")
    parser.add_argument(
        "--relay-participants",
        default="2,4",
        help="room sizes for the MediaRelay baseline (it saturates early)",
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the SFU process, stats in loadtest/out/sfu-N.prof",
    )
    parser.add_argument(
        "--aligned",
        action="store_true",
        help="every publisher sends the same frame at the same instant (keyframes in lockstep)",
    )
    args = parser.parse_args()
    args.participants = [int(x) for x in args.participants.split(",") if x]
    args.relay_participants = [int(x) for x in args.relay_participants.split(",") if x]
    os.makedirs("loadtest/out", exist_ok=True)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
