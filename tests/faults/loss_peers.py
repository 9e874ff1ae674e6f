"""The aiortc ends of tests/faults/test_media_loss.py, run inside its network namespaces
(``ip netns exec NS python -m tests.faults.loss_peers …``): they print JSON lines.

- ``receiver`` (next to the server): the receiving end of a direct peer-to-peer call. Its
  signalling is a JSON line protocol over TCP (TCP is not dropped): ``offer``, ``count``,
  ``times``.
- ``peers`` (across the veth link): Alice publishes a camera through the Consilium server
  (REST and Socket.IO like a browser), Bob receives it through the SFU; the same process is
  the sending end of the direct call. It prints ``{"ready": true}`` once both calls decode,
  waits for ``go`` on stdin (the test then turns loss on), sends a window of frames on both
  calls and prints the decoded frames' times (``time.monotonic``: one clock for every
  process of the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any

import aiohttp
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)

from rtc import aiortc_internals
from tests.rtc.clients import FPS, CounterVideoTrack, Received, read_video, wait_for

WARM_UP_FRAMES = 15


def configuration() -> RTCConfiguration:
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


def say(**data: Any) -> None:
    print(json.dumps(data), flush=True)


# -- the receiving end of the direct call ----------------------------------------------------


async def receiver(listen: str) -> None:
    host, port = listen.rsplit(":", 1)
    received = Received()
    pcs: list[RTCPeerConnection] = []
    tasks: list[asyncio.Task[None]] = []
    done = asyncio.Event()

    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "video":
            tasks.append(asyncio.create_task(read_video(track, received)))

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            request = json.loads(line)
            if "offer" in request:
                pc = RTCPeerConnection(configuration())
                pcs.append(pc)
                pc.on("track", on_track)
                await pc.setRemoteDescription(RTCSessionDescription(request["offer"], "offer"))
                await pc.setLocalDescription(await pc.createAnswer())
                answer: dict[str, Any] = {"answer": pc.localDescription.sdp}
                writer.write(json.dumps(answer).encode() + b"\n")
            elif "count" in request:
                writer.write(json.dumps({"count": len(received.counters)}).encode() + b"\n")
            elif "times" in request:
                reply = {"times": received.times, "undecodable": received.undecodable}
                writer.write(json.dumps(reply).encode() + b"\n")
                done.set()
            await writer.drain()

    server = await asyncio.start_server(serve, host, int(port))
    say(listening=listen)
    async with server:
        await done.wait()
        await asyncio.sleep(0.5)  # the reply leaves before the process does
    for task in tasks:
        task.cancel()
    for pc in pcs:
        await pc.close()


# -- the publisher, the SFU's subscriber and the direct call's sender ------------------------


class Line:
    """The direct call's signalling: one JSON request, one JSON answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def ask(self, **request: Any) -> Any:
        self.writer.write(json.dumps(request).encode() + b"\n")
        await self.writer.drain()
        return json.loads(await self.reader.readline())


async def wait_healthy(http: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + 180  # importing the server alone takes seconds when loaded
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with http.get(url + "/healthz") as r:
                if r.status == 200:
                    return
        await asyncio.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


async def peers(args: argparse.Namespace) -> None:
    # The test peers' SockClient (signalling over Socket.IO); imported here, where it runs.
    from tests.rtc.test_signalling import SockClient
    from tests.support.live import Sock

    alice_h = {"Cookie": args.alice_cookie, "X-CSRF-Token": args.alice_csrf}
    async with aiohttp.ClientSession() as http:
        await wait_healthy(http, args.server)
        async with http.post(
            args.server + "/api/v1/rooms",
            json={"kind": "estaff", "title": "Perte de paquets"},
            headers=alice_h,
        ) as r:
            assert r.status == 201, await r.text()
            room = await r.json()
        async with http.post(
            args.server + f"/api/v1/rooms/{room['id']}/members",
            json={"user_id": args.bob_user_id, "role": "participant"},
            headers=alice_h,
        ) as r:
            assert r.status == 201, await r.text()

    clients: list[SockClient] = []
    sender = RTCPeerConnection(configuration())
    writer: asyncio.StreamWriter | None = None
    try:
        for cookie in (args.alice_cookie, args.bob_cookie):
            sock = await Sock(args.server, cookie).connect()
            joined = await sock.ok("room:join", {"room_id": room["id"]})
            client = SockClient(sock, joined["participant_id"])
            clients.append(client)
            await client.join()
        alice, bob = clients
        await alice.publish(audio=False)

        def sfu_frames() -> int:
            try:
                return len(bob.received_from(alice.id).counters)
            except AssertionError:  # Bob has not been offered Alice's camera yet
                return 0

        await wait_for(lambda: sfu_frames() >= WARM_UP_FRAMES, 180, interval=0.2)

        direct_track = CounterVideoTrack()
        transceiver = sender.addTransceiver(direct_track, direction="sendonly")
        transceiver.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.name == "VP8"]
        )
        await sender.setLocalDescription(await sender.createOffer())
        host, port = args.direct.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        line = Line(reader, writer)
        answer = await line.ask(offer=sender.localDescription.sdp)
        await sender.setRemoteDescription(RTCSessionDescription(answer["answer"], "answer"))

        async def direct_frames() -> bool:
            return (await line.ask(count=True))["count"] >= WARM_UP_FRAMES

        await wait_for(direct_frames, 180, interval=0.2)

        camera = alice.tracks["camera"]
        assert isinstance(camera, CounterVideoTrack)
        say(ready=True, sfu_frames=sfu_frames())
        go = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        assert go.strip() == "go", go
        start = time.monotonic()
        first, direct_first = camera.counter, direct_track.counter
        await wait_for(
            lambda: (
                camera.counter >= first + args.window
                and direct_track.counter >= direct_first + args.window
            ),
            args.window / FPS * 6,
            interval=0.2,
        )
        end = time.monotonic()
        direct = await line.ask(times=True)
        through_sfu = bob.received_from(alice.id)
        say(
            start=start,
            end=end,
            sfu=through_sfu.times,
            sfu_undecodable=through_sfu.undecodable,
            direct=direct["times"],
            direct_undecodable=direct["undecodable"],
        )
    finally:
        if writer is not None:
            writer.close()
        await sender.close()
        for c in clients:
            await c.close()
            await c.sock.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["receiver", "peers"])
    parser.add_argument("--subnet", required=True, help="the only network ICE may gather on")
    parser.add_argument("--listen", help="receiver: HOST:PORT of its signalling")
    parser.add_argument("--server", help="peers: the Consilium node's URL")
    parser.add_argument("--direct", help="peers: HOST:PORT of the receiver's signalling")
    parser.add_argument("--alice-cookie")
    parser.add_argument("--alice-csrf")
    parser.add_argument("--bob-cookie")
    parser.add_argument("--bob-user-id")
    parser.add_argument("--window", type=int, default=300)
    args = parser.parse_args()
    aiortc_internals.restrict_host_addresses([args.subnet])
    if args.role == "receiver":
        asyncio.run(receiver(args.listen))
    else:
        asyncio.run(peers(args))


if __name__ == "__main__":
    main()
