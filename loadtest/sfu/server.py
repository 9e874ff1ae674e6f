"""The baseline server of the SFU benchmark, in its own process so its CPU can be measured.

`python -m loadtest.sfu.server --mode relay` prints "READY <port>" and serves JSON lines on
127.0.0.1: requests {"id", "method", "params"} get {"id", "result"} or {"id", "error"};
events are pushed as {"event", "target", "payload"}.

It is the naive aiortc design, one MediaRelay per published track, decoding once and
encoding once per subscriber (aiortc's default sender). Consilium's own SFU is measured in
the real `consilium serve` process instead (loadtest/sfu/product.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import signal
import time
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay

from rtc import aiortc_internals
from rtc.errors import RtcError

Send = Any


class Probes:
    """Benchmark-only view of the server's own share of latency.

    Residence: time from entering the socket callback with one publisher datagram to
    returning from it, i.e. after the sendto of its last forwarded copy (forwarding is
    synchronous). Loop lag: how late a 5 ms timer fires (a datagram that arrives while the
    loop is busy waits about that long in the socket buffer). GC: each collection's pause.
    """

    def __init__(self) -> None:
        self.on = False
        self.residence: list[float] = []
        self.lag: list[float] = []
        self.gc: list[float] = []
        self._gc_start = 0.0
        gc.callbacks.append(self._on_gc)
        original = aiortc_internals.fast_rtp_input

        def fast_rtp_input(dtls: Any) -> bool:
            installed = original(dtls)
            if installed:
                self._wrap(dtls.transport._connection._nominated[1].protocol)
            return installed

        aiortc_internals.fast_rtp_input = fast_rtp_input  # type: ignore[assignment]

    def _wrap(self, protocol: Any) -> None:
        if getattr(protocol, "_bench_timed", False):
            return
        inner = protocol.datagram_received
        clock = time.perf_counter
        samples = self.residence

        def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
            if not self.on:
                inner(data, addr)
                return
            t0 = clock()
            inner(data, addr)
            samples.append(clock() - t0)

        protocol.datagram_received = datagram_received
        protocol._bench_timed = True

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        elif self.on:
            self.gc.append(time.perf_counter() - self._gc_start)

    async def run_lag(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.005)
            if self.on:
                self.lag.append(time.perf_counter() - t0 - 0.005)

    def start(self) -> None:
        self.residence.clear()
        self.lag.clear()
        self.gc.clear()
        self.on = True

    def report(self) -> dict[str, Any]:
        self.on = False

        def pct(values: list[float], q: float) -> float | None:
            if not values:
                return None
            ordered = sorted(values)
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

        return {
            "residence_p50_ms": pct(self.residence, 0.5),
            "residence_p99_ms": pct(self.residence, 0.99),
            "residence_max_ms": pct(self.residence, 1.0),
            "lag_p50_ms": pct(self.lag, 0.5),
            "lag_p99_ms": pct(self.lag, 0.99),
            "lag_max_ms": pct(self.lag, 1.0),
            "gc_count": len(self.gc),
            "gc_max_ms": pct(self.gc, 1.0),
        }


class RelayBackend:
    """Naive relay: every subscriber gets aiortc's own sender, which encodes."""

    def __init__(self, send_event: Send) -> None:
        self.send_event = send_event
        self.pcs: dict[str, RTCPeerConnection] = {}
        self.tracks: dict[str, list[MediaStreamTrack]] = {}
        self.relay = MediaRelay()
        self.sent: dict[str, set[int]] = {}
        self.pending: dict[str, bool] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.tasks: set[asyncio.Future[Any]] = set()

    async def join(self, participant: str) -> Any:
        pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.pcs[participant] = pc
        self.tracks[participant] = []
        self.sent[participant] = set()
        self.locks[participant] = asyncio.Lock()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.tracks[participant].append(track)

        return {}

    async def offer(self, participant: str, sdp: str) -> Any:
        pc = self.pcs[participant]
        async with self.locks[participant]:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        asyncio.get_running_loop().call_later(0.2, self._subscribe_all)
        return {"sdp": pc.localDescription.sdp, "type": "answer"}

    def _subscribe_all(self) -> None:
        for participant in self.pcs:
            self._spawn(self._offer_to(participant))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _offer_to(self, participant: str) -> None:
        pc = self.pcs[participant]
        async with self.locks[participant]:
            if pc.signalingState != "stable":
                return
            added = False
            for other, tracks in self.tracks.items():
                if other == participant:
                    continue
                for track in tracks:
                    if id(track) not in self.sent[participant]:
                        self.sent[participant].add(id(track))
                        pc.addTransceiver(self.relay.subscribe(track), direction="sendonly")
                        added = True
            if not added:
                return
            self.pending[participant] = True
            await pc.setLocalDescription(await pc.createOffer())
        await self.send_event(
            {
                "event": "rtc:offer",
                "target": participant,
                "payload": {"sdp": pc.localDescription.sdp, "type": "offer"},
            }
        )

    async def answer(self, participant: str, sdp: str) -> Any:
        pc = self.pcs[participant]
        async with self.locks[participant]:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            self.pending[participant] = False
        self._spawn(self._offer_to(participant))

    async def idle(self) -> bool:
        return not any(self.pending.values()) and all(
            pc.signalingState == "stable" for pc in self.pcs.values()
        )

    async def stats(self) -> Any:
        return {}

    async def close(self) -> None:
        for pc in self.pcs.values():
            await pc.close()


async def serve(mode: str, profile: str | None) -> None:
    aiortc_internals.restrict_host_addresses(["127.0.0.1"])
    probes = Probes()
    lag_task = asyncio.create_task(probes.run_lag())
    writers: list[asyncio.StreamWriter] = []

    async def send_event(message: dict[str, Any]) -> None:
        line = (json.dumps(message) + "\n").encode()
        for w in writers:
            w.write(line)

    backend = RelayBackend(send_event)
    done = asyncio.Event()
    profiler = cProfile.Profile(time.process_time) if profile else None

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await serve_connection(reader, writer)
        writers.remove(writer)

    async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            request = json.loads(line)
            method, params = request["method"], request.get("params", {})
            try:
                if method == "shutdown":
                    done.set()
                    result: Any = None
                elif method == "profile":
                    if profiler is not None:
                        profiler.enable() if params["on"] else profiler.disable()
                    result = None
                elif method == "probes":
                    result = probes.start() if params["on"] else probes.report()
                else:
                    result = await getattr(backend, method)(**params)
                response = {"id": request["id"], "result": result}
            except RtcError as exc:
                error = {"code": exc.code, "message": exc.message}
                response = {"id": request["id"], "error": error}
            writer.write((json.dumps(response) + "\n").encode())

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    await done.wait()
    server.close()
    lag_task.cancel()
    with contextlib.suppress(Exception):
        await backend.close()
    if profiler is not None and profile:
        profiler.dump_stats(profile)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("relay",), default="relay")
    parser.add_argument("--profile", help="write cProfile stats of the measured window here")
    args = parser.parse_args()
    asyncio.run(serve(args.mode, args.profile))


if __name__ == "__main__":
    main()
