"""Signalling over the room's Socket.IO connection: `rtc:*` events ↔ the process's `Sfu`.

One :class:`rtc.sfu.Sfu` per process, built from core settings and started/stopped with the
app. Client events are translated into Sfu calls (an :class:`RtcError` becomes an error ack
with its code); the Sfu's events go out through the rooms live layer; rooms hooks (leave,
removal, forced mute) reach the media. See docs/rtc.md, "Signalling over Socket.IO".

A room's media lives on one node, its media node (`rooms.placement`: placed by the first
`rtc:join`, placed again when that node is lost, then the room is told `rtc:moved`). Every
`rtc:*` event is handled on the participant's socket node and run on the media node
(:meth:`Signalling.call`: here, or relayed over the node bus with a correlation id and a
timeout); the Sfu's pushes (`rtc:renegotiate`, `rtc:stats`, ...) reach the participant's
socket through Socket.IO's Redis fan-out. Rooms hooks (leave, removal, forced mute) run on
the socket node and are relayed the same way. Without Redis everything runs here.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from core.api import Api
from core.auth import principal as request_principal
from core.context import DB, SETTINGS
from core.errors import Forbidden
from rooms import access, attachments
from rooms.live import Conn, EventError, Live, Payload
from rooms.placement import NodeUnreachable, RemoteError
from rooms.presence import Participant
from rtc.config import RtcConfig
from rtc.errors import ALREADY_JOINED, RtcError
from rtc.ice import turn_warnings
from rtc.sfu import Sfu

log = logging.getLogger(__name__)

MAX_SDP_BYTES = 64 * 1024  # the SFU's own limit (rtc.sdp.MAX_SDP_LENGTH)
#: an SDP's JSON is larger than the SDP (each CRLF becomes four characters)
MAX_SDP_EVENT_BYTES = 2 * MAX_SDP_BYTES
#: which presence media flag each published source drives
MEDIA_FLAG = {"camera": "video", "audio": "audio", "screen": "screen"}
Source = Literal["camera", "screen", "audio"]
#: error code: the room's media is placed on another node (the join asks again)
MEDIA_MOVED = "media_moved"


def rtc_config(settings: Any) -> RtcConfig:
    """The SFU configuration from core settings (CONSILIUM_STUN_URLS, …)."""
    return RtcConfig(
        stun_urls=tuple(settings.stun_urls),
        turn_urls=tuple(settings.turn_urls),
        turn_secret=settings.turn_secret,
        turn_ttl=settings.turn_ttl_seconds,
        allowed_addresses=tuple(settings.rtc_allowed_addresses),
        allowed_networks=tuple(settings.rtc_allowed_networks),
        udp_ports=settings.udp_ports,
    )


class Signalling:
    """The process's Sfu and its bridge to the live layer."""

    def __init__(self, app: web.Application, live: Live) -> None:
        self.app = app
        self.live = live
        self.config = rtc_config(app[SETTINGS])
        self._sfu: Sfu | None = None
        #: room -> participant -> sources published (to update presence on changes only)
        self.published: dict[str, dict[str, set[str]]] = {}
        #: participants a host muted: their audio stays muted until they unmute themselves
        self.forced: set[str] = set()
        #: participant -> the media node its rtc:join reached (on the participant's socket node)
        self.media_of: dict[str, str] = {}
        self._forwarded = (time.monotonic(), -1.0)
        #: rooms whose media is being closed here because they run on another node now
        self._evicting: set[str] = set()

    @property
    def sfu(self) -> Sfu:
        if self._sfu is None:
            raise EventError("Media is not available on this server", code="rtc_unavailable")
        return self._sfu

    async def start(self) -> None:
        for warning in turn_warnings(self.config):
            log.warning("TURN: %s (docs/coturn.md)", warning)
        self._sfu = Sfu(self.config, self.on_event)
        placement = self.live.placement
        if placement is not None:
            placement.load = self.load
            placement.running = self.running
            placement.on_moved = self.moved
            placement.evict = self.evict

    async def stop(self) -> None:
        sfu, self._sfu = self._sfu, None
        if sfu is not None:
            await sfu.close()

    # --- SFU -> clients -------------------------------------------------------------------

    async def on_event(
        self, room_id: str, target: str | None, event: str, payload: dict[str, Any]
    ) -> None:
        if room_id in self._evicting:
            return  # the room's media runs elsewhere now: its clients listen to that node
        if target is not None:
            await self.live.emit_to_participant(target, event, payload)
        else:
            await self.live.emit_to_room(room_id, event, payload)
        if event == "rtc:tracks" and target is None:
            await self._sync_presence(room_id, payload.get("tracks", []))

    async def _sync_presence(self, room_id: str, tracks: list[dict[str, Any]]) -> None:
        """Reflect published camera/mic/screen in presence (`participant:updated`)."""
        now: dict[str, set[str]] = {}
        for t in tracks:
            now.setdefault(str(t["participant_id"]), set()).add(str(t["source"]))
        before = self.published.get(room_id, {})
        if now:
            self.published[room_id] = now
        else:
            self.published.pop(room_id, None)
        for pid in set(before) | set(now):
            old, new = before.get(pid, set()), now.get(pid, set())
            if old == new:
                continue
            if "audio" in new - old and pid in self.forced and self._sfu is not None:
                # a forced mute outlives a republished microphone
                with contextlib.suppress(RtcError):
                    await self._sfu.force_mute(pid, True)
            p = await self.live.state.get(room_id, pid)
            if p is None:
                continue
            media = {
                MEDIA_FLAG[s]: s in new
                for s in MEDIA_FLAG
                if (s in old) != (s in new) and not (s == "audio" and s in new and p.muted_by_host)
            }
            if not media:
                continue
            updated = await self.live.state.update(room_id, pid, media=media)
            if updated is not None:
                await self.live.emit_to_room(
                    room_id, "participant:updated", {"participant": updated.public()}
                )

    # --- where the room's media runs -----------------------------------------------------

    def load(self) -> dict[str, float]:
        """This node's media load, announced with its heartbeat (rooms/placement.py)."""
        if self._sfu is None:
            return {}
        totals = self._sfu.totals()
        now, forwarded = time.monotonic(), float(totals["forwarded_packets"])
        then, before = self._forwarded
        self._forwarded = (now, forwarded)
        pps = max(0.0, forwarded - before) / (now - then) if now > then and before >= 0 else 0.0
        return {
            "tracks": float(totals["tracks"]),
            "pps": round(pps, 1),
            "rooms": float(totals["rooms"]),
        }

    def running(self) -> set[str]:
        return set(self._sfu.room_ids()) if self._sfu is not None else set()

    async def place(self, room_id: str) -> str:
        """The room's media node, placed now if it has none (or a dead one)."""
        placement = self.live.placement
        if placement is None:
            return self.live.node
        try:
            owner, previous = await placement.place(room_id)
        except (OSError, RedisError):
            raise EventError(
                "The media server cannot be chosen for a moment; try again",
                code="media_unreachable",
            ) from None
        if previous:  # this call took the room from a lost node: its participants restart
            await self.moved(room_id, owner, previous)
        return owner

    async def moved(self, room_id: str, new: str, old: str) -> None:
        """Tell the room its media runs on another node now: every client starts it again."""
        log.info("room %s: media moved from %s to %s", room_id, old, new)
        await self.live.emit_to_room(room_id, "rtc:moved", {"room_id": room_id, "node": new})

    async def call(
        self,
        room_id: str,
        pid: str,
        op: str,
        args: dict[str, Any],
        *,
        node: str | None = None,
        wait: float = 10.0,
    ) -> dict[str, Any]:
        """Run a media operation on the room's media node: here, or relayed over Redis."""
        request = {**args, "op": op, "room": room_id, "pid": pid}
        placement = self.live.placement
        if placement is not None and node is None:
            node = self.media_of.get(pid) or await placement.owner(room_id)
        if placement is None or node is None or node == self.live.node:
            return await self.local(request)
        try:
            return await self.live.rpc.call(node, "rtc", request, wait=wait)
        except RemoteError as e:
            raise EventError(e.message, code=e.code) from None
        except NodeUnreachable:
            raise EventError(
                "The room's media server is unreachable; the media starts again",
                code="media_unreachable",
            ) from None

    async def local(self, r: dict[str, Any]) -> dict[str, Any]:
        """One media operation on this node's Sfu (``r``: op, room, pid and its arguments)."""
        op, room_id, pid = str(r["op"]), str(r["room"]), str(r["pid"])
        with _refused():
            if op == "join":
                return await self._join(room_id, pid, str(r["name"]), bool(r["muted_by_host"]))
            if op == "offer":
                return dict(
                    await self.sfu.handle_offer(pid, r["sdp"], r["type"], sources=r["sources"])
                )
            if op == "pull":
                return {"offer": await self.sfu.pull_offer(pid)}
            if op == "answer":
                return dict(await self.sfu.handle_answer(pid, r["sdp"], r["type"]))
            if op == "candidate":
                return {"accepted": await self.sfu.add_candidate(pid, r["candidate"])}
            if op == "sources":
                await self.sfu.set_sources(pid, r["sources"])
                return {}
            if op == "pause":
                await self.sfu.pause(pid, r["track_id"])
                return {}
            if op == "resume":
                await self.sfu.resume(pid, r["track_id"])
                return {}
            if op == "resync":
                return dict(await self.sfu.resync(pid))
            if op == "leave":
                await self.sfu.remove(pid)
                return {}
            if op == "snapshot":
                shot = await self.sfu.snapshot(r["participant_id"], r["source"], requested_by=pid)
                return {
                    "participant_id": shot.participant_id,
                    "track_id": shot.track_id,
                    "source": shot.source,
                    "width": shot.width,
                    "height": shot.height,
                    "taken_by": shot.taken_by,
                    "taken_at": shot.taken_at.isoformat(),
                    "jpeg": base64.b64encode(shot.jpeg).decode(),
                }
            if op == "stats":
                if self._sfu is None:
                    return {"participants": {}}
                return dict(self._sfu.stats(room_id))
            if op == "left":
                await self._left(room_id, pid)
                return {}
            if op == "muted":
                await self._muted(pid)
                return {}
            if op == "updated":
                await self._updated(pid, bool(r["muted_by_host"]), bool(r["audio"]))
                return {}
        raise EventError(f"Unknown media operation {op!r}", code="unknown_request")

    async def _join(self, room_id: str, pid: str, name: str, muted_by_host: bool) -> dict[str, Any]:
        placement = self.live.placement
        if placement is not None:
            placement.opening.add(room_id)
        try:
            if placement is not None:
                owner = await placement.confirm(room_id)
                if owner != self.live.node:
                    raise EventError("The room's media runs on another node", code=MEDIA_MOVED)
            if muted_by_host:
                self.forced.add(pid)
            try:
                return await self.sfu.join(room_id, pid, name)
            except RtcError as e:
                if e.code != ALREADY_JOINED:
                    raise
                # a reconnect (new socket, same participant): start over with a fresh PC
                await self.sfu.remove(pid)
                return await self.sfu.join(room_id, pid, name)
        finally:
            if placement is not None:
                placement.opening.discard(room_id)

    async def evict(self, room_id: str) -> None:
        """The room was placed on another node (this one was taken for lost): close its
        media here, silently (presence and tracks are the new media node's to tell)."""
        if self._sfu is None:
            return
        self._evicting.add(room_id)
        self.published.pop(room_id, None)
        try:
            await self._sfu.close_room(room_id)
        finally:
            self._evicting.discard(room_id)

    async def room_stats(self, room_id: str) -> dict[str, Any]:
        placement = self.live.placement
        node = await placement.owner(room_id) if placement is not None else None
        try:
            return await self.call(room_id, "", "stats", {}, node=node)
        except EventError:
            return {"participants": {}}

    # --- rooms hooks (on the participant's socket node) -> the room's media node -------------

    async def _hook(self, p: Participant, op: str, args: dict[str, Any]) -> None:
        try:
            await self.call(p.room_id, p.id, op, args)
        except EventError as e:
            log.info("media %s of %s not done: %s", op, p.id, e.code)

    async def on_left(self, live: Live, p: Participant, reason: str) -> None:
        await self._hook(p, "left", {})
        self.media_of.pop(p.id, None)

    async def on_muted(self, live: Live, p: Participant) -> None:
        await self._hook(p, "muted", {})

    async def on_updated(self, live: Live, p: Participant) -> None:
        await self._hook(p, "updated", {"muted_by_host": p.muted_by_host, "audio": p.media.audio})

    # --- on the media node --------------------------------------------------------------------

    async def _left(self, room_id: str, pid: str) -> None:
        self.forced.discard(pid)
        room = self.published.get(room_id)
        if room is not None:
            room.pop(pid, None)
            if not room:
                del self.published[room_id]
        if self._sfu is not None:
            with contextlib.suppress(RtcError):
                await self._sfu.remove(pid)

    async def _muted(self, pid: str) -> None:
        self.forced.add(pid)
        if self._sfu is not None:
            with contextlib.suppress(RtcError):
                await self._sfu.force_mute(pid, True)

    async def _updated(self, pid: str, muted_by_host: bool, audio: bool) -> None:
        # rooms refuses `audio: true` while muted_by_host: an accepted unmute lifts the mute
        if pid in self.forced and not muted_by_host and audio:
            self.forced.discard(pid)
            if self._sfu is not None:
                with contextlib.suppress(RtcError):
                    await self._sfu.force_mute(pid, False)


