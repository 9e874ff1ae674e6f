"""The room of tests/rtc/test_capped_viewer.py, run inside a network namespace the test made
(``ip netns exec NS python -m tests.rtc.capped_viewer_peers --remb-mode max``).

An in-process Sfu; Alice publishes a camera whose bars carry noise (so VP8 spends whatever
bitrate it is told) and a tone; Bob and Carol receive both. Once everyone decodes, the
datagrams the server sends to Bob's port are capped with ``tc tbf`` on the namespace's
``lo`` (under an htb class chosen by a u32 filter on his UDP port: nobody else's traffic is
shaped), and
for WINDOW seconds what reaches Bob and Carol is counted (RTP payload bytes at their
receivers, decoded frames). One JSON line of figures on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import subprocess
import sys
import time
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from rtc import aiortc_internals
from rtc.config import RtcConfig
from rtc.sfu import Sfu
from tests.rtc.clients import FPS, VIDEO_CLOCK, Harness, encode_bars, wait_decoded, wait_for

WINDOW = 20.0  # seconds measured after the cap


class NoisyBarsTrack(MediaStreamTrack):
    """The counter bars with noise on top: still readable, costly to compress."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.counter = 0
        self._start: float | None = None
        self._rng = np.random.default_rng(7)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self.counter / FPS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        gray = encode_bars(self.counter, int(time.time() * 1000) & 0xFFFFFFFF).astype(np.int16)
        gray += self._rng.integers(-40, 40, gray.shape, dtype=np.int16)
        gray = np.clip(gray, 0, 255).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(np.stack([gray] * 3, axis=-1), format="rgb24")
        frame.pts = self.counter * (VIDEO_CLOCK // FPS)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.counter += 1
        return frame


def count_payload(client: Any, counts: dict[str, int]) -> None:
    """Count RTP payload bytes of each incoming video m-line at the client's receivers."""
    for transceiver in client.pc.getTransceivers():
        receiver = transceiver.receiver
        if transceiver.kind != "video" or getattr(receiver, "_counted", False):
            continue
        original = receiver._handle_rtp_packet
        key = transceiver.mid or "?"

        async def handle(
            packet: Any, arrival_time_ms: int, _o: Any = original, _k: str = key
        ) -> None:
            counts[_k] = counts.get(_k, 0) + len(packet.payload)
            await _o(packet, arrival_time_ms)

        receiver._handle_rtp_packet = handle
        receiver._counted = True


def cap_port(port: int, rate: str) -> None:
    """Shape what goes to UDP `port` on this namespace's lo, and nothing else: an htb root
    (this kernel has no prio qdisc) whose default class is unshaped, and a class for the
    port with a `tbf` leaf (its small queue gives the congestion loss a real link has)."""

    def tc(*args: str) -> None:
        subprocess.run(["tc", *args], check=True, capture_output=True)

    tc("qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10")
    tc("class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit")
    tc("class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate", "10gbit")
    tc("qdisc", "add", "dev", "lo", "parent", "1:20", "handle", "20:", "tbf",
       "rate", rate, "burst", "16kbit", "latency", "50ms")  # fmt: skip
    tc("filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
       "match", "ip", "protocol", "17", "0xff", "match", "ip", "dport", str(port), "0xffff",
       "flowid", "1:20")  # fmt: skip


async def main(remb_mode: str, rate: str) -> dict[str, Any]:
    aiortc_internals.restrict_host_addresses(["127.0.0.1"])
    harness = Harness(
        lambda on_event: Sfu(
            RtcConfig(allowed_addresses=("127.0.0.1",), remb_mode=remb_mode), on_event
        )
    )
    sfu = harness.sfu
    try:
        alice = await harness.add("alice")
        await alice.publish()
        alice.published["camera"].sender.replaceTrack(NoisyBarsTrack())
        bob = await harness.add("bob")
        carol = await harness.add("carol")
        await harness.settle(15)
        await wait_decoded([(bob, "alice"), (carol, "alice")], 30, timeout=60)
        camera = next(f for f in sfu.peer("alice").published.values() if f.kind == "video")
        # let the publisher come up to what the room asks for before the cap (a machine too
        # busy to encode that much goes on anyway: the figures say what it reached)
        with contextlib.suppress(AssertionError):
            await wait_for(lambda: camera.bitrate > 600_000, 90, interval=0.5)
        before = camera.bitrate
        pair = aiortc_internals.ice_connections(bob.pc)[0]._nominated[1]
        cap_port(pair.local_candidate.port, rate)

        counts: dict[str, dict[str, int]] = {"bob": {}, "carol": {}}
        count_payload(bob, counts["bob"])
        count_payload(carol, counts["carol"])
        bob_seen = bob.received_from("alice")
        carol_seen = carol.received_from("alice")
        start = time.monotonic()
        samples = []
        bob_dt = next(
            s.downtrack for s in sfu.peer("bob").subscriber.subscriptions.values()
            if s.downtrack.kind == "video"
        )  # fmt: skip
        paused_seconds = 0.0
        while time.monotonic() - start < WINDOW:
            await asyncio.sleep(1.0)
            paused_seconds += 1.0 if bob_dt.budget_paused else 0.0
            samples.append(
                {
                    "t": round(time.monotonic() - start, 1),
                    "publisher_bps": camera.bitrate,
                    "remb_to_publisher": camera.remb.last_sent if camera.remb else None,
                    "bob_budget": sfu.peer("bob").subscriber.budget,
                    "carol_budget": sfu.peer("carol").subscriber.budget,
                    "bob_paused": bob_dt.budget_paused,
                }
            )
        end = time.monotonic()
        # the second half of the window: after the estimate and the publisher settled
        half = start + WINDOW / 2

        def rate_of(name: str) -> int:
            return int(sum(counts[name].values()) * 8 / (end - start))

        def frames(seen: Any, since: float) -> int:
            return sum(1 for t in seen.times if since <= t <= end)

        bob_audio = [
            s.downtrack.stats.packets
            for s in sfu.peer("bob").subscriber.subscriptions.values()
            if s.downtrack.kind == "audio"
        ]
        return {
            "remb_mode": remb_mode,
            "cap": rate,
            "publisher_bps_before_cap": before,
            "publisher_bps_end": camera.bitrate,
            "carol_video_bps": rate_of("carol"),
            "bob_video_bps": rate_of("bob"),
            "carol_fps_second_half": round(frames(carol_seen, half) / (end - half), 1),
            "bob_fps_second_half": round(frames(bob_seen, half) / (end - half), 1),
            "bob_video_paused_s": paused_seconds,
            "bob_audio_packets_sent": sum(bob_audio),
            "samples": samples,
        }
    finally:
        with contextlib.suppress(Exception):
            await harness.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--remb-mode", default="max")
    parser.add_argument("--rate", default="400kbit")
    args = parser.parse_args()
    figures = asyncio.run(main(args.remb_mode, args.rate))
    sys.stdout.write(json.dumps(figures) + "\n")
