"""Quality statistics per track: what a publisher sends us and what each subscriber gets.

Counters are updated on the packet path with plain integer arithmetic; rates and fractions
are computed only when a report is asked for.
"""

from __future__ import annotations

import time
from typing import Any

from rtc.aiortc_internals import RtpPacket, StreamStatistics


class BitrateMeter:
    """Bits per second between two successive readings of a byte counter."""

    __slots__ = ("_last_bytes", "_last_time", "value")

    def __init__(self) -> None:
        self._last_bytes = 0
        self._last_time = time.monotonic()
        self.value = 0

    def update(self, total_bytes: int) -> int:
        now = time.monotonic()
        elapsed = now - self._last_time
        if elapsed >= 0.2:
            self.value = int((total_bytes - self._last_bytes) * 8 / elapsed)
            self._last_bytes = total_bytes
            self._last_time = now
        return self.value


class InboundStats:
    """RFC 3550 receiver statistics of one incoming RTP stream (publisher → server).

    The counting is aiortc's :class:`StreamStatistics` (what its own receivers report);
    this adds the byte count, the bitrate and the gap a packet opens, for NACKs.
    """

    __slots__ = ("_clock_rate", "bitrate", "bytes", "stream")

    def __init__(self, clock_rate: int) -> None:
        self._clock_rate = clock_rate
        self.stream = StreamStatistics(clock_rate)
        self.bytes = 0
        self.bitrate = BitrateMeter()

    def on_packet(self, packet: RtpPacket, size: int) -> int:
        """Count a packet; return how many sequence numbers it skipped (0 when in order)."""
        stream = self.stream
        previous = stream.max_seq
        stream.add(packet)
        self.bytes += size
        if previous is None:
            return 0
        delta = (packet.sequence_number - previous) & 0xFFFF
        return delta - 1 if 0 < delta < 0x8000 else 0

    @property
    def packets(self) -> int:
        return self.stream.packets_received

    @property
    def expected(self) -> int:
        return 0 if self.stream.max_seq is None else self.stream.packets_expected

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.packets)

    @property
    def extended_max_seq(self) -> int:
        return self.stream.cycles + (self.stream.max_seq or 0)

    @property
    def jitter(self) -> int:
        """Interarrival jitter in RTP timestamp units."""
        return self.stream.jitter

    def fraction_lost(self) -> int:
        """Fraction lost since the previous call, in 1/256 (the RR field)."""
        if self.stream.max_seq is None:
            return 0
        return min(255, self.stream.fraction_lost)

    def report(self) -> dict[str, Any]:
        expected = self.expected
        lost = self.lost
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "packets_lost": lost,
            "loss": round(lost / expected, 4) if expected else 0.0,
            "jitter_ms": round(self.jitter * 1000 / self._clock_rate, 2),
            "bitrate": self.bitrate.update(self.bytes),
        }


class OutboundStats:
    """What we sent to one subscriber, and what its receiver reports say about it."""

    __slots__ = (
        "bitrate",
        "bytes",
        "fraction_lost",
        "jitter",
        "nacks",
        "packets",
        "packets_lost",
        "plis",
        "retransmitted",
        "rtt",
    )

    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0
        self.retransmitted = 0
        self.nacks = 0
        self.plis = 0
        self.fraction_lost = 0
        self.packets_lost = 0
        self.jitter = 0
        self.rtt: float | None = None
        self.bitrate = BitrateMeter()

    def report(self, clock_rate: int) -> dict[str, Any]:
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "retransmitted": self.retransmitted,
            "nacks": self.nacks,
            "plis": self.plis,
            "packets_lost": self.packets_lost,
            "loss": round(self.fraction_lost / 256, 4),
            "jitter_ms": round(self.jitter * 1000 / clock_rate, 2),
            "rtt_ms": None if self.rtt is None else round(self.rtt * 1000, 2),
            "bitrate": self.bitrate.update(self.bytes),
        }


class SfuTotals:
    """Process-wide packet counters for monitoring (``Sfu.totals``), read at scrape time:
    the live tracks' own counters are summed then, and a track that ends adds its counts
    here, so nothing is added on the packet path."""

    FIELDS = (
        "received_packets",
        "received_bytes",
        "forwarded_packets",
        "forwarded_bytes",
        "retransmitted_packets",
        "dropped_padding",
        "nacks_received",
        "nacks_sent",
        "nacks_given_up",
        "plis_received",
        "plis_sent",
        "keyframe_requests",
    )

    def __init__(self) -> None:
        self.counts = dict.fromkeys(self.FIELDS, 0)

    def add_forwarder(self, f: Any) -> None:
        for layer in getattr(f, "layers", ()):  # simulcast: the layers hold the counts
            self.add_forwarder(layer)
        c = self.counts
        c["received_packets"] += f.stats.packets
        c["received_bytes"] += f.stats.bytes
        c["dropped_padding"] += f.dropped
        c["nacks_sent"] += f.nacks_sent
        c["nacks_given_up"] += f.nacks_given_up
        c["plis_sent"] += f.keyframes.plis_sent
        c["keyframe_requests"] += f.keyframes.requests

    def add_downtrack(self, dt: Any) -> None:
        c, s = self.counts, dt.stats
        c["forwarded_packets"] += s.packets
        c["forwarded_bytes"] += s.bytes
        c["retransmitted_packets"] += s.retransmitted
        c["nacks_received"] += s.nacks
        c["plis_received"] += s.plis
