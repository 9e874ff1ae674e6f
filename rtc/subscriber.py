"""What one participant receives: server-created m-lines (slots) and the server's offers.

Each slot is an m-line the server created, sending one published track through a
:class:`DownTrack` registered where aiortc would have registered its encoding sender. A slot
is reused by the next track of the same kind and codec once its track ends. When the room's
tracks change, :meth:`Subscriber.schedule_offer` tells the client (`rtc:renegotiate`); the
client pulls the offer when it is ready (:meth:`Subscriber.pull_offer`): bind slots to tracks,
create an offer (extension ids and published codecs kept as agreed), return it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCDtlsTransport, RTCPeerConnection, RTCRtpTransceiver
from aiortc.rtcrtpparameters import RTCRtpSendParameters

from rtc import aiortc_internals as internals
from rtc import sdp
from rtc.bandwidth import TrackDemand, TransportCc, allocate, remb_budget, transport_cc_packets
from rtc.downtrack import ABS_SEND_TIME_URI, AUDIO_LEVEL_URI, PAUSE_LOSS, DownTrack
from rtc.errors import OFFER_FAILED, RtcError
from rtc.forwarder import Forwarder
from rtc.publisher import Publisher, PublisherSink, WriterFor
from rtc.simulcast import SimulcastForwarder

logger = logging.getLogger(__name__)


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


@dataclass
class Slot:
    """A server-created m-line sending one published track (reused once that track ends)."""

    transceiver: RTCRtpTransceiver
    downtrack: DownTrack
    kind: str
    codec_key: tuple[str, str]
    track_id: str | None = None
    #: the client rejected this m-line (stopped its transceiver): never used again
    retired: bool = False


class Subscriber:
    """The server-created m-lines of one peer connection and the server's offer loop.

    Shares the connection's lock with client offers (:meth:`rtc.peer.Peer.handle_offer`):
    each negotiation holds it.
    """

    def __init__(
        self,
        room: RoomView,
        participant_id: str,
        pc: RTCPeerConnection,
        lock: asyncio.Lock,
        writer_for: WriterFor,
        publisher: Publisher,
        extmap: sdp.ExtmapRegistry,
        connection_id: str,
        before_local_description: Callable[[], None],
        rejected: set[str] | None = None,
    ) -> None:
        self.room = room
        self.participant_id = participant_id
        self.pc = pc
        self.lock = lock
        self._writer_for = writer_for
        self._publisher = publisher
        self._extmap = extmap
        self.connection_id = connection_id
        self._before_local_description = before_local_description
        #: mids the client rejected (shared with the peer): kept rejected in our offers
        self.rejected = rejected if rejected is not None else set()
        self.closed = False
        self.slots: list[Slot] = []
        #: the slots currently bound, by track id
        self.subscriptions: dict[str, Slot] = {}
        self._transceivers: set[int] = set()
        self._offer_needed = False
        self._notice_task: asyncio.Task[None] | None = None
        #: transport-wide sequence numbers and the estimate from the client's feedback
        self.transport_cc = TransportCc()
        self._tapped: set[int] = set()
        #: the latest budget (bits per second) and where it came from
        self.budget: int | None = None
        self.budget_source: str | None = None

    def owns(self, transceiver: RTCRtpTransceiver) -> bool:
        """Whether this m-line was created by the server (one of our slots)."""
        return id(transceiver) in self._transceivers

    def mids(self) -> set[str]:
        return {s.transceiver.mid for s in self.slots if s.transceiver.mid is not None}

    # --- the server's offers (pulled by the client) ----------------------------------------

    @property
    def offer_needed(self) -> bool:
        """The room's tracks changed since the last offer was built."""
        return self._offer_needed

    @property
    def offering(self) -> bool:
        """The client has an offer to pull (or is being told so)."""
        return self._offer_needed or (
            self._notice_task is not None and not self._notice_task.done()
        )

    def schedule_offer(self, *, notify: bool = True) -> None:
        """The tracks this participant should receive changed: tell the client to pull.

        The server never sends an offer of its own accord (that is what made offers cross):
        it sends `rtc:renegotiate` once, and the client pulls the offer (`pull_offer`) when
        its own negotiations are done. `notify=False` when the caller's acknowledgement
        carries `renegotiate: true` instead (join, offer, answer).
        """
        if self.closed:
            return
        already = self._offer_needed
        self._offer_needed = True
        if notify and not already:
            self._notice_task = asyncio.create_task(self._notify())

    def notify_if_needed(self) -> None:
        """Tell the client again that an offer waits (its acknowledgement did not say so)."""
        if self._offer_needed and not self.closed:
            self._notice_task = asyncio.create_task(self._notify())

    async def _notify(self) -> None:
        await self.room.emit(
            self.participant_id, "rtc:renegotiate", {"connection_id": self.connection_id}
        )

    async def pull_offer(self) -> dict[str, Any] | None:
        """The server's offer for what changed, or None when nothing did.

        A pulled offer not answered yet is returned again (its event may have been lost with
        the socket: aiortc cannot roll it back, so the only way on is to answer it).
        """
        async with self.lock:
            if self.closed:
                return None
            if self.pc.signalingState == "have-local-offer" and self.pc.localDescription:
                return self._offer_event(self._as_sent(), self.subscription_list())
            if self.pc.signalingState != "stable":
                # A negotiation is under way: the need stays, and that negotiation's
                # acknowledgement says `renegotiate` (clearing it here lost the change).
                return None
            self._offer_needed = False
            if not self._sync():
                return None
            try:
                offer = await self.pc.createOffer()
                offer.sdp = self._shape_offer(offer.sdp)
                self._before_local_description()
                await self.pc.setLocalDescription(offer)
            except Exception as exc:
                if self.closed:  # removed meanwhile: aiortc refuses a closed connection
                    return None
                logger.exception("server offer failed for %s", self.participant_id)
                raise RtcError(OFFER_FAILED, f"the server could not make its offer: {exc}") from exc
            return self._offer_event(self._as_sent(), self.subscription_list())

    def _shape_offer(self, offer_sdp: str) -> str:
        """Our offer with the agreed published codecs and this connection's extension ids."""
        description = sdp.parse(offer_sdp)
        sdp.pin_codecs(description, self._publisher.agreed_codecs)
        self._publisher.restore_codecs()
        # our m-lines, known by their SSRC (a new one has no mid before this offer is set)
        ours = {slot.downtrack.ssrc for slot in self.slots}
        sdp.offer_transport_cc(
            description,
            {m.rtp.muxId for m in description.media if m.ssrc and m.ssrc[0].ssrc in ours},
        )
        self._extmap.rewrite(description)
        sdp.reject(description, self.rejected)
        return str(description)

    def _as_sent(self) -> str:
        """Our pending offer as the client gets it: aiortc writes its local description
        again from its own state (ports from its candidates), rejected m-lines included."""
        text = self.pc.localDescription.sdp
        if self.rejected:
            description = sdp.parse(text)
            sdp.reject(description, self.rejected)
            text = str(description)
        # the layers of published simulcast m-lines, or the client would drop to one layer
        return sdp.add_simulcast(text, self._publisher.simulcast)

    def _offer_event(self, offer_sdp: str, tracks: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "sdp": offer_sdp,
            "type": "offer",
            "tracks": tracks,
            "connection_id": self.connection_id,
        }

    def answered(self, description: sdp.SessionDescription) -> None:
        """The client's answer to our offer (or its offer) is applied: write transport-cc on
        the m-lines where it accepted it."""
        ids = sdp.transport_cc_ids(description)
        for slot in self.slots:
            ext_id = ids.get(slot.transceiver.mid or "", 0)
            slot.downtrack.set_transport_cc(self.transport_cc, ext_id)

    def shape_answer(self, answer_sdp: str, offer: sdp.SessionDescription) -> str:
        """The server's answer to a client offer, keeping transport-cc on our m-lines."""
        mids = self.mids()
        if not sdp.transport_cc_ids(offer).keys() & mids:
            self.answered(offer)
            return answer_sdp
        description = sdp.parse(answer_sdp)
        sdp.answer_transport_cc(description, offer, mids)
        self.answered(offer)
        return str(description)

    def _on_rtcp(self, data: bytes) -> None:
        for packet in transport_cc_packets(data):
            self.transport_cc.on_feedback(packet)

    # --- the budget --------------------------------------------------------------------------

    def allocate_budget(self, speaker: str | None, now: float) -> None:
        """Once a second: this subscriber's estimate split across its down-tracks.

        The estimate comes from transport-cc feedback when the client negotiated it, else from
        its REMB. Each down-track gets its `allowed_bitrate`; a video that does not fit is
        paused (`DownTrack.set_allowance`) while the link loses packets, audio never is.
        """
        downtracks = [
            slot.downtrack
            for slot in self.subscriptions.values()
            if slot.downtrack.forwarder is not None and not slot.downtrack.client_paused
        ]
        budget: int | None = None
        source: str | None = None
        if any(dt.transport_cc is not None for dt in downtracks):
            budget = self.transport_cc.estimate
            source = "transport-cc" if budget is not None else None
        if budget is None:
            flowing = [dt.remb for dt in downtracks if dt.kind == "video" and not dt.budget_paused]
            remb = remb_budget(flowing, now)
            if remb is not None:
                audio = 0
                for dt in downtracks:
                    if dt.kind == "audio" and dt.forwarder is not None:
                        audio += dt.forwarder.bitrate
                budget, source = remb + audio, "remb"
        self.budget, self.budget_source = budget, source
        if budget is None:
            for dt in downtracks:
                dt.set_allowance(None, 0, now)
            return
        demands = [self._demand(dt, speaker) for dt in downtracks]
        allowed = allocate(budget, demands)
        # only a link that loses packets gets videos paused (see DownTrack.set_allowance)
        if source == "transport-cc":
            loss = self.transport_cc.estimator.loss
        else:
            loss = max((dt.stats.fraction_lost / 256 for dt in downtracks), default=0.0)
        congested = loss >= PAUSE_LOSS
        for demand in demands:
            track = demand.key
            assert isinstance(track, DownTrack)
            was_paused = track.budget_paused
            track.set_allowance(allowed[track], demand.bitrate, now, congested, demand.layers)
            if track.budget_paused != was_paused:
                logger.info(
                    "%s: video %s %s for the budget (%s %d bit/s, allowed %d, stream %d)",
                    self.participant_id,
                    track.forwarder.track_id if track.forwarder else "?",
                    "paused" if track.budget_paused else "resumed",
                    source,
                    budget,
                    allowed[track],
                    demand.bitrate,
                )

    @staticmethod
    def _demand(dt: DownTrack, speaker: str | None) -> TrackDemand:
        """A down-track as the allocation sees it; a simulcast one with the bitrates of the
        layers its tile wants (`bitrate`: the layer it gets now)."""
        forwarder = dt.forwarder
        assert forwarder is not None
        bitrate = forwarder.bitrate
        layers: tuple[int, ...] = ()
        if isinstance(forwarder, SimulcastForwarder) and dt.kind == "video":
            rates = forwarder.layer_rates()
            layers = tuple(rates[: forwarder.ceiling(dt) + 1])
            feed = dt.feed
            if feed is not None and feed in forwarder.layers:
                bitrate = rates[forwarder.layers.index(feed)]
        return TrackDemand(
            key=dt,
            kind=dt.kind,
            source=forwarder.source,
            bitrate=bitrate,
            speaking=forwarder.publisher_id == speaker,
            layers=layers,
        )

    def bandwidth_report(self) -> dict[str, Any]:
        """The subscriber's link as the server sees it (stats, `rtc:stats`, the tile)."""
        estimator = self.transport_cc.estimator
        twcc = self.budget_source == "transport-cc"
        rtts = [
            s.downtrack.stats.rtt
            for s in self.subscriptions.values()
            if s.downtrack.stats.rtt is not None
        ]
        losses = [s.downtrack.stats.fraction_lost / 256 for s in self.subscriptions.values()]
        return {
            "estimate": self.budget,
            "source": self.budget_source,
            "loss": round(estimator.loss, 4) if twcc else round(max(losses, default=0.0), 4),
            "rtt_ms": round(1000 * sum(rtts) / len(rtts), 1) if rtts else None,
            "delay_state": estimator.state if twcc else None,
            "paused_for_budget": sum(
                1 for s in self.subscriptions.values() if s.downtrack.budget_paused
            ),
            "layers": self._layers_received(),
        }

    def _layers_received(self) -> dict[str, int]:
        """How many simulcast videos this participant receives on each layer (by RID)."""
        counts: dict[str, int] = {}
        for slot in self.subscriptions.values():
            dt = slot.downtrack
            if dt.feed is not None and dt.feed.rid and not dt.paused:
                counts[dt.feed.rid] = counts.get(dt.feed.rid, 0) + 1
        return counts

    # --- slots ------------------------------------------------------------------------------

    def _sync(self) -> bool:
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
            key = sdp.codec_key(forwarder.codec_name, forwarder.codec_parameters)
            slot: Slot | None = next(
                (
                    s
                    for s in self.slots
                    if s.track_id is None
                    and not s.retired
                    and s.kind == forwarder.kind
                    and s.codec_key == key
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

    def retire(self, mids: set[str]) -> bool:
        """The client rejected these m-lines: the server's among them stop sending for good.
        True if one carried a track (it goes to a new m-line at the next offer)."""
        moved = False
        for slot in self.slots:
            if slot.transceiver.mid not in mids or slot.retired:
                continue
            slot.retired = True
            slot.downtrack.bind(None)
            slot.transceiver.direction = "inactive"
            if slot.track_id is not None:
                self.subscriptions.pop(slot.track_id, None)
                slot.track_id = None
                moved = True
        return moved

    def _new_slot(self, forwarder: Forwarder) -> Slot | None:
        capability = sdp.capability_for(
            forwarder.kind, forwarder.codec_name, forwarder.codec_parameters
        )
        if capability is None:
            return None
        transceiver = self.pc.addTransceiver(forwarder.kind, direction="sendonly")
        transceiver.setCodecPreferences([capability])
        self._transceivers.add(id(transceiver))
        downtrack = DownTrack(
            self.participant_id, forwarder.kind, internals.sender_ssrc(transceiver.sender)
        )
        internals.intercept_sender(transceiver.sender, self._sender_started(downtrack))
        internals.intercept_receiver(transceiver.receiver, lambda p, t: PublisherSink())
        slot = Slot(
            transceiver=transceiver,
            downtrack=downtrack,
            kind=forwarder.kind,
            codec_key=sdp.codec_key(forwarder.codec_name, forwarder.codec_parameters),
        )
        self.slots.append(slot)
        return slot

    def _sender_started(
        self, downtrack: DownTrack
    ) -> Callable[[RTCRtpSendParameters, RTCDtlsTransport], internals.RtcpSource]:
        def on_send(parameters: RTCRtpSendParameters, transport: RTCDtlsTransport) -> DownTrack:
            if id(transport) not in self._tapped:
                self._tapped.add(id(transport))
                internals.tap_rtcp(transport, self._on_rtcp)
            codec = parameters.codecs[0]
            wanted = ABS_SEND_TIME_URI if downtrack.kind == "video" else AUDIO_LEVEL_URI
            ext_id = next((e.id for e in parameters.headerExtensions if e.uri == wanted), 0)
            downtrack.configure(codec.payloadType or 0, codec.name, codec.clockRate, ext_id)
            downtrack.set_ready(self._writer_for(transport))
            return downtrack

        return on_send

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

    def refresh(self) -> None:
        for slot in self.slots:
            if slot.downtrack.forwarder is not None:
                slot.downtrack.forwarder.refresh()

    def close(self) -> None:
        self.closed = True
        if self._notice_task is not None:
            self._notice_task.cancel()
        for slot in self.slots:
            slot.downtrack.close()
