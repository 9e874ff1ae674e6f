"""One participant's RTCPeerConnection with the server: what it publishes, what it receives.

Negotiation rule: the client offers when its published tracks change; the server offers when
the set of tracks it sends to the client changes. Each negotiation holds the peer's lock.
The server never rolls back: a client offer that arrives while a server offer is pending is
refused with `RtcError("glare")`; the client answers the server's offer, then offers again
(the client is the "polite" side of perfect negotiation).

Published m-lines (client → server) get a :class:`Forwarder` registered in aiortc's RTP router
instead of aiortc's decoding receiver. Received m-lines (server → client) are created by the
server, one per subscribed track, and carry a :class:`DownTrack` instead of aiortc's encoding
sender. Both replacements go through rtc/aiortc_internals.py.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiortc import (
    RTCDtlsTransport,
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpCodecParameters,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters, RTCRtpSendParameters

from rtc import aiortc_internals as internals
from rtc.bandwidth import RembAggregator
from rtc.config import RtcConfig
from rtc.downtrack import ABS_SEND_TIME_URI, AUDIO_LEVEL_URI, DownTrack
from rtc.errors import (
    BAD_CANDIDATE,
    BAD_SDP,
    CLOSED,
    GLARE,
    NO_SUPPORTED_CODEC,
    RATE_LIMITED,
    TOO_MANY_TRACKS,
    WRONG_STATE,
    RtcError,
)
from rtc.forwarder import Forwarder
from rtc.ice import AddressPolicy

if TYPE_CHECKING:
    from aiortc import RTCConfiguration

logger = logging.getLogger(__name__)

SOURCES = ("camera", "screen", "audio")
_EXTMAP = re.compile(r"^a=extmap:(\d+)(/[a-z]+)? (\S+)(.*)$")
MAX_CANDIDATES = 100
MAX_SDP_LENGTH = 64 * 1024
OFFER_DEBOUNCE = 0.05


class _NoRtcp:
    """RTCP handler for a sender that never sends (client m-lines are recvonly here)."""

    def __init__(self, ssrc: int) -> None:
        self._ssrc = ssrc

    async def _handle_rtcp_packet(self, packet: internals.AnyRtcpPacket) -> None:
        return None


class _PublisherSink:
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


@dataclass
class Slot:
    """A server-created m-line sending one published track (reused once that track ends)."""

    transceiver: RTCRtpTransceiver
    downtrack: DownTrack
    kind: str
    codec_key: tuple[str, str]
    track_id: str | None = None


def codec_key(name: str, parameters: Mapping[str, Any]) -> tuple[str, str]:
    """Codecs that can share an m-line without transcoding: same name (and H.264 profile)."""
    profile = str(parameters.get("profile-level-id", "")).lower()[:4] if name == "H264" else ""
    return name.upper(), profile


class ExtmapRegistry:
    """RTP header extension ids of one connection: once an id means a URI, it always does.

    aiortc numbers extensions from its own table in every offer it creates, and browsers
    (Chrome since M140) refuse an offer that gives an id another meaning than before. The
    ids the client chose are learnt from its descriptions; the server's offers are rewritten
    to use them, new URIs getting free ids.
    """

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def learn(self, sdp: str) -> None:
        for line in sdp.splitlines():
            match = _EXTMAP.match(line)
            if match is not None:
                uri, ext_id = match.group(3), int(match.group(1))
                if uri not in self.ids and ext_id not in self.ids.values():
                    self.ids[uri] = ext_id

    def rewrite(self, sdp: str) -> str:
        lines = []
        for line in sdp.splitlines():
            match = _EXTMAP.match(line)
            if match is not None:
                uri = match.group(3)
                ext_id = self.ids.get(uri)
                if ext_id is None:
                    used = set(self.ids.values())
                    offered = int(match.group(1))
                    ext_id = offered if offered not in used else None  # keep it when free
                    if ext_id is None:
                        ext_id = next((i for i in range(1, 15) if i not in used), None)
                    if ext_id is None:
                        continue  # no one-byte id left: leave this extension out
                    self.ids[uri] = ext_id
                line = f"a=extmap:{ext_id}{match.group(2) or ''} {uri}{match.group(4)}"
            lines.append(line)
        return "\r\n".join(lines) + "\r\n"


class RoomView:
    """What a peer needs from its room (implemented by rtc.sfu.Room)."""

    room_id: str

    def forwarders(self) -> Iterable[Forwarder]:  # pragma: no cover - interface
        raise NotImplementedError

    def display_name(self, participant_id: str) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    async def emit(
        self, target: str | None, event: str, payload: dict[str, Any]
    ) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class Peer:
    """The server end of one participant's peer connection."""

    def __init__(
        self,
        room: RoomView,
        participant_id: str,
        display_name: str,
        config: RtcConfig,
        configuration: RTCConfiguration,
        policy: AddressPolicy,
        on_state: Callable[[Peer, str], Awaitable[None]],
    ) -> None:
        self.room = room
        self.participant_id = participant_id
        self.display_name = display_name
        self.config = config
        self.policy = policy
        self.pc = RTCPeerConnection(configuration=configuration)
        #: names this connection in `rtc:offer` and `rtc:state`: after a rejoin the client
        #: tells the new connection's events from the old one's
        self.connection_id = secrets.token_hex(8)
        self.lock = asyncio.Lock()
        self.closed = False
        #: published tracks by the client's mid
        self.published: dict[str, Forwarder] = {}
        self._sinks: dict[str, _PublisherSink] = {}
        #: publisher-side transport details per mid, known once its DTLS is connected
        self._ingress: dict[str, tuple[internals.TransportWriter, int, int, int, int]] = {}
        #: server-created m-lines, and the ones currently bound by track id
        self.slots: list[Slot] = []
        self.subscriptions: dict[str, Slot] = {}
        self.source_labels: dict[str, str] = {}
        self._intercepted: set[int] = set()
        self._writers: dict[int, internals.TransportWriter] = {}
        self._negotiations: deque[float] = deque()
        self._candidates = 0
        self._offer_needed = False
        self._offer_task: asyncio.Task[None] | None = None
        self.extmap = ExtmapRegistry()
        #: codecs (with the client's payload types) agreed for each published m-line
        self._published_codecs: dict[str, list[RTCRtpCodecParameters]] = {}
        self._on_state = on_state
        self.pc.on("connectionstatechange", self._connection_state_changed)

    # --- client offers (publishing) ---------------------------------------------------------

    async def handle_offer(
        self, sdp: str, sources: Mapping[str, str] | None = None
    ) -> tuple[str, list[Forwarder], list[Forwarder]]:
        """Apply the client's offer; return (answer sdp, tracks published, tracks ended)."""
        self._count_negotiation()
        # Glare first: while our offer is pending, the client's new m-lines may take the mids
        # ours carry, which the checks below would call a bad SDP.
        self._refuse_glare()
        sdp = self._checked_sdp(sdp, "offer")
        async with self.lock:
            if self.closed:
                raise RtcError(CLOSED, "the connection is closed")
            self._refuse_glare()
            if sources:
                self.set_sources(sources)
            self.extmap.learn(sdp)
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            except Exception as exc:  # aiortc raises ValueError, OperationError, ...
                raise RtcError(BAD_SDP, f"offer rejected: {exc}") from exc
            self._intercept_new_transceivers()
            self._narrow_published_codecs()
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
            self._remember_published_codecs()
            added, removed = self._sync_published()
            local = self.pc.localDescription
        return local.sdp, added, removed

    def _refuse_glare(self) -> None:
        if self.closed:
            raise RtcError(CLOSED, "the connection is closed")
        if self.pc.signalingState != "stable":
            raise RtcError(
                GLARE, "a server offer is pending: answer it, then send your offer again"
            )

    def set_sources(self, sources: Mapping[str, str]) -> None:
        """Label published tracks: {mid or track id: "camera" | "screen" | "audio"}."""
        for key, source in sources.items():
            if source not in SOURCES:
                raise RtcError(BAD_SDP, f"unknown source {source!r} (expected one of {SOURCES})")
            self.source_labels[str(key)] = source

    def _checked_sdp(self, sdp: str, kind: str) -> str:
        """Refuse what would put aiortc in a bad state; drop disallowed candidates."""
        if not isinstance(sdp, str) or not sdp.strip():
            raise RtcError(BAD_SDP, f"empty {kind}")
        if len(sdp) > MAX_SDP_LENGTH:
            raise RtcError(BAD_SDP, f"{kind} larger than {MAX_SDP_LENGTH} bytes")
        sdp = self.policy.filter_sdp(sdp)
        try:
            description = internals.SessionDescription.parse(sdp)
        except Exception as exc:
            raise RtcError(BAD_SDP, f"malformed SDP: {exc}") from exc
        if not description.media:
            raise RtcError(BAD_SDP, "the SDP has no media section")
        if kind == "offer":
            ours = {s.transceiver.mid for s in self.slots}
            for media in description.media:
                if media.rtp.muxId in ours and media.direction in ("sendonly", "sendrecv"):
                    raise RtcError(
                        BAD_SDP,
                        f"m-line {media.rtp.muxId} is the server's; publish on a new one "
                        "(addTransceiver(track, {direction: 'sendonly'}), not addTrack)",
                    )
            sending = [
                m
                for m in description.media
                if m.kind in ("audio", "video")
                and m.port != 0
                and m.direction in ("sendonly", "sendrecv")
                and m.rtp.muxId not in ours
            ]
            if len(sending) > self.config.max_published_tracks:
                raise RtcError(
                    TOO_MANY_TRACKS,
                    f"{len(sending)} tracks offered, at most {self.config.max_published_tracks}",
                )
        for media in description.media:
            if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
                raise RtcError(BAD_SDP, "ICE credentials are missing")
            if media.dtls is None or not media.dtls.fingerprints:
                raise RtcError(BAD_SDP, "DTLS fingerprint is missing")
            if media.kind not in ("audio", "video") or media.port == 0:
                continue
            allowed = (
                self.config.audio_codecs if media.kind == "audio" else self.config.video_codecs
            )
            names = {c.name.lower() for c in media.rtp.codecs}
            if not names & {a.lower() for a in allowed}:
                raise RtcError(
                    NO_SUPPORTED_CODEC,
                    f"{media.kind} section {media.rtp.muxId} offers none of {list(allowed)}",
                )
        return sdp

    def _count_negotiation(self) -> None:
        now = time.monotonic()
        window = self._negotiations
        while window and now - window[0] > 10.0:
            window.popleft()
        if len(window) >= self.config.max_negotiations_per_10s:
            raise RtcError(RATE_LIMITED, "too many negotiations; slow down")
        window.append(now)

    def _intercept_new_transceivers(self) -> None:
        for transceiver in self.pc.getTransceivers():
            if id(transceiver) in self._intercepted:
                continue
            self._intercepted.add(id(transceiver))
            mid = transceiver.mid or ""
            sink = _PublisherSink()
            sink.attach(None)
            self._sinks[mid] = sink
            internals.intercept_receiver(
                transceiver.receiver, self._receiver_started(transceiver, sink)
            )
            internals.intercept_sender(
                transceiver.sender, _no_rtcp(internals.sender_ssrc(transceiver.sender))
            )

    def _narrow_published_codecs(self) -> None:
        """Accept one codec (and its RTX) per published m-line: the one every subscriber gets."""
        slot_transceivers = {id(s.transceiver) for s in self.slots}
        for transceiver in self.pc.getTransceivers():
            if id(transceiver) in slot_transceivers:
                continue
            codecs = internals.negotiated_codecs(transceiver)
            allowed = {
                a.lower()
                for a in (
                    self.config.audio_codecs
                    if transceiver.kind == "audio"
                    else self.config.video_codecs
                )
            }
            current = self.published.get(transceiver.mid or "")
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

    def _remember_published_codecs(self) -> None:
        slot_transceivers = {id(s.transceiver) for s in self.slots}
        for transceiver in self.pc.getTransceivers():
            if id(transceiver) not in slot_transceivers and transceiver.mid is not None:
                self._published_codecs[transceiver.mid] = internals.negotiated_codecs(transceiver)

    def _pin_published_codecs(self, sdp: str) -> str:
        """Keep the client's m-lines on the codecs and payload types already agreed.

        aiortc's createOffer lists its whole codec table, with its own payload type numbers,
        on every m-line: the client would switch codec or payload type under a forwarder
        (and its subscribers) bound to the agreed ones.
        """
        if not self._published_codecs:
            return sdp
        description = internals.SessionDescription.parse(sdp)
        for media in description.media:
            codecs = self._published_codecs.get(media.rtp.muxId or "")
            if codecs:
                media.rtp.codecs = [copy.deepcopy(c) for c in codecs]
                media.fmt = [c.payloadType for c in codecs]
        for transceiver in self.pc.getTransceivers():
            codecs = self._published_codecs.get(transceiver.mid or "")
            if codecs:
                internals.set_negotiated_codecs(transceiver, codecs)
        return str(description)

    def _sync_published(self) -> tuple[list[Forwarder], list[Forwarder]]:
        added: list[Forwarder] = []
        removed: list[Forwarder] = []
        slot_transceivers = {id(s.transceiver) for s in self.slots}
        for transceiver in self.pc.getTransceivers():
            if id(transceiver) in slot_transceivers or transceiver.mid is None:
                continue
            mid = transceiver.mid
            receiving = transceiver.currentDirection in ("recvonly", "sendrecv")
            current = self.published.get(mid)
            if receiving and current is None:
                forwarder = self._new_forwarder(transceiver)
                if forwarder is None:
                    continue
                self.published[mid] = forwarder
                sink = self._sinks.get(mid)
                if sink is not None:
                    sink.attach(forwarder)
                added.append(forwarder)
            elif not receiving and current is not None:
                del self.published[mid]
                sink = self._sinks.get(mid)
                if sink is not None:
                    sink.attach(None)
                current.close()
                removed.append(current)
        return added, removed

    def _new_forwarder(self, transceiver: RTCRtpTransceiver) -> Forwarder | None:
        codecs = [c for c in internals.negotiated_codecs(transceiver) if c.name.lower() != "rtx"]
        if not codecs:
            return None
        codec = codecs[0]
        mid = transceiver.mid or ""
        source = self._source_of(transceiver)
        remb = None
        if transceiver.kind == "video":
            ceiling = (
                self.config.max_screen_bitrate
                if source == "screen"
                else self.config.max_camera_bitrate
            )
            remb = RembAggregator(self.config.remb_mode, ceiling)
        forwarder = Forwarder(
            publisher_id=self.participant_id,
            track_id=f"{self.participant_id}:{mid}",
            mid=mid,
            kind=transceiver.kind,
            source=source,
            codec_name=codec.name,
            codec_parameters=dict(codec.parameters),
            clock_rate=codec.clockRate,
            keyframe_min_interval=self.config.keyframe_min_interval,
            remb=remb,
        )
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
        has_camera = any(f.source == "camera" for m, f in self.published.items() if m != mid)
        return "screen" if has_camera else "camera"

    def _receiver_started(
        self, transceiver: RTCRtpTransceiver, sink: _PublisherSink
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

    # --- server offers (subscribing) --------------------------------------------------------

    @property
    def negotiating(self) -> bool:
        """An offer/answer exchange is under way or about to start."""
        return (
            self.lock.locked()
            or self.pc.signalingState != "stable"
            or self._offer_needed
            or (self._offer_task is not None and not self._offer_task.done())
        )

    def schedule_offer(self) -> None:
        """The tracks this participant should receive changed: offer when possible."""
        if self.closed:
            return
        self._offer_needed = True
        if self._offer_task is None or self._offer_task.done():
            self._offer_task = asyncio.create_task(self._offer_loop())

    async def _offer_loop(self) -> None:
        await asyncio.sleep(OFFER_DEBOUNCE)  # let a burst of changes become one offer
        while self._offer_needed and not self.closed:
            async with self.lock:
                if self.closed or self.pc.signalingState != "stable":
                    return  # handle_answer / handle_offer reschedule
                self._offer_needed = False
                if not self._sync_subscriptions():
                    continue
                try:
                    offer = await self.pc.createOffer()
                    offer.sdp = self.extmap.rewrite(self._pin_published_codecs(offer.sdp))
                    await self.pc.setLocalDescription(offer)
                except Exception:
                    logger.exception("server offer failed for %s", self.participant_id)
                    return
                sdp = self.pc.localDescription.sdp
                tracks = self.subscription_list()
            await self.room.emit(self.participant_id, "rtc:offer", self._offer_event(sdp, tracks))

    def _offer_event(self, sdp: str, tracks: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "sdp": sdp,
            "type": "offer",
            "tracks": tracks,
            "connection_id": self.connection_id,
        }

    async def resend_pending_offer(self) -> bool:
        """Send again the offer that waits for an answer; True if there was one.

        The client's socket may have dropped while it was sent (a reconnect keeps the media
        but not the events sent meanwhile): without this the connection would wait for an
        answer forever (aiortc cannot roll back), and every later offer with it. An offer
        being sent right now is left to its own emit.
        """
        if self._offer_task is not None and not self._offer_task.done():
            return False
        async with self.lock:
            if (
                self.closed
                or self.pc.signalingState != "have-local-offer"
                or self.pc.localDescription is None
            ):
                pending = None
            else:
                pending = self._offer_event(self.pc.localDescription.sdp, self.subscription_list())
        if pending is None:
            if self._offer_needed:
                self.schedule_offer()
            return False
        await self.room.emit(self.participant_id, "rtc:offer", pending)
        return True

    def _sync_subscriptions(self) -> bool:
        """Bind m-lines to the room's tracks; True if the SDP has to change."""
        desired = {
            f.track_id: f
            for f in self.room.forwarders()
            if f.publisher_id != self.participant_id and not f.closed
        }
        changed = False
        for track_id, bound in list(self.subscriptions.items()):
            current = desired.get(track_id)
            if current is None or bound.downtrack.forwarder is not current:
                bound.downtrack.bind(None)
                bound.downtrack.set_paused(False)
                bound.track_id = None
                bound.transceiver.direction = "inactive"
                del self.subscriptions[track_id]
                changed = True
        for track_id, forwarder in desired.items():
            if track_id in self.subscriptions:
                continue
            key = codec_key(forwarder.codec_name, forwarder.codec_parameters)
            slot: Slot | None = next(
                (
                    s
                    for s in self.slots
                    if s.track_id is None and s.kind == forwarder.kind and s.codec_key == key
                ),
                None,
            )
            if slot is None:
                slot = self._new_slot(forwarder)
                if slot is None:
                    continue
            slot.transceiver.direction = "sendonly"
            slot.track_id = track_id
            slot.downtrack.bind(forwarder)
            self.subscriptions[track_id] = slot
            changed = True
        return changed

    def _new_slot(self, forwarder: Forwarder) -> Slot | None:
        capability = _capability_for(forwarder)
        if capability is None:
            return None
        transceiver = self.pc.addTransceiver(forwarder.kind, direction="sendonly")
        transceiver.setCodecPreferences([capability])
        self._intercepted.add(id(transceiver))
        downtrack = DownTrack(
            self.participant_id, forwarder.kind, internals.sender_ssrc(transceiver.sender)
        )
        internals.intercept_sender(transceiver.sender, self._sender_started(downtrack))
        internals.intercept_receiver(transceiver.receiver, lambda p, t: _PublisherSink())
        slot = Slot(
            transceiver=transceiver,
            downtrack=downtrack,
            kind=forwarder.kind,
            codec_key=codec_key(forwarder.codec_name, forwarder.codec_parameters),
        )
        self.slots.append(slot)
        return slot

    def _sender_started(
        self, downtrack: DownTrack
    ) -> Callable[[RTCRtpSendParameters, RTCDtlsTransport], internals.RtcpSource]:
        def on_send(parameters: RTCRtpSendParameters, transport: RTCDtlsTransport) -> DownTrack:
            codec = parameters.codecs[0]
            wanted = ABS_SEND_TIME_URI if downtrack.kind == "video" else AUDIO_LEVEL_URI
            ext_id = next((e.id for e in parameters.headerExtensions if e.uri == wanted), 0)
            downtrack.configure(codec.payloadType or 0, codec.name, codec.clockRate, ext_id)
            downtrack.set_ready(self._writer_for(transport))
            return downtrack

        return on_send

    async def handle_answer(self, sdp: str) -> None:
        sdp = self._checked_sdp(sdp, "answer")
        async with self.lock:
            if self.closed:
                raise RtcError(CLOSED, "the connection is closed")
            if self.pc.signalingState != "have-local-offer":
                raise RtcError(WRONG_STATE, "no server offer is waiting for an answer")
            self.extmap.learn(sdp)
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            except Exception as exc:
                raise RtcError(BAD_SDP, f"answer rejected: {exc}") from exc
        if self._offer_needed:
            self.schedule_offer()

    def subscription_list(self) -> list[dict[str, Any]]:
        """What each server m-line carries, for the client to label its incoming tracks."""
        tracks = []
        for track_id, slot in self.subscriptions.items():
            forwarder = slot.downtrack.forwarder
            if forwarder is None:
                continue
            tracks.append(
                {
                    "mid": slot.transceiver.mid,
                    "track_id": track_id,
                    "participant_id": forwarder.publisher_id,
                    "display_name": self.room.display_name(forwarder.publisher_id),
                    "kind": forwarder.kind,
                    "source": forwarder.source,
                    "paused": slot.downtrack.paused,
                }
            )
        return tracks

    # --- ICE --------------------------------------------------------------------------------

    async def add_candidate(self, candidate: Mapping[str, Any] | str | None) -> bool:
        """Trickled remote candidate; False if ignored by the address policy."""
        if self.closed:
            raise RtcError(CLOSED, "the connection is closed")
        if isinstance(candidate, str):
            candidate = {"candidate": candidate, "sdpMLineIndex": 0}
        line = (candidate or {}).get("candidate") or ""
        if not line:
            return True  # end-of-candidates: aioice stops waiting when its checks end
        self._candidates += 1
        if self._candidates > MAX_CANDIDATES:
            raise RtcError(RATE_LIMITED, "too many ICE candidates")
        if not isinstance(line, str):
            raise RtcError(BAD_CANDIDATE, "candidate must be a string")
        try:
            parsed = internals.candidate_from_sdp(
                line.removeprefix("a=").removeprefix("candidate:")
            )
        except Exception as exc:
            raise RtcError(BAD_CANDIDATE, f"malformed candidate: {exc}") from exc
        if not self.policy.allows(parsed.ip):
            return False
        assert candidate is not None
        parsed.sdpMid = candidate.get("sdpMid")
        index = candidate.get("sdpMLineIndex")
        parsed.sdpMLineIndex = index if isinstance(index, int) else None
        if parsed.sdpMid is None and parsed.sdpMLineIndex is None:
            parsed.sdpMLineIndex = 0
        try:
            await self.pc.addIceCandidate(parsed)
        except Exception as exc:
            raise RtcError(BAD_CANDIDATE, f"candidate rejected: {exc}") from exc
        return True

    # --- transport plumbing -----------------------------------------------------------------

    def _writer_for(self, transport: RTCDtlsTransport) -> internals.TransportWriter:
        writer = self._writers.get(id(transport))
        if writer is None:
            writer = internals.TransportWriter(transport)
            self._writers[id(transport)] = writer

            def on_statechange() -> None:
                if transport.state != "connected":
                    writer.unbind()
                    self._refresh_all()

            transport.on("statechange", on_statechange)
        if writer.rtp is None and writer.bind():
            internals.fast_rtp_input(transport)
        return writer

    def _refresh_all(self) -> None:
        for forwarder in self.published.values():
            forwarder.refresh()
        for slot in self.slots:
            if slot.downtrack.forwarder is not None:
                slot.downtrack.forwarder.refresh()

    async def _connection_state_changed(self) -> None:
        await self._on_state(self, self.pc.connectionState)

    def send_reports(self) -> None:
        """Sender reports for every stream we send to this participant (once a second)."""
        by_writer: dict[int, tuple[internals.TransportWriter, list[bytes]]] = {}
        for slot in self.slots:
            dt = slot.downtrack
            writer = dt.writer
            if writer is None or writer.rtcp is None or dt.paused:
                continue
            report = dt.sender_report()
            if report is not None:
                by_writer.setdefault(id(writer), (writer, []))[1].append(bytes(report))
        for writer, reports in by_writer.values():
            if writer.rtcp is not None:
                writer.rtcp(b"".join(reports))

    async def close(self) -> None:
        self.closed = True
        if self._offer_task is not None:
            self._offer_task.cancel()
        for forwarder in self.published.values():
            forwarder.close()
        for slot in self.slots:
            slot.downtrack.close()
        for writer in self._writers.values():
            writer.unbind()
        await self.pc.close()


def _no_rtcp(ssrc: int) -> Callable[[RTCRtpSendParameters, RTCDtlsTransport], _NoRtcp]:
    return lambda parameters, transport: _NoRtcp(ssrc)


def _capability_for(forwarder: Forwarder) -> RTCRtpCodecCapability | None:
    """The local codec capability that carries `forwarder`'s codec unchanged."""
    capabilities = RTCRtpSender.getCapabilities(forwarder.kind)
    wanted = codec_key(forwarder.codec_name, forwarder.codec_parameters)
    for capability in capabilities.codecs:
        if codec_key(capability.name, capability.parameters) == wanted:
            return capability
    for capability in capabilities.codecs:  # e.g. an H.264 profile we do not list: same name
        if capability.name.upper() == wanted[0]:
            return capability
    return None
