"""Téléconsultation load: many concurrent 1:1 calls on one real `consilium serve` worker.

    python -m loadtest.sfu.bench_calls --calls 10,20,40,60,80,100,120,150 --seconds 15

Each call is a room booked with the server API key, a practitioner host (signed in once with
password and TOTP, one Socket.IO connection per room) and a patient entering with an access
token and admitted from the lobby; both publish VP8 (~1 Mbit/s, 30 fps) and Opus and receive
each other's (loadtest/sfu/product.py). The server is pinned to one CPU (`taskset`,
`--server-cpus`, default 0) and this load generator to the other (`--client-cpus`, default 1).

The load generator is built to cost less than the server it measures (loadtest/sfu/peers.py):
aiortc only establishes ICE and DTLS-SRTP; the media are packets encoded once and replayed
with rewritten sequence numbers, timestamps and SSRC, protected with the negotiated pylibsrtp
session and written with one `sendto`, all from one 5 ms timer; what comes back is counted
per SSRC from the clear RTP header of the SRTP datagrams, never decrypted nor decoded.

The calls are added in steps; after each step every call's four streams must arrive, then a
window of `--seconds` is measured. Printed per step: calls, loss (and the calls above 1 %),
the server's CPU (share of its core, µs per forwarded packet from its /metrics counter, per
call), its event-loop lag p99 (the /metrics histogram), and the generator's own CPU. The
ramp stops at the first step whose loss is 1 % or more (or whose generator fell behind).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from loadtest.sfu.media import load_media
from loadtest.sfu.peers import Pacer, Participant, Shared
from loadtest.sfu.product import (
    Connection,
    ConsiliumServer,
    cpu_seconds,
    lag_quantile,
    open_room,
    runqueue_wait,
    sign_in,
)
from rtc import aiortc_internals


@dataclass
class Call:
    people: list[Connection]
    participants: list[Participant]

    def loss(self) -> tuple[int, int, int]:
        """(received, expected, streams) over both participants."""
        received = expected = streams = 0
        for p in self.participants:
            for s in p.streams.values():
                received += s.packets
                expected += max(s.expected, s.packets)
                streams += 1
        return received, expected, streams


async def start_call(
    index: int,
    server: ConsiliumServer,
    http: aiohttp.ClientSession,
    host_cookie: str,
    shared: Shared,
    pacer: Pacer,
) -> Call:
    people = await open_room(
        server, http, host_cookie, "teleconsultation", f"Téléconsultation {index}", 2, f"{index}-"
    )
    participants = []
    for k, conn in enumerate(people):
        p = Participant(2 * index + k, conn, shared)
        conn.on_renegotiate = p.on_renegotiate
        participants.append(p)
    for p in participants:
        await p.join()
        await p.publish()
    for p in participants:
        pacer.add(p, random.random())
    return Call(people, participants)


async def wait_media(calls: list[Call], timeout: float) -> None:
    """Until every participant of these calls receives its two streams."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(len(p.streams) >= 2 for c in calls for p in c.participants):
            return
        await asyncio.sleep(0.2)
    short = sum(1 for c in calls for p in c.participants if len(p.streams) < 2)
    raise RuntimeError(f"{short} participants did not receive both streams in {timeout:.0f} s")


async def idle_window(
    server: ConsiliumServer, calls: list[Call], pacer: Pacer, args: argparse.Namespace
) -> dict[str, float]:
    """The same calls with no media for a window: what the server spends per call whatever
    the packets (ICE consent, RTCP and stats ticks, rtc:stats and Socket.IO pings, session
    checks)."""
    pacer.paused = True
    fwd = "consilium_rtc_forwarded_packets_total"
    try:
        async with aiohttp.ClientSession() as http:  # until the backlog is forwarded
            last = (await server.metrics(http)).get(fwd)
            for _ in range(60):
                await asyncio.sleep(1.0)
                now = (await server.metrics(http)).get(fwd)
                if now - last < 10:
                    break
                last = now
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        spy = await profile(server.pid, args, f"{len(calls)}-idle")
        await asyncio.sleep(args.seconds)
        if spy is not None:
            await spy.wait()
        cpu1, t1 = cpu_seconds(server.pid), time.monotonic()
    finally:
        pacer.paused = False
    share = (cpu1 - cpu0) / (t1 - t0)
    print(
        f"no media, {len(calls)} calls up: server {100 * share:.1f} % of its core, "
        f"{100 * share / len(calls):.3f} % per call (the fixed cost)",
        flush=True,
    )
    return {"calls": len(calls), "share": share}


