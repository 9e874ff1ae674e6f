"""One published track as sent to one subscriber: the per-hop state of the forwarding path.

A down-track owns the outgoing SSRC (the one its m-line announced), rewrites sequence numbers
and timestamps so the subscriber sees one continuous stream across pauses and source changes,
waits for a keyframe before sending video, answers the subscriber's NACKs from the forwarder's
packet history, turns its PLI/FIR into keyframe requests and keeps its REMB estimate.
"""

from __future__ import annotations

import struct
import time
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
    from rtc.forwarder import Forwarder

_HEADER = struct.Struct("!BBHII")
_pack_header = _HEADER.pack
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

    # --- wiring -----------------------------------------------------------------------------

    def configure(self, payload_type: int, codec_name: str, clock_rate: int, ext_id: int) -> None:
        """Parameters negotiated for the subscriber's m-line."""
        self.payload_type = payload_type
        self.codec_name = codec_name
        self.clock_rate = clock_rate
        self.munger.clock_rate = clock_rate
        self.ext_id = ext_id
        self._marker_pt = (payload_type, 0x80 | payload_type)

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
        """Pause (takes effect after the frame in flight) or resume (from a keyframe)."""
        if paused == self.paused:
            return
        self.paused = paused
        forwarder = self.forwarder
        if not paused:
            self.begin_epoch()
            if forwarder is not None:
                forwarder.refresh()
        elif forwarder is not None:
            # cutting a video frame in half would let the receiver assemble a broken frame
            # from its head and the next epoch's packets: finish the frame first
            forwarder.pause_after_frame(self)

    def begin_epoch(self) -> None:
        """Next packet starts a new epoch; video waits for a keyframe, which is requested."""
        if self.kind == "video":
            self.waiting_keyframe = True
            if self.forwarder is not None and not self.paused:
                self.forwarder.request_keyframe()
        else:
            self.waiting_keyframe = True  # audio: the next packet starts the epoch

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
        data = _pack_header(b0, self._marker_pt[marker], out_seq, out_ts, self.ssrc) + tail
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
                if self.forwarder is not None and not self.paused:
                    self.forwarder.request_keyframe()
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
        forwarder = self.forwarder
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

    def header(self, seq: int, ts: int, marker: int, b0: int) -> bytes:
        """Our RTP header for a forwarder packet (used for retransmissions)."""
        return _pack_header(
            b0,
            self._marker_pt[marker],
            self.munger.out_seq(seq),
            self.munger.out_ts(ts),
            self.ssrc,
        )

    # --- reports we send --------------------------------------------------------------------

    def sender_report(self) -> RtcpSrPacket | None:
        """An SR for this stream, keeping the publisher's NTP/RTP mapping (lip sync)."""
        forwarder = self.forwarder
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
