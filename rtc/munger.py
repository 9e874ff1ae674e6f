"""Sequence number and timestamp rewriting of one down-track (as LiveKit's rtpmunger.go).

A subscriber must see one continuous stream on its m-line although the server pauses it,
resumes it from a keyframe, and switches it to another publisher's track. The munger keeps
the offsets from the forwarder's (gap-free) numbering to the subscriber's, starts a new epoch
at the first packet sent after each of those events, and maps a NACKed sequence number back
to the forwarder's history.

The per-packet arithmetic (`out = (seq + seq_offset) & 0xFFFF`, same for timestamps) is done
by :meth:`rtc.downtrack.DownTrack.write` on these slots directly: it is the hot path.
"""

from __future__ import annotations

import random
import time


class Munger:
    """Offsets from a forwarder's numbering to what one subscriber receives."""

    __slots__ = (
        "_last_time",
        "_started",
        "_switched_source",
        "clock_rate",
        "epoch_seq",
        "last_ts",
        "next_seq",
        "seq_offset",
        "ts_offset",
    )

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.seq_offset = 0
        self.ts_offset = 0
        #: first forwarder sequence number of the current epoch
        self.epoch_seq = 0
        #: the subscriber's next sequence number and last timestamp sent
        self.next_seq = random.randint(0, 0x7FFF)
        self.last_ts: int | None = None
        self._last_time = 0.0
        self._started = False
        self._switched_source = False

    def source_changed(self) -> None:
        """The next epoch comes from another track (another publisher's clock)."""
        self._switched_source = self._started
        self._last_time = time.monotonic()

    def layer_changed(self, last_arrival: float) -> None:
        """The next epoch comes from another simulcast layer of the same track.

        Layers are separate RTP streams (own sequence numbers, own timestamp origin): the
        sequence numbers go on from ours, the timestamps from our last one advanced by the time
        since the old layer's last packet (`last_arrival`, monotonic seconds).
        """
        self._switched_source = self._started
        self._last_time = min(last_arrival, time.monotonic())

    def start_epoch(self, seq: int, ts: int) -> None:
        """Start an epoch at this packet: contiguous sequence numbers, sane timestamps."""
        self.seq_offset = (self.next_seq - seq) & 0xFFFF
        self.epoch_seq = seq
        now = time.monotonic()
        if self._switched_source and self.last_ts is not None:
            # another publisher's clock: continue from ours, advanced by the elapsed time
            elapsed = int((now - self._last_time) * self.clock_rate) or 1
            self.ts_offset = (self.last_ts + elapsed - ts) & 0xFFFFFFFF
            self._switched_source = False
        self._started = True
        self._last_time = now

    def out_seq(self, seq: int) -> int:
        return (seq + self.seq_offset) & 0xFFFF

    def out_ts(self, ts: int) -> int:
        return (ts + self.ts_offset) & 0xFFFFFFFF

    def in_seq(self, out_seq: int) -> int | None:
        """The forwarder's sequence number for one we sent, None if before this epoch."""
        seq = (out_seq - self.seq_offset) & 0xFFFF
        if (seq - self.epoch_seq) & 0xFFFF >= 0x8000:
            return None
        return seq
