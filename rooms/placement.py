"""Room placement across nodes: which node runs a room's media, and the calls that reach it.

A room's media lives on exactly one node (docs/rooms.md, "One room, one media node").
With Redis:

- Every node announces itself as a media node: ``media:load:<node>`` holds its load (JSON:
  ``score``, published ``tracks``, forwarded packets per second ``pps``, ``cpu`` as a
  fraction of one core averaged over a few seconds, media ``rooms``) and expires after
  ``CONSILIUM_NODE_TTL_SECONDS`` (6 s) unless renewed, every second; ``media:nodes`` lists
  them.
- ``media:rooms`` maps a room to its media node. :meth:`Placement.place` (one Lua script, so
  atomic: no two nodes claim one room) keeps the owner, or places the room on the live node
  of lowest score, where score = announced load + rooms already placed there. The asking node
  wins a near tie (within ``margin``), so a lone node, or a first join on a quiet cluster,
  keeps its media local.
- Lost node: only the watch loop (:meth:`Placement.run`, every second on every node)
  decides that a media node is lost. A killed process's Redis connections close at once, so
  its node bus channel loses its subscriber: no subscriber for ``SILENT_TICKS`` ticks in a
  row (2 s or more: a bus listener that resubscribes takes about one), or no subscriber and
  no announcement, and it is lost. An announcement that expired while the node still listens
  means a slow node (a busy machine), lost only after twice the TTL more. The first live node
  that finds it lost deletes its announcement and places each of its rooms again with the
  same script; only the call that changed the owner gets the old owner back, and that node
  tells the room (``on_moved``: ``rtc:moved``). Joins never take a room from its owner.
- A node that finds a room it runs placed on another node (it was taken for dead) closes
  that room's media here: a room is never split over two nodes.
- A node that starts while rooms are still placed on it (a restart quicker than the TTL) has
  lost their media: it tells those rooms too, which come back to it or elsewhere.

Without Redis there is no placement: one node, everything local. :class:`NodeRpc` is the
request/response over the node bus (:class:`rooms.live.NodeBus`) that the socket node of a
participant uses to reach the room's media node (``rtc`` registers its operations).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from rooms.nodes import NodeSettings

if TYPE_CHECKING:
    from rooms.live import Live

log = logging.getLogger(__name__)

#: weight of the last second in the announced CPU figure (a moving average)
CPU_SMOOTHING = 0.3
#: the part of a core a node uses without media; only CPU above it weighs in the score
CPU_IDLE = 0.2

#: ticks in a row an owner's bus channel must have no subscriber before it is taken for dead
SILENT_TICKS = 3

#: KEYS: rooms hash, nodes set. ARGV: room, load key prefix, asking node, margin, "1" to keep
#: any owner (a join: only the watch loop decides that a node is lost).
#: Returns {owner, previous owner if this call moved the room from a dead node else ""}.
_PLACE = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and (ARGV[5] == '1' or redis.call('EXISTS', ARGV[2] .. cur) == 1) then
  return {cur, ''}
end
local count = {}
for _, n in ipairs(redis.call('HVALS', KEYS[1])) do count[n] = (count[n] or 0) + 1 end
local best, best_score, asker_score = nil, nil, nil
for _, n in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local raw = redis.call('GET', ARGV[2] .. n)
  if raw then
    local ok, load = pcall(cjson.decode, raw)
    local score = (ok and tonumber(load['score']) or 0) + (count[n] or 0)
    if n == ARGV[3] then asker_score = score end
    if best == nil or score < best_score or (score == best_score and n < best) then
      best, best_score = n, score
    end
  else
    redis.call('SREM', KEYS[2], n)
  end
end
if best == nil then return {false, ''} end
if asker_score and asker_score <= best_score + tonumber(ARGV[4]) then best = ARGV[3] end
redis.call('HSET', KEYS[1], ARGV[1], best)
return {best, cur or ''}
"""

