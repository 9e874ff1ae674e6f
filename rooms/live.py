"""The live connection every participant holds while in a room: Socket.IO on the aiohttp app.

One :class:`Live` per application (``Live.of(app)``) owns the ``socketio.AsyncServer``, the
live state (:mod:`rooms.presence`), the registry of client events and the hooks other
packages (``chat``, ``rtc``) plug into. See docs/rooms.md for the event catalogue.

Every client event goes through :meth:`Live._dispatch`: unknown event, oversized payload,
invalid payload, not in a room, not a host, flooding, domain refusal or internal error all
come back as an error acknowledgement ``{"ok": false, "error": {"code", "message"}}``;
success is ``{"ok": true, ...}``. A handler's exception never closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any, Literal

import socketio
from aiohttp import web
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError
from redis.exceptions import RedisError

from core.auth import forwarded_ip
from core.context import DB, REDIS, SESSIONS, SETTINGS, redis_options
from core.errors import Problem, Unavailable
from core.principal import Principal, for_session
from core.sessions import COOKIE
from rooms import access
from rooms.config import RoomSettings
from rooms.nodes import LIVE_RETRY_AFTER, NodeWatch, ResilientRedisManager
from rooms.packets import GuardedServer
from rooms.placement import NodeRpc, Placement
from rooms.presence import (
    LiveState,
    MemoryLiveState,
    Participant,
    RedisLiveState,
)

log = logging.getLogger(__name__)

LIVE: web.AppKey[Live] = web.AppKey("live")

LeaveReason = Literal["left", "timeout", "removed", "ended"]
JoinHook = Callable[["Live", Participant], Awaitable[None]]
LeaveHook = Callable[["Live", Participant, str], Awaitable[None]]
ParticipantHook = Callable[["Live", Participant], Awaitable[None]]
JoinExtra = Callable[["Live", "Conn"], Awaitable[dict[str, Any]]]
EventHandler = Callable[["Live", "Conn", Any], Awaitable[dict[str, Any] | None]]


class EventError(Problem):
    """Refuse a client event with an error acknowledgement of this code."""

    status, code, title = 400, "bad_request", "Refused"


class Payload(BaseModel):
    """Base of event payload models: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class Conn:
    """One Socket.IO connection on this node."""

    sid: str
    principal: Principal
    session_id: str
    token: str = field(default="", repr=False)  # the cookie token: to re-check the session
    room_id: uuid.UUID | None = None
    participant_id: str | None = None
    role: str | None = None
    lobby_room_id: uuid.UUID | None = None
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def allow(self, key: str, rate: float, burst: int) -> bool:
        """Token bucket per connection (a connection lives on one node: no shared state)."""
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(burst), now))
        tokens = min(float(burst), tokens + (now - last) * rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1, now)
        return True


@dataclass
class EventSpec:
    name: str
    handler: EventHandler
    model: type[BaseModel] | None
    in_room: bool
    host: bool
    max_bytes: int | None


HookKind = Literal["joined", "left", "updated", "muted"]


class Hooks:
    """Async callbacks other packages register (the SFU in ``rtc``, the chat). A participant's
    hooks run on the node holding its connection (:meth:`Live.run_hooks`; ``rtc`` relays them
    to the room's media node, rooms/placement.py); a failing hook is logged and never undoes
    the act."""

    def __init__(self) -> None:
        self.joined: list[JoinHook] = []
        self.left: list[LeaveHook] = []
        self.updated: list[ParticipantHook] = []
        self.muted: list[ParticipantHook] = []
        self.join_extras: list[JoinExtra] = []

    def on_joined(self, fn: JoinHook) -> JoinHook:
        self.joined.append(fn)
        return fn

    def on_left(self, fn: LeaveHook) -> LeaveHook:
        self.left.append(fn)
        return fn

    def on_updated(self, fn: ParticipantHook) -> ParticipantHook:
        self.updated.append(fn)
        return fn

    def on_muted(self, fn: ParticipantHook) -> ParticipantHook:
        self.muted.append(fn)
        return fn

    def on_join_ack(self, fn: JoinExtra) -> JoinExtra:
        """Add fields to the ``room:join`` acknowledgement (the chat adds its history)."""
        self.join_extras.append(fn)
        return fn

    def of_kind(self, kind: HookKind) -> list[Any]:
        hooks: dict[str, list[Any]] = {
            "joined": self.joined,
            "left": self.left,
            "updated": self.updated,
            "muted": self.muted,
        }
        return hooks[kind]

    async def call(self, hooks: list[Any], *args: Any) -> None:
        for fn in hooks:
            try:
                await fn(*args)
            except Exception:
                log.exception("live hook %s failed", getattr(fn, "__qualname__", fn))


