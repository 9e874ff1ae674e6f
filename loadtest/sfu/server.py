"""The server side of the SFU benchmark, in its own process so its CPU can be measured.

`python -m loadtest.sfu.server --mode sfu|relay` prints "READY <port>" and serves JSON lines
on 127.0.0.1: requests {"id", "method", "params"} get {"id", "result"} or {"id", "error"};
events are pushed as {"event", "target", "payload"}.

mode "sfu": rtc.sfu.Sfu. mode "relay": the naive aiortc design, one MediaRelay per published
track, decoding once and encoding once per subscriber (aiortc's default sender).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
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
from rtc.config import RtcConfig
from rtc.errors import RtcError
from rtc.sfu import Sfu

Send = Any


class SfuBackend:
    def __init__(self, send_event: Send) -> None:
        self.sfu = Sfu(RtcConfig(allowed_addresses=("127.0.0.1",)), self._on_event)
        self.send_event = send_event

    async def _on_event(self, room: str, target: str | None, event: str, payload: Any) -> None:
        if event in ("rtc:offer",):
            await self.send_event({"event": event, "target": target, "payload": payload})

    async def join(self, participant: str) -> Any:
        return await self.sfu.join("bench", participant, participant)

    async def offer(self, participant: str, sdp: str) -> Any:
        return await self.sfu.handle_offer(participant, sdp)

    async def answer(self, participant: str, sdp: str) -> Any:
        await self.sfu.handle_answer(participant, sdp)

    async def idle(self) -> bool:
        for participant in list(self.sfu._where):
            peer = self.sfu.peer(participant)
            if peer.pc.signalingState != "stable" or peer._offer_needed:
                return False
            if peer._offer_task is not None and not peer._offer_task.done():
                return False
        return True

    async def stats(self) -> Any:
        return self.sfu.stats("bench")

    async def buffers(self) -> Any:
        out = {}
        for participant in list(self.sfu._where):
            pc = self.sfu.peer(participant).pc
            for t in pc.getTransceivers()[:1]:
                pair = t.sender.transport.transport._connection._nominated.get(1)
                if pair is not None:
                    out[participant] = pair.protocol.transport.get_write_buffer_size()
        return out

    async def close(self) -> None:
        await self.sfu.close()


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
    writers: list[asyncio.StreamWriter] = []

    async def send_event(message: dict[str, Any]) -> None:
        line = (json.dumps(message) + "\n").encode()
        for w in writers:
            w.write(line)

    backend: SfuBackend | RelayBackend = (
        SfuBackend(send_event) if mode == "sfu" else RelayBackend(send_event)
    )
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
    with contextlib.suppress(Exception):
        await backend.close()
    if profiler is not None and profile:
        profiler.dump_stats(profile)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("sfu", "relay"), default="sfu")
    parser.add_argument("--profile", help="write cProfile stats of the measured window here")
    args = parser.parse_args()
    asyncio.run(serve(args.mode, args.profile))


if __name__ == "__main__":
    main()