async def profile(
    pid: int, args: argparse.Namespace, calls: int | str
) -> asyncio.subprocess.Process | None:
    """py-spy (pip install py-spy) samples the server over the window: collapsed stacks in
    loadtest/out/calls-<N>.folded (flamegraph.pl or speedscope read them)."""
    if not args.profile:
        return None
    return await asyncio.create_subprocess_exec(
        os.path.join(os.path.dirname(sys.executable), "py-spy"),
        "record",
        "--nonblocking",
        "--format",
        "raw",
        "--rate",
        "200",
        "--duration",
        str(max(1, int(args.seconds) - 1)),
        "--pid",
        str(pid),
        "--output",
        f"loadtest/out/calls-{calls}.folded",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


async def main_async(args: argparse.Namespace) -> int:
    aiortc_internals.restrict_host_addresses(["127.0.0.1"])
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)  # clean up
    if args.client_cpus:
        os.sched_setaffinity(0, {int(c) for c in args.client_cpus.split(",")})
    media = load_media()
    video_pps = sum(len(f) for f in media.video) / len(media.video) * 30
    print(
        f"1:1 calls, each way VP8 {media.video_bitrate / 1e6:.2f} Mbit/s ({video_pps:.0f} pkt/s)"
        f" + Opus 50 pkt/s; server consilium serve on CPU {args.server_cpus or 'any'}, "
        f"load generator on CPU {args.client_cpus or 'any'}; {args.seconds:.0f} s per step; "
        f"{os.cpu_count()} cores",
        flush=True,
    )
    server = ConsiliumServer(cpus=args.server_cpus)
    shared = Shared(latency=False)
    call_pps = 2 * (video_pps + 50)  # forwarded packets per second of one call
    pacer = Pacer(media)
    stop = asyncio.Event()
    calls: list[Call] = []
    rows: list[dict[str, Any]] = []
    http = host_http = None
    pacing: asyncio.Task[None] | None = None
    held = 0
    best: dict[str, Any] | None = None
    fixed: dict[str, float] | None = None
    try:
        await server.start()
        http = aiohttp.ClientSession()
        host_http, host_cookie = await sign_in(server)
        pacing = asyncio.create_task(pacer.run(stop))
        shared.measuring = True  # counting is the generator's cost: always on
        header = (
            f"{'calls':>5} {'loss %':>7} {'calls>1%':>8} {'pkts/s out':>10} {'srv %core':>9}"
            f" {'us/fwd pkt':>10} {'%core/call':>10} {'lag p99 ms':>10} {'runq %':>6}"
            f" {'gen %core':>9} {'gen late':>8} {'loadavg':>7}"
        )
        print(header, flush=True)
        for target in args.calls:
            t_setup = time.monotonic()
            new: list[Call] = []
            while len(calls) + len(new) < target:
                batch = min(args.batch, target - len(calls) - len(new))
                base = len(calls) + len(new)
                new += await asyncio.gather(
                    *(
                        start_call(base + i, server, http, host_cookie, shared, pacer)
                        for i in range(batch)
                    )
                )
            calls += new
            await wait_media(new, 120 + 2 * len(new))
            await asyncio.sleep(args.settle)
            setup = time.monotonic() - t_setup
            for c in calls:
                for p in c.participants:
                    p.reset_counts()
            missed0 = pacer.missed
            m0 = await server.metrics(http)
            cpu0, gen0, t0 = cpu_seconds(server.pid), cpu_seconds(os.getpid()), time.monotonic()
            wait0 = runqueue_wait(server.pid)
            spy = await profile(server.pid, args, len(calls))
            await asyncio.sleep(args.seconds)
            if spy is not None:
                await spy.wait()
            cpu1, gen1, t1 = cpu_seconds(server.pid), cpu_seconds(os.getpid()), time.monotonic()
            wait1 = runqueue_wait(server.pid)
            m1 = await server.metrics(http)
            window = t1 - t0
            per_call = [c.loss() for c in calls]
            received = sum(r for r, _, _ in per_call)
            expected = sum(e for _, e, _ in per_call) + sum(  # streams that never came
                (4 - s) * 161 * window for _, _, s in per_call if s < 4
            )
            loss = 100 * (1 - received / expected) if expected else 100.0
            bad = sum(1 for r, e, s in per_call if s < 4 or (e and 1 - r / e >= 0.01))
            fwd = m1.get("consilium_rtc_forwarded_packets_total") - m0.get(
                "consilium_rtc_forwarded_packets_total"
            )
            cpu = cpu1 - cpu0
            lag = lag_quantile(m0, m1, 0.99)
            with open("/proc/loadavg") as f:
                loadavg = f.read().split()[0]
            late = pacer.missed - missed0
            row = {
                "calls": len(calls),
                "loss %": round(loss, 2),
                "calls>1%": bad,
                "pkts/s out": round(fwd / window),
                "srv %core": round(100 * cpu / window, 1),
                "us/fwd pkt": round(cpu / fwd * 1e6, 1) if fwd else None,
                "%core/call": round(100 * cpu / window / len(calls), 3),
                "lag p99 ms": round(lag * 1000, 1) if lag is not None else None,
                "runq %": round(100 * (wait1 - wait0) / window, 1),
                "gen %core": round(100 * (gen1 - gen0) / window, 1),
                "gen late": late,
                "loadavg": loadavg,
                "setup s": round(setup, 1),
            }
            rows.append(row)
            print(
                f"{row['calls']:>5} {fmt(row['loss %'], 2):>7} {bad:>8} {row['pkts/s out']:>10}"
                f" {fmt(row['srv %core']):>9} {fmt(row['us/fwd pkt']):>10}"
                f" {fmt(row['%core/call'], 3):>10} {fmt(row['lag p99 ms']):>10}"
                f" {fmt(row['runq %']):>6} {fmt(row['gen %core']):>9} {late:>8} {loadavg:>7}",
                flush=True,
            )
            # behind: it did not send the media's rate (late frames alone are its jitter)
            generator_behind = fwd < 0.95 * call_pps * len(calls) * window
            if generator_behind:
                print("   the load generator fell behind its real-time schedule", flush=True)
            if loss >= args.max_loss or generator_behind:
                if not args.all_steps:
                    break
            elif best is None or len(calls) > held:
                held, best = len(calls), row
        if calls and args.idle_window:
            fixed = await idle_window(server, calls, pacer, args)
    finally:
        stop.set()
        if pacing is not None:
            await pacing
        for c in calls:
            for p in c.participants:
                p.closed = True
        for c in calls:
            for conn in c.people:
                await conn.close()
            for p in c.participants:
                with contextlib.suppress(Exception):
                    await p.close()
        for session in (http, host_http):
            if session is not None:
                await session.close()
        await server.stop()
        server.cleanup()
    print()
    if best is None:
        print(f"held under {args.max_loss:g} % loss: no step", flush=True)
        return 0 if args.all_steps else 1
    core_share = best["srv %core"] / 100
    print(
        f"held under {args.max_loss:g} % loss: {held} concurrent 1:1 calls on one worker "
        f"(server {best['srv %core']} % of its core, {best['us/fwd pkt']} us per forwarded "
        f"packet, event-loop lag p99 {best['lag p99 ms']} ms; load generator "
        f"{best['gen %core']} % of its core)",
        flush=True,
    )
    if fixed is not None and best["us/fwd pkt"]:
        per_call = fixed["share"] / fixed["calls"]
        media_share = core_share - per_call * held
        pkt_rate = best["pkts/s out"]
        marginal = media_share / pkt_rate * 1e6 if pkt_rate else 0.0
        print(
            f"split at {held} calls: fixed {100 * per_call:.3f} % of a core per call, "
            f"marginal {marginal:.1f} us per forwarded packet "
            f"({pkt_rate / held:.0f} forwarded packets/s per call)",
            flush=True,
        )
    if core_share > 0:
        per_core = held / core_share
        print(
            f"at this cost per call, one fully used core would carry about {per_core:.0f} calls;"
            f" a machine of C cores running `consilium serve --workers C` (one node per core,"
            f" rooms spread by load) about {per_core:.0f} x C, less what the OS, nginx and"
            f" TURN take",
            flush=True,
        )
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", default="10,20,40,60,80,100,120,150,180,210")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured window per step")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds after a step's setup")
    parser.add_argument("--batch", type=int, default=5, help="calls set up at once")
    parser.add_argument("--max-loss", type=float, default=1.0, help="percent")
    parser.add_argument(
        "--all-steps", action="store_true", help="go on past a step that did not hold"
    )
    parser.add_argument(
        "--no-idle-window",
        dest="idle_window",
        action="store_false",
        help="skip the window without media at the end (the fixed cost per call)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the server in each measured window"
    )
    parser.add_argument("--server-cpus", default="0", help="taskset list for consilium serve")
    parser.add_argument("--client-cpus", default="1", help="CPUs of this load generator")
    args = parser.parse_args()
    args.calls = sorted({int(x) for x in args.calls.split(",") if x})
    os.makedirs("loadtest/out", exist_ok=True)
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
