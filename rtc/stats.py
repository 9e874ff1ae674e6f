"""Quality statistics per track: what a publisher sends us and what each subscriber gets.

Counters are updated on the packet path with plain integer arithmetic; rates and fractions
are computed only when a report is asked for.
"""

from __future__ import annotations

import time
from typing import Any


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
    """RFC 3550 receiver statistics of one incoming RTP stream (publisher → server)."""

    __slots__ = (
        "_clock_rate",
        "_expected_prior",
        "_last_transit",
        "_received_prior",
        "base_seq",
        "bitrate",
        "bytes",
        "cycles",
        "jitter",
        "max_seq",
        "packets",
    )

    def __init__(self, clock_rate: int) -> None:
        self._clock_rate = clock_rate
        self.packets = 0
        self.bytes = 0
        self.base_seq = -1
        self.max_seq = -1
        self.cycles = 0
        self.jitter = 0.0
        self._last_transit: int | None = None
        self._expected_prior = 0
        self._received_prior = 0
        self.bitrate = BitrateMeter()

    def on_packet(self, seq: int, timestamp: int, arrival_ms: int, size: int) -> int:
        """Count a packet; return how many sequence numbers it skipped (0 when in order)."""
        self.packets += 1
        self.bytes += size
        gap = 0
        if self.max_seq < 0:
            self.base_seq = self.max_seq = seq
        else:
            delta = (seq - self.max_seq) & 0xFFFF
            if 0 < delta < 0x8000:
                if seq < self.max_seq:
                    self.cycles += 0x10000
                self.max_seq = seq
                gap = delta - 1
            else:
                return 0  # late or repeated packet: no jitter sample
        transit = arrival_ms * self._clock_rate // 1000 - timestamp
        last = self._last_transit
        if last is not None:
            d = transit - last
            if d < 0:
                d = -d
            if d < 0x7FFFFFFF:
                self.jitter += (d - self.jitter) / 16.0
        self._last_transit = transit
        return gap

    @property
    def expected(self) -> int:
        if self.max_seq < 0:
            return 0
        return self.cycles + self.max_seq - self.base_seq + 1

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.packets)

    @property
    def extended_max_seq(self) -> int:
        return self.cycles + max(self.max_seq, 0)

    def fraction_lost(self) -> int:
        """Fraction lost since the previous call, in 1/256 (the RR field)."""
        expected = self.expected
        interval_expected = expected - self._expected_prior
        interval_received = self.packets - self._received_prior
        self._expected_prior = expected
        self._received_prior = self.packets
        lost = interval_expected - interval_received
        if interval_expected <= 0 or lost <= 0:
            return 0
        return min(255, (lost << 8) // interval_expected)

    def report(self) -> dict[str, Any]:
        expected = self.expected
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "packets_lost": self.lost,
            "loss": round(self.lost / expected, 4) if expected else 0.0,
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
