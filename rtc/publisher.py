"""What one participant publishes: the client's m-lines, each feeding a :class:`Forwarder`.

Published m-lines (client → server) get a :class:`PublisherSink` registered in aiortc's RTP
router instead of aiortc's decoding receiver; the sink hands packets to the m-line's current
forwarder. The codecs are narrowed to one per m-line (the one every subscriber gets) and kept
on later server offers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiortc import (
    RTCDtlsTransport,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpTransceiver,
)
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters, RTCRtpSendParameters

from rtc import aiortc_internals as internals
from rtc import sdp
from rtc.bandwidth import RembAggregator
from rtc.config import RtcConfig
from rtc.errors import BAD_SDP, RtcError
from rtc.forwarder import Forwarder
from rtc.sdp import codec_key
from rtc.simulcast import MAX_LAYERS, MAX_RID_LENGTH, LayersCallback, SimulcastForwarder

SOURCES = ("camera", "screen", "audio")

WriterFor = Callable[[RTCDtlsTransport], internals.TransportWriter]
Ingress = tuple[internals.TransportWriter, int, int, int, int]


class NoRtcp:
    """RTCP handler for a sender that never sends (client m-lines are recvonly here)."""

    def __init__(self, ssrc: int) -> None:
        self._ssrc = ssrc

    async def _handle_rtcp_packet(self, packet: internals.AnyRtcpPacket) -> None:
        return None


def no_rtcp(ssrc: int) -> Callable[[RTCRtpSendParameters, RTCDtlsTransport], NoRtcp]:
    return lambda parameters, transport: NoRtcp(ssrc)


class PublisherSink:
    """What aiortc's router holds for a published m-line; delegates to the current forwarder.

    The router keeps this object for the life of the connection, while the forwarder behind
    it is replaced when the client stops and restarts publishing on the same m-line.
    """

    def __init__(self) -> None:
        self.forwarder: Forwarder | None = None
        #: synchronous entry used by `aiortc_internals.fast_rtp_input`
        self.on_rtp: Callable[[internals.RtpPacket, int], None] = self._ignore

    def attach(self, forwarder: Forwarder | None) -> None:
        self.forwarder = forwarder
        # bound methods set on the instance: the router's call reaches the forwarder directly
        handler = forwarder._handle_rtp_packet if forwarder is not None else self._drop
        self._handle_rtp_packet = handler  # type: ignore[method-assign]
        self.on_rtp = forwarder.on_rtp if forwarder is not None else self._ignore

    def _ignore(self, packet: internals.RtpPacket, arrival_time_ms: int) -> None:
        return None

    async def _handle_rtp_packet(self, packet: internals.RtpPacket, arrival_time_ms: int) -> None:
        return None

    async def _drop(self, packet: internals.RtpPacket, arrival_time_ms: int) -> None:
        return None

    async def _handle_rtcp_packet(self, packet: internals.AnyRtcpPacket) -> None:
        if self.forwarder is not None:
            await self.forwarder._handle_rtcp_packet(packet)

    def _handle_disconnect(self) -> None:
        if self.forwarder is not None:
            self.forwarder._handle_disconnect()


class Publisher:
    """The client's published m-lines of one peer connection and their forwarders.

    `is_server_mline(transceiver)` tells the server-created (subscription) m-lines apart;
    they share the connection but are not published tracks.
    """

    def __init__(
        self,
        participant_id: str,
        config: RtcConfig,
        pc: RTCPeerConnection,
        writer_for: WriterFor,
        is_server_mline: Callable[[RTCRtpTransceiver], bool],
    ) -> None:
        self.participant_id = participant_id
        self.config = config
        self.pc = pc
        self._writer_for = writer_for
        self._is_server_mline = is_server_mline
        #: published tracks by the client's mid
        self.forwarders: dict[str, Forwarder] = {}
        self.source_labels: dict[str, str] = {}
        self._sinks: dict[str, PublisherSink] = {}
        #: publisher-side transport details per mid, known once its DTLS is connected
        self._ingress: dict[str, Ingress] = {}
        #: codecs (with the client's payload types) agreed for each published m-line
        self.agreed_codecs: dict[str, list[RTCRtpCodecParameters]] = {}
        #: simulcast layers (RIDs, lowest first) accepted per published m-line
        self.simulcast: dict[str, list[str]] = {}
        #: why a client's simulcast offer was answered with one layer, per mid (diagnostics)
        self.simulcast_refused: dict[str, str] = {}
        #: called when a simulcast track's consumed layers change (set by the SFU)
        self.on_layers: LayersCallback | None = None

    def _client_mlines(self) -> list[RTCRtpTransceiver]:
        return [t for t in self.pc.getTransceivers() if not self._is_server_mline(t)]

    def set_sources(self, sources: Mapping[str, str]) -> None:
        """Label published tracks: {mid or track id: "camera" | "screen" | "audio"}."""
        for key, source in sources.items():
            if source not in SOURCES:
                raise RtcError(BAD_SDP, f"unknown source {source!r} (expected one of {SOURCES})")
            self.source_labels[str(key)] = source

    def intercept(self, transceiver: RTCRtpTransceiver) -> None:
        """A new client m-line: our sink instead of aiortc's decoding receiver."""
        mid = transceiver.mid or ""
        sink = PublisherSink()
        sink.attach(None)
        self._sinks[mid] = sink
        internals.intercept_receiver(
            transceiver.receiver, self._receiver_started(transceiver, sink)
        )
        internals.intercept_sender(
            transceiver.sender, no_rtcp(internals.sender_ssrc(transceiver.sender))
        )

    def accept_simulcast(self, offer_sdp: str) -> dict[str, list[str]]:
        """After the client's offer is applied: the m-lines of this offer whose layers we
        receive (what the answer says; an m-line whose offer no longer has simulcast is
        answered without, and goes on with the layers that still come).

        Camera video only: a screen share stays one layer (its text must stay sharp, and
        a viewer that cannot take it gets it slower, not blurred; see docs/rtc.md). The
        layers of an m-line are fixed by its first offer (a published track keeps them)."""
        offered, refused = sdp.simulcast_offer(offer_sdp, MAX_LAYERS, MAX_RID_LENGTH)
        self.simulcast_refused.update(refused)
        if not self.config.simulcast:
            return {}
        for transceiver in self._client_mlines():
            mid = transceiver.mid or ""
            rids = offered.get(mid)
            if not rids or mid in self.simulcast or transceiver.kind != "video":
                continue
            if mid in self.forwarders:
                continue  # already published with one layer: it stays so
            if self._source_of(transceiver) == "screen":
                self.simulcast_refused[mid] = "screen shares are sent as one layer"
                continue
            self.simulcast[mid] = rids
        return {mid: rids for mid, rids in self.simulcast.items() if mid in offered}

    def narrow_codecs(self) -> None:
        """Accept one codec (and its RTX) per published m-line: the one every subscriber gets."""
        for transceiver in self._client_mlines():
            codecs = internals.negotiated_codecs(transceiver)
            allowed = {
                a.lower()
                for a in (
                    self.config.audio_codecs
                    if transceiver.kind == "audio"
                    else self.config.video_codecs
                )
            }
            current = self.forwarders.get(transceiver.mid or "")
            primary: RTCRtpCodecParameters | None = None
            for codec in codecs:
                if codec.name.lower() == "rtx" or codec.name.lower() not in allowed:
                    continue
                if current is None or codec_key(codec.name, codec.parameters) == codec_key(
                    current.codec_name, current.codec_parameters
                ):
                    primary = codec
                    break
            if primary is None:
                continue  # checked before for sending m-lines; leave recv-only ones as they are
            chosen = [primary] + [
                c
                for c in codecs
                if c.name.lower() == "rtx" and c.parameters.get("apt") == primary.payloadType
            ]
            internals.set_negotiated_codecs(transceiver, chosen)

    def remember_codecs(self) -> None:
        for transceiver in self._client_mlines():
            if transceiver.mid is not None:
                self.agreed_codecs[transceiver.mid] = internals.negotiated_codecs(transceiver)

    def restore_codecs(self) -> None:
        """After a server createOffer: the client m-lines keep the agreed codecs."""
        for transceiver in self.pc.getTransceivers():
            codecs = self.agreed_codecs.get(transceiver.mid or "")
            if codecs:
                internals.set_negotiated_codecs(transceiver, codecs)

    def sync(self) -> tuple[list[Forwarder], list[Forwarder]]:
        """Forwarders for m-lines that started receiving, closed for those that stopped."""
        added: list[Forwarder] = []
        removed: list[Forwarder] = []
        for transceiver in self._client_mlines():
            if transceiver.mid is None:
                continue
            mid = transceiver.mid
            receiving = transceiver.currentDirection in ("recvonly", "sendrecv")
            current = self.forwarders.get(mid)
            if receiving and current is None:
                forwarder = self._new_forwarder(transceiver)
                if forwarder is None:
                    continue
                self.forwarders[mid] = forwarder
                sink = self._sinks.get(mid)
                if sink is not None:
                    sink.attach(forwarder)
                added.append(forwarder)
            elif not receiving and current is not None:
                del self.forwarders[mid]
                sink = self._sinks.get(mid)
                if sink is not None:
                    sink.attach(None)
                current.close()
                removed.append(current)
        return added, removed

    def stop_all(self) -> list[Forwarder]:
        """Close every published track (connection failed or closed); returns them."""
        removed = list(self.forwarders.values())
        for forwarder in removed:
            forwarder.close()
        self.forwarders.clear()
        return removed

    def _new_forwarder(self, transceiver: RTCRtpTransceiver) -> Forwarder | None:
        codecs = [c for c in internals.negotiated_codecs(transceiver) if c.name.lower() != "rtx"]
        if not codecs:
            return None
        codec = codecs[0]
        mid = transceiver.mid or ""
        source = self._source_of(transceiver)
        remb = None
        rids = self.simulcast.get(mid)
        if transceiver.kind == "video":
            ceiling = (
                self.config.max_screen_bitrate
                if source == "screen"
                else self.config.max_camera_bitrate
            )
            remb = RembAggregator(self.config.remb_mode, ceiling)
        common: dict[str, Any] = {
            "publisher_id": self.participant_id,
            "track_id": f"{self.participant_id}:{mid}",
            "mid": mid,
            "kind": transceiver.kind,
            "source": source,
            "codec_name": codec.name,
            "codec_parameters": dict(codec.parameters),
            "clock_rate": codec.clockRate,
            "keyframe_min_interval": self.config.keyframe_min_interval,
            "remb": remb,
        }
        forwarder: Forwarder
        if rids and transceiver.kind == "video" and source != "screen":
            forwarder = SimulcastForwarder(
                rids=rids, simulcast_bitrate=self.config.max_simulcast_bitrate, **common
            )
            forwarder.on_layers = self.on_layers
        else:
            forwarder = Forwarder(**common)
        binding = self._ingress.get(mid)
        if binding is not None:
            forwarder.attach_publisher(*binding)
        return forwarder

    def _source_of(self, transceiver: RTCRtpTransceiver) -> str:
        if transceiver.kind == "audio":
            return "audio"
        mid = transceiver.mid or ""
        track = transceiver.receiver.track
        for key in (mid, track.id if track is not None else None):
            if key is not None and key in self.source_labels:
                return self.source_labels[key]
        has_camera = any(f.source == "camera" for m, f in self.forwarders.items() if m != mid)
        return "screen" if has_camera else "camera"

    def _receiver_started(
        self, transceiver: RTCRtpTransceiver, sink: PublisherSink
    ) -> Callable[[RTCRtpReceiveParameters, RTCDtlsTransport], internals.RtpSink]:
        def on_receive(
            parameters: RTCRtpReceiveParameters, transport: RTCDtlsTransport
        ) -> internals.RtpSink:
            writer = self._writer_for(transport)
            primary = next((c for c in parameters.codecs if c.name.lower() != "rtx"), None)
            payload_type = primary.payloadType if primary and primary.payloadType else -1
            rtx_type = next(
                (
                    c.payloadType or -1
                    for c in parameters.codecs
                    if c.name.lower() == "rtx" and c.parameters.get("apt") == payload_type
                ),
                -1,
            )
            media_ssrc = parameters.encodings[0].ssrc if parameters.encodings else 0
            binding = (writer, internals.rtcp_ssrc(transceiver), payload_type, rtx_type, media_ssrc)
            self._ingress[transceiver.mid or ""] = binding
            if sink.forwarder is not None:
                sink.forwarder.attach_publisher(*binding)
            return sink

        return on_receive

    def close(self) -> None:
        for forwarder in self.forwarders.values():
            forwarder.close()
