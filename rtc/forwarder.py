"""One published track, received once and written to every subscribed down-track.

This is the hot path. aiortc's RTP router hands each parsed packet of the publisher's m-line
to :meth:`Forwarder._handle_rtp_packet` (we registered the forwarder where aiortc would have
registered its decoding receiver). Per packet: statistics, history (video), keyframe
detection, one header-extension block shared by all subscribers, then for each active
down-track one struct pack, one concatenation, one SRTP protect and one sendto. Nothing is
decoded, nothing encoded, nothing logged.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable
from typing import Any

from rtc.aiortc_internals import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
    TransportWriter,
    pack_remb_fci,
)
from rtc.bandwidth import RembAggregator
from rtc.downtrack import DownTrack
from rtc.keyframes import KeyframeRequester, keyframe_detector, vp8_keyframe_size
from rtc.stats import BitrateMeter, InboundStats

logger = logging.getLogger(__name__)

HISTORY_SIZE = 512  # packets kept per video track for NACK answers (~4 s at 1 Mbit/s)
_HISTORY_MASK = HISTORY_SIZE - 1
_EXT_ABS = struct.Struct("!HHI")  # one-byte-header block holding abs-send-time
_EXT_LEVEL = struct.Struct("!HHBBH")  # one-byte-header block holding the audio level
_ABS_ELEMENT = struct.Struct("!I")  # abs-send-time element, to follow a transport-cc one
#: how long a down-track may wait for its keyframe before we ask again, seconds.
KEYFRAME_RETRY = 0.8
#: NACKs to the publisher: first retry after NACK_RETRY s, then NACK_BACKOFF times longer
#: each time (at most NACK_RETRY_MAX), NACK_TRIES NACKs in all; a packet still missing after
#: that, or older than NACK_MAX_AGE s, is given up and a keyframe is asked for instead.
NACK_RETRY = 0.04
NACK_BACKOFF = 1.5
NACK_RETRY_MAX = 0.15
NACK_TRIES = 8
NACK_MAX_AGE = 1.0
#: gaps larger than this are not NACKed (a burst or a restart): keyframe request at once.
NACK_MAX_GAP = 64

PacketTap = Callable[[RtpPacket, bool], None]


class Forwarder:
    """Fan-out of one published track (publisher m-line) to its subscribers."""

    def __init__(
        self,
        *,
        publisher_id: str,
        track_id: str,
        mid: str,
        kind: str,
        source: str,
        codec_name: str,
        codec_parameters: dict[str, Any],
        clock_rate: int,
        keyframe_min_interval: float,
        remb: RembAggregator | None,
        rid: str | None = None,
    ) -> None:
        self.publisher_id = publisher_id
        self.track_id = track_id
        self.mid = mid
        self.kind = kind
        self.source = source
        self.codec_name = codec_name
        self.codec_parameters = codec_parameters
        self.clock_rate = clock_rate
        self.muted = False
        self.closed = False
        #: simulcast: the RID of the layer this forwarder carries (None: not a layer)
        self.rid = rid
        #: simulcast: the layers, lowest first (empty for a plain track; see rtc/simulcast.py)
        self.layers: list[Forwarder] = []
        #: simulcast layer: picture size learnt from its keyframes (VP8), if any
        self.resolution: tuple[int, int] | None = None
        #: simulcast layer: down-tracks switching to this layer at its next keyframe
        self._switching: list[DownTrack] = []
        self.downtracks: set[DownTrack] = set()
        self._active: list[DownTrack] = []
        self._is_keyframe = keyframe_detector(codec_name)
        self._history: list[tuple[int, int, int, bytes, int] | None] = (
            [None] * HISTORY_SIZE if kind == "video" else []
        )
        self._taps: list[PacketTap] = []
        self._pausing: list[DownTrack] = []
        # publisher side, known once its transport is connected
        self.writer: TransportWriter | None = None
        self.rtcp_ssrc = 0
        self.media_ssrc = 0
        self._payload_type = -1
        self._rtx_payload_type = -1
        self._dropped = 0  # padding-only packets not forwarded (sequence numbers closed up)
        self.stats = InboundStats(clock_rate)
        #: the stream's bitrate over the last RTCP interval (read by subscribers' budgets)
        self.bitrate = 0
        self._bitrate_meter = BitrateMeter()
        self.sender_report: tuple[int, int] | None = None  # publisher (ntp, rtp timestamp)
        self._sr_lsr = 0
        self._sr_received = 0.0
        self.last_timestamp = 0
        self.last_arrival = time.monotonic()
        #: sequence numbers NACKed upstream and not received yet -> (first NACK time, NACKs)
        self._missing: dict[int, tuple[float, int]] = {}
        self._nack_timer: asyncio.TimerHandle | None = None
        self._nack_delay = NACK_RETRY
        self.nacks_sent = 0
        self.nacks_given_up = 0
        # audio level accumulation for speaker detection (RFC 6464: -dBov)
        self.level_sum = 0
        self.level_count = 0
        self.keyframes = KeyframeRequester(self._send_pli, keyframe_min_interval)
        self.remb = remb

    # --- wiring -----------------------------------------------------------------------------

    def attach_publisher(
        self,
        writer: TransportWriter,
        rtcp_ssrc: int,
        payload_type: int,
        rtx_payload_type: int,
        media_ssrc: int,
    ) -> None:
        self.writer = writer
        self.rtcp_ssrc = rtcp_ssrc
        self._payload_type = payload_type
        self._rtx_payload_type = rtx_payload_type
        self.media_ssrc = media_ssrc
        if any(dt.waiting_keyframe for dt in self._active):
            self.keyframes.request()

    def add_downtrack(self, downtrack: DownTrack) -> None:
        self.downtracks.add(downtrack)
        downtrack.feed = self
        self.refresh()

    def remove_downtrack(self, downtrack: DownTrack) -> None:
        self.downtracks.discard(downtrack)
        if downtrack in self._switching:
            self._switching.remove(downtrack)
        if downtrack.feed is self:
            downtrack.feed = None
        self.refresh()

    def refresh(self) -> None:
        """Recompute which down-tracks get packets (bound, started, connected, not paused, not
        muted)."""
        self._pausing = [dt for dt in self._pausing if dt.paused]
        if self.muted or self.closed:
            self._active = []
            return
        pausing = self._pausing
        self._active = [
            dt
            for dt in self.downtracks
            if dt.ready
            and not dt.pending_start
            and (not dt.paused or dt in pausing)
            and dt.writer is not None
            and dt.writer.rtp is not None
        ]

    def pause_after_frame(self, downtrack: DownTrack) -> None:
        if self.kind == "video" and downtrack in self._active and not downtrack.waiting_keyframe:
            self._pausing.append(downtrack)
        else:
            self.refresh()

    def set_muted(self, muted: bool) -> None:
        self.muted = muted
        if muted:
            self.level_sum = self.level_count = 0
        else:
            for dt in self.downtracks:
                dt.begin_epoch()
        self.refresh()

    def add_tap(self, tap: PacketTap) -> None:
        self._taps.append(tap)

    def remove_tap(self, tap: PacketTap) -> None:
        if tap in self._taps:
            self._taps.remove(tap)

    @property
    def dropped(self) -> int:
        """Padding-only packets received and not forwarded."""
        return self._dropped

    def close(self) -> None:
        self.closed = True
        self.keyframes.close()
        if self._nack_timer is not None:
            self._nack_timer.cancel()
            self._nack_timer = None
        self._missing.clear()
        for dt in list(self.downtracks):
            dt.bind(None)
        self._switching.clear()
        self._active = []
        self._taps.clear()

    # --- packets from the publisher (called by aiortc's RTP router) -------------------------

    async def _handle_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        """aiortc's entry point (RTP that came through the DTLS transport's queue)."""
        self.on_rtp(packet, arrival_time_ms)

    def on_rtp(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        """One packet of the published track (also called straight from the socket)."""
        pt = packet.payload_type
        payload = packet.payload
        seq = packet.sequence_number
        if pt != self._payload_type:
            if pt != self._rtx_payload_type or len(payload) < 2:
                return
            # RTX (RFC 4588): original sequence number, then the original payload. Forward
            # only the answers to our NACKs: browsers also send old packets on RTX as
            # bandwidth-probing padding, which subscribers must not get
            seq = (payload[0] << 8) | payload[1]
            if self._missing.pop(seq, None) is None:
                return
            payload = payload[2:]
        else:
            if packet.ssrc != self.media_ssrc:
                self.media_ssrc = packet.ssrc  # SSRC not signalled, or changed by the publisher
            gap = self.stats.on_packet(packet, len(payload))
            if gap and self.kind == "video":
                self._nack_upstream(seq, gap)
            elif self._missing:
                self._missing.pop(seq, None)
        if not payload:
            # padding only (bandwidth probing): not forwarded, later numbers are closed up
            self._dropped += 1
            return
        ts = packet.timestamp
        self.last_timestamp = ts
        self.last_arrival = time.monotonic()
        fseq = (seq - self._dropped) & 0xFFFF
        marker = packet.marker

        if self.kind == "video":
            keyframe = self._is_keyframe(payload)
            if keyframe:
                self.keyframes.keyframe_seen()
                if self.rid is not None:
                    self._layer_keyframe(payload)
            self._history[fseq & _HISTORY_MASK] = (fseq, ts, marker, payload, 0)
            level = 0
        else:
            keyframe = True
            audio_level = packet.extensions.audio_level
            level = audio_level[1] if audio_level is not None else 127
            if not self.muted:
                self.level_sum += level
                self.level_count += 1

        if self._taps:
            for tap in list(self._taps):
                tap(packet, keyframe)

        active = self._active
        if not active:
            return
        tails: dict[int, tuple[int, bytes]] = {}
        for dt in active:
            key = dt.tail_key
            entry = tails.get(key)
            if entry is None:
                entry = tails[key] = self._tail(key, payload, level)
            dt.write(fseq, ts, marker, entry[0], entry[1], keyframe)
        if marker and self._pausing:
            self._pausing.clear()
            self.refresh()

    def _layer_keyframe(self, payload: bytes) -> None:
        """Simulcast layer: a keyframe starts; down-tracks waiting for it switch here."""
        if self.codec_name == "VP8":
            size = vp8_keyframe_size(payload)
            if size is not None:
                self.resolution = size
        if not self._switching:
            return
        for dt in self._switching:
            old = dt.feed
            if old is not None and old is not self:
                old.downtracks.discard(dt)
                if dt in old._pausing:
                    old._pausing.remove(dt)
                old.refresh()
                dt.munger.layer_changed(old.last_arrival)
            self.downtracks.add(dt)
            dt.feed = self
            dt.waiting_keyframe = True
            dt.layer_switches += 1
        self._switching.clear()
        self.refresh()

    def switch_at_keyframe(self, downtrack: DownTrack) -> None:
        """Simulcast layer: move `downtrack` here at this layer's next keyframe (asked for)."""
        if downtrack not in self._switching:
            self._switching.append(downtrack)
        self.request_keyframe()

    def cancel_switch(self, downtrack: DownTrack) -> None:
        if downtrack in self._switching:
            self._switching.remove(downtrack)

    def _tail(self, key: int, payload: bytes, level: int) -> tuple[int, bytes]:
        """First header byte and what follows the fixed header, for one down-track
        `tail_key`: an extension id, plus 0x100 when the down-track writes a transport-cc
        element (then the block header and that element are the down-track's, and the tail
        holds the other element, the padding to 32 bits and the payload)."""
        ext_id = key & 0xFF
        if key & 0x100:
            if not ext_id:
                return 0x90, b"\x00" + payload
            if self.kind == "video":
                abs_send_time = int(time.time() * 262144) & 0xFFFFFF
                return 0x90, _ABS_ELEMENT.pack(
                    (ext_id << 28) | (2 << 24) | abs_send_time
                ) + b"\x00" + payload
            return 0x90, bytes((ext_id << 4, level, 0, 0, 0)) + payload
        if not ext_id:
            return 0x80, payload
        if self.kind == "video":
            abs_send_time = int(time.time() * 262144) & 0xFFFFFF  # 6.18 fixed point seconds
            return 0x90, _EXT_ABS.pack(0xBEDE, 1, (ext_id << 28) | (2 << 24) | abs_send_time) + (
                payload
            )
        return 0x90, _EXT_LEVEL.pack(0xBEDE, 1, ext_id << 4, level, 0) + payload

    def rebuild(self, fseq: int, downtrack: DownTrack) -> bytes | None:
        """The packet `fseq` as `downtrack` sends it, if still in the history."""
        if not self._history:
            return None
        entry = self._history[fseq & _HISTORY_MASK]
        if entry is None or entry[0] != fseq:
            return None
        _, ts, marker, payload, level = entry
        b0, tail = self._tail(downtrack.tail_key, payload, level)
        return downtrack.packet(fseq, ts, marker, b0, tail)

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpSrPacket) and packet.ssrc == self.media_ssrc:
            info = packet.sender_info
            self.sender_report = (info.ntp_timestamp, info.rtp_timestamp)
            self._sr_lsr = (info.ntp_timestamp >> 16) & 0xFFFFFFFF
            self._sr_received = time.monotonic()

    def _handle_disconnect(self) -> None:
        self.refresh()

    # --- requests to the publisher ----------------------------------------------------------

    def request_keyframe(self) -> None:
        if self.kind == "video" and not self.closed:
            self.keyframes.request()

    def _send_pli(self) -> None:
        writer = self.writer
        if writer is None or writer.rtcp is None or not self.media_ssrc:
            return
        pli = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=self.rtcp_ssrc, media_ssrc=self.media_ssrc)
        writer.rtcp(bytes(pli))

    def _nack_upstream(self, seq: int, gap: int) -> None:
        """Packets before `seq` were skipped: NACK them now, again later until they arrive.

        One timer per forwarder (not per packet) retries every still-missing packet in one
        NACK, with back-off; what cannot be recovered ends in a keyframe request.
        """
        if gap > NACK_MAX_GAP:
            self.keyframes.request()
            return
        now = time.monotonic()
        lost = [(seq - i) & 0xFFFF for i in range(gap, 0, -1)]
        for lost_seq in lost:
            self._missing[lost_seq] = (now, 1)
        self._send_nack(lost)
        if self._nack_timer is None:
            self._nack_delay = NACK_RETRY
            self._nack_timer = asyncio.get_running_loop().call_later(
                self._nack_delay, self._retry_nacks
            )

    def _send_nack(self, lost: list[int]) -> None:
        writer = self.writer
        if writer is None or writer.rtcp is None or not lost:
            return
        nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=self.rtcp_ssrc, media_ssrc=self.media_ssrc)
        nack.lost = lost
        writer.rtcp(bytes(nack))
        self.nacks_sent += 1

    def _retry_nacks(self) -> None:
        self._nack_timer = None
        if self.closed or not self._missing:
            return
        now = time.monotonic()
        newest = self.stats.stream.max_seq or 0
        again: list[int] = []
        given_up = False
        for lost_seq, (first, tries) in list(self._missing.items()):
            too_old = (newest - lost_seq) & 0xFFFF >= HISTORY_SIZE
            if tries >= NACK_TRIES or now - first > NACK_MAX_AGE or too_old:
                del self._missing[lost_seq]
                self.nacks_given_up += 1
                given_up = True
            else:
                self._missing[lost_seq] = (first, tries + 1)
                again.append(lost_seq)
        if given_up:
            self.keyframes.request()  # the hole will not fill: start again from a keyframe
        if again:
            self._send_nack(again)
            self._nack_delay = min(self._nack_delay * NACK_BACKOFF, NACK_RETRY_MAX)
            self._nack_timer = asyncio.get_running_loop().call_later(
                self._nack_delay, self._retry_nacks
            )

    def awaiting(self, fseq: int) -> bool:
        """Whether the packet `fseq` (forwarder numbering) is still being asked for upstream."""
        return ((fseq + self._dropped) & 0xFFFF) in self._missing

    def tick(self, now: float) -> None:
        """Once a second: receiver report and REMB to the publisher, keyframe retries."""
        self.bitrate = self._bitrate_meter.update(self.stats.bytes)
        writer = self.writer
        if writer is None or writer.rtcp is None or not self.media_ssrc or self.stats.packets == 0:
            return
        dlsr = 0
        if self._sr_lsr:
            dlsr = int((now - self._sr_received) * 65536) & 0xFFFFFFFF
        stats = self.stats
        packets: list[Any] = [
            RtcpRrPacket(
                ssrc=self.rtcp_ssrc,
                reports=[
                    RtcpReceiverInfo(
                        ssrc=self.media_ssrc,
                        fraction_lost=stats.fraction_lost(),
                        packets_lost=min(stats.lost, 0x7FFFFF),
                        highest_sequence=stats.extended_max_seq & 0xFFFFFFFF,
                        jitter=int(stats.jitter),
                        lsr=self._sr_lsr,
                        dlsr=dlsr,
                    )
                ],
            )
        ]
        if self.remb is not None:
            # each subscriber's allowance for this track (its REMB while it has no budget);
            # a track paused for the budget still counts: if every subscriber is too weak,
            # the publisher comes down to what the best of them can take
            figures = (dt.publisher_figure() for dt in self.downtracks if not dt.client_paused)
            bitrate = self.remb.aggregate(f for f in figures if f is not None)
            if bitrate is not None:
                packets.append(
                    RtcpPsfbPacket(
                        fmt=RTCP_PSFB_APP,
                        ssrc=self.rtcp_ssrc,
                        media_ssrc=0,
                        fci=pack_remb_fci(bitrate, [self.media_ssrc]),
                    )
                )
        writer.rtcp(b"".join(bytes(p) for p in packets))
        if (
            self.kind == "video"
            and now - self.keyframes.last_sent > KEYFRAME_RETRY
            and (self._switching or any(dt.waiting_keyframe for dt in self._active))
        ):
            self.keyframes.request()

    def levels(self) -> float | None:
        """Mean audio level since the last call (None if no packet)."""
        if not self.level_count:
            return None
        mean = self.level_sum / self.level_count
        self.level_sum = self.level_count = 0
        return mean

    def report(self) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "kind": self.kind,
            "source": self.source,
            "codec": self.codec_name,
            "muted": self.muted,
            "subscribers": len(self.downtracks),
            "keyframe_requests": self.keyframes.requests,
            "plis_sent": self.keyframes.plis_sent,
            "nacks_sent": self.nacks_sent,
            "nacks_given_up": self.nacks_given_up,
            "remb": None if self.remb is None else self.remb.last_sent,
            **self.stats.report(),
        }
