"""Signalling over the room's Socket.IO connection: `rtc:*` events ↔ the process's `Sfu`.

One :class:`rtc.sfu.Sfu` per process, built from core settings and started/stopped with the
app. Client events are translated into Sfu calls (an :class:`RtcError` becomes an error ack
with its code); the Sfu's events go out through the rooms live layer; rooms hooks (leave,
removal, forced mute) reach the media. See docs/rtc.md, "Signalling over Socket.IO".

A participant's media lives on the node holding its Socket.IO connection (the node whose Sfu
it joined). Rooms hooks run on that node even when the act (mute, removal, end of the room)
was handled on another: the live layer forwards it over the node bus (`rooms.live.NodeBus`).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from core.api import Api
from core.auth import principal as request_principal
from core.context import DB, SETTINGS
from core.errors import Forbidden
from rooms import access, attachments
from rooms.live import Conn, EventError, Live, Payload
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


def rtc_config(settings: Any) -> RtcConfig:
    """The SFU configuration from core settings (CONSILIUM_STUN_URLS, …)."""
    return RtcConfig(
        stun_urls=tuple(settings.stun_urls),
        turn_urls=tuple(settings.turn_urls),
        turn_secret=settings.turn_secret,
        turn_ttl=settings.turn_ttl_seconds,
        allowed_addresses=tuple(settings.rtc_allowed_addresses),
        allowed_networks=tuple(settings.rtc_allowed_networks),
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

    @property
    def sfu(self) -> Sfu:
        if self._sfu is None:
            raise EventError("Media is not available on this server", code="rtc_unavailable")
        return self._sfu

    async def start(self) -> None:
        for warning in turn_warnings(self.config):
            log.warning("TURN: %s (docs/coturn.md)", warning)
        self._sfu = Sfu(self.config, self.on_event)

    async def stop(self) -> None:
        sfu, self._sfu = self._sfu, None
        if sfu is not None:
            await sfu.close()

    # --- SFU -> clients -------------------------------------------------------------------

    async def on_event(
        self, room_id: str, target: str | None, event: str, payload: dict[str, Any]
    ) -> None:
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

    # --- rooms hooks ----------------------------------------------------------------------

    async def on_left(self, live: Live, p: Participant, reason: str) -> None:
        self.forced.discard(p.id)
        room = self.published.get(p.room_id)
        if room is not None:
            room.pop(p.id, None)
            if not room:
                del self.published[p.room_id]
        if self._sfu is not None:
            with contextlib.suppress(RtcError):
                await self._sfu.remove(p.id)

    async def on_muted(self, live: Live, p: Participant) -> None:
        self.forced.add(p.id)
        if self._sfu is not None:
            with contextlib.suppress(RtcError):
                await self._sfu.force_mute(p.id, True)

    async def on_updated(self, live: Live, p: Participant) -> None:
        # rooms refuses `audio: true` while muted_by_host: an accepted unmute lifts the mute
        if p.id in self.forced and not p.muted_by_host and p.media.audio:
            self.forced.discard(p.id)
            if self._sfu is not None:
                with contextlib.suppress(RtcError):
                    await self._sfu.force_mute(p.id, False)


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

    @live.event("rtc:join", Empty)
    async def join(live: Live, conn: Conn, body: Empty) -> dict[str, Any]:
        room_id, pid = _ids(conn)
        p = await live.state.get(room_id, pid)
        if p is None:
            raise EventError("You are no longer in this room", code="not_in_room")
        if p.muted_by_host:
            sig.forced.add(pid)
        with _refused():
            try:
                joined = await sig.sfu.join(room_id, pid, p.name)
            except RtcError as e:
                if e.code != ALREADY_JOINED:
                    raise
                # a reconnect (new socket, same participant): start over with a fresh PC
                await sig.sfu.remove(pid)
                joined = await sig.sfu.join(room_id, pid, p.name)
        return {"participant_id": pid, **joined}

    @live.event("rtc:offer", OfferIn, max_bytes=MAX_SDP_EVENT_BYTES)
    async def offer(live: Live, conn: Conn, body: OfferIn) -> dict[str, Any]:
        _, pid = _ids(conn)
        with _refused():
            answer = await sig.sfu.handle_offer(pid, body.sdp, body.type, sources=body.sources)
        return dict(answer)

    @live.event("rtc:pull", Empty)
    async def pull(live: Live, conn: Conn, body: Empty) -> dict[str, Any]:
        # The client is ready for the server's offer (after rtc:renegotiate, or an ack that
        # said `renegotiate`): it answers it with rtc:answer before any offer of its own.
        _, pid = _ids(conn)
        with _refused():
            return {"offer": await sig.sfu.pull_offer(pid)}

    @live.event("rtc:answer", AnswerIn, max_bytes=MAX_SDP_EVENT_BYTES)
    async def answer(live: Live, conn: Conn, body: AnswerIn) -> dict[str, Any]:
        _, pid = _ids(conn)
        with _refused():
            return await sig.sfu.handle_answer(pid, body.sdp, body.type)

    @live.event("rtc:candidate", CandidateIn, max_bytes=4_000)
    async def candidate(live: Live, conn: Conn, body: CandidateIn) -> dict[str, Any]:
        _, pid = _ids(conn)
        with _refused():
            accepted = await sig.sfu.add_candidate(pid, body.model_dump(exclude_none=True))
        return {"accepted": accepted}

    @live.event("rtc:sources", SourcesIn)
    async def sources(live: Live, conn: Conn, body: SourcesIn) -> dict[str, Any]:
        _, pid = _ids(conn)
        with _refused():
            await sig.sfu.set_sources(pid, body.sources)
        return {}

    @live.event("rtc:pause", TrackIn)
    async def pause(live: Live, conn: Conn, body: TrackIn) -> dict[str, Any]:
        _, pid = _ids(conn)
        with _refused():
            await sig.sfu.pause(pid, body.track_id)
        return {}

    @live.event("rtc:resume", TrackIn)
    async def resume(live: Live, conn: Conn, body: TrackIn) -> dict[str, Any]:
        _, pid = _ids(conn)
        with _refused():
            await sig.sfu.resume(pid, body.track_id)
        return {}

    @live.event("rtc:resync", Empty)
    async def resync(live: Live, conn: Conn, body: Empty) -> dict[str, Any]:
        # A new socket of the same participant (reconnect within the grace period): the
        # media may have lived on; `renegotiate` says whether an offer waits to be pulled.
        _, pid = _ids(conn)
        with _refused():
            return await sig.sfu.resync(pid)

    @live.event("rtc:leave", Empty)
    async def leave(live: Live, conn: Conn, body: Empty) -> dict[str, Any]:
        _, pid = _ids(conn)
        with _refused():
            await sig.sfu.remove(pid)
        return {}

    @live.event("rtc:snapshot", SnapshotIn)
    async def snapshot(live: Live, conn: Conn, body: SnapshotIn) -> dict[str, Any]:
        room_id, pid = _ids(conn)
        if await live.state.get(room_id, body.participant_id) is None:
            raise EventError("No such participant in this room", code="participant_not_found")
        with _refused():
            shot = await sig.sfu.snapshot(body.participant_id, body.source, requested_by=pid)
        stamp = shot.taken_at.strftime("%Y%m%d-%H%M%S")
        filename = f"capture-{body.source}-{stamp}.jpg"
        filed = await _file_snapshot(
            app, conn, filename, shot.jpeg, into_dossier=body.file_into_dossier
        )
        return {
            "snapshot": {
                "participant_id": shot.participant_id,
                "track_id": shot.track_id,
                "source": shot.source,
                "width": shot.width,
                "height": shot.height,
                "bytes": len(shot.jpeg),
                "taken_by": shot.taken_by,
                "taken_at": shot.taken_at.isoformat(),
                "filename": filename,
            },
            **filed,
        }

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
        stats = sig.sfu.stats(str(room_id)) if sig._sfu is not None else {"participants": {}}
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
