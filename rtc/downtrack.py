"""One published track as sent to one subscriber: the per-hop state of the forwarding path.

A down-track owns the outgoing SSRC (the one its m-line announced), rewrites sequence numbers
and timestamps so the subscriber sees one continuous stream across pauses and source changes,
waits for a keyframe before sending video, answers the subscriber's NACKs from the forwarder's
packet history, turns its PLI/FIR into keyframe requests and keeps its REMB estimate.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rtc.aiortc_internals import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    TransportWriter,
    unpack_remb_fci,
)
from rtc.munger import Munger
from rtc.stats import OutboundStats

if TYPE_CHECKING:
    from rtc.bandwidth import TransportCc
    from rtc.forwarder import Forwarder

_HEADER = struct.Struct("!BBHII")
_pack_header = _HEADER.pack
#: RTP header, then a one-byte-header extension block that starts with the transport-wide
#: sequence number (the forwarder's tail brings the other elements, padding and the payload)
_HEADER_TWCC = struct.Struct("!BBHIIHHBH")
_pack_header_twcc = _HEADER_TWCC.pack
#: a video track whose allowance stays under this share of its bitrate is paused (while the
#: subscriber's link loses at least PAUSE_LOSS of its packets); a simulcast layer at or below
#: the one received keeps fitting down to this share of its bitrate
PAUSE_MARGIN = 0.8
PAUSE_LOSS = 0.02
#: a track paused for its subscriber's budget, or held on a lower simulcast layer, is tried
#: again (resumed, or one layer up) after this long (doubling, at most PAUSE_BACKOFF_MAX,
#: while it comes back down soon after each try), seconds
PAUSE_BACKOFF = 4.0
PAUSE_BACKOFF_MAX = 32.0
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
NTP_EPOCH_OFFSET = 2208988800


def ntp_now() -> int:
    """Current wall-clock time as a 64-bit NTP timestamp."""
    t = time.time() + NTP_EPOCH_OFFSET
    return (int(t) << 32) | int((t % 1) * (1 << 32))


class DownTrack:
    """Outgoing stream state for one (subscriber, published track) pair."""

    def __init__(self, subscriber_id: str, kind: str, ssrc: int) -> None:
        self.subscriber_id = subscriber_id
        self.kind = kind
        self._ssrc = ssrc  # the name aiortc's RTP router reads
        self.ssrc = ssrc
        self.forwarder: Forwarder | None = None
        #: what writes to us: the forwarder itself, or the simulcast layer we get now
        self.feed: Forwarder | None = None
        #: simulcast: highest layer index allowed by the bandwidth budget (None: no cap),
        #: the rendered tile size in device pixels (None: unknown), layer switches done
        self.max_layer: int | None = None
        self.view: tuple[int, int] | None = None
        self.layer_switches = 0
        #: simulcast: the highest layer index the subscriber's budget allows (None: no
        #: verdict yet); paused for the budget when not even the lowest fits (`set_allowance`)
        self.budget_layer: int | None = None
        #: simulcast: a layer above what the allowance covers is being tried (the server does
        #: not probe: taking the layer is the probe); only loss ends the try early
        self.trying_layer = False
        self.writer: TransportWriter | None = None
        #: the subscriber's m-line is negotiated and its transport connected.
        self.ready = False
        self.paused = False
        #: bound to a source but not yet started: nothing is sent until the subscriber has
        #: accepted the offer that carries this source (`set_ready` after its answer). A
        #: reused m-line must not get the new source's packets (under the old sequence and
        #: timestamp offsets, from the middle of a frame) while the subscriber still has it
        #: inactive: Chrome then drops the stream after it is active again.
        self.pending_start = False
        self.waiting_keyframe = kind == "video"
        self.payload_type = 0
        self.codec_name = ""
        self.clock_rate = 90000 if kind == "video" else 48000
        self.ext_id = 0  # abs-send-time (video) or audio-level (audio) extension id
        #: which extension block the forwarder builds for us: ext_id, plus 0x100 when the
        #: subscriber negotiated transport-cc (we then write its sequence number first)
        self.tail_key = 0
        self.transport_cc: TransportCc | None = None
        self._twcc_byte = 0
        self._twcc_words = 1
        self._marker_pt = (0, 0x80)
        #: sequence number / timestamp rewriting
        self.munger = Munger(self.clock_rate)
        # RTCP
        self._sr_lsr = 0
        self._sr_time = 0.0
        self.remb: tuple[int, float] | None = None
        #: the highest sequence number the subscriber's last receiver report says it got
        self.highest_received: int | None = None
        self.stats = OutboundStats()
        #: the client hid the tile (`set_paused`); `paused` is that or the budget's pause
        self.client_paused = False
        #: paused because the subscriber's budget cannot carry this video (`set_budget_paused`)
        self.budget_paused = False
        #: what the subscriber's budget allows this track, bits per second (None: no estimate
        #: yet) and when it was computed; a simulcast layer choice reads it
        self.allowed_bitrate: int | None = None
        self.allowed_at = 0.0
        self._low_allowance = 0
        self._retry_at = 0.0
        self._backoff = PAUSE_BACKOFF
        self._resumed_at = float("-inf")

    # --- wiring -----------------------------------------------------------------------------

    def configure(self, payload_type: int, codec_name: str, clock_rate: int, ext_id: int) -> None:
        """Parameters negotiated for the subscriber's m-line."""
        self.payload_type = payload_type
        self.codec_name = codec_name
        self.clock_rate = clock_rate
        self.munger.clock_rate = clock_rate
        self.ext_id = ext_id
        self._marker_pt = (payload_type, 0x80 | payload_type)
        self._set_tail_key()

    def set_transport_cc(self, transport_cc: TransportCc | None, ext_id: int) -> None:
        """Write the transport-wide sequence number (extension `ext_id`, 0: none) on every
        packet, numbered by the subscriber connection's `transport_cc`."""
        self.transport_cc = transport_cc if ext_id else None
        self._twcc_byte = (ext_id << 4) | 1
        self._set_tail_key()

    def _set_tail_key(self) -> None:
        twcc = self.transport_cc is not None
        self.tail_key = self.ext_id | (0x100 if twcc else 0)
        self._twcc_words = 2 if self.ext_id else 1

    def bind(self, forwarder: Forwarder | None) -> None:
        """Attach to a published track (or detach with None); the stream continues."""
        if self.forwarder is forwarder:
            return
        old = self.forwarder
        if old is not None:
            old.remove_downtrack(self)
            self.munger.source_changed()
        self.forwarder = forwarder
        self.remb = None
        # another track: its tile size and its congestion history are not this one's
        self.view = None
        self.budget_layer = None
        self.trying_layer = False
        # a new source starts with no budget verdict
        self.budget_paused = False
        self.allowed_bitrate = None
        self._low_allowance = 0
        self._backoff = PAUSE_BACKOFF
        if forwarder is not None:
            # starts on the next `set_ready`, i.e. once the subscriber accepted the offer that
            # carries this source: a keyframe sent before that could be thrown away
            self.pending_start = True
            forwarder.add_downtrack(self)

    def set_ready(self, writer: TransportWriter) -> None:
        """The subscriber's side is negotiated and connected: start if bound."""
        self.writer = writer
        was_ready = self.ready
        self.ready = True
        if self.pending_start or not was_ready:
            self.start()

    def start(self) -> None:
        self.pending_start = False
        forwarder = self.forwarder
        if forwarder is None or not self.ready:
            return
        self.begin_epoch()
        forwarder.refresh()

    def set_paused(self, paused: bool) -> None:
        """The client's pause (hidden tile) or resume; the budget may keep it paused."""
        self.client_paused = paused
        self._apply_pause(paused or self.budget_paused)

    def set_budget_paused(self, paused: bool) -> None:
        """Pause a video the subscriber's link cannot carry, or resume it (from a keyframe)."""
        self.budget_paused = paused
        self._apply_pause(paused or self.client_paused)

    def _apply_pause(self, paused: bool) -> None:
        """Pause (takes effect after the frame in flight) or resume (from a keyframe)."""
        if paused == self.paused:
            return
        self.paused = paused
        forwarder = self.forwarder
        if not paused:
            self.begin_epoch()
            if forwarder is not None:
                forwarder.refresh()
            self._reselect()  # simulcast: the layer wanted may have been stopped meanwhile
        elif forwarder is not None:
            # cutting a video frame in half would let the receiver assemble a broken frame
            # from its head and the next epoch's packets: finish the frame first
            forwarder.pause_after_frame(self)

    def begin_epoch(self) -> None:
        """Next packet starts a new epoch; video waits for a keyframe, which is requested."""
        if self.kind == "video":
            self.waiting_keyframe = True
            if self.feed is not None and not self.paused:
                self.feed.request_keyframe()
        else:
            self.waiting_keyframe = True  # audio: the next packet starts the epoch

    # --- simulcast layer choice --------------------------------------------------------------

    def set_max_layer(self, layer: int | None) -> None:
        """Bandwidth budget: forward no layer above index `layer` (0 = lowest; None: no cap).

        A no-op on a track without simulcast. The switch happens at the next keyframe of the
        layer chosen, which is asked for."""
        self.max_layer = None if layer is None else max(0, int(layer))
        self._reselect()

    def set_view(self, width: int | None, height: int | None) -> None:
        """The tile this track is shown in (device pixels): the smallest layer that fills it."""
        self.view = (max(0, int(width)), max(0, int(height))) if width and height else None
        self._reselect()

    @property
    def layer(self) -> str | None:
        """The RID of the simulcast layer forwarded now (None without simulcast)."""
        feed = self.feed
        return feed.rid if feed is not None else None

    @property
    def layer_size(self) -> tuple[int, int] | None:
        """The picture size of the layer forwarded now, once a keyframe told it."""
        feed = self.feed
        return feed.resolution if feed is not None and feed.rid else None

    @property
    def target(self) -> str | None:
        """The RID of the layer this down-track should get (None without simulcast)."""
        forwarder = self.forwarder
        if forwarder is None or not forwarder.layers:
            return None
        return forwarder.layers[forwarder.wanted(self)].rid  # type: ignore[attr-defined]

    def _reselect(self) -> None:
        forwarder = self.forwarder
        if forwarder is not None and forwarder.layers:
            forwarder.reselect(self)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.bind(None)
        self.ready = False
        self.writer = None

    # --- packet path ------------------------------------------------------------------------

    def write(self, seq: int, ts: int, marker: int, b0: int, tail: bytes, keyframe: bool) -> None:
        """Send one forwarded packet (seq is the forwarder's gap-free sequence number)."""
        if self.waiting_keyframe:
            if not keyframe and self.kind == "video":
                return
            self.waiting_keyframe = False
            self.munger.start_epoch(seq, ts)
        munger = self.munger  # its arithmetic inlined: one call less per packet
        out_seq = (seq + munger.seq_offset) & 0xFFFF
        out_ts = (ts + munger.ts_offset) & 0xFFFFFFFF
        transport_cc = self.transport_cc
        if transport_cc is None:
            data = _pack_header(b0, self._marker_pt[marker], out_seq, out_ts, self.ssrc) + tail
        else:
            data = (
                _pack_header_twcc(
                    b0,
                    self._marker_pt[marker],
                    out_seq,
                    out_ts,
                    self.ssrc,
                    0xBEDE,
                    self._twcc_words,
                    self._twcc_byte,
                    transport_cc.next(19 + len(tail)),
                )
                + tail
            )
        self.writer.rtp(data)  # type: ignore[union-attr, misc]  # active implies bound
        stats = self.stats
        stats.packets += 1
        stats.bytes += len(data)
        munger.next_seq = (out_seq + 1) & 0xFFFF
        munger.last_ts = out_ts

    # --- feedback from the subscriber -------------------------------------------------------

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        """Called by aiortc's RTP router for RTCP about our SSRC."""
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc == self.ssrc:
                    self.highest_received = report.highest_sequence & 0xFFFF
                    self._on_report(
                        report.fraction_lost,
                        report.packets_lost,
                        report.jitter,
                        report.lsr,
                        report.dlsr,
                    )
        elif isinstance(packet, RtcpRtpfbPacket):
            if packet.fmt == RTCP_RTPFB_NACK:
                self.retransmit(packet.lost)
        elif isinstance(packet, RtcpPsfbPacket):
            if packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
                self.stats.plis += 1
                if self.feed is not None and not self.paused:
                    self.feed.request_keyframe()
            elif packet.fmt == RTCP_PSFB_APP:
                try:
                    bitrate, ssrcs = unpack_remb_fci(packet.fci)
                except ValueError:
                    return
                if self.ssrc in ssrcs:
                    self.remb = (bitrate // max(1, len(ssrcs)), time.monotonic())

    def _on_report(
        self, fraction_lost: int, packets_lost: int, jitter: int, lsr: int, dlsr: int
    ) -> None:
        stats = self.stats
        stats.fraction_lost = fraction_lost
        stats.packets_lost = packets_lost
        stats.jitter = jitter
        if lsr and lsr == self._sr_lsr:
            rtt = time.monotonic() - self._sr_time - dlsr / 65536
            if rtt >= 0:
                stats.rtt = rtt if stats.rtt is None else 0.85 * stats.rtt + 0.15 * rtt

    def retransmit(self, lost: list[int]) -> None:
        """Answer a NACK from the forwarder's history, within the current epoch."""
        forwarder = self.feed
        writer = self.writer
        if forwarder is None or writer is None or writer.rtp is None or self.waiting_keyframe:
            return
        self.stats.nacks += 1
        unrecoverable = False
        for out_seq in lost:
            seq = self.munger.in_seq(out_seq)
            if seq is None:
                continue  # before this epoch: not ours to resend
            data = forwarder.rebuild(seq, self)
            if data is not None:
                writer.rtp(data)
                self.stats.retransmitted += 1
            elif not forwarder.awaiting(seq):
                unrecoverable = True  # never received, or out of the history
        if unrecoverable and self.kind == "video":
            # the subscriber would wait on the hole until its buffer gives up: a keyframe now
            forwarder.request_keyframe()

    def packet(self, seq: int, ts: int, marker: int, b0: int, tail: bytes) -> bytes:
        """A forwarder packet as we send it again (retransmissions), `tail` built for our
        `tail_key`."""
        out_seq = self.munger.out_seq(seq)
        out_ts = self.munger.out_ts(ts)
        transport_cc = self.transport_cc
        if transport_cc is None:
            return _pack_header(b0, self._marker_pt[marker], out_seq, out_ts, self.ssrc) + tail
        header = _pack_header_twcc(
            b0,
            self._marker_pt[marker],
            out_seq,
            out_ts,
            self.ssrc,
            0xBEDE,
            self._twcc_words,
            self._twcc_byte,
            transport_cc.next(19 + len(tail)),
        )
        return header + tail

    # --- the subscriber's budget ------------------------------------------------------------

    def set_allowance(
        self,
        allowed: int | None,
        bitrate: int,
        now: float,
        congested: bool = True,
        layers: Sequence[int] = (),
    ) -> None:
        """What the subscriber's budget allows this track now (None: no estimate), against
        what its stream takes (`bitrate`), or, for a simulcast track, against the bitrates of
        the layers its tile wants (`layers`, lowest first: `_allow_layers`).

        Video that does not fit while the link shows loss (`congested`) is paused after two
        readings in a row (a single drop of the estimate is not enough, and a delay-based drop
        alone never pauses: a busy receiver reads as a growing queue); it is tried again when
        it fits or after a back-off (the server does not probe: resuming is the probe)."""
        self.allowed_bitrate = allowed
        self.allowed_at = now
        if self.kind != "video":
            return
        if allowed is None:
            self._low_allowance = 0
            self.trying_layer = False
            lifted, self.budget_layer = self.budget_layer is not None, None
            if self.budget_paused:
                self.set_budget_paused(False)
            elif lifted:
                self._reselect()
            return
        if layers:
            self._allow_layers(allowed, layers, now, congested)
            return
        if self.budget_paused:
            if allowed >= bitrate or now >= self._retry_at:
                self._resumed_at = now
                self.set_budget_paused(False)
            return
        if bitrate and allowed < bitrate * PAUSE_MARGIN and congested and not self.client_paused:
            self._low_allowance += 1
            if self._low_allowance >= 2:
                self._low_allowance = 0
                self._back_off(now)
                self.set_budget_paused(True)
        else:
            self._low_allowance = 0

    def _back_off(self, now: float) -> None:
        """Came back down (paused, or a lower layer): when is the next try. Back down soon
        after the last try: wait twice as long as before; else the first back-off again."""
        recent = now - self._resumed_at < 2 * self._backoff
        backoff = min(self._backoff * 2, PAUSE_BACKOFF_MAX)
        self._backoff = backoff if recent else PAUSE_BACKOFF
        self._retry_at = now + self._backoff

    def _allow_layers(
        self, allowed: int, layers: Sequence[int], now: float, congested: bool
    ) -> None:
        """Simulcast: take the highest layer whose bitrate fits the allowance (layers at or
        below the one received keep fitting down to PAUSE_MARGIN of theirs); pause only when
        not even the lowest fits, with the same conditions as a single stream.

        Going up: at once when the allowance covers a higher layer, else one layer up once
        the back-off is over (a try: kept until loss shows, or the allowance covers it).
        Going down: at once when the allowance does not cover the layer received (a try
        only on loss); down soon after a try doubles the back-off."""
        top = len(layers) - 1
        if self.budget_paused:
            level = -1
        elif self.budget_layer is None:
            level = top
        else:
            level = min(self.budget_layer, top)
        fit = -1
        for i, rate in enumerate(layers):
            if rate * (PAUSE_MARGIN if i <= level else 1.0) <= allowed:
                fit = i
        if fit >= level:
            self._low_allowance = 0
            if fit > level:
                self.trying_layer = False
                self._set_level(fit)
            elif self.trying_layer:
                self.trying_layer = False  # the allowance covers the layer tried
            elif level < top and now >= self._retry_at and not self.client_paused:
                self.trying_layer = level >= 0
                self._resumed_at = now
                self._set_level(level + 1)
            return
        # the layer received does not fit
        if self.trying_layer and not congested:
            return  # a try ends early only on loss
        self.trying_layer = False
        lower = max(fit, 0)
        if lower < level:
            self._back_off(now)
            self._set_level(lower)
        if fit < 0 and congested and not self.client_paused:
            self._low_allowance += 1
            if self._low_allowance >= 2:
                self._low_allowance = 0
                self._back_off(now)
                self._set_level(-1)
        else:
            self._low_allowance = 0

    def _set_level(self, level: int) -> None:
        """Simulcast: the budget's verdict, a layer index or -1 (paused for the budget)."""
        if level < 0:
            self.set_budget_paused(True)
            return
        self.budget_layer = level
        if self.budget_paused:
            self.set_budget_paused(False)  # resumes on the chosen layer
        else:
            self._reselect()

    def publisher_figure(self) -> tuple[int, float] | None:
        """What this subscriber tells the track's publisher: the allowance when the budget is
        known, else its own REMB."""
        if self.allowed_bitrate is not None:
            return self.allowed_bitrate, self.allowed_at
        return self.remb

    # --- reports we send --------------------------------------------------------------------

    def sender_report(self) -> RtcpSrPacket | None:
        """An SR for this stream, keeping the publisher's NTP/RTP mapping (lip sync)."""
        forwarder = self.feed
        ts_offset = self.munger.ts_offset
        if self.munger.last_ts is None or forwarder is None:
            return None
        if forwarder.sender_report is not None:
            ntp, rtp_ts = forwarder.sender_report
            rtp_ts = (rtp_ts + ts_offset) & 0xFFFFFFFF
        else:
            # no SR from the publisher yet: map our clock to its last timestamp
            ntp = ntp_now()
            elapsed = time.monotonic() - forwarder.last_arrival
            rtp_ts = forwarder.last_timestamp + ts_offset + int(elapsed * self.clock_rate)
            rtp_ts &= 0xFFFFFFFF
        self._sr_lsr = (ntp >> 16) & 0xFFFFFFFF
        self._sr_time = time.monotonic()
        return RtcpSrPacket(
            ssrc=self.ssrc,
            sender_info=RtcpSenderInfo(
                ntp_timestamp=ntp,
                rtp_timestamp=rtp_ts,
                packet_count=self.stats.packets & 0xFFFFFFFF,
                octet_count=self.stats.bytes & 0xFFFFFFFF,
            ),
        )
