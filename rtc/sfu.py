"""The SFU's room-level router and its public API, independent of any transport.

The Socket.IO layer owns one :class:`Sfu` and translates `rtc:*` messages into its methods;
the SFU talks back through `on_event(room_id, target_participant_or_None, event, payload)`.
Every method raises :class:`rtc.errors.RtcError` for bad input; nothing a participant sends
can break another participant's media.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from rtc import aiortc_internals as internals
from rtc.config import RtcConfig
from rtc.errors import (
    ALREADY_JOINED,
    CLOSED,
    UNKNOWN_PARTICIPANT,
    UNKNOWN_TRACK,
    RtcError,
)
from rtc.forwarder import Forwarder
from rtc.ice import AddressPolicy, apply_gathering_policy, client_ice_servers, server_configuration
from rtc.peer import Peer, RoomView
from rtc.snapshot import Snapshot, take_snapshot
from rtc.speaker import SpeakerDetector
from rtc.stats import SfuTotals

logger = logging.getLogger(__name__)

EventSink = Callable[[str, "str | None", str, dict[str, Any]], Awaitable[None] | None]

#: seconds between receiver reports, REMB and sender reports.
RTCP_INTERVAL = 1.0
#: the RTCP interval is cut in this many slices, each serving its share of the peers.
RTCP_SLICES = 10


class Room(RoomView):
    """The participants of one room that have media, and the room's periodic work."""

    def __init__(self, sfu: Sfu, room_id: str) -> None:
        self.sfu = sfu
        self.room_id = room_id
        self.peers: dict[str, Peer] = {}
        config = sfu.config
        self.speaker = SpeakerDetector(config.speaker_threshold, config.speaker_hold)
        self._task: asyncio.Task[None] | None = None

    def forwarders(self) -> Iterator[Forwarder]:
        for peer in self.peers.values():
            yield from peer.published.values()

    def display_name(self, participant_id: str) -> str:
        peer = self.peers.get(participant_id)
        return peer.display_name if peer is not None else ""

    async def emit(self, target: str | None, event: str, payload: dict[str, Any]) -> None:
        await self.sfu._emit(self.room_id, target, event, payload)

    def tracks(self) -> list[dict[str, Any]]:
        return [
            {
                "track_id": f.track_id,
                "participant_id": f.publisher_id,
                "display_name": self.display_name(f.publisher_id),
                "kind": f.kind,
                "source": f.source,
                "codec": f.codec_name,
                "muted": f.muted,
            }
            for f in self.forwarders()
        ]

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"rtc-room-{self.room_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        """Speaker detection, RTCP and the stats event, spread so no tick does it all at once.

        Each peer (its sender reports and its forwarders' receiver reports and REMB) gets its
        RTCP once per RTCP_INTERVAL, but in one of RTCP_SLICES slices of that interval: at
        12 participants that is 2 or 3 forwarder ticks and ~20 sender reports per slice
        instead of 24 and 264 in one burst that every datagram arriving meanwhile waits for.
        """
        config = self.sfu.config
        step = RTCP_INTERVAL / RTCP_SLICES
        now = time.monotonic()
        next_speaker = now + config.speaker_interval
        next_stats = now
        parts: dict[str, dict[str, Any]] = {}  # each peer's share of the next rtc:stats
        turn = 0
        while True:
            await asyncio.sleep(step)
            now = time.monotonic()
            try:
                if now >= next_speaker - step / 2:
                    next_speaker = max(next_speaker + config.speaker_interval, now)
                    await self._detect_speaker()
                stats_due = bool(config.stats_interval) and now >= next_stats
                for i, (pid, peer) in enumerate(list(self.peers.items())):
                    if i % RTCP_SLICES == turn:
                        for forwarder in list(peer.published.values()):
                            forwarder.tick(now)
                        peer.send_reports()
                        peer.subscriber.allocate_budget(self.speaker.current, now)
                        if config.stats_interval and not stats_due:
                            parts[pid] = self._peer_stats(peer)
                turn = (turn + 1) % RTCP_SLICES
                if stats_due:
                    # peers whose slice came since the last event are reported from then
                    # (at most one RTCP interval old); the others are built now
                    next_stats = now + config.stats_interval
                    participants = {
                        pid: parts.pop(pid) if pid in parts else self._peer_stats(peer)
                        for pid, peer in self.peers.items()
                    }
                    parts.clear()
                    payload = {"room_id": self.room_id, "participants": participants}
                    await self.emit(None, "rtc:stats", payload)
            except Exception:  # never let one bad tick stop the room's RTCP
                logger.exception("room %s tick failed", self.room_id)

    async def _detect_speaker(self) -> None:
        levels: dict[str, float] = {}
        for forwarder in self.forwarders():
            if forwarder.kind == "audio" and not forwarder.muted:
                level = forwarder.levels()
                if level is not None:
                    levels[forwarder.publisher_id] = min(
                        level, levels.get(forwarder.publisher_id, 127.0)
                    )
        speaker = self.speaker.update(levels)
        if speaker is not None:
            await self.emit(
                None,
                "rtc:speaker",
                {"participant_id": speaker, "level": round(levels.get(speaker, 127.0), 1)},
            )

    def stats(self) -> dict[str, Any]:
        participants = {pid: self._peer_stats(peer) for pid, peer in self.peers.items()}
        return {"room_id": self.room_id, "participants": participants}

    def _peer_stats(self, peer: Peer) -> dict[str, Any]:
        subscribed = []
        for track_id, slot in peer.subscriptions.items():
            dt = slot.downtrack
            subscribed.append(
                {
                    "track_id": track_id,
                    "kind": dt.kind,
                    "publisher_id": dt.forwarder.publisher_id if dt.forwarder else None,
                    "source": dt.forwarder.source if dt.forwarder else None,
                    "paused": dt.paused,
                    "paused_for_budget": dt.budget_paused,
                    "allowed_bitrate": dt.allowed_bitrate,
                    **dt.stats.report(dt.clock_rate),
                    **(
                        {
                            "layer": dt.layer,
                            "layer_width": size[0] if (size := dt.layer_size) else None,
                            "layer_height": size[1] if size else None,
                            "target_layer": dt.target,
                            "budget_layer": dt.budget_layer,
                            "switches": dt.layer_switches,
                        }
                        if dt.forwarder is not None and dt.forwarder.layers
                        else {}
                    ),
                }
            )
        return {
            "state": peer.pc.connectionState,
            "bandwidth": peer.subscriber.bandwidth_report(),
            "published": [f.report() for f in peer.published.values()],
            "subscribed": subscribed,
        }


class Sfu:
    """Selective forwarding unit for all rooms of this process.

    `on_event(room_id, target, event, payload)`: target is a participant id, or None for the
    whole room. Events: rtc:renegotiate, rtc:tracks, rtc:screen, rtc:speaker, rtc:stats, rtc:state.
    """

    def __init__(self, config: RtcConfig, on_event: EventSink) -> None:
        self.config = config
        self._on_event = on_event
        self._rooms: dict[str, Room] = {}
        self._where: dict[str, Room] = {}
        self._policy = AddressPolicy(config.allowed_addresses, config.allowed_networks)
        self._retired = SfuTotals()  # the counts of tracks and peers that ended
        self._pending_emits: set[asyncio.Task[None]] = set()
        apply_gathering_policy(config)
        internals.quiet_connect_after_close()
        internals.receive_rid_extensions()
        internals.route_unknown_ssrc_by_mid()

    # --- membership -------------------------------------------------------------------------

    async def join(self, room_id: str, participant_id: str, display_name: str) -> dict[str, Any]:
        """Create the participant's server end; returns what the client needs to connect."""
        if participant_id in self._where:
            raise RtcError(ALREADY_JOINED, f"{participant_id} already has a media connection")
        room = self._rooms.get(room_id)
        if room is None:
            room = self._rooms[room_id] = Room(self, room_id)
            room.start()
        peer = Peer(
            room,
            participant_id,
            display_name,
            self.config,
            server_configuration(self.config),
            self._policy,
            self._peer_state_changed,
        )
        peer.publisher.on_layers = self._layers_changed
        room.peers[participant_id] = peer
        self._where[participant_id] = room
        if any(True for _ in room.forwarders()):
            peer.schedule_offer(notify=False)  # the acknowledgement says it
        return {
            "ice_servers": client_ice_servers(self.config, participant_id),
            "tracks": room.tracks(),
            "connection_id": peer.connection_id,
            "renegotiate": peer.renegotiate,
        }

    async def resync(self, participant_id: str) -> dict[str, Any]:
        """After the client's signalling connection came back: where its media stands.

        Returns `{connection_id, state, pending_offer, renegotiate}`: `renegotiate` when the
        client has an offer to pull (a `rtc:renegotiate` may have been lost with the socket),
        `pending_offer` when a pulled offer still waits for its answer (pulling returns it
        again). A client whose `connection_id` differs, or whose state is `failed` or
        `closed`, joins again (`join` after `remove`).
        """
        _, peer = self._lookup(participant_id)
        return {
            "connection_id": peer.connection_id,
            "state": peer.pc.connectionState,
            "pending_offer": peer.pc.signalingState == "have-local-offer",
            "renegotiate": peer.renegotiate,
        }

    async def remove(self, participant_id: str) -> None:
        """Close the participant's peer connection and stop everything they published."""
        room, peer = self._lookup(participant_id)
        del room.peers[participant_id]
        del self._where[participant_id]
        removed = list(peer.published.values())
        emptied = not room.peers and self._rooms.get(room.room_id) is room
        if emptied:
            # decided before any await: a removal that runs meanwhile sees its room gone (no
            # second stop, no KeyError) and a join meanwhile makes a new room, not one that
            # is stopping
            del self._rooms[room.room_id]
        await peer.close()
        for slot in peer.subscriber.slots:
            self._retired.add_downtrack(slot.downtrack)
        await self._published_changed(room, peer, [], removed)
        if room.speaker.forget(participant_id):
            await room.emit(None, "rtc:speaker", {"participant_id": None, "level": None})
        if emptied:
            await room.stop()

    async def close(self) -> None:
        for participant_id in list(self._where):
            with contextlib.suppress(RtcError):
                await self.remove(participant_id)

    # --- negotiation ------------------------------------------------------------------------

    async def handle_offer(
        self,
        participant_id: str,
        sdp: str,
        type: str = "offer",
        sources: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The client's offer (its published tracks changed); returns the answer.

        `{sdp, type: "answer", renegotiate}`: with `renegotiate`, the client then pulls the
        server's offer (:meth:`pull_offer`).

        `sources` labels video tracks: {mid or MediaStreamTrack id: "camera" | "screen"}.
        Unlabelled: the first video is the camera, the next one a screen.
        """
        if type != "offer":
            raise RtcError("bad_sdp", f"expected an offer, got {type!r}")
        room, peer = self._lookup(participant_id)
        answer, added, removed = await peer.handle_offer(sdp, sources)
        if peer.closed:  # removed while its offer was applied: announce nothing
            for forwarder in added:
                forwarder.close()
            raise RtcError(CLOSED, "the connection is closed")
        await self._published_changed(room, peer, added, removed)
        return {"sdp": answer, "type": "answer", "renegotiate": peer.renegotiate}

    async def pull_offer(self, participant_id: str) -> dict[str, Any] | None:
        """The server's offer for what this participant receives, or None if nothing changed.

        `{sdp, type: "offer", tracks, connection_id}`; the client answers it with
        :meth:`handle_answer` before anything else. The server never offers otherwise: when
        what it sends changes it emits `rtc:renegotiate` (once until the next pull), so a
        client that runs its negotiations one at a time never sees two offers cross.
        """
        _, peer = self._lookup(participant_id)
        return await peer.pull_offer()

    async def handle_answer(
        self, participant_id: str, sdp: str, type: str = "answer"
    ) -> dict[str, Any]:
        """The client's answer to the offer it pulled; `{renegotiate}` as for an offer."""
        if type != "answer":
            raise RtcError("bad_sdp", f"expected an answer, got {type!r}")
        _, peer = self._lookup(participant_id)
        await peer.handle_answer(sdp)
        return {"renegotiate": peer.renegotiate}

    async def add_candidate(
        self, participant_id: str, candidate: Mapping[str, Any] | str | None
    ) -> bool:
        """A trickled ICE candidate ({candidate, sdpMid, sdpMLineIndex}); False if ignored."""
        _, peer = self._lookup(participant_id)
        return await peer.add_candidate(candidate)

    async def set_sources(self, participant_id: str, sources: Mapping[str, str]) -> None:
        """Label tracks before (or with) the offer that publishes them."""
        _, peer = self._lookup(participant_id)
        peer.set_sources(sources)

    async def _published_changed(
        self, room: Room, publisher: Peer, added: list[Forwarder], removed: list[Forwarder]
    ) -> None:
        if not added and not removed:
            return
        for forwarder in removed:
            self._retired.add_forwarder(forwarder)
        for peer in room.peers.values():
            if peer is not publisher:
                peer.schedule_offer()
        for forwarder in added:
            if forwarder.source == "screen":
                await room.emit(None, "rtc:screen", _screen_event(forwarder, True))
        for forwarder in removed:
            if forwarder.source == "screen":
                await room.emit(None, "rtc:screen", _screen_event(forwarder, False))
        await room.emit(None, "rtc:tracks", {"tracks": room.tracks()})

    async def _peer_state_changed(self, peer: Peer, state: str) -> None:
        await peer.room.emit(
            peer.participant_id,
            "rtc:state",
            {"state": state, "connection_id": peer.connection_id},
        )
        if state == "failed" and not peer.closed:
            room = self._where.get(peer.participant_id)
            if room is not None and room.peers.get(peer.participant_id) is peer:
                removed = peer.stop_publishing()
                await self._published_changed(room, peer, [], removed)

    # --- moderation and control -------------------------------------------------------------

    async def pause(self, subscriber_id: str, track_id: str) -> None:
        """Stop sending `track_id` to this subscriber (hidden tile)."""
        self._subscription(subscriber_id, track_id).downtrack.set_paused(True)

    async def resume(self, subscriber_id: str, track_id: str) -> None:
        """Send it again, starting with a fresh keyframe."""
        self._subscription(subscriber_id, track_id).downtrack.set_paused(False)

    async def set_layout(
        self, subscriber_id: str, tiles: Mapping[str, Mapping[str, Any]]
    ) -> list[str]:
        """The subscriber's tiles: {track_id: {width, height, visible?}} in device pixels.

        A simulcast track gets the smallest layer that fills its tile; `visible: false`
        pauses like `pause`, `true` resumes. Tracks this subscriber does not receive (any
        more) are skipped; returns the track ids applied."""
        _, peer = self._lookup(subscriber_id)
        applied = []
        for track_id, tile in tiles.items():
            slot = peer.subscriptions.get(track_id)
            if slot is None:
                continue
            dt = slot.downtrack
            width, height = tile.get("width"), tile.get("height")
            if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
                dt.set_view(min(width, 16384), min(height, 16384))
            visible = tile.get("visible")
            if isinstance(visible, bool):
                dt.set_paused(not visible)
            applied.append(track_id)
        return applied

    async def set_max_layer(self, subscriber_id: str, track_id: str, layer: int | None) -> None:
        """Bandwidth budget of one subscription: no simulcast layer above index `layer`."""
        self._subscription(subscriber_id, track_id).downtrack.set_max_layer(layer)

    async def force_mute(self, participant_id: str, muted: bool = True) -> None:
        """Stop (or restart) forwarding this participant's audio to everyone."""
        room, peer = self._lookup(participant_id)
        for forwarder in peer.published.values():
            if forwarder.kind == "audio":
                forwarder.set_muted(muted)
        if muted and room.speaker.forget(participant_id):
            await room.emit(None, "rtc:speaker", {"participant_id": None, "level": None})
        await room.emit(None, "rtc:tracks", {"tracks": room.tracks()})

    async def snapshot(
        self,
        participant_id: str,
        source: str = "camera",
        *,
        requested_by: str | None = None,
        wait: float = 3.0,
    ) -> Snapshot:
        """Decode one frame of the participant's `source` video ("camera" or "screen")."""
        _, peer = self._lookup(participant_id)
        forwarder = next(
            (
                f
                for f in peer.published.values()
                if f.kind == "video" and f.source == source and not f.closed
            ),
            None,
        )
        if forwarder is None:
            raise RtcError(UNKNOWN_TRACK, f"{participant_id} publishes no {source} video")
        return await take_snapshot(forwarder, taken_by=requested_by, wait=wait)

    # --- reading ----------------------------------------------------------------------------

    def tracks(self, room_id: str) -> list[dict[str, Any]]:
        room = self._rooms.get(room_id)
        return room.tracks() if room is not None else []

    def stats(self, room_id: str) -> dict[str, Any]:
        room = self._rooms.get(room_id)
        if room is None:
            return {"room_id": room_id, "participants": {}}
        return room.stats()

    def totals(self) -> dict[str, int]:
        """Packet counters since the process started (see :class:`rtc.stats.SfuTotals`),
        plus the current numbers of media rooms, peers and published tracks."""
        now = SfuTotals()
        now.counts.update(self._retired.counts)
        peers = tracks = 0
        for room in self._rooms.values():
            for peer in room.peers.values():
                peers += 1
                for forwarder in peer.published.values():
                    tracks += 1
                    now.add_forwarder(forwarder)
                for slot in peer.subscriber.slots:
                    now.add_downtrack(slot.downtrack)
        return {**now.counts, "rooms": len(self._rooms), "peers": peers, "tracks": tracks}

    async def close_room(self, room_id: str) -> None:
        """Close every media connection of the room (its media moved to another node)."""
        room = self._rooms.get(room_id)
        for participant_id in list(room.peers) if room is not None else []:
            with contextlib.suppress(RtcError):
                await self.remove(participant_id)

    def room_ids(self) -> list[str]:
        """Rooms that have media connections in this process."""
        return list(self._rooms)

    def peer(self, participant_id: str) -> Peer:
        """The participant's peer (for tests and diagnostics)."""
        return self._lookup(participant_id)[1]

    # --- helpers ----------------------------------------------------------------------------

    def _lookup(self, participant_id: str) -> tuple[Room, Peer]:
        room = self._where.get(participant_id)
        if room is None:
            raise RtcError(UNKNOWN_PARTICIPANT, f"no media connection for {participant_id!r}")
        return room, room.peers[participant_id]

    def _subscription(self, subscriber_id: str, track_id: str) -> Any:
        _, peer = self._lookup(subscriber_id)
        slot = peer.subscriptions.get(track_id)
        if slot is None:
            raise RtcError(UNKNOWN_TRACK, f"{subscriber_id} does not receive {track_id!r}")
        return slot

    def _layers_changed(self, forwarder: Forwarder, rids: list[str]) -> None:
        """Dynacast: tell a simulcast publisher which layers somebody receives."""
        room = self._where.get(forwarder.publisher_id)
        if room is None or forwarder.closed:
            return
        payload = {"track_id": forwarder.track_id, "mid": forwarder.mid, "active": rids}
        task = asyncio.get_running_loop().create_task(
            room.emit(forwarder.publisher_id, "rtc:layers", payload)
        )
        self._pending_emits.add(task)
        task.add_done_callback(self._pending_emits.discard)

    async def _emit(
        self, room_id: str, target: str | None, event: str, payload: dict[str, Any]
    ) -> None:
        try:
            result = self._on_event(room_id, target, event, payload)
            if result is not None:
                await result
        except Exception:
            logger.exception("on_event failed for %s", event)


def _screen_event(forwarder: Forwarder, active: bool) -> dict[str, Any]:
    return {
        "participant_id": forwarder.publisher_id,
        "track_id": forwarder.track_id,
        "active": active,
    }
