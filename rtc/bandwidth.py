"""Bandwidth: what each subscriber's link carries, how it is shared, what publishers are told.

* :class:`SendSideEstimator`: a GCC-like estimate of one subscriber's downlink from
  transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions),
  fed with (sequence number, send time, arrival time, size) results. Pure: no clock, no I/O.
* :class:`TransportCc`: the per-connection side of it: numbers every packet the server sends to
  that subscriber, remembers when it went out, and turns feedback packets into results.
* :func:`parse_transport_cc`: RTCP RTPFB FMT 15 (what Chromium sends) → arrivals.
* :func:`allocate`: a subscriber's budget split across its down-tracks by priority.
* :class:`RembAggregator`: subscribers' figures for one track → the one REMB its publisher gets.

The estimator, in short (docs/rtc.md, "Bandwidth per subscriber"): packets sent within 5 ms
form a group; each pair of groups gives a delay variation (arrival spacing minus send
spacing); its running sum, smoothed, is fitted by least squares over the last 20 groups
(WebRTC's trendline filter); a slope above an adaptive threshold is *overuse* (a queue grows
somewhere), below minus the threshold *underuse*. The delay-based rate then follows AIMD:
overuse sets it to 85 % of the rate the subscriber actually received, normal lets it grow
8 % a second, underuse holds it. A loss-based rate caps it: above 10 % loss it is cut by half
the loss fraction (not below 85 % of the received rate), under 2 % it may grow again.
Without probing (the server sends no padding), growth is bounded to what was received plus a
margin, so an estimate is never far above what the link has shown it carries.
"""

from __future__ import annotations

import statistics
import struct
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass

TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
#: RTCP RTPFB (205) feedback message type of transport-wide congestion control feedback.
RTCP_RTPFB_TWCC = 15

#: estimates older than this are ignored, seconds.
ESTIMATE_TTL = 5.0
#: never tell a publisher less than this, bits per second.
MIN_BITRATE = 100_000


# --- transport-cc feedback -------------------------------------------------------------------


def parse_transport_cc(packet: bytes) -> tuple[int, list[tuple[int, float | None]]]:
    """One transport-cc feedback packet (RTCP header included) → (feedback packet count,
    [(sequence number, arrival time in seconds on the receiver's clock, or None if lost)]).

    Raises ValueError on a malformed packet.
    """
    if len(packet) < 20 or packet[1] != 205 or packet[0] & 0x1F != RTCP_RTPFB_TWCC:
        raise ValueError("not a transport-cc feedback packet")
    length = (struct.unpack_from("!H", packet, 2)[0] + 1) * 4
    if length > len(packet):
        raise ValueError("transport-cc feedback is truncated")
    base_seq, count, ref_and_count = struct.unpack_from("!HHI", packet, 12)
    reference = ref_and_count >> 8
    if reference & 0x800000:
        reference -= 1 << 24  # 24-bit signed, in multiples of 64 ms
    fb_count = ref_and_count & 0xFF
    pos = 20
    symbols: list[int] = []
    while len(symbols) < count:
        if pos + 2 > length:
            raise ValueError("transport-cc feedback: status chunks run past the end")
        chunk = struct.unpack_from("!H", packet, pos)[0]
        pos += 2
        if chunk & 0x8000 == 0:  # run length chunk: one symbol repeated
            symbol = (chunk >> 13) & 0x3
            run = chunk & 0x1FFF
            symbols.extend([symbol] * min(run, count - len(symbols)))
        elif chunk & 0x4000 == 0:  # status vector, 14 one-bit symbols
            symbols.extend((chunk >> (13 - i)) & 0x1 for i in range(14))
        else:  # status vector, 7 two-bit symbols
            symbols.extend((chunk >> (12 - 2 * i)) & 0x3 for i in range(7))
    del symbols[count:]
    arrival = reference * 0.064
    results: list[tuple[int, float | None]] = []
    for i, symbol in enumerate(symbols):
        seq = (base_seq + i) & 0xFFFF
        if symbol == 0:
            results.append((seq, None))
            continue
        if symbol == 1:  # small delta: one unsigned byte of 250 µs
            if pos + 1 > length:
                raise ValueError("transport-cc feedback: deltas run past the end")
            delta = packet[pos]
            pos += 1
        elif symbol == 2:  # large or negative delta: two signed bytes
            if pos + 2 > length:
                raise ValueError("transport-cc feedback: deltas run past the end")
            delta = struct.unpack_from("!h", packet, pos)[0]
            pos += 2
        else:
            raise ValueError("transport-cc feedback: reserved status symbol")
        arrival += delta * 0.00025
        results.append((seq, arrival))
    return fb_count, results