class NodeBus:
    """Messages from one node of the installation to another, over Redis pub/sub: one channel
    per node, and one every node listens to. Used so that what a host does on one node (mute,
    removal, end of the room) reaches the media of a participant connected to another, and so
    that an ended session's connections close on every node at once."""

    def __init__(self, redis: Any, prefix: str, node: str) -> None:
        self.redis = redis
        self.prefix = prefix + "live:node:"
        self.everyone = prefix + "live:nodes"
        self.node = node
        #: set while this node's channels are subscribed (replies to its requests can arrive)
        self.subscribed = asyncio.Event()

    async def send(self, node: str, message: dict[str, Any]) -> int:
        """Publish to ``node``; the number of nodes that received it (0: that node is gone)."""
        return int(await self.redis.publish(self.prefix + node, json.dumps(message)))

    async def broadcast(self, message: dict[str, Any]) -> int:
        """Publish to every other node (this one skips its own broadcasts)."""
        message = {**message, "from": self.node}
        return int(await self.redis.publish(self.everyone, json.dumps(message)))

    async def listen(self, handler: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        """Run ``handler`` for each message to this node, until cancelled; a lost Redis
        connection is opened again (messages sent meanwhile are lost: pub/sub keeps none)."""
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.prefix + self.node, self.everyone)
                self.subscribed.set()
                while True:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is None or msg.get("type") != "message":
                        continue
                    try:
                        message = json.loads(msg["data"])
                        if message.get("from") != self.node:
                            await handler(message)
                    except Exception:
                        log.exception("node message failed")
            except (OSError, RedisError) as e:
                self.subscribed.clear()
                log.warning("node bus: %s; subscribing again", e)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()


def error_ack(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message, **extra}}


def channel_room(room_id: uuid.UUID | str) -> str:
    return f"room:{room_id}"


def channel_hosts(room_id: uuid.UUID | str) -> str:
    return f"hosts:{room_id}"


def channel_participant(participant_id: str) -> str:
    return f"p:{participant_id}"


def channel_user(subject_id: uuid.UUID | str) -> str:
    return f"user:{subject_id}"


def channel_guest(guest_id: uuid.UUID | str) -> str:
    return f"guest:{guest_id}"