# --- payloads -------------------------------------------------------------------------------


class Empty(Payload):
    pass


class OfferIn(Payload):
    sdp: str = Field(max_length=MAX_SDP_BYTES)
    type: Literal["offer"] = "offer"
    sources: dict[str, Source] | None = Field(None, max_length=16)


class AnswerIn(Payload):
    sdp: str = Field(max_length=MAX_SDP_BYTES)
    type: Literal["answer"] = "answer"


class CandidateIn(Payload):
    candidate: str | None = Field(None, max_length=1000)
    sdpMid: str | None = Field(None, max_length=64)  # browser field names
    sdpMLineIndex: int | None = Field(None, ge=0, le=1000)
    usernameFragment: str | None = Field(None, max_length=256)


class SourcesIn(Payload):
    sources: dict[str, Source] = Field(max_length=16)


class TrackIn(Payload):
    track_id: str = Field(min_length=1, max_length=128)


class TileIn(Payload):
    track_id: str = Field(min_length=1, max_length=128)
    width: int = Field(ge=0, le=16384)
    height: int = Field(ge=0, le=16384)
    visible: bool | None = None


class LayoutIn(Payload):
    tiles: list[TileIn] = Field(max_length=64)


class SnapshotIn(Payload):
    participant_id: str = Field(min_length=1, max_length=128)
    source: Literal["camera", "screen"] = "camera"
    file_into_dossier: bool = True