def transport_cc_packets(data: bytes) -> list[bytes]:
    """The transport-cc feedback packets inside a compound RTCP datagram (clear text)."""
    found = []
    pos = 0
    while pos + 4 <= len(data):
        length = (struct.unpack_from("!H", data, pos + 2)[0] + 1) * 4
        if data[pos + 1] == 205 and data[pos] & 0x1F == RTCP_RTPFB_TWCC:
            found.append(data[pos : pos + length])
        pos += length
    return found


@dataclass(frozen=True, slots=True)
class PacketResult:
    """One packet the server sent, as the subscriber's feedback reported it."""

    seq: int
    send_time: float  # seconds, the server's clock
    arrival_time: float | None  # seconds, the subscriber's clock; None: lost
    size: int = 1200  # bytes


# --- the estimator ---------------------------------------------------------------------------

BURST_GROUP = 0.005  # packets sent within 5 ms form one group
TRENDLINE_WINDOW = 20
TRENDLINE_SMOOTHING = 0.9
TRENDLINE_GAIN = 4.0
THRESHOLD_INITIAL = 12.5  # ms
THRESHOLD_UP = 0.0087
THRESHOLD_DOWN = 0.039
DECREASE_FACTOR = 0.85
INCREASE_PER_SECOND = 1.08
LOSS_HIGH = 0.10
LOSS_LOW = 0.02
ACKED_WINDOW = 1.0  # seconds of arrivals over which the received rate is measured
#: growth without probing: at most max(1.5 × received, received + this), bits per second
GROWTH_MARGIN = 300_000