#: The media node about to open a room's media checks it is still the owner (or takes an
#: unowned room). KEYS: rooms hash. ARGV: room, this node.
_CONFIRM = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then return cur end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return ARGV[3]
"""

#: Release a room this node owns and no longer runs. KEYS: rooms hash. ARGV: room, node.
_RELEASE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""

LoadFn = Callable[[], dict[str, float]]
MovedFn = Callable[[str, str, str], Awaitable[None]]  # room, new node, old node
RoomsFn = Callable[[], set[str]]


class Placement:
    """This node's announcement and the placement of rooms' media (Redis)."""

    #: a join on the asking node wins when its score is within this of the best
    JOIN_MARGIN = 0.5

    def __init__(
        self,
        redis: Any,
        prefix: str,
        node: str,
        settings: NodeSettings | None = None,
    ) -> None:
        self.redis = redis
        self.node = node
        self.settings = settings or NodeSettings()
        self.rooms_key = prefix + "media:rooms"
        self.nodes_key = prefix + "media:nodes"
        self.load_prefix = prefix + "media:load:"
        self._place = redis.register_script(_PLACE)
        self._confirm = redis.register_script(_CONFIRM)
        self._release = redis.register_script(_RELEASE)
        #: what the media layer (rtc) reports: load figures, rooms it runs, moves to tell
        self.load: LoadFn = lambda: {}
        self.running: RoomsFn = set
        self.on_moved: MovedFn | None = None
        #: rooms whose media is being opened here (not released meanwhile)
        self.opening: set[str] = set()
        #: close a room's media here (it was placed elsewhere meanwhile)
        self.evict: Callable[[str], Awaitable[None]] | None = None
        self.bus_channel = prefix + "live:node:"  # rooms.live.NodeBus's per-node channels
        self._silent: dict[str, int] = {}
        self._expired: dict[str, float] = {}
        self.retired = False  # stopping: announces nothing more
        self._cpu = (time.monotonic(), time.process_time())
        self._cpu_avg = 0.0
        self._idle: set[str] = set()

    # -- announcing -----------------------------------------------------------------------

    def figures(self) -> dict[str, float]:
        now, cpu = time.monotonic(), time.process_time()
        then, cpu_then = self._cpu
        self._cpu = (now, cpu)
        used = (cpu - cpu_then) / (now - then) if now > then else 0.0
        # smoothed over a few seconds: a burst (a login's password hash, start-up) is no load
        self._cpu_avg += CPU_SMOOTHING * (used - self._cpu_avg)
        load = {
            "tracks": 0.0,
            "pps": 0.0,
            "rooms": 0.0,
            **self.load(),
            "cpu": round(self._cpu_avg, 3),
        }
        # one room placed weighs 1 (added by the script); a busy core weighs 2, counted above
        # CPU_IDLE (what a node's own heartbeats, API and chat use without any media)
        busy = max(0.0, load["cpu"] - CPU_IDLE)
        load["score"] = round(load["tracks"] * 0.05 + load["pps"] / 20000 + 2 * busy, 3)
        return load

    async def announce(self) -> None:
        ttl = int(self.settings.ttl_seconds * 1000)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.load_prefix + self.node, json.dumps(self.figures()), px=ttl)
            pipe.sadd(self.nodes_key, self.node)
            await pipe.execute()

    async def retire(self) -> None:
        """A graceful stop: no new room comes here (its rooms move once it is gone)."""
        self.retired = True
        await self.redis.delete(self.load_prefix + self.node)

    # -- placing --------------------------------------------------------------------------

    async def place(self, room_id: str, *, lost: bool = False) -> tuple[str, str]:
        """The room's media node, placed now if it has none; with ``lost`` (the watch loop,
        after it found the owner dead) also when its owner's announcement is gone. Returns
        the owner and the dead owner this very call took the room from ("" otherwise)."""
        owner, previous = await self._place(
            keys=[self.rooms_key, self.nodes_key],
            args=[
                room_id,
                self.load_prefix,
                self.node,
                0.0 if lost else self.JOIN_MARGIN,
                "0" if lost else "1",
            ],
        )
        if not owner:  # no node announced yet (this one starting): take it
            owner = await self.confirm(room_id)
            previous = b""
        return _s(owner), _s(previous)

    async def confirm(self, room_id: str) -> str:
        """Called on the media node before it opens a room's media: the owner (this node when
        it owns the room or the room had no live owner)."""
        return _s(await self._confirm(keys=[self.rooms_key], args=[room_id, self.node]))

    async def owner(self, room_id: str) -> str | None:
        raw = await self.redis.hget(self.rooms_key, room_id)
        return _s(raw) if raw else None

    async def placements(self) -> dict[str, str]:
        raw = await self.redis.hgetall(self.rooms_key)
        return {_s(k): _s(v) for k, v in raw.items()}

    async def load_of(self, nodes: list[str]) -> dict[str, dict[str, Any] | None]:
        if not nodes:
            return {}
        raws = await self.redis.mget([self.load_prefix + n for n in nodes])
        return {n: (json.loads(r) if r else None) for n, r in zip(nodes, raws, strict=True)}

    # -- the loop -------------------------------------------------------------------------

    async def tick(self, first: bool = False) -> None:
        if self.retired:
            return
        await self.announce()
        placed = await self.placements()
        owners = sorted({n for n in placed.values() if n != self.node})
        dead = await self._dead(owners)
        for room_id, owner in placed.items():
            if owner in dead:
                new, previous = await self.place(room_id, lost=True)
                if previous:
                    log.warning(
                        "media of room %s moved from lost node %s to %s", room_id, previous, new
                    )
                    await self._moved(room_id, new, previous)
        mine = {r for r, n in placed.items() if n == self.node}
        running = self.running()
        if first:
            # a restart quicker than the TTL: these rooms' media died with the old process
            for room_id in mine - running:
                await self._moved(room_id, self.node, self.node)
            return
        for room_id in running - mine - self.opening:
            elsewhere = await self.owner(room_id)
            if elsewhere is not None and elsewhere != self.node and room_id not in self.opening:
                log.warning("room %s is placed on %s: closing its media here", room_id, elsewhere)
                if self.evict is not None:
                    await self.evict(room_id)
        idle = mine - running - self.opening
        for room_id in idle & self._idle:  # idle for two ticks: released
            await self._release(keys=[self.rooms_key], args=[room_id, self.node])
        self._idle = idle

    async def _dead(self, owners: list[str]) -> set[str]:
        """The owners to take for dead now. A killed process's Redis connections close at
        once, so its node bus channel has no subscriber: dead after ``SILENT_TICKS`` ticks
        in a row, or at once if its announcement expired too. A node whose announcement
        expired while it still listens is slow (a busy machine): dead only after twice the
        TTL more (hung, or cut from Redis on a connection Redis still believes in)."""
        if not owners:
            self._silent.clear()
            self._expired.clear()
            return set()
        alive = await self.load_of(owners)
        raw = await self.redis.pubsub_numsub(*(self.bus_channel + n for n in owners))
        counts = {_s(channel): int(count) for channel, count in raw}
        now = time.monotonic()
        silent: dict[str, int] = {}
        expired: dict[str, float] = {}
        dead: set[str] = set()
        for n in owners:
            listening = counts.get(self.bus_channel + n, 1) > 0
            if not listening:
                silent[n] = self._silent.get(n, 0) + 1
            if alive.get(n) is None:
                expired[n] = self._expired.get(n, now)
            if (
                not listening and (silent[n] >= SILENT_TICKS or alive.get(n) is None)
            ) or now - expired.get(n, now) > 2 * self.settings.ttl_seconds:
                log.warning("media node %s is lost (listening: %s)", n, listening)
                await self.redis.delete(self.load_prefix + n)
                dead.add(n)
        self._silent = {n: c for n, c in silent.items() if n not in dead}
        self._expired = {n: t for n, t in expired.items() if n not in dead}
        return dead

    async def _moved(self, room_id: str, new: str, old: str) -> None:
        if self.on_moved is not None:
            try:
                await self.on_moved(room_id, new, old)
            except Exception:
                log.warning("could not tell room %s its media moved", room_id, exc_info=True)

    async def run(self) -> None:
        """Announce, re-place the rooms of lost nodes, release idle rooms; until cancelled."""
        interval = min(1.0, self.settings.heartbeat_seconds)
        first = True
        while True:
            try:
                await self.tick(first)
                first = False
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("media placement: %s", e)
            await asyncio.sleep(interval)


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v or "")


# -- requests between nodes -----------------------------------------------------------------


class NodeUnreachable(Exception):
    """The node did not take the request (gone) or did not answer in time."""


class RemoteError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


RpcHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class NodeRpc:
    """Request/response over the node bus: ``{"rpc": name, "id", "reply", "args"}`` to the
    target node's channel, ``{"rpc_reply": id, "result" | "error"}`` back to the caller's.
    A handler's :class:`core.errors.Problem` (or anything with ``code`` and ``message``)
    comes back as :class:`RemoteError`; a node that is gone or silent as
    :class:`NodeUnreachable` (after ``wait`` seconds)."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self.handlers: dict[str, RpcHandler] = {}
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        live.node_handlers.append(self.on_message)

    def handle(self, name: str) -> Callable[[RpcHandler], RpcHandler]:
        def register(fn: RpcHandler) -> RpcHandler:
            self.handlers[name] = fn
            return fn

        return register

    async def call(
        self, node: str, name: str, args: dict[str, Any], *, wait: float = 10.0
    ) -> dict[str, Any]:
        bus = self.live.bus
        if bus is None:
            raise NodeUnreachable(node)
        cid = uuid.uuid4().hex
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[cid] = fut
        try:
            message = {"rpc": name, "id": cid, "reply": self.live.node, "args": args}
            if not await bus.send(node, message):
                raise NodeUnreachable(node)
            try:
                reply = await asyncio.wait_for(fut, wait)
            except TimeoutError:
                raise NodeUnreachable(node) from None
        finally:
            self.pending.pop(cid, None)
        if "error" in reply:
            err = reply["error"]
            raise RemoteError(str(err.get("code", "internal_error")), str(err.get("message", "")))
        return dict(reply.get("result") or {})

    async def on_message(self, message: dict[str, Any]) -> bool:
        if "rpc_reply" in message:
            fut = self.pending.get(str(message["rpc_reply"]))
            if fut is not None and not fut.done():
                fut.set_result(message)
            return True
        if "rpc" in message:
            # served in its own task: a slow request (an SDP answer) holds no other message
            self.live.spawn(self._serve(message))
            return True
        return False

    async def _serve(self, message: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"rpc_reply": message.get("id")}
        handler = self.handlers.get(str(message.get("rpc")))
        try:
            if handler is None:
                raise RemoteError("unknown_request", f"unknown request {message.get('rpc')!r}")
            reply["result"] = await handler(dict(message.get("args") or {}))
        except Exception as e:
            code, text = getattr(e, "code", None), getattr(e, "message", None)
            if code is None:
                log.exception("node request %s failed", message.get("rpc"))
                code, text = "internal_error", "An internal error occurred"
            detail = getattr(e, "detail", None) or text or getattr(e, "title", "") or str(e)
            reply["error"] = {"code": str(code), "message": str(detail)[:300]}
        bus = self.live.bus
        if bus is not None:
            with contextlib.suppress(Exception):
                await bus.send(str(message.get("reply")), reply)