class StatsOut(BaseModel):
    room_id: str
    participants: dict[str, dict[str, Any]]


SIGNALLING: web.AppKey[Signalling] = web.AppKey("rtc_signalling")


def _ids(conn: Conn) -> tuple[str, str]:
    assert conn.room_id is not None and conn.participant_id is not None
    return str(conn.room_id), conn.participant_id


@contextlib.contextmanager
def _refused() -> Iterator[None]:
    """An SFU refusal becomes the event's error acknowledgement, with its code."""
    try:
        yield
    except RtcError as e:
        raise EventError(e.message[:300], code=e.code) from e


def setup(app: web.Application) -> Signalling:
    live = Live.of(app)
    sig = Signalling(app, live)
    app[SIGNALLING] = sig

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        await sig.start()
        try:
            yield
        finally:
            await sig.stop()

    app.cleanup_ctx.append(lifespan)
    live.hooks.on_left(sig.on_left)
    live.hooks.on_muted(sig.on_muted)
    live.hooks.on_updated(sig.on_updated)
    live.rpc.handle("rtc")(sig.local)

    @live.event("rtc:join", Empty)
    async def join(live: Live, conn: Conn, body: Empty) -> dict[str, Any]:
        room_id, pid = _ids(conn)
        p = await live.state.get(room_id, pid)
        if p is None:
            raise EventError("You are no longer in this room", code="not_in_room")
        args = {"name": p.name, "muted_by_host": p.muted_by_host}
        for attempt in range(3):
            owner = await sig.place(room_id)
            sig.media_of[pid] = owner
            try:
                joined = await sig.call(room_id, pid, "join", args, node=owner, wait=30)
            except EventError as e:
                if e.code == MEDIA_MOVED and attempt < 2:
                    continue  # placed elsewhere meanwhile: ask again
                raise
            return {"participant_id": pid, "media_node": owner, **joined}
        raise AssertionError("unreachable")  # pragma: no cover

    @live.event("rtc:offer", OfferIn, max_bytes=MAX_SDP_EVENT_BYTES)
    async def offer(live: Live, conn: Conn, body: OfferIn) -> dict[str, Any]:
        room_id, pid = _ids(conn)
        args = {"sdp": body.sdp, "type": body.type, "sources": body.sources}
        return await sig.call(room_id, pid, "offer", args, wait=30)

    @live.event("rtc:pull", Empty)
    async def pull(live: Live, conn: Conn, body: Empty) -> dict[str, Any]:
        # The client is ready for the server's offer (after rtc:renegotiate, or an ack that
        # said `renegotiate`): it answers it with rtc:answer before any offer of its own.
        room_id, pid = _ids(conn)
        return await sig.call(room_id, pid, "pull", {}, wait=30)

    @live.event("rtc:answer", AnswerIn, max_bytes=MAX_SDP_EVENT_BYTES)
    async def answer(live: Live, conn: Conn, body: AnswerIn) -> dict[str, Any]:
        room_id, pid = _ids(conn)
        return await sig.call(room_id, pid, "answer", {"sdp": body.sdp, "type": body.type}, wait=30)

    @live.event("rtc:candidate", CandidateIn, max_bytes=4_000)
    async def candidate(live: Live, conn: Conn, body: CandidateIn) -> dict[str, Any]:
        room_id, pid = _ids(conn)
        args = {"candidate": body.model_dump(exclude_none=True)}
        return await sig.call(room_id, pid, "candidate", args)

    @live.event("rtc:sources", SourcesIn)
    async def sources(live: Live, conn: Conn, body: SourcesIn) -> dict[str, Any]:
        room_id, pid = _ids(conn)
        return await sig.call(room_id, pid, "sources", {"sources": body.sources})

    @live.event("rtc:pause", TrackIn)
    async def pause(live: Live, conn: Conn, body: TrackIn) -> dict[str, Any]:
        room_id, pid = _ids(conn)
        return await sig.call(room_id, pid, "pause", {"track_id": body.track_id})

    @live.event("rtc:layout", LayoutIn)
    async def layout(live: Live, conn: Conn, body: LayoutIn) -> dict[str, Any]:
        """Rendered size (device pixels) and visibility of each tile: a simulcast track gets
        the layer that fits; `visible: false` pauses it as `rtc:pause` does."""
        _, pid = _ids(conn)
        tiles = {
            t.track_id: {"width": t.width, "height": t.height, "visible": t.visible}
            for t in body.tiles
        }
        with _refused():
            applied = await sig.sfu.set_layout(pid, tiles)
        return {"applied": applied}

    @live.event("rtc:resume", TrackIn)
    async def resume(live: Live, conn: Conn, body: TrackIn) -> dict[str, Any]:
        room_id, pid = _ids(conn)
        return await sig.call(room_id, pid, "resume", {"track_id": body.track_id})

    @live.event("rtc:resync", Empty)
    async def resync(live: Live, conn: Conn, body: Empty) -> dict[str, Any]:
        # A new socket of the same participant (reconnect within the grace period): the
        # media may have lived on; `renegotiate` says whether an offer waits to be pulled.
        room_id, pid = _ids(conn)
        return await sig.call(room_id, pid, "resync", {})

    @live.event("rtc:leave", Empty)
    async def leave(live: Live, conn: Conn, body: Empty) -> dict[str, Any]:
        room_id, pid = _ids(conn)
        return await sig.call(room_id, pid, "leave", {})

    @live.event("rtc:snapshot", SnapshotIn)
    async def snapshot(live: Live, conn: Conn, body: SnapshotIn) -> dict[str, Any]:
        room_id, pid = _ids(conn)
        if await live.state.get(room_id, body.participant_id) is None:
            raise EventError("No such participant in this room", code="participant_not_found")
        args = {"participant_id": body.participant_id, "source": body.source}
        shot = await sig.call(room_id, pid, "snapshot", args, wait=30)
        jpeg = base64.b64decode(shot.pop("jpeg"))
        stamp = datetime.fromisoformat(shot["taken_at"]).strftime("%Y%m%d-%H%M%S")
        filename = f"capture-{body.source}-{stamp}.jpg"
        filed = await _file_snapshot(app, conn, filename, jpeg, into_dossier=body.file_into_dossier)
        return {"snapshot": {**shot, "bytes": len(jpeg), "filename": filename}, **filed}

    api = Api.of(app)

    @api.get(
        "/rooms/{room_id}/stats",
        response=StatsOut,
        auth="principal",
        tags=["rtc"],
        errors=[403, 404],
    )
    async def room_stats(request: web.Request) -> StatsOut:
        """Media quality per participant and track (packets, bytes, loss, jitter, RTT, bitrate),
        and the server's estimate of each participant's link (`bandwidth`).

        Reserved to the room's current participants.
        """
        room_id = uuid.UUID(request.match_info["room_id"])
        who = request_principal(request)
        async with app[DB].read() as session:
            await access.room_for(session, who, room_id)
        inside = await live.state.participants(str(room_id), live.grace)
        if not any(p.subject_id == str(who.subject_id) for p in inside):
            raise Forbidden(
                "Only the room's participants see its media statistics", code="not_in_room"
            )
        stats = await sig.room_stats(str(room_id))
        names = {p.id: p.name for p in inside}
        participants = {
            pid: {"name": names.get(pid, ""), **entry}
            for pid, entry in stats.get("participants", {}).items()
        }
        return StatsOut(room_id=str(room_id), participants=participants)

    return sig


async def _file_snapshot(
    app: web.Application, conn: Conn, filename: str, jpeg: bytes, *, into_dossier: bool
) -> dict[str, Any]:
    """Keep the JPEG as a room capture (and a dossier document when allowed and wanted)."""
    assert conn.room_id is not None
    if into_dossier:
        filed = await attachments.file_capture(
            app, conn.principal, conn.room_id, filename=filename, content=jpeg, source="snapshot"
        )
        return dict(filed)
    a = await attachments.add_attachment(
        app, conn.principal, conn.room_id, filename=filename, data=jpeg, source="snapshot"
    )
    return {"attachment_id": str(a.id), "dossier_document_id": None}
