"""One participant's RTCPeerConnection with the server: negotiation, ICE, transport.

Negotiation rule: the client starts every negotiation, one at a time. It offers when its
published tracks change; when the set of tracks the server sends it changes, the server tells
it (`rtc:renegotiate`) and the client pulls the server's offer (`pull_offer`) and answers it.
So offers never cross and neither side ever rolls back (aiortc cannot). Each negotiation holds
the peer's lock; a client offer while a pulled offer waits for its answer breaks that rule and
is refused with `wrong_state`.

The peer composes the connection's two halves: :class:`rtc.publisher.Publisher` (the client's
m-lines, each feeding a :class:`Forwarder`) and :class:`rtc.subscriber.Subscriber` (the
server's m-lines, each sending through a :class:`DownTrack`, and the server's offer loop).
Descriptions are checked and shaped in rtc/sdp.py; aiortc internals are used only through
rtc/aiortc_internals.py.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiortc import RTCDtlsTransport, RTCPeerConnection, RTCSessionDescription

from rtc import aiortc_internals as internals
from rtc import sdp
from rtc.config import RtcConfig
from rtc.errors import (
    BAD_CANDIDATE,
    BAD_SDP,
    CANDIDATE_NOT_ALLOWED,
    CLOSED,
    ICE_RESTART_UNSUPPORTED,
    RATE_LIMITED,
    WRONG_STATE,
    RtcError,
)
from rtc.forwarder import Forwarder
from rtc.ice import AddressPolicy, guard, valid_port
from rtc.publisher import Publisher
from rtc.sdp import MAX_SDP_LENGTH, ExtmapRegistry
from rtc.subscriber import RoomView, Slot, Subscriber

if TYPE_CHECKING:
    from aiortc import RTCConfiguration

__all__ = ["MAX_SDP_LENGTH", "ExtmapRegistry", "Peer", "RoomView", "Slot"]

MAX_CANDIDATES = 100
#: at most this many video packets per down-track are sent again after an ICE restart
RESEND_AFTER_RESTART = 256


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
        self.extmap = ExtmapRegistry()
        self._intercepted: set[int] = set()
        self._writers: dict[int, internals.TransportWriter] = {}
        self._negotiations: deque[float] = deque()
        self._candidates = 0
        #: the ICE restarts of this connection (made at the first client offer that restarts)
        self.ice_restart: internals.IceRestart | None = None
        #: down-track id -> its next sequence number when the ICE restart began
        self._restart_marks: dict[int, int] = {}
        #: mids the client rejected (port 0) in its latest description
        self.rejected: set[str] = set()
        self.publisher = Publisher(
            participant_id, config, self.pc, self._writer_for, self._is_server_mline
        )
        self.subscriber = Subscriber(
            room,
            participant_id,
            self.pc,
            self.lock,
            self._writer_for,
            self.publisher,
            self.extmap,
            self.connection_id,
            self.guard_ice,
            self.rejected,
        )
        self._on_state = on_state
        self.pc.on("connectionstatechange", self._connection_state_changed)

    def guard_ice(self) -> None:
        """Apply the address policy inside the ICE agents (peer-reflexive, mDNS)."""
        guard(self.pc, self.policy)

    def _is_server_mline(self, transceiver: Any) -> bool:
        return self.subscriber.owns(transceiver)

    @property
    def published(self) -> dict[str, Forwarder]:
        """Published tracks by the client's mid."""
        return self.publisher.forwarders

    @property
    def subscriptions(self) -> dict[str, Slot]:
        """Server m-lines currently sending a track, by track id."""
        return self.subscriber.subscriptions

    @property
    def slots(self) -> list[Slot]:
        return self.subscriber.slots

    # --- client offers (publishing) ---------------------------------------------------------

    async def handle_offer(
        self, offer_sdp: str, sources: Mapping[str, str] | None = None
    ) -> tuple[str, list[Forwarder], list[Forwarder]]:
        """Apply the client's offer; return (answer sdp, tracks published, tracks ended)."""
        self._count_negotiation()
        # Out of order first: while our offer is pending, the client's new m-lines may take the
        # mids ours carry, which the checks below would call a bad SDP.
        self._refuse_out_of_order()
        offer_sdp, description = self._checked_sdp(offer_sdp, "offer")
        async with self.lock:
            if self.closed:
                raise RtcError(CLOSED, "the connection is closed")
            self._refuse_out_of_order()
            restart = self._ice_restart(description)
            if restart is not None:
                await self._prepare_ice_restart()
            offer_sdp = self._accept_rejected(description, offer_sdp)
            if sources:
                self.set_sources(sources)
            self.extmap.learn(description)
            try:
                await self.pc.setRemoteDescription(
                    RTCSessionDescription(sdp=offer_sdp, type="offer")
                )
            except Exception as exc:  # aiortc raises ValueError, OperationError, ...
                raise RtcError(BAD_SDP, f"offer rejected: {exc}") from exc
            self.guard_ice()
            if restart is not None and self.ice_restart is not None:
                self.ice_restart.start(*restart)
            self._intercept_new_transceivers()
            simulcast = self.publisher.accept_simulcast(offer_sdp)
            self.publisher.narrow_codecs()
            try:
                answer = await self.pc.createAnswer()
                answer.sdp = self.subscriber.shape_answer(answer.sdp, description)
                await self.pc.setLocalDescription(answer)
            except Exception as exc:
                if self.closed:  # removed meanwhile: aiortc refuses a closed connection
                    raise RtcError(CLOSED, "the connection is closed") from exc
                raise
            self.publisher.remember_codecs()
            added, removed = self.publisher.sync()
            local = self._as_sent(self.pc.localDescription.sdp, simulcast)
        return local, added, removed

    def _ice_restart(self, description: sdp.SessionDescription) -> tuple[str, str, bool] | None:
        """The client's new ICE credentials if this offer restarts ICE (`restartIce()`).

        JSEP: an offer whose ufrag/pwd differ from the current remote description's. Checked
        before anything changes: one set of credentials for the bundle, and candidates in the
        offer unless more are to be trickled (no `a=end-of-candidates`).
        """
        previous = self.pc.remoteDescription
        if previous is None:
            return None
        live = [m.ice for m in description.media if m.port != 0 and m.ice is not None]
        candidates = [
            (m.ice_candidates, m.ice_candidates_complete)
            for m in description.media
            if m.port != 0 and m.ice is not None
        ]
        before = {
            (m.ice.usernameFragment, m.ice.password)
            for m in sdp.parse(previous.sdp).media
            if m.port != 0 and m.ice is not None
        }
        now = {(ice.usernameFragment, ice.password) for ice in live}
        if not before or not now or now <= before:
            return None
        if len(now) != 1:
            raise RtcError(BAD_SDP, "an ICE restart needs one ufrag/pwd for the bundle")
        if not internals.ice_restart_supported():
            raise RtcError(
                ICE_RESTART_UNSUPPORTED,
                "ICE restart is not supported by this server: start the media over (rtc:join)",
            )
        if self.ice_restart is None and internals.ice_transport(self.pc) is None:
            raise RtcError(WRONG_STATE, "no ICE transport to restart yet")
        if all(complete and not found for found, complete in candidates):
            raise RtcError(
                BAD_SDP,
                "an ICE restart offer needs candidates the server may use "
                "(or trickle them: leave out a=end-of-candidates)",
            )
        ((ufrag, pwd),) = now
        assert ufrag is not None and pwd is not None  # checked by check_client_description
        return ufrag, pwd, bool(live[0].iceLite)

    async def _prepare_ice_restart(self) -> None:
        if self.ice_restart is None:
            transport = internals.ice_transport(self.pc)
            assert transport is not None  # checked in _ice_restart
            self.ice_restart = internals.IceRestart(
                transport, self._ice_selected, timeout=self.config.ice_restart_timeout
            )
        try:
            await self.ice_restart.prepare()
        except ConnectionError as exc:
            raise RtcError(CLOSED, f"the ICE connection is closed: {exc}") from exc
        self._candidates = 0  # the client trickles a new set
        if not self._restart_marks:  # a restart of a restart keeps the first marks
            self._restart_marks = {
                id(slot.downtrack): slot.downtrack.munger.next_seq for slot in self.subscriber.slots
            }

    def _ice_selected(self) -> None:
        """A restarted ICE nominated a new pair: the fast paths move to its socket, and the
        video that may have gone to the dead path is sent again (below)."""
        for writer in self._writers.values():
            writer.unbind()
            if writer.bind():
                internals.fast_rtp_input(writer.dtls)
        self._refresh_all()
        # The video sent since the subscriber's last receiver report (or since the restart
        # began) may have gone to a dead path: sent again on the new one (a receiver drops
        # what it already has). aiortc clients NACK a hole once only, and a browser would
        # otherwise wait for its NACKs' round trip. Too much of it: a keyframe instead.
        marks, self._restart_marks = self._restart_marks, {}
        for slot in self.subscriber.slots:
            downtrack = slot.downtrack
            start = marks.get(id(downtrack))
            if start is None or downtrack.kind != "video" or downtrack.forwarder is None:
                continue
            end = downtrack.munger.next_seq
            if downtrack.highest_received is not None:
                reported = (downtrack.highest_received + 1) & 0xFFFF
                if (end - reported) & 0xFFFF > (end - start) & 0xFFFF:
                    start = reported  # older than the mark: the report is the better bound
            count = (end - start) & 0xFFFF
            if count > RESEND_AFTER_RESTART:
                downtrack.forwarder.request_keyframe()
            elif count:
                downtrack.retransmit([(start + i) & 0xFFFF for i in range(count)])

    def _accept_rejected(self, description: sdp.SessionDescription, text: str) -> str:
        """Rejected m-sections (a stopped transceiver): what aiortc is given instead, and the
        server's m-lines among them retired (their track goes to a new m-line)."""
        previous = self.pc.remoteDescription
        rejected = sdp.accept_rejected(
            description, sdp.parse(previous.sdp) if previous is not None else None
        )
        self.rejected.clear()
        self.rejected.update(rejected)
        if not rejected:
            return text
        if self.subscriber.retire(rejected):
            self.schedule_offer(notify=False)  # the ack says `renegotiate`
        return str(description)

    def _as_sent(self, local_sdp: str, simulcast: Mapping[str, list[str]]) -> str:
        """Our description as the client gets it: rejected m-sections in JSEP form, the
        simulcast layers we receive (aiortc writes no `a=rid`/`a=simulcast`)."""
        if self.rejected:
            description = sdp.parse(local_sdp)
            sdp.reject(description, self.rejected)
            local_sdp = str(description)
        return sdp.add_simulcast(local_sdp, simulcast)

    def _refuse_out_of_order(self) -> None:
        if self.closed:
            raise RtcError(CLOSED, "the connection is closed")
        if self.pc.signalingState != "stable":
            raise RtcError(
                WRONG_STATE,
                "the offer you pulled (rtc:pull) waits for its answer: answer it, then offer",
            )

    def set_sources(self, sources: Mapping[str, str]) -> None:
        """Label published tracks: {mid or track id: "camera" | "screen" | "audio"}."""
        self.publisher.set_sources(sources)

    def _checked_sdp(self, text: str, kind: str) -> tuple[str, sdp.SessionDescription]:
        """Refuse what would put aiortc in a bad state; drop disallowed candidates."""
        if isinstance(text, str) and len(text) <= MAX_SDP_LENGTH:
            text = self.policy.filter_sdp(text)
        description = sdp.check_client_description(
            text, kind, self.config, self.subscriber.mids() if kind == "offer" else ()
        )
        return text, description

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
            if id(transceiver) in self._intercepted or self.subscriber.owns(transceiver):
                continue
            self._intercepted.add(id(transceiver))
            self.publisher.intercept(transceiver)

    # --- server offers (subscribing) --------------------------------------------------------

    @property
    def negotiating(self) -> bool:
        """An offer/answer exchange is under way or the client has an offer to pull."""
        return self.lock.locked() or self.pc.signalingState != "stable" or self.subscriber.offering

    @property
    def offer_needed(self) -> bool:
        """The tracks this participant should receive changed since the last server offer."""
        return self.subscriber.offer_needed

    def schedule_offer(self, *, notify: bool = True) -> None:
        """The tracks this participant should receive changed: the client is to pull."""
        if not self.closed:
            self.subscriber.schedule_offer(notify=notify)

    @property
    def renegotiate(self) -> bool:
        """The client has an offer to pull: a change not offered yet, or one not answered."""
        return not self.closed and (
            self.subscriber.offer_needed or self.pc.signalingState == "have-local-offer"
        )

    async def pull_offer(self) -> dict[str, Any] | None:
        """The server's offer for what changed (None: nothing did)."""
        if self.closed:
            raise RtcError(CLOSED, "the connection is closed")
        return await self.subscriber.pull_offer()

    def subscription_list(self) -> list[dict[str, Any]]:
        return self.subscriber.subscription_list()

    async def handle_answer(self, answer_sdp: str) -> None:
        answer_sdp, description = self._checked_sdp(answer_sdp, "answer")
        async with self.lock:
            if self.closed:
                raise RtcError(CLOSED, "the connection is closed")
            if self.pc.signalingState != "have-local-offer":
                raise RtcError(WRONG_STATE, "no server offer is waiting for an answer")
            self.extmap.learn(description)
            answer_sdp = self._accept_rejected(description, answer_sdp)
            try:
                await self.pc.setRemoteDescription(
                    RTCSessionDescription(sdp=answer_sdp, type="answer")
                )
            except Exception as exc:
                raise RtcError(BAD_SDP, f"answer rejected: {exc}") from exc
            self.subscriber.answered(description)
            self.guard_ice()

    # --- ICE --------------------------------------------------------------------------------

    async def add_candidate(self, candidate: Mapping[str, Any] | str | None) -> bool:
        """Trickled remote candidate (True once handed to ICE).

        Refused: an invalid port (`bad_candidate`), an address the policy does not allow
        (`candidate_not_allowed`): the server never sends to it.
        """
        if self.closed:
            raise RtcError(CLOSED, "the connection is closed")
        if isinstance(candidate, str):
            candidate = {"candidate": candidate, "sdpMLineIndex": 0}
        line = (candidate or {}).get("candidate") or ""
        if not line:
            return True  # end-of-candidates: aioice stops waiting when its checks end
        ufrag = (candidate or {}).get("usernameFragment")
        current = self._remote_ufrag()
        if isinstance(ufrag, str) and ufrag and current is not None and ufrag != current:
            return True  # a late candidate of the ICE generation before a restart: ignored
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
        if not valid_port(parsed.port) or (
            parsed.relatedPort is not None and not valid_port(parsed.relatedPort)
        ):
            raise RtcError(BAD_CANDIDATE, f"invalid port {parsed.port}")
        if not self.policy.allows(parsed.ip):
            raise RtcError(CANDIDATE_NOT_ALLOWED, f"the server does not send to {parsed.ip}")
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

    def _remote_ufrag(self) -> str | None:
        return internals.remote_ice_ufrag(self.pc)

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
        self.subscriber.refresh()

    async def _connection_state_changed(self) -> None:
        await self._on_state(self, self.pc.connectionState)

    def send_reports(self) -> None:
        """Sender reports for every stream we send to this participant (once a second)."""
        self.subscriber.send_reports()

    def stop_publishing(self) -> list[Forwarder]:
        """End every published track (the connection failed); returns the ended ones."""
        return self.publisher.stop_all()

    async def close(self) -> None:
        self.closed = True
        self.subscriber.close()
        self.publisher.close()
        for writer in self._writers.values():
            writer.unbind()
        if self.ice_restart is not None:
            await self.ice_restart.close()
        await self.pc.close()
