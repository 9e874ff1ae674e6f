"""The forwarding path's own cost, without sockets or SRTP: CPU µs per packet in and out.

    python -m loadtest.sfu.bench_forwarder --subscribers 1,4,11 --packets 200000

Each subscriber count is measured twice in the same invocation: one plain track, and one
simulcast track (three layers q/h/f of 1, 3 and 9 packets per frame, subscribers spread over
the three layers, then all on the top layer: `rtc.simulcast.SimulcastForwarder`). Each line
prints CPU µs per packet received and per packet forwarded (`sent`: packets forwarded in the
best round).

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
from rtc.simulcast import SimulcastForwarder

TRACK: dict[str, Any] = {
    "publisher_id": "p",
    "track_id": "p:0",
    "mid": "0",
    "kind": "video",
    "source": "camera",
    "codec_name": "VP8",
    "codec_parameters": {},
    "clock_rate": 90000,
    "keyframe_min_interval": 0.3,
    "remb": None,
}


class _Writer:
    """A TransportWriter stand-in: bound, discards what it is given."""

    def __init__(self) -> None:
        self.count = 0
        self.rtp = self._write
        self.rtcp = self._write

    def _write(self, data: bytes) -> None:
        self.count += 1


async def measure(subscribers: int, packets: int, repeat: int = 5) -> dict[str, Any]:
    forwarder = Forwarder(**TRACK)
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
    sent = sum(w.count for w in writers) // repeat
    forwarder.close()
    return {
        "subscribers": subscribers,
        "us_per_packet_in": round(best / packets * 1e6, 3),
        "us_per_packet_out": round(best / max(1, packets * subscribers) * 1e6, 3),
        "sent": sent,
    }


async def measure_simulcast(
    subscribers: int, packets: int, repeat: int = 5, *, mixed: bool = True
) -> dict[str, Any]:
    """Three layers (1 + 3 + 9 packets per frame); subscriber i on layer i % 3 (`mixed`), or
    everybody on the top layer (the dispatch cost against a plain track)."""
    forwarder = SimulcastForwarder(rids=["q", "h", "f"], simulcast_bitrate=2_500_000, **TRACK)
    upstream = _Writer()
    forwarder.attach_publisher(upstream, 1, 96, 97, 0)  # type: ignore[arg-type]
    per_frame = (1, 3, 9)
    keyframe = b"\x10\x00\x9d\x01\x2a" + bytes(1100)
    delta = b"\x10\x01" + bytes(1100)
    items = []
    seqs = [0, 0, 0]
    n = 0
    frame = 0
    while n < packets:
        for layer, count in enumerate(per_frame):
            for k in range(count):
                packet = RtpPacket(
                    payload_type=96,
                    marker=int(k == count - 1),
                    sequence_number=seqs[layer] & 0xFFFF,
                    timestamp=frame * 3000,
                    ssrc=1000 + layer,
                    payload=keyframe if frame % 100 == 0 and k == 0 else delta,
                )
                packet.extensions.rtp_stream_id = "qhf"[layer]
                seqs[layer] += 1
                items.append(packet)
                n += 1
        frame += 1
    for packet in items[: sum(per_frame)]:  # the layers are learnt and live
        forwarder.on_rtp(packet, 0)
    writers = []
    for i in range(subscribers):
        writer = _Writer()
        downtrack = DownTrack(f"s{i}", "video", 5000 + i)
        downtrack.configure(96, "VP8", 90000, 3)
        downtrack.set_max_layer(i % 3 if mixed else None)
        downtrack.bind(forwarder)
        downtrack.set_ready(writer)  # type: ignore[arg-type]
        writers.append(writer)
    best = float("inf")
    sent_best = 0
    for _ in range(repeat):
        before = sum(w.count for w in writers)
        start = time.process_time()
        for packet in items:
            forwarder.on_rtp(packet, 0)
        elapsed = time.process_time() - start
        if elapsed < best:
            best = elapsed
            sent_best = sum(w.count for w in writers) - before
        for packet in items:
            packet.sequence_number = (packet.sequence_number + len(items)) & 0xFFFF
    layers = [sum(1 for dt in forwarder.downtracks if dt.layer == r) for r in "qhf"]
    forwarder.close()
    return {
        "mode": "simulcast-mixed" if mixed else "simulcast-top",
        "subscribers": subscribers,
        "on_layers_qhf": layers,
        "us_per_packet_in": round(best / len(items) * 1e6, 3),
        "us_per_packet_out": round(best / max(1, sent_best) * 1e6, 3),
        "sent": sent_best,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", default="1,4,11")
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for n in (int(x) for x in args.subscribers.split(",") if x):
        plain = asyncio.run(measure(n, args.packets, args.repeat))
        print({"mode": "plain", **plain}, flush=True)
        for mixed in (True, False):
            result = asyncio.run(measure_simulcast(n, args.packets, args.repeat, mixed=mixed))
            print(result, flush=True)


if __name__ == "__main__":
    main()