class SendSideEstimator:
    """Delay- and loss-based bandwidth estimate of one subscriber's link (see the module doc).

    Feed :meth:`update` with the results of each feedback packet, in order; read
    :attr:`estimate` (bits per second, None until a first second of feedback has come).
    """

    def __init__(
        self,
        initial: int = 1_000_000,
        min_bitrate: int = 50_000,
        max_bitrate: int = 10_000_000,
    ) -> None:
        self.initial = initial
        self.min_bitrate = min_bitrate
        self.max_bitrate = max_bitrate
        self.estimate: int | None = None
        self.delay_based: float | None = None
        self.loss_based: float | None = None
        #: "normal", "overuse" or "underuse": the delay detector's latest verdict
        self.state = "normal"
        self.loss = 0.0  # fraction lost in the latest loss period
        self.acked_bitrate: int | None = None
        self.overuses = 0
        self._acked: deque[tuple[float, int]] = deque()
        self._acked_bytes = 0
        # delay gradient
        self._group: tuple[float, float, float, float] | None = (
            None  # first send, last send, last arrival, first arrival
        )
        self._previous_group: tuple[float, float] | None = None  # (last send, last arrival)
        self._accumulated = 0.0
        self._smoothed = 0.0
        self._points: deque[tuple[float, float]] = deque(maxlen=TRENDLINE_WINDOW)
        self._first_arrival: float | None = None
        self._deltas = 0
        self.trend = 0.0
        self.threshold = THRESHOLD_INITIAL
        self._last_threshold_update: float | None = None
        self._overuse_since: float | None = None
        self._previous_trend = 0.0
        # rate control
        self._last_update: float | None = None
        self._last_decrease = -1e9
        self._lost = 0
        self._counted = 0
        self._loss_period_start: float | None = None

    # --- input ------------------------------------------------------------------------------

    def update(self, results: Iterable[PacketResult], now: float) -> int | None:
        """One feedback packet's results (send order), `now` on the server's clock."""
        for result in sorted(results, key=lambda r: r.send_time):
            self._counted += 1
            if result.arrival_time is None:
                self._lost += 1
                continue
            self._on_arrival(result)
        if self._loss_period_start is None:
            self._loss_period_start = now
        self._update_rates(now)
        return self.estimate

    def _on_arrival(self, result: PacketResult) -> None:
        arrival = result.arrival_time
        assert arrival is not None
        self._acked.append((arrival, result.size))
        self._acked_bytes += result.size
        while self._acked and arrival - self._acked[0][0] > ACKED_WINDOW:
            self._acked_bytes -= self._acked.popleft()[1]
        if self._acked and arrival - self._acked[0][0] >= ACKED_WINDOW / 2:
            span = max(arrival - self._acked[0][0], ACKED_WINDOW / 2)
            self.acked_bitrate = int(self._acked_bytes * 8 / span)

        group = self._group
        if group is None:
            self._group = (result.send_time, result.send_time, arrival, arrival)
            return
        first_send, _, last_arrival, first_arrival = group
        if result.send_time - first_send <= BURST_GROUP:
            self._group = (first_send, result.send_time, max(last_arrival, arrival), first_arrival)
            return
        # the group is complete: compare it with the one before
        _, last_send, last_arrival, _ = group
        if self._previous_group is not None:
            send_delta = last_send - self._previous_group[0]
            arrival_delta = last_arrival - self._previous_group[1]
            self._on_delay_variation((arrival_delta - send_delta) * 1000, last_arrival)
        self._previous_group = (last_send, last_arrival)
        self._group = (result.send_time, result.send_time, arrival, arrival)

    def _on_delay_variation(self, variation_ms: float, arrival: float) -> None:
        """WebRTC's trendline filter and adaptive threshold, in a few lines."""
        self._deltas = min(self._deltas + 1, 60)
        self._accumulated += variation_ms
        self._smoothed = (
            TRENDLINE_SMOOTHING * self._smoothed + (1 - TRENDLINE_SMOOTHING) * self._accumulated
        )
        if self._first_arrival is None:
            self._first_arrival = arrival
        self._points.append(((arrival - self._first_arrival) * 1000, self._smoothed))
        if len(self._points) < TRENDLINE_WINDOW:
            return
        slope = _slope(self._points)
        if slope is None:
            return
        trend = slope * self._deltas * TRENDLINE_GAIN
        self.trend = trend
        now_ms = arrival * 1000
        if trend > self.threshold:
            if self._overuse_since is None:
                self._overuse_since = now_ms
            # overuse when it lasts (10 ms) and does not shrink
            if now_ms - self._overuse_since >= 10 and trend >= self._previous_trend:
                self.state = "overuse"
        elif trend < -self.threshold:
            self._overuse_since = None
            self.state = "underuse"
        else:
            self._overuse_since = None
            self.state = "normal"
        self._previous_trend = trend
        self._adapt_threshold(trend, now_ms)

    def _adapt_threshold(self, trend: float, now_ms: float) -> None:
        last = self._last_threshold_update
        self._last_threshold_update = now_ms
        if last is None or abs(trend) > self.threshold + 15:
            return  # a spike (a keyframe, a pause of the sender) does not move the threshold
        k = THRESHOLD_DOWN if abs(trend) < self.threshold else THRESHOLD_UP
        elapsed = min(now_ms - last, 100.0)
        self.threshold += k * (abs(trend) - self.threshold) * elapsed
        self.threshold = min(max(self.threshold, 6.0), 600.0)

    # --- rates --------------------------------------------------------------------------------

    def _update_rates(self, now: float) -> None:
        acked = self.acked_bitrate
        if acked is None:
            return  # not one half second of arrivals yet
        if self.delay_based is None:
            start = max(self.initial, acked * 1.5)
            self.delay_based = self.loss_based = start
            self._last_update = now
        assert self.delay_based is not None and self.loss_based is not None
        elapsed = min(max(now - (self._last_update or now), 0.0), 1.0)
        self._last_update = now
        ceiling = max(acked * 1.5, acked + GROWTH_MARGIN)

        if self.state == "overuse":
            if now - self._last_decrease >= 0.2:
                self.delay_based = min(self.delay_based, DECREASE_FACTOR * acked)
                self._last_decrease = now
                self.overuses += 1
        elif self.state == "normal":
            grown = self.delay_based * INCREASE_PER_SECOND**elapsed
            self.delay_based = max(self.delay_based, min(grown, ceiling))
        # underuse: hold (queues are draining)

        # loss, over periods of at least 20 packets and 0.5 s
        start = self._loss_period_start or now
        if self._counted >= 20 and now - start >= 0.5:
            self.loss = self._lost / self._counted
            if self.loss > LOSS_HIGH:
                # cut by half the loss, but not below what the delay rule would give: the
                # stream is not ours to slow down (a pause is), so the loss may well stay
                cut = max(self._current() * (1 - 0.5 * self.loss), DECREASE_FACTOR * acked)
                self.loss_based = min(self.loss_based, cut)
            elif self.loss < LOSS_LOW:
                grown = self.loss_based * INCREASE_PER_SECOND ** (now - start)
                self.loss_based = max(self.loss_based, min(grown, ceiling))
            self._lost = self._counted = 0
            self._loss_period_start = now
        self.estimate = int(self._current())

    def _current(self) -> float:
        assert self.delay_based is not None and self.loss_based is not None
        value = min(self.delay_based, self.loss_based)
        return min(max(value, self.min_bitrate), self.max_bitrate)


