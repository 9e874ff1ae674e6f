"""aiortc participants of rooms whose media runs on one node of several (rooms/placement.py):
each signals over its own node's Socket.IO connection and, like the browser's
media-session.js, starts its media over on ``rtc:moved``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

from rtc import aiortc_internals
from rtc.errors import RtcError
from tests.rtc.test_signalling import SockClient
from tests.support.live import Sock
from tests.support.nodes import Cluster

#: error codes a media (re)start retries on: the media node is being replaced
RETRY_CODES = {"media_unreachable", "media_moved"}


@contextlib.contextmanager
def loopback_peers() -> Iterator[None]:
    """The test's aiortc peers gather 127.0.0.1 only (aioice leaves it out otherwise)."""
    aiortc_internals.restrict_host_addresses(["127.0.0.1"])
    try:
        yield
    finally:
        aiortc_internals.restrict_host_addresses(None)


class MovingPeer:
    """One participant: a Socket.IO connection to one node, an aiortc peer to the room's
    media node wherever it is, publishing a camera and a microphone."""

    def __init__(self, name: str, sock: Sock, participant_id: str) -> None:
        self.name, self.sock, self.id = name, sock, participant_id
        self.client = SockClient(sock, participant_id)
        self.media_nodes: list[str] = []  # the media node of each (re)start
        self.moved: list[tuple[float, dict[str, Any]]] = []
        self.restarted_at: float | None = None
        self._restart: asyncio.Task[None] | None = None
        self._watch(sock)

    def _watch(self, sock: Sock) -> None:
        async def on_moved(data: Any) -> None:
            sock.received.append(("rtc:moved", data))
            self.moved.append((time.monotonic(), data))
            self.restart()

        sock.sio.on("rtc:moved", on_moved)

    async def start(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                ack = await self.client.join()
                break
            except RtcError as e:
                if e.code not in RETRY_CODES or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)
        self.media_nodes.append(ack["media_node"])
        await self.client.publish()

    def restart(self, sock: Sock | None = None) -> asyncio.Task[None]:
        """A new peer connection (over ``sock`` when the socket moved too): rtc:join again."""
        if sock is not None:
            self.sock = sock
            self._watch(sock)
        if self._restart is not None and not self._restart.done():
            return self._restart

        async def run() -> None:
            old = self.client
            self.client = SockClient(self.sock, self.id)
            await old.close()
            await self.start()
            self.restarted_at = time.monotonic()

        self._restart = asyncio.create_task(run())
        return self._restart

    async def close(self) -> None:
        if self._restart is not None:
            self._restart.cancel()
        await self.client.close()


def decoded_from(peers: list[MovingPeer]) -> dict[tuple[str, str], int]:
    return {(a.name, b.name): a.client.decoded(b.id) for a in peers for b in peers if a is not b}


async def all_decode(peers: list[MovingPeer], frames: int, timeout: float = 90) -> None:
    """Until every participant decoded ``frames`` frames of every other one's camera."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(n >= frames for n in decoded_from(peers).values()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"frames decoded: {decoded_from(peers)}")


async def media_loads(c: Cluster, redis_url: str) -> dict[str, dict[str, Any] | None]:
    """Each node's announced media load (``media:load:<node>``), by node id."""
    import redis.asyncio as aioredis

    prefix = c.nodes[0].env["CONSILIUM_REDIS_PREFIX"]
    r = aioredis.from_url(redis_url)
    try:
        ids = [n.url.removeprefix("http://") for n in c.nodes]
        raws = await r.mget([prefix + "media:load:" + i for i in ids])
        return {i: (json.loads(v) if v else None) for i, v in zip(ids, raws, strict=True)}
    finally:
        await r.aclose()


async def placements(c: Cluster, redis_url: str) -> dict[str, str]:
    import redis.asyncio as aioredis

    prefix = c.nodes[0].env["CONSILIUM_REDIS_PREFIX"]
    r = aioredis.from_url(redis_url)
    try:
        raw = await r.hgetall(prefix + "media:rooms")
        return {k.decode(): v.decode() for k, v in raw.items()}
    finally:
        await r.aclose()
