"""Bandwidth per subscriber: transport-cc feedback, the estimator, the budget split, REMB.

The estimator is fed with synthetic feedback from a simulated link: a sender pacing packets
at a given rate into a bottleneck of a given capacity with a drop-tail queue (what `tc tbf`
does), and optional random loss. No clock, no network: these tests are about the arithmetic.
"""

from __future__ import annotations

import random
import struct

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from rtc.bandwidth import (
    TRANSPORT_CC_URI,
    PacketResult,
    RembAggregator,
    SendSideEstimator,
    TrackDemand,
    TransportCc,
    allocate,
    parse_transport_cc,
    transport_cc_packets,
)
from rtc.downtrack import DownTrack
from rtc.forwarder import Forwarder


def build_transport_cc(base_seq: int, arrivals: list[float | None], fb_count: int = 0) -> bytes:
    """A transport-cc feedback packet as a receiver writes it (two-bit status vectors)."""
    received = [a for a in arrivals if a is not None]
    reference = int(received[0] / 0.064) if received else 0
    chunks = b""
    symbols = []
    deltas = b""
    previous = reference * 0.064
    for arrival in arrivals:
        if arrival is None:
            symbols.append(0)
            continue
        delta = round((arrival - previous) / 0.00025)
        previous += delta * 0.00025
        if 0 <= delta <= 255:
            symbols.append(1)
            deltas += bytes([delta])
        else:
            symbols.append(2)
            deltas += struct.pack("!h", delta)
    for i in range(0, len(symbols), 7):
        group = symbols[i : i + 7] + [0] * (7 - len(symbols[i : i + 7]))
        chunk = 0xC000
        for j, symbol in enumerate(group):
            chunk |= symbol << (12 - 2 * j)
        chunks += struct.pack("!H", chunk)
    body = struct.pack(
        "!IIHHI", 1, 2, base_seq, len(arrivals), ((reference & 0xFFFFFF) << 8) | fb_count
    )
    body += chunks + deltas
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("!BBH", 0x80 | 15, 205, (len(body) + 4) // 4 - 1) + body


def test_transport_cc_feedback_round_trip() -> None:
    arrivals: list[float | None] = [10.0, 10.001, None, 10.0035, 10.2, None, None, 10.19, 10.5]
    packet = build_transport_cc(65534, arrivals, fb_count=7)
    count, parsed = parse_transport_cc(packet)
    assert count == 7
    assert [seq for seq, _ in parsed] == [65534, 65535, 0, 1, 2, 3, 4, 5, 6]
    for (_, got), want in zip(parsed, arrivals, strict=True):
        if want is None:
            assert got is None
        else:
            assert got == pytest.approx(want, abs=0.0003)  # 250 µs resolution
    # inside a compound datagram, after a receiver report
    rr = struct.pack("!BBHI", 0x80, 201, 1, 9)
    assert transport_cc_packets(rr + packet) == [packet]


def test_transport_cc_run_length_and_one_bit_chunks() -> None:
    # hand-written: base 100, 20 packets: a run of 3 "small delta", then a one-bit vector
    # of 14 (received, lost alternately), then a run of 3 "not received"
    chunks = struct.pack("!HHH", (1 << 13) | 3, 0x8000 | 0b10101010101010, 3)
    deltas = bytes([4, 4, 4]) + bytes([8] * 7)
    body = struct.pack("!IIHHI", 1, 2, 100, 20, (1 << 8) | 3) + chunks + deltas
    body += b"\x00" * (-len(body) % 4)
    packet = struct.pack("!BBH", 0x8F, 205, (len(body) + 4) // 4 - 1) + body
    count, parsed = parse_transport_cc(packet)
    assert count == 3 and len(parsed) == 20
    received = [seq for seq, at in parsed if at is not None]
    assert received == [100, 101, 102, 103, 105, 107, 109, 111, 113, 115]
    assert parsed[2][1] == pytest.approx(0.064 + 0.003)


def test_malformed_transport_cc_is_refused() -> None:
    packet = build_transport_cc(1, [1.0, 1.01, 1.02])
    with pytest.raises(ValueError):
        parse_transport_cc(packet[:18])
    with pytest.raises(ValueError):
        # claims 40 packets, has chunks for 7 only
        parse_transport_cc(packet[:14] + struct.pack("!H", 40) + packet[16:])
    transport_cc = TransportCc()
    transport_cc.on_feedback(b"\x8f\xcd\x00\x01garbage!")  # ignored, no exception


def simulate(
    estimator: SendSideEstimator,
    *,
    send_rate: float,
    capacity: float,
    seconds: float,
    loss: float = 0.0,
    queue_limit: float = 0.05,
    start: float = 0.0,
    seed: int = 1,
) -> list[int | None]:
    """Send 1200-byte packets at `send_rate` bit/s through a `capacity` bottleneck with a
    drop-tail queue of `queue_limit` seconds, feedback every 100 ms; estimates per feedback."""
    rng = random.Random(seed)
    size = 1200
    interval = size * 8 / send_rate
    link_free = start
    estimates: list[int | None] = []
    batch: list[PacketResult] = []
    next_feedback = start + 0.1
    t = start
    seq = 0
    while t < start + seconds:
        arrival: float | None
        queue_delay = max(0.0, link_free - t)
        if queue_delay > queue_limit or rng.random() < loss:
            arrival = None
        else:
            departure = max(t, link_free) + size * 8 / capacity
            link_free = departure
            arrival = departure + 0.02  # 20 ms propagation
        batch.append(PacketResult(seq, t, arrival, size))
        seq += 1
        t += interval
        if t >= next_feedback:
            estimates.append(estimator.update(batch, t + 0.02))
            batch = []
            next_feedback += 0.1
    return estimates


def test_estimate_on_a_steady_link_stays_above_what_is_sent() -> None:
    estimator = SendSideEstimator()
    estimates = simulate(estimator, send_rate=1_000_000, capacity=5_000_000, seconds=10)
    assert estimator.overuses == 0 and estimator.state == "normal"
    assert estimates[-1] is not None
    assert 1_000_000 <= estimates[-1] <= 2_000_000  # growth is bounded without probing
    assert estimator.loss == 0


def test_estimate_follows_a_bottleneck_down() -> None:
    estimator = SendSideEstimator()
    estimates = simulate(estimator, send_rate=1_000_000, capacity=400_000, seconds=10)
    # a full drop-tail queue: the loss says it (the delay is high but no longer grows)
    assert estimator.loss > 0.3
    assert estimates[-1] is not None and 300_000 <= estimates[-1] <= 450_000
    # and within about three seconds
    assert min(e for e in estimates[:30] if e is not None) < 600_000


def test_a_growing_queue_is_seen_by_the_delay_gradient_before_any_loss() -> None:
    estimator = SendSideEstimator()
    # a deep queue (no drop for 10 s): the queue delay grows by 0.25 s a second
    estimates = simulate(
        estimator, send_rate=1_000_000, capacity=800_000, seconds=4, queue_limit=10.0
    )
    assert estimator.loss == 0
    assert estimator.overuses >= 1
    assert estimates[-1] is not None and estimates[-1] <= 700_000


def test_estimate_comes_back_up_when_the_bottleneck_goes() -> None:
    estimator = SendSideEstimator()
    simulate(estimator, send_rate=1_000_000, capacity=400_000, seconds=6)
    low = estimator.estimate
    assert low is not None and low < 500_000
    estimates = simulate(estimator, send_rate=500_000, capacity=5_000_000, seconds=15, start=6)
    assert estimates[-1] is not None and estimates[-1] > 700_000


def test_heavy_random_loss_lowers_the_estimate_light_loss_does_not() -> None:
    lossy = SendSideEstimator()
    simulate(lossy, send_rate=1_000_000, capacity=10_000_000, seconds=8, loss=0.2)
    assert lossy.loss > 0.1
    assert lossy.estimate is not None and lossy.estimate < 800_000
    light = SendSideEstimator()
    simulate(light, send_rate=1_000_000, capacity=10_000_000, seconds=8, loss=0.01)
    assert light.estimate is not None and light.estimate >= 1_000_000


def test_transport_cc_numbers_packets_and_matches_feedback() -> None:
    now = [100.0]
    transport_cc = TransportCc(clock=lambda: now[0])
    for i in range(300):
        now[0] = 100.0 + i * 0.005
        assert transport_cc.next(1000) == i
    arrivals: list[float | None] = [5.0 + i * 0.005 for i in range(150)]
    transport_cc.on_feedback(build_transport_cc(0, arrivals))
    arrivals = [5.0 + i * 0.005 for i in range(150, 300)]
    now[0] = 101.6
    transport_cc.on_feedback(build_transport_cc(150, arrivals))
    assert transport_cc.feedbacks == 2
    assert transport_cc.estimator.acked_bitrate == pytest.approx(1_600_000, rel=0.05)
    assert transport_cc.estimate is not None and transport_cc.estimate >= 1_600_000
    # a packet reported twice (lost, then late) is counted once
    transport_cc.on_feedback(build_transport_cc(299, [6.5]))
    now[0] = 200.0
    assert transport_cc.estimate is None  # no feedback for 5 s: no estimate


def test_budget_goes_to_audio_then_screen_then_speaker_then_others() -> None:
    tracks = [
        TrackDemand("cam-a", "video", "camera", 800_000),
        TrackDemand("cam-b", "video", "camera", 800_000, speaking=True),
        TrackDemand("screen", "video", "screen", 1_000_000),
        TrackDemand("mic-a", "audio", "audio", 40_000),
        TrackDemand("mic-b", "audio", "audio", 40_000),
    ]
    allowed = allocate(3_000_000, tracks)
    assert allowed["screen"] == 2_920_000
    assert allowed["cam-b"] == 1_920_000
    assert allowed["cam-a"] == 1_120_000  # everyone fits
    allowed = allocate(2_000_000, tracks)
    assert allowed["screen"] == 1_920_000 and allowed["cam-b"] == 920_000
    assert allowed["cam-a"] == 120_000  # does not fit: paused (or its low layer)
    allowed = allocate(100_000, tracks)
    assert allowed["mic-a"] == 100_000 and allowed["mic-b"] >= 40_000  # audio never starves
    assert allowed["screen"] == 20_000
    capped = allocate(5_000_000, [TrackDemand("x", "video", "camera", 1, max_bitrate=700_000)])
    assert capped == {"x": 700_000}


def test_remb_aggregation() -> None:
    now = [100.0]
    low = RembAggregator("min", ceiling=2_000_000, clock=lambda: now[0])
    assert low.aggregate([]) is None
    estimates = [(900_000, 99.0), (300_000, 99.5), (5_000_000, 99.9), (50_000, 90.0)]
    assert low.aggregate(estimates) == 300_000  # the 10 s old one is ignored
    median = RembAggregator("median", ceiling=2_000_000, clock=lambda: now[0])
    assert median.aggregate(estimates) == 900_000
    best = RembAggregator("max", ceiling=2_000_000, clock=lambda: now[0])
    assert best.aggregate(estimates[:2]) == 900_000  # a weak viewer does not pull it down
    assert best.aggregate([(9_000_000, 100.0)]) == 2_000_000  # ceiling


class _Capture:
    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self.rtp = self.packets.append
        self.rtcp = self.packets.append


def _forwarder(kind: str) -> Forwarder:
    return Forwarder(
        publisher_id="p",
        track_id="p:0",
        mid="0",
        kind=kind,
        source="camera" if kind == "video" else "audio",
        codec_name="VP8" if kind == "video" else "opus",
        codec_parameters={},
        clock_rate=90000 if kind == "video" else 48000,
        keyframe_min_interval=0.3,
        remb=None,
    )


@pytest.mark.parametrize(("kind", "ext_id"), [("video", 2), ("video", 0), ("audio", 3)])
async def test_forwarded_packets_carry_a_transport_wide_sequence_number(
    kind: str, ext_id: int
) -> None:
    forwarder = _forwarder(kind)
    forwarder.attach_publisher(_Capture(), 1, 96, -1, 1234)  # type: ignore[arg-type]
    downtrack = DownTrack("s", kind, ssrc=0x1111)
    payload_type = 120 if kind == "video" else 111
    downtrack.configure(payload_type, "VP8" if kind == "video" else "opus", 90000, ext_id)
    transport_cc = TransportCc()
    downtrack.set_transport_cc(transport_cc, 9)
    capture = _Capture()
    downtrack.bind(forwarder)
    downtrack.set_ready(capture)  # type: ignore[arg-type]
    keyframe = bytes([0x10, 0x00, 0x00, 0x9D, 0x01, 0x2A]) + b"x" * 100  # VP8 keyframe
    for i in range(3):
        packet = RtpPacket(payload_type=96, sequence_number=10 + i, timestamp=500, ssrc=1234)
        packet.payload = keyframe
        packet.marker = i == 2
        if kind == "audio":
            packet.extensions.audio_level = (True, 42)
        forwarder.on_rtp(packet, 0)
    uris = [RTCRtpHeaderExtensionParameters(id=9, uri=TRANSPORT_CC_URI)]
    if ext_id and kind == "video":
        uris.append(
            RTCRtpHeaderExtensionParameters(
                id=ext_id, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
            )
        )
    elif ext_id:
        uris.append(
            RTCRtpHeaderExtensionParameters(
                id=ext_id, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"
            )
        )
    extensions = HeaderExtensionsMap()
    extensions.configure(type("P", (), {"headerExtensions": uris})())  # type: ignore[arg-type]
    parsed = [RtpPacket.parse(data, extensions) for data in capture.packets]
    assert [p.extensions.transport_sequence_number for p in parsed] == [0, 1, 2]
    assert all(p.payload == keyframe for p in parsed)
    assert [p.ssrc for p in parsed] == [0x1111] * 3
    if ext_id and kind == "video":
        assert all(p.extensions.abs_send_time is not None for p in parsed)
    if ext_id and kind == "audio":
        assert all(p.extensions.audio_level == (False, 42) for p in parsed)
    if kind == "video":  # a retransmission (video only) gets a new transport-wide number
        downtrack.retransmit([parsed[1].sequence_number])
        again = RtpPacket.parse(capture.packets[-1], extensions)
        assert again.extensions.transport_sequence_number == 3
        assert again.sequence_number == parsed[1].sequence_number
    # without transport-cc negotiated, no number
    downtrack.set_transport_cc(None, 0)
    forwarder.on_rtp(packet, 0)
    plain = RtpPacket.parse(capture.packets[-1], extensions)
    assert plain.extensions.transport_sequence_number is None


def test_a_video_that_does_not_fit_is_paused_then_tried_again() -> None:
    downtrack = DownTrack("s", "video", ssrc=1)
    downtrack.set_allowance(300_000, 1_000_000, 0.0)
    assert not downtrack.budget_paused  # once is not enough
    downtrack.set_allowance(300_000, 1_000_000, 1.0)
    assert downtrack.budget_paused and downtrack.paused
    downtrack.set_allowance(300_000, 1_000_000, 2.0)
    assert downtrack.budget_paused  # still no room, back-off not over
    downtrack.set_allowance(300_000, 1_000_000, 5.5)
    assert not downtrack.budget_paused  # tried again after the back-off
    downtrack.set_allowance(300_000, 1_000_000, 6.5)
    downtrack.set_allowance(300_000, 1_000_000, 7.5)
    assert downtrack.budget_paused
    downtrack.set_allowance(300_000, 1_000_000, 12.0)
    assert downtrack.budget_paused  # paused again right after a try: longer back-off
    downtrack.set_allowance(1_200_000, 1_000_000, 12.5)
    assert not downtrack.budget_paused  # it fits again
    # the client's own pause is kept apart: the budget never resumes a hidden tile
    downtrack.set_paused(True)
    downtrack.set_allowance(None, 0, 13.0)
    assert downtrack.paused and downtrack.client_paused
    # a drop of the estimate without loss (a busy receiver, not a full queue) pauses nothing
    calm = DownTrack("s", "video", ssrc=3)
    for t in range(5):
        calm.set_allowance(300_000, 1_000_000, float(t), congested=False)
    assert not calm.budget_paused and calm.allowed_bitrate == 300_000
    audio = DownTrack("s", "audio", ssrc=2)
    for t in range(5):
        audio.set_allowance(1_000, 40_000, float(t))
    assert not audio.paused  # audio is never paused for the budget