def _slope(points: Sequence[tuple[float, float]]) -> float | None:
    n = len(points)
    mean_x = sum(p[0] for p in points) / n
    mean_y = sum(p[1] for p in points) / n
    denominator = sum((p[0] - mean_x) ** 2 for p in points)
    if denominator == 0:
        return None
    return sum((p[0] - mean_x) * (p[1] - mean_y) for p in points) / denominator


# --- the connection's side -------------------------------------------------------------------

_HISTORY = 1 << 13
_HISTORY_MASK = _HISTORY - 1


class TransportCc:
    """Transport-wide sequence numbers for everything sent to one subscriber, and its feedback.

    One per subscriber connection (BUNDLE: one transport): every down-track of the subscriber
    takes its next number from here for each packet it writes (:meth:`next`).
    """

    def __init__(
        self,
        estimator: SendSideEstimator | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.estimator = estimator or SendSideEstimator()
        self._clock = clock
        self._seq = 0
        self._sent: list[tuple[int, float, int] | None] = [None] * _HISTORY
        self._highest: int | None = None  # unwrapped, highest sequence number reported
        self.feedbacks = 0
        self.last_feedback = 0.0

    def next(self, size: int) -> int:
        """The transport-wide sequence number of a packet of `size` bytes sent now."""
        seq = self._seq
        self._sent[seq & _HISTORY_MASK] = (seq, self._clock(), size)
        self._seq = (seq + 1) & 0xFFFF
        return seq

    def on_feedback(self, packet: bytes) -> None:
        """One RTCP transport-cc packet from the subscriber (ignored if malformed)."""
        try:
            _, arrivals = parse_transport_cc(packet)
        except ValueError:
            return
        results = []
        for seq, arrival in arrivals:
            unwrapped = self._unwrap(seq)
            if self._highest is not None and unwrapped <= self._highest:
                continue  # reported before (a late arrival of a packet counted lost)
            entry = self._sent[seq & _HISTORY_MASK]
            if entry is None or entry[0] != seq:
                continue  # not ours, or out of the history
            results.append(PacketResult(seq, entry[1], arrival, entry[2]))
        if arrivals:
            last = self._unwrap(arrivals[-1][0])
            self._highest = last if self._highest is None else max(self._highest, last)
        now = self._clock()
        self.feedbacks += 1
        self.last_feedback = now
        if results:
            self.estimator.update(results, now)

    def _unwrap(self, seq: int) -> int:
        if self._highest is None:
            return seq
        delta = (seq - self._highest) & 0xFFFF
        if delta >= 0x8000:
            delta -= 0x10000
        return self._highest + delta

    @property
    def estimate(self) -> int | None:
        """The estimate, if feedback came within ESTIMATE_TTL seconds."""
        if self._clock() - self.last_feedback > ESTIMATE_TTL:
            return None
        return self.estimator.estimate


# --- the budget split ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrackDemand:
    """One down-track as the allocation sees it."""

    key: Hashable
    kind: str  # "audio" or "video"
    source: str  # "camera", "screen", "audio"
    bitrate: int  # what its stream (or chosen layer) takes now, bits per second
    speaking: bool = False  # its publisher is the active speaker
    max_bitrate: int | None = None  # never allow more than this
    #: simulcast: the bitrates of the layers it may take (lowest first, up to what its tile
    #: wants); it takes the highest that fits. Empty: one stream of `bitrate`.
    layers: tuple[int, ...] = ()


def priority(track: TrackDemand) -> int:
    """Audio first (small, never paused), then screen shares, the active speaker, the rest."""
    if track.kind == "audio":
        return 0
    if track.source == "screen":
        return 1
    if track.speaking:
        return 2
    return 3


def allocate(budget: int, tracks: Sequence[TrackDemand]) -> dict[Hashable, int]:
    """Split `budget` (bits per second) across `tracks` by priority; → {key: allowed bitrate}.

    Each track, in priority order (input order within a priority), is allowed what the tracks
    before it left; a track that fits takes its `bitrate` from what is left, a video track
    that does not fit takes nothing (the caller may pause it). A simulcast track (`layers`)
    takes the bitrate of the highest layer that fits its allowance (the layer its down-track
    then chooses, `DownTrack.set_allowance`), nothing if even the lowest does not fit. Audio
    always takes its bitrate.
    """
    allowed: dict[Hashable, int] = {}
    remaining = max(0, budget)
    for track in sorted(tracks, key=priority):
        allowance = remaining
        if track.max_bitrate is not None:
            allowance = min(allowance, track.max_bitrate)
        if track.kind == "audio":
            allowance = max(allowance, track.bitrate)
            remaining = max(0, remaining - track.bitrate)
        elif track.layers:
            fitting = [rate for rate in track.layers if rate <= allowance]
            remaining -= fitting[-1] if fitting else 0
        elif track.bitrate <= allowance:
            remaining -= track.bitrate
        allowed[track.key] = allowance
    return allowed


def remb_budget(figures: Iterable[tuple[int, float] | None], now: float) -> int | None:
    """A subscriber's budget from its REMB (the fallback without transport-cc): the sum of
    the shares its REMB gave each video track, None if one sent track has no fresh figure."""
    total = 0
    for value in figures:
        if value is None or now - value[1] > ESTIMATE_TTL:
            return None
        total += value[0]
    return total


# --- what publishers are told ----------------------------------------------------------------


class RembAggregator:
    """Combines the latest figure of each subscriber of a track into what the publisher is told.

    "max" (the default) serves the best-placed subscriber: without simulcast a subscriber whose
    link cannot carry the stream has it paused (its budget), so a weak link no longer lowers
    what everyone else gets. "min" serves the weakest subscriber (everyone gets the same, low,
    quality); "median" the typical one.
    """

    def __init__(
        self, mode: str, ceiling: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if mode not in ("min", "median", "max"):
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
        if self.mode == "min":
            value = min(fresh)
        elif self.mode == "max":
            value = max(fresh)
        else:
            value = int(statistics.median(fresh))
        value = max(MIN_BITRATE, min(self.ceiling, value))
        self.last_sent = value
        return value
