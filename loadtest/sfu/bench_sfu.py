"""SFU benchmark: an e-Staff room of N participants on the real `consilium serve`, every one
publishing and subscribing.

    python -m loadtest.sfu.bench_sfu --participants 2,4,8,12 --seconds 20

The benchmark starts `consilium serve` on 127.0.0.1 with a throw-away SQLite data directory
(loadtest/sfu/product.py): the room is booked with an API key, its host signs in (password and
TOTP), the others enter with access tokens and are admitted from the lobby; each holds a
Socket.IO connection and negotiates media with `rtc:join`, `rtc:offer`, `rtc:pull` and
`rtc:answer` (docs/rtc.md), while the server pushes `rtc:stats`, `rtc:speaker` and presence as
it does to browsers. So the figures are the product's: authentication, Socket.IO and the
room's events included.

Publishers replay pre-encoded VP8 (~1 Mbit/s, 30 fps) and Opus (20 ms) with real-time pacing;
subscribers count and timestamp the RTP they receive without decrypting, parsing or decoding
it (loadtest/sfu/peers.py). The server's CPU time is read from /proc/<pid>/stat over the
measured window, its forwarded packets and event-loop lag from its /metrics. The same room
then goes through a naive aiortc MediaRelay server (decode once, encode per subscriber,
loadtest/sfu/server.py) as the baseline.

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
import sys
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from loadtest.sfu.media import EncodedMedia, load_media
from loadtest.sfu.peers import Participant, Shared, loop_lag, pace
from loadtest.sfu.product import (
    ConsiliumServer,
    cpu_seconds,
    lag_quantile,
    open_room,
    runqueue_wait,
    sign_in,
)
from rtc import aiortc_internals

# --- the relay baseline's JSON-lines signalling ----------------------------------------------


class Lines:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.participants: dict[str, Participant] = {}
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
            while line := await self.reader.readline():
                message = json.loads(line)
                if "event" in message:
                    p = self.participants.get(message["target"])
                    if p is not None and message["event"] == "rtc:offer":
                        p.on_offer(message["payload"])
                else:
                    future = self.pending.pop(message["id"])
                    if "error" in message:
                        future.set_exception(RuntimeError(message["error"]))
                    else:
                        future.set_result(message.get("result"))


class LineSignal:
    """A participant's `Signal` on the relay baseline."""

    def __init__(self, lines: Lines, participant: str) -> None:
        self.lines, self.participant = lines, participant

    async def join(self) -> dict[str, Any]:
        return dict(await self.lines.call("join", participant=self.participant) or {})

    async def offer(self, sdp: str, sources: dict[str, str]) -> dict[str, Any]:
        return dict(await self.lines.call("offer", participant=self.participant, sdp=sdp))

    async def pull(self) -> dict[str, Any] | None:
        return None  # the relay offers by itself

    async def answer(self, sdp: str) -> dict[str, Any]:
        return dict(await self.lines.call("answer", participant=self.participant, sdp=sdp) or {})


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
    server_forwarded: int | None = None  # from /metrics
    lag_p99_ms: float | None = None  # the server's event-loop lag, from /metrics
    room_events: int = 0  # Socket.IO events the clients received in the window

    def row(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(q: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 2) if lat else None

        track_seconds = self.forwarded_tracks * self.seconds
        forwarded = self.server_forwarded or self.packets
        return {
            "mode": self.mode,
            "N": self.participants,
            "tracks": f"{self.forwarded_tracks // 2}v+{self.forwarded_tracks // 2}a",
            "receiving": self.received_tracks,
            "pkts/s": round(self.packets / self.seconds),
            "cpu %core": round(100 * self.cpu / self.seconds, 1),
            "cpu s/track-s": round(self.cpu / track_seconds, 5) if track_seconds else None,
            "us/pkt": round(self.cpu / forwarded * 1e6, 1) if forwarded else None,
            "loss %": round(100 * (1 - self.packets / self.expected), 2) if self.expected else None,
            "p50 ms": pct(0.5),
            "p99 ms": pct(0.99),
            "loadgen %core": round(100 * self.generator_cpu / self.seconds, 1),
            "loadavg": self.loadavg,
            # share of the window the server was runnable but had no CPU: other processes
            "srv runq %": round(100 * self.server_wait / self.seconds, 1),
            "srv lag p99 ms": self.lag_p99_ms,
            "events/s": round(self.room_events / self.seconds, 1),
            "gen lag p99 ms": round(
                sorted(self.generator_lags)[int(0.99 * (len(self.generator_lags) - 1))] * 1000, 2
            )
            if self.generator_lags
            else None,
        }


async def wait_receiving(participants: list[Participant], shared: Shared, streams: int) -> None:
    """Until every participant receives `streams` streams (everyone past their keyframe)."""
    shared.measuring = True
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if all(len(p.streams) >= streams for p in participants):
            break
        await asyncio.sleep(0.1)
    else:
        got = [len(p.streams) for p in participants]
        raise RuntimeError(f"media did not reach everyone: streams per participant {got}")
    shared.measuring = False


async def settle(participants: list[Participant]) -> None:
    """No negotiation under way nor queued, twice in a row 0.2 s apart."""
    quiet = 0
    for _ in range(1200):
        await asyncio.sleep(0.1)
        busy = any(p.lock.locked() or p.tasks for p in participants)
        quiet = 0 if busy else quiet + 1
        if quiet >= 2:
            return
    raise RuntimeError("negotiations did not settle")


async def run_product(
    n: int, seconds: float, media: EncodedMedia, aligned: bool, cpus: str | None
) -> Result:
    server = ConsiliumServer(cpus=cpus)
    participants: list[Participant] = []
    http = host_http = None
    try:
        await server.start()
        http = aiohttp.ClientSession()
        host_http, host_cookie = await sign_in(server)
        people = await open_room(server, http, host_cookie, "estaff", f"e-Staff {n}", n)
        shared = Shared()
        for i, conn in enumerate(people):
            p = Participant(i, conn, shared)
            conn.on_renegotiate = p.on_renegotiate
            participants.append(p)
        stop = asyncio.Event()
        pacer = asyncio.create_task(pace(participants, media, stop, aligned))
        lag_probe = asyncio.create_task(loop_lag(shared, stop))
        try:
            for p in participants:  # one at a time, to measure a settled room
                await p.join()  # pulls the SFU's offer of what the room already publishes
                await settle(participants)
                await p.publish()
                await settle(participants)
            await wait_receiving(participants, shared, 2 * (n - 1))
            await asyncio.sleep(1.0)
            for p in participants:
                p.reset_counts()
            shared.latencies.clear()
            events0 = sum(sum(c.counts.values()) for c in people)
            m0 = await server.metrics(http)
            shared.measuring = True
            cpu0, t0, gen0 = cpu_seconds(server.pid), time.monotonic(), cpu_seconds(os.getpid())
            wait0 = runqueue_wait(server.pid)
            await asyncio.sleep(seconds)
            shared.measuring = False
            cpu1, t1, gen1 = cpu_seconds(server.pid), time.monotonic(), cpu_seconds(os.getpid())
            wait1 = runqueue_wait(server.pid)
            m1 = await server.metrics(http)
            events1 = sum(sum(c.counts.values()) for c in people)
            with open("/proc/loadavg") as f:
                loadavg = f.read().split()[0]
        finally:
            stop.set()
            await pacer
            await lag_probe
        packets = sum(s.packets for p in participants for s in p.streams.values())
        expected = sum(s.expected for p in participants for s in p.streams.values())
        lag = lag_quantile(m0, m1, 0.99)
        fwd = "consilium_rtc_forwarded_packets_total"
        return Result(
            mode="sfu",
            participants=n,
            seconds=t1 - t0,
            cpu=cpu1 - cpu0,
            packets=packets,
            expected=max(expected, packets),
            latencies=shared.latencies,
            forwarded_tracks=2 * n * (n - 1),
            received_tracks=sum(len(p.streams) for p in participants),
            generator_cpu=gen1 - gen0,
            loadavg=loadavg,
            server_wait=wait1 - wait0,
            generator_lags=shared.lags,
            server_forwarded=int(m1.get(fwd) - m0.get(fwd)),
            lag_p99_ms=round(lag * 1000, 1) if lag is not None else None,
            room_events=events1 - events0,
        )
    finally:
        for p in participants:
            p.closed = True
        for p in participants:
            with contextlib.suppress(Exception):
                await p.signal.close()  # type: ignore[attr-defined]
            await p.close()
        for session in (http, host_http):
            if session is not None:
                await session.close()
        await server.stop()
        server.cleanup()


async def run_relay(n: int, seconds: float, media: EncodedMedia, aligned: bool) -> Result:
    args = [sys.executable, "-m", "loadtest.sfu.server", "--mode", "relay"]
    process = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
    try:
        return await _measure_relay(process, n, seconds, media, aligned)
    finally:
        if process.returncode is None:  # never leave a server behind, even on failure
            process.kill()
            await process.wait()


async def _measure_relay(
    process: asyncio.subprocess.Process, n: int, seconds: float, media: EncodedMedia, aligned: bool
) -> Result:
    assert process.stdout is not None
    port = int((await process.stdout.readline()).decode().split()[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = Lines(reader, writer)
    shared = Shared()
    participants = []
    for i in range(n):
        p = Participant(i, LineSignal(lines, f"p{i:02d}"), shared)
        lines.participants[f"p{i:02d}"] = p
        participants.append(p)
    stop = asyncio.Event()
    pacer = asyncio.create_task(pace(participants, media, stop, aligned))
    lag_probe = asyncio.create_task(loop_lag(shared, stop))
    try:
        for p in participants:
            await p.join()
            await p.publish()
            for _ in range(400):
                await asyncio.sleep(0.05)
                if await lines.call("idle") and not any(q.lock.locked() for q in participants):
                    break
        await asyncio.sleep(2.5)
        for p in participants:
            p.reset_counts()
        await lines.call("probes", on=True)
        shared.measuring = True
        cpu0, t0, gen0 = cpu_seconds(process.pid), time.monotonic(), cpu_seconds(os.getpid())
        wait0 = runqueue_wait(process.pid)
        await asyncio.sleep(seconds)
        shared.measuring = False
        probes = await lines.call("probes", on=False)
        cpu1, t1, gen1 = cpu_seconds(process.pid), time.monotonic(), cpu_seconds(os.getpid())
        wait1 = runqueue_wait(process.pid)
        with open("/proc/loadavg") as f:
            loadavg = f.read().split()[0]
    finally:
        stop.set()
        await pacer
        await lag_probe
    packets = sum(s.packets for p in participants for s in p.streams.values())
    expected = sum(s.expected for p in participants for s in p.streams.values())
    for p in participants:
        p.closed = True
    with contextlib.suppress(Exception):
        await asyncio.wait_for(lines.call("shutdown"), 5)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(process.wait(), 10)
    writer.close()
    for p in participants:
        await p.close()
    return Result(
        mode="relay",
        participants=n,
        seconds=t1 - t0,
        cpu=cpu1 - cpu0,
        packets=packets,
        expected=max(expected, packets),
        latencies=[],  # re-encoding changes timestamps
        forwarded_tracks=2 * n * (n - 1),
        received_tracks=sum(len(p.streams) for p in participants),
        generator_cpu=gen1 - gen0,
        loadavg=loadavg,
        server_wait=wait1 - wait0,
        generator_lags=shared.lags,
        lag_p99_ms=(probes or {}).get("lag_p99_ms"),
    )


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
        f"{args.seconds:.0f} s measured per run; {os.cpu_count()} cores; "
        f"server: consilium serve{f' on CPU {args.server_cpus}' if args.server_cpus else ''}",
        flush=True,
    )
    if args.client_cpus:
        os.sched_setaffinity(0, {int(c) for c in args.client_cpus.split(",")})
    rows = []
    for n in args.participants:
        result = await run_product(n, args.seconds, media, args.aligned, args.server_cpus)
        rows.append(result.row())
        print_table([rows[-1]])
    for n in args.relay_participants:
        result = await run_relay(n, args.seconds, media, args.aligned)
        rows.append(result.row())
        print_table([rows[-1]])
    print()
    print_table(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", default="2,4,8,12")
    parser.add_argument(
        "--relay-participants",
        default="2,4",
        help="room sizes for the MediaRelay baseline (it saturates early; empty: none)",
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--server-cpus", help="taskset list for consilium serve, e.g. 0")
    parser.add_argument("--client-cpus", help="CPUs for this load generator, e.g. 1")
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
