"""A node among several: its heartbeat, the removal of dead nodes' participants, its recovery
when Redis comes back, and its draining on a graceful stop. See docs/reliability.md.

- Heartbeat: every ``CONSILIUM_NODE_HEARTBEAT_SECONDS`` (2 s) the node renews a key that
  expires after ``CONSILIUM_NODE_TTL_SECONDS`` (6 s). A node killed without a word stops
  renewing it; within a heartbeat after the key expired another node (one at a time) removes
  its participants and tells their rooms ``participant:left`` (reason ``timeout``).
- Redis lost and back: the heartbeat notices (a failed renewal, or a key that a restarted
  Redis no longer has) and the node writes back the presence of the connections it holds;
  when the Socket.IO pub/sub is subscribed again, every client of the node in a room gets
  ``room:resync`` and fetches what it missed (its ``room:join`` acknowledgement carries the
  chat history, merged by message id), and the others ``live:resync`` (direct messages:
  the Messages page reloads from the stored history). A node that dropped publications
  meanwhile tells every client of every node ``live:resync`` once its heartbeat finds Redis
  back, since the receivers may have resynced before its last message was dropped.
- Restarted with the same node id (``serve --workers`` starts a crashed worker again at
  once; systemd restarts a unit): before its first heartbeat the node removes what its
  previous process left under that id (connected participants are ghosts).
- Draining (SIGTERM): each client gets ``server:draining`` and is disconnected at once; its
  participant stays listed as ``moving`` for the grace period, so reconnecting to any node
  keeps its participant id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import socketio
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from rooms.presence import Participant, RedisLiveState

if TYPE_CHECKING:
    from rooms.live import Conn, Live

log = logging.getLogger(__name__)

# Seconds a client is told to wait before connecting again while Redis is unreachable.
LIVE_RETRY_AFTER = 2


class NodeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONSILIUM_NODE_", extra="ignore")

    heartbeat_seconds: float = Field(2.0, gt=0, le=60)
    ttl_seconds: float = Field(6.0, gt=0, le=300)


class ResilientRedisManager(socketio.AsyncRedisManager):
    """Socket.IO's Redis fan-out, subscribing again within a second or two of Redis coming
    back (the library's own back-off doubles up to a minute), and saying so: messages
    published while the subscription was down are lost, and the clients must resync."""

    on_resubscribed: Callable[[], Awaitable[None]] | None = None
    is_down: Callable[[], bool] | None = None  # Redis known unreachable (the heartbeat's view)
    #: something this node published was lost (Redis down, or the publish failed): the
    #: clients of every node are told to resync once Redis is back (:meth:`NodeWatch.run`)
    dropped = False

    async def _publish(self, data: Any) -> Any:
        if self.is_down is not None and self.is_down():
            # Lost either way; not waiting on connection attempts keeps acks prompt, and
            # the clients resync when the fan-out is back.
            self.dropped = True
            return None
        result = await super()._publish(data)
        if result is None:  # the library logged the failure and gave up
            self.dropped = True
        return result

    async def _redis_listen_with_retries(self) -> Any:  # pragma: no cover - the fault tests
        """Subscribe on a connection of the listener's own, and subscribe again whenever it
        ends. The library's publish path replaces ``self.redis``/``self.pubsub`` after a
        failed publish (stale pooled connections right after Redis is back): listening on
        ``self.pubsub`` could then iterate a fresh, unsubscribed object whose ``listen()``
        ends at once, a loop that never awaits and freezes the node."""
        delay, lost = 0.1, False
        client: Any = None
        while True:
            try:
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.aclose()
                client = self._get_redis_module().Redis.from_url(
                    self.redis_url, **self.redis_options
                )
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self.channel)
                delay = 0.1
                if lost and self.on_resubscribed is not None:
                    lost = False
                    await self.on_resubscribed()
                async for message in pubsub.listen():
                    yield message
                raise ConnectionError("the subscription ended")
            except asyncio.CancelledError:
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.aclose()
                raise
            except Exception as exc:
                if not lost:
                    log.warning("socket.io pub/sub lost (%s); subscribing again", exc)
                lost = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _listen(self) -> Any:  # pragma: no cover - the fault tests
        channel = self.channel.encode("utf-8")
        async for message in self._redis_listen_with_retries():
            if message["channel"] == channel and message["type"] == "message" and "data" in message:
                yield message["data"]


class NodeWatch:
    """Liveness and recovery of this node for one :class:`rooms.live.Live`."""

    def __init__(self, live: Live, settings: NodeSettings | None = None) -> None:
        self.live = live
        self.settings = settings or NodeSettings()
        self.state: RedisLiveState | None = (
            live.state if isinstance(live.state, RedisLiveState) else None
        )
        self.redis_ok = True  # as of the last heartbeat
        self.draining = False
        self._recovering = asyncio.Lock()

    # -- heartbeat and sweeping -----------------------------------------------------------

    async def run(self) -> None:
        """Heartbeat, sweep and recover, until cancelled."""
        if self.state is None:
            return
        first = True
        while True:
            try:
                continued = await self.state.heartbeat(self.settings.ttl_seconds)
                if not first and (not continued or not self.redis_ok):
                    log.warning("redis is back (or lost this node's keys): restoring presence")
                    await self.restore_presence()
                self.redis_ok, first = True, False
                await self.announce_dropped()
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if self.redis_ok:
                    log.warning("node heartbeat failed: %s", e)
                self.redis_ok = False
            await asyncio.sleep(self.settings.heartbeat_seconds)

    async def forget_previous_life(self) -> None:
        """At start-up, before this node accepts connections: remove what a previous
        process left under this node id (:meth:`RedisLiveState.forget_previous_life`)."""
        if self.state is None:
            return
        try:
            for p in await self.state.forget_previous_life(self.live.grace):
                log.info("participant %s of this node's previous process removed", p.id)
                await self.live.participant_left(p, "timeout")
        except Exception:
            log.warning("could not clear this node's previous process", exc_info=True)

    async def sweep(self) -> None:
        assert self.state is not None
        removed = await self.state.sweep(self.live.grace, self.settings.heartbeat_seconds)
        for p in removed:
            log.info("participant %s of dead node %s removed", p.id, p.node)
            await self.live.participant_left(p, "timeout")

    async def is_ghost(self, p: Participant) -> bool:
        """Whether ``p`` is listed by a node that died (its heartbeat lapsed)."""
        if self.state is None or not p.node or p.node == self.live.node:
            return False
        return p.node in await self.state.dead_nodes([p.node])

    # -- Redis came back ------------------------------------------------------------------

    def _participant_of(self, conn: Conn) -> Participant | None:
        assert self.state is not None
        if conn.room_id is None or conn.participant_id is None:
            return None
        room_id = str(conn.room_id)
        p = self.state.mine.get((room_id, conn.participant_id))
        if p is None:
            principal = conn.principal
            p = Participant(
                id=conn.participant_id,
                room_id=room_id,
                key=conn.session_id,
                subject_id=str(principal.subject_id),
                kind=principal.kind,
                name=principal.label,
                role=conn.role,  # type: ignore[arg-type]
            )
        p.sid, p.node, p.connected, p.disconnected_at = conn.sid, self.live.node, True, None
        return p

    async def restore_presence(self) -> None:
        """Write back what Redis lost of this node: its signed-in connections and the
        participants it holds (entries still there are left as they are)."""
        if self.state is None:
            return
        async with self._recovering:
            # Alive first: another node's sweeper would take what follows for a ghost's.
            await self.state.heartbeat(self.settings.ttl_seconds)
            for conn in list(self.live.conns.values()):
                try:
                    if conn.principal.kind == "user":
                        await self.state.set_online(
                            str(conn.principal.subject_id), conn.sid, conn.principal.label, True
                        )
                    p = self._participant_of(conn)
                    if p is not None and await self.state.restore(p):
                        await self.live.emit_to_room(
                            p.room_id, "participant:updated", {"participant": p.public()}
                        )
                except Exception:
                    log.warning("could not restore %s", conn.sid, exc_info=True)

    async def resubscribed(self) -> None:
        """The fan-out is back: live messages of the gap are lost; clients fetch them.
        Clients in a room get ``room:resync`` (they join again: participants and chat
        history); the others ``live:resync`` (the Messages page reloads its conversations
        and the open one, the badge its count)."""
        # Redis answers: publishing may resume now rather than at the next heartbeat (a
        # message sent in between would be dropped, and only announced a heartbeat later).
        self.redis_ok = True
        await self.restore_presence()
        for conn in list(self.live.conns.values()):
            event, data = ("live:resync", {})
            if conn.room_id is not None:
                event, data = ("room:resync", {"room_id": str(conn.room_id)})
            with contextlib.suppress(Exception):
                await self.live.sio.emit(event, data, to=conn.sid, ignore_queue=True)

    async def announce_dropped(self) -> None:
        """This node dropped publications while Redis was down or coming back (its heartbeat
        had not noticed yet): the receiving nodes may have resynced their clients before
        that, so every client of every node is told ``live:resync`` once more."""
        manager = self.live.sio.manager
        if not getattr(manager, "dropped", False):
            return
        manager.dropped = False
        try:
            await self.live.sio.emit("live:resync", {"reason": "dropped"})
        except Exception:
            manager.dropped = True  # next heartbeat
            log.warning("could not announce dropped messages", exc_info=True)

    # -- graceful stop --------------------------------------------------------------------

    async def drain(self) -> None:
        """Tell every client of this node to reconnect elsewhere, keep their participants as
        ``moving`` for the grace period, and close their connections now."""
        self.draining = True
        live = self.live
        conns = list(live.conns.values())
        live.conns.clear()  # their disconnection is ours: no "left", no grace timer here
        for conn in conns:
            with contextlib.suppress(Exception):
                await live.sio.emit(
                    "server:draining", {"reconnect": True}, to=conn.sid, ignore_queue=True
                )
        for conn in conns:
            if conn.room_id is None or conn.participant_id is None:
                continue
            room_id = str(conn.room_id)
            try:
                if await live.state.mark_disconnected(
                    room_id, conn.participant_id, conn.sid, moving=True
                ):
                    p = await live.state.get(room_id, conn.participant_id)
                    if p is not None:
                        await live.emit_to_room(
                            room_id, "participant:updated", {"participant": p.public()}
                        )
            except Exception:
                log.warning("could not mark %s as moving", conn.participant_id, exc_info=True)
        for conn in conns:
            with contextlib.suppress(Exception):
                await live.sio.disconnect(conn.sid, ignore_queue=True)
        await live.close_transports(wait=1.0)
        if self.state is not None:
            with contextlib.suppress(Exception):
                await self.state.retire()