class Live:
    def __init__(self, app: web.Application, config: RoomSettings | None = None) -> None:
        settings = app[SETTINGS]
        self.app = app
        self.config = config or RoomSettings()
        self.grace = self.config.grace_seconds
        self.session_check = self.config.session_check_seconds
        self.node = settings.node_id
        #: several workers share the HTTP port (docs/deployment.md): no long-polling
        self.websocket_only = settings.worker_count > 1
        manager = (
            ResilientRedisManager(
                settings.redis_url,
                channel=settings.redis_prefix + "socketio",
                redis_options=redis_options(),
            )
            if settings.redis_url
            else None
        )
        self.sio = GuardedServer(  # answers undecodable packets (rooms/packets.py)
            async_mode="aiohttp",
            client_manager=manager,
            # Above our own per-event limit, so an oversized event gets an error ack
            # instead of a closed connection.
            max_http_buffer_size=max(1_000_000, self.config.max_event_bytes * 4),
            # Several workers share the port (serve --workers): the long-polling requests of
            # one session could reach different workers, so only WebSocket is served.
            transports=["websocket"] if settings.worker_count > 1 else ["polling", "websocket"],
            logger=False,
            engineio_logger=False,
        )
        self.state: LiveState = (
            RedisLiveState(app[REDIS], settings.redis_prefix, self.node)
            if app[REDIS] is not None
            else MemoryLiveState()
        )
        self.hooks = Hooks()
        self.bus = (
            NodeBus(app[REDIS], settings.redis_prefix, self.node)
            if app[REDIS] is not None
            else None
        )
        #: with Redis: where rooms' media run (rooms/placement.py); None: all of it here
        self.placement = (
            Placement(app[REDIS], settings.redis_prefix, self.node)
            if app[REDIS] is not None
            else None
        )
        #: node bus messages other than rooms' own: each returns True when it took one
        self.node_handlers: list[Callable[[dict[str, Any]], Awaitable[bool]]] = []
        self.rpc = NodeRpc(self)
        self.conns: dict[str, Conn] = {}
        self.events: dict[str, EventSpec] = {}
        self._timers: set[asyncio.Task[None]] = set()
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        self.sio.on("*", self._dispatch)
        self.watch = NodeWatch(self)
        self._requests: dict[int, web.Request] = {}  # the live connections' HTTP requests
        self._no_requests = asyncio.Event()
        if manager is not None:
            manager.on_resubscribed = self.watch.resubscribed
            manager.is_down = lambda: not self.watch.redis_ok
        for method in ("GET", "POST", "OPTIONS"):  # what sio.attach() would add, guarded
            app.router.add_route(method, "/socket.io/", self._handle_request)

    async def _handle_request(self, request: web.Request) -> web.StreamResponse:
        """The live connection's HTTP requests: 503 while this node cannot serve it (Redis
        unreachable, or stopping) rather than a connection that would fail halfway."""
        if self.websocket_only and request.query.get("transport") != "websocket":
            raise Problem(
                "This server runs several worker processes: the live connection must use "
                "the WebSocket transport (the requests of a long-polling session could reach "
                "different workers)",
                status=400,
                code="websocket_required",
                title="WebSocket required",
            )
        if self.watch.draining or not self.watch.redis_ok:
            raise Unavailable(
                "The live connection is unavailable for a moment",
                code="live_unavailable",
                retry_after=LIVE_RETRY_AFTER,
            )
        self._requests[id(request)] = request
        self._no_requests.clear()
        try:
            response: web.StreamResponse = await self.sio.handle_request(request)
        finally:
            self._requests.pop(id(request), None)
            if not self._requests:
                self._no_requests.set()
        return response

    async def close_transports(self, wait: float) -> None:
        """After the connections were closed, give their transports ``wait`` seconds to end,
        then cut the rest: a stopping node does not wait on a client's close handshake."""
        if self._requests:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._no_requests.wait(), wait)
        for request in list(self._requests.values()):
            if request.transport is not None:
                request.transport.close()

    @classmethod
    def of(cls, app: web.Application) -> Live:
        return app[LIVE]

    # -- registry ----------------------------------------------------------------------

    def event(
        self,
        name: str,
        model: type[BaseModel] | None = None,
        *,
        in_room: bool = True,
        host: bool = False,
        max_bytes: int | None = None,
    ) -> Callable[[EventHandler], EventHandler]:
        """Register a client event: ``@live.event("rtc:offer", OfferIn)``.

        The handler gets ``(live, conn, body)`` (``body`` validated by ``model``, or the raw
        payload without a model) and returns a dict merged into ``{"ok": true}``; it raises
        :class:`EventError` (or any ``core.errors.Problem``) to refuse. ``in_room``: the
        connection must have joined a room; ``host``: and be one of its hosts.
        """

        def register(fn: EventHandler) -> EventHandler:
            if name in self.events:
                raise ValueError(f"event {name} already registered")
            self.events[name] = EventSpec(name, fn, model, in_room, host, max_bytes)
            return fn

        return register

    # -- emitting ----------------------------------------------------------------------

    async def emit_to_room(
        self, room_id: uuid.UUID | str, event: str, data: Any, *, skip_sid: str | None = None
    ) -> None:
        """To every participant of the room, on every node."""
        await self.sio.emit(event, data, room=channel_room(room_id), skip_sid=skip_sid)

    async def emit_to_hosts(self, room_id: uuid.UUID | str, event: str, data: Any) -> None:
        await self.sio.emit(event, data, room=channel_hosts(room_id))

    async def emit_to_participant(self, participant_id: str, event: str, data: Any) -> None:
        """To one participant's current connection, wherever it is."""
        await self.sio.emit(event, data, room=channel_participant(participant_id))

    async def emit_to_user(
        self, user_id: uuid.UUID | str, event: str, data: Any, *, skip_sid: str | None = None
    ) -> None:
        """To every connection of a signed-in user (their personal channel)."""
        await self.sio.emit(event, data, room=channel_user(user_id), skip_sid=skip_sid)

    async def end_subjects(self, subject_ids: list[str], event: str, data: dict[str, Any]) -> None:
        """Every connection of these people (guests or users), on every node, gets ``event``
        and is closed at once: their session ended, their access was withdrawn. Without this,
        a connection on another node outside any room would live until its node's next
        session check."""
        if self.bus is not None:
            try:
                await self.bus.broadcast({"end": subject_ids, "event": event, "data": data})
            except (OSError, RedisError):
                log.warning("could not reach the other nodes to close %s", subject_ids)
        await self._end_local(subject_ids, event, data)

    async def _end_local(self, subject_ids: list[str], event: str, data: dict[str, Any]) -> None:
        ended = set(subject_ids)
        sids = [s for s, c in self.conns.items() if str(c.principal.subject_id) in ended]
        for sid in sids:
            try:  # straight to the client, not through the other nodes
                await self.sio.emit(event, data, to=sid, ignore_queue=True)
                await self.sio.disconnect(sid, ignore_queue=True)
            except Exception:
                log.warning("could not disconnect %s", sid, exc_info=True)

    async def disconnect_sid(self, sid: str) -> None:
        """Close a connection, on whichever node holds it."""
        try:
            await self.sio.disconnect(sid)
        except Exception:
            log.warning("could not disconnect %s", sid, exc_info=True)

    # -- connection --------------------------------------------------------------------

    async def _principal(self, environ: dict[str, Any]) -> tuple[Principal, str, str] | None:
        raw = environ.get("HTTP_COOKIE", "")
        try:
            jar = SimpleCookie(raw)
        except CookieError:
            return None
        if COOKIE not in jar:
            return None
        token = jar[COOKIE].value
        s = await self.app[SESSIONS].load(token)
        if s is None or s.stage != "full":
            return None
        ip = forwarded_ip(
            str(environ.get("REMOTE_ADDR", "")),
            str(environ.get("HTTP_X_FORWARDED_FOR", "")),
            self.app[SETTINGS].trusted_proxies,
        )
        if s.kind == "guest":
            async with self.app[DB].read() as session:
                if await access.guest_ended(session, s.subject_id) is not None:
                    return None  # invitation withdrawn or expired: no way back in
        async with self.app[DB].read() as session:
            p = await for_session(session, s, ip=ip)
        if p is None:
            return None
        return p, s.id, token

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            found = await self._principal(environ)
        except Problem as p:
            if p.status != 503:
                raise socketio.exceptions.ConnectionRefusedError(
                    {"code": "unauthenticated", "message": "Sign in or open your invitation link"}
                ) from None
            # A service is down (database): say so, the client tries again; not "signed out".
            raise socketio.exceptions.ConnectionRefusedError(
                {"code": p.code, "message": p.title, "retry_after": p.extra.get("retry_after")}
            ) from None
        except Exception:
            log.exception("socket authentication failed")
            found = None
        if found is None:
            raise socketio.exceptions.ConnectionRefusedError(
                {"code": "unauthenticated", "message": "Sign in or open your invitation link"}
            )
        principal, session_id, token = found
        if principal.kind == "user":
            try:
                await self.state.set_online(str(principal.subject_id), sid, principal.label, True)
            except (OSError, RedisError):
                raise socketio.exceptions.ConnectionRefusedError(
                    {
                        "code": "live_unavailable",
                        "message": "The live connection is unavailable for a moment",
                        "retry_after": LIVE_RETRY_AFTER,
                    }
                ) from None
        self.conns[sid] = Conn(sid=sid, principal=principal, session_id=session_id, token=token)
        if principal.kind == "user":
            await self.sio.enter_room(sid, channel_user(principal.subject_id))
        else:
            await self.sio.enter_room(sid, channel_guest(principal.subject_id))

    async def _disconnect(self, sid: str, reason: Any = None) -> None:
        conn = self.conns.pop(sid, None)
        if conn is None:
            return
        try:
            if conn.principal.kind == "user":
                await self.state.set_online(str(conn.principal.subject_id), sid, "", False)
            await self._release(conn, reason="timeout")
        except Exception:
            log.exception("cleanup of %s failed", sid)

    async def _release(self, conn: Conn, *, reason: LeaveReason) -> None:
        """The connection is gone: lobby entry dropped, participant kept for the grace period."""
        if conn.lobby_room_id is not None:
            room_id, conn.lobby_room_id = conn.lobby_room_id, None
            entry = await self.state.lobby_remove(str(room_id), str(conn.principal.subject_id))
            if entry is not None and entry.sid == conn.sid:
                await self.emit_to_hosts(
                    room_id, "lobby:left", {"guest_id": entry.guest_id, "reason": "gone"}
                )
            elif entry is not None:  # a newer connection of the same guest took the place
                await self.state.lobby_add(str(room_id), entry)
        if conn.room_id is None or conn.participant_id is None:
            return
        room_key, pid, sid = str(conn.room_id), conn.participant_id, conn.sid
        if not await self.state.mark_disconnected(room_key, pid, sid):
            return
        p = await self.state.get(room_key, pid)
        if p is not None:
            await self.emit_to_room(room_key, "participant:updated", {"participant": p.public()})
        self.spawn(self._expire(room_key, pid, sid))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a background task that the app's shutdown cancels."""
        task = asyncio.get_running_loop().create_task(coro)
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    async def _expire(self, room_id: str, pid: str, sid: str) -> None:
        await asyncio.sleep(self.grace)
        p = await self.state.get(room_id, pid)
        if p is not None and await self.state.remove(room_id, pid, only_if_sid=sid):
            await self.participant_left(p, "timeout")

    async def participant_left(self, p: Participant, reason: LeaveReason) -> None:
        await self.emit_to_room(
            p.room_id, "participant:left", {"participant_id": p.id, "reason": reason}
        )
        await self.run_hooks("left", p, reason)

    async def run_hooks(self, kind: HookKind, p: Participant, *args: str) -> None:
        """Run the ``kind`` hooks of participant ``p`` on the node holding its connection:
        here, or sent over the node bus. When that node is gone the hooks run here (``rtc``
        then reaches the room's media node from here)."""
        if self.bus is not None and p.node and p.node != self.node:
            message = {"hook": kind, "participant": p.to_json(), "args": list(args)}
            if await self.bus.send(p.node, message):
                return
        await self.hooks.call(self.hooks.of_kind(kind), self, p, *args)

    async def _on_node_message(self, message: dict[str, Any]) -> None:
        for handler in self.node_handlers:
            if await handler(message):
                return
        if "end" in message:
            ids = [str(i) for i in message["end"]]
            await self._end_local(ids, str(message["event"]), dict(message.get("data") or {}))
            return
        kind = message.get("hook")
        if kind not in ("joined", "left", "updated", "muted"):
            log.warning("unknown node message %r", message)
            return
        p = Participant.from_json(message["participant"])
        args = [str(a) for a in message.get("args", [])]
        await self.hooks.call(self.hooks.of_kind(kind), self, p, *args)

    # -- dispatch ----------------------------------------------------------------------

    async def _dispatch(self, event: str, sid: str, *args: Any) -> dict[str, Any]:
        conn = self.conns.get(sid)
        if conn is None:
            return error_ack("unauthenticated", "Not connected")
        spec = self.events.get(event)
        if spec is None:
            return error_ack("unknown_event", f"Unknown event {event!r}"[:200])
        if len(args) > 1:
            return error_ack("invalid_payload", "Send one payload object")
        data = args[0] if args else None
        try:
            size = len(json.dumps(data, separators=(",", ":"))) if data is not None else 0
        except (TypeError, ValueError):
            return error_ack("invalid_payload", "The payload is not JSON")
        limit = spec.max_bytes or self.config.max_event_bytes
        if size > limit:
            return error_ack("too_large", f"The payload exceeds {limit} bytes", limit=limit)
        if not conn.allow("events", self.config.events_per_second, self.config.events_burst):
            return error_ack("rate_limited", "Too many events; slow down")
        if spec.in_room:
            if conn.room_id is None or conn.participant_id is None:
                return error_ack("not_in_room", "Join a room first")
            if (
                isinstance(data, dict)
                and "room_id" in data
                and str(data.pop("room_id")) != str(conn.room_id)
            ):
                return error_ack("not_in_room", "This connection is not in that room")
            if spec.host and conn.role != "host":
                return error_ack("host_required", "Reserved to the room's hosts")
        body: Any = data
        if spec.model is not None:
            try:
                body = spec.model.model_validate(data if data is not None else {})
            except PydanticValidationError as e:
                errors = [
                    {"loc": [str(x) for x in err["loc"]], "msg": err["msg"]}
                    for err in e.errors(
                        include_url=False, include_context=False, include_input=False
                    )
                ][:10]
                return error_ack("invalid_payload", "The payload did not validate", errors=errors)
        try:
            result = await spec.handler(self, conn, body)
        except Problem as p:
            return error_ack(p.code, p.detail or p.title)
        except Exception:
            log.exception("socket event %s failed", event)
            return error_ack("internal_error", "An internal error occurred")
        return {"ok": True, **(result or {})}

    # -- lifecycle ---------------------------------------------------------------------

    async def watch_sessions(self) -> None:
        """Keep the sessions of connected people alive (a call is activity), and close the
        connections whose session ended (logout, expiry, removal)."""
        sessions = self.app[SESSIONS]
        while True:
            await asyncio.sleep(self.session_check)
            for sid, conn in list(self.conns.items()):
                try:
                    alive = await sessions.load(conn.token) is not None
                except Exception:
                    log.warning("session check failed", exc_info=True)
                    continue
                if not alive and sid in self.conns:
                    await self.sio.emit("session:ended", {}, to=sid)
                    await self.disconnect_sid(sid)

    async def shutdown(self) -> None:
        for t in list(self._timers):
            t.cancel()
        for sid, conn in list(self.conns.items()):  # shared state must not list us any more
            if conn.principal.kind == "user":
                try:
                    await self.state.set_online(str(conn.principal.subject_id), sid, "", False)
                except Exception:
                    log.debug("online cleanup", exc_info=True)
        try:
            await self.sio.shutdown()
        except Exception:
            log.debug("socket.io shutdown", exc_info=True)
        mgr = self.sio.manager
        listener = getattr(mgr, "thread", None)
        if isinstance(listener, asyncio.Task):  # the pub/sub listener, then its Redis client
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener
        redis = getattr(mgr, "redis", None)
        if redis is not None:
            try:
                await redis.aclose()
            except Exception:
                log.debug("socket.io redis close", exc_info=True)


def setup(app: web.Application) -> Live:
    live = Live(app)
    app[LIVE] = live

    async def lifespan(app: web.Application) -> Any:
        if live.bus is not None:
            live.spawn(live.bus.listen(live._on_node_message))
            # a previous process's participants leave through the hooks, which reach their
            # rooms' media nodes over the bus (rooms/placement.py): their replies come here
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(live.bus.subscribed.wait(), 5)
        await live.watch.forget_previous_life()  # before the port opens: no connection yet
        live.spawn(live.watch_sessions())
        live.spawn(live.watch.run())
        if live.placement is not None:
            live.spawn(live.placement.run())
        yield
        await live.shutdown()

    async def drain(app: web.Application) -> None:  # SIGTERM: before waiting for handlers
        if live.placement is not None:  # its rooms' media are placed again elsewhere
            with contextlib.suppress(Exception):
                await live.placement.retire()
        await live.watch.drain()

    app.cleanup_ctx.append(lifespan)
    app.on_shutdown.append(drain)
    return live
