"""The forwarding path's own cost, without sockets or SRTP: CPU µs per packet in and out.

    python -m loadtest.sfu.bench_forwarder --subscribers 1,4,11 --packets 200000

Feeds synthetic VP8 RTP packets to one :class:`rtc.forwarder.Forwarder` bound to N down-tracks
whose transport writer discards the bytes, and reads the process's CPU time (not wall time):
what is measured is our per-packet bookkeeping (statistics, history, keyframe detection,
header rewriting), the part a change to rtc/ can move. On a shared, busy machine this holds
much better than the end-to-end benchmark (bench_sfu), whose figures follow the load.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from rtc.aiortc_internals import RtpPacket
from rtc.downtrack import DownTrack
from rtc.forwarder import Forwarder


class _Writer:
    """A TransportWriter stand-in: bound, discards what it is given."""

    def __init__(self) -> None:
        self.count = 0
        self.rtp = self._write
        self.rtcp = self._write

    def _write(self, data: bytes) -> None:
        self.count += 1


async def measure(subscribers: int, packets: int, repeat: int = 5) -> dict[str, Any]:
    forwarder = Forwarder(
        publisher_id="p",
        track_id="p:0",
        mid="0",
        kind="video",
        source="camera",
        codec_name="VP8",
        codec_parameters={},
        clock_rate=90000,
        keyframe_min_interval=0.3,
        remb=None,
    )
    upstream = _Writer()
    forwarder.attach_publisher(upstream, 1, 96, 97, 1234)  # type: ignore[arg-type]
    writers = []
    for i in range(subscribers):
        writer = _Writer()
        downtrack = DownTrack(f"s{i}", "video", 5000 + i)
        downtrack.configure(96, "VP8", 90000, 3)
        downtrack.bind(forwarder)
        downtrack.set_ready(writer)  # type: ignore[arg-type]
        writers.append(writer)
    keyframe = b"\x10\x00\x9d\x01\x2a" + bytes(1100)
    delta = b"\x10\x01" + bytes(1100)
    items = []
    for n in range(packets):
        packet = RtpPacket(
            payload_type=96,
            marker=int(n % 9 == 8),
            sequence_number=n & 0xFFFF,
            timestamp=(n // 9) * 3000,
            ssrc=1234,
            payload=keyframe if n % 900 == 0 else delta,
        )
        items.append(packet)
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        now_ms = 0
        for packet in items:
            forwarder.on_rtp(packet, now_ms)
        best = min(best, time.process_time() - start)
        # next round: sequence numbers continue
        for packet in items:
            packet.sequence_number = (packet.sequence_number + packets) & 0xFFFF
    sent = sum(w.count for w in writers)
    forwarder.close()
    return {
        "subscribers": subscribers,
        "us_per_packet_in": round(best / packets * 1e6, 3),
        "us_per_packet_out": round(best / max(1, packets * subscribers) * 1e6, 3),
        "sent": sent,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", default="1,4,11")
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for n in (int(x) for x in args.subscribers.split(",") if x):
        print(asyncio.run(measure(n, args.packets, args.repeat)), flush=True)


if __name__ == "__main__":
    main()
