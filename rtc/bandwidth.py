"""Bandwidth feedback: subscribers' REMB estimates aggregated into one REMB per publisher track."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable

#: estimates older than this are ignored, seconds.
ESTIMATE_TTL = 5.0
#: never tell a publisher less than this, bits per second.
MIN_BITRATE = 100_000


class RembAggregator:
    """Combines the latest REMB of each subscriber of a track into what the publisher is told.

    "min" serves the weakest subscriber (no one starves; the default for small rooms);
    "median" serves the typical subscriber (a single bad link does not lower everyone's
    quality; the weak one then relies on loss recovery).
    """

    def __init__(
        self, mode: str, ceiling: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if mode not in ("min", "median"):
            raise ValueError(f"unknown REMB aggregation mode {mode!r}")
        self.mode = mode
        self.ceiling = ceiling
        self._clock = clock
        self.last_sent: int | None = None

    def aggregate(self, estimates: Iterable[tuple[int, float]]) -> int | None:
        """`estimates` are (bitrate, received_at) of the active subscribers; None if none."""
        now = self._clock()
        fresh = [b for b, at in estimates if now - at <= ESTIMATE_TTL]
        if not fresh:
            return None
        value = min(fresh) if self.mode == "min" else int(statistics.median(fresh))
        value = max(MIN_BITRATE, min(self.ceiling, value))
        self.last_sent = value
        return value
