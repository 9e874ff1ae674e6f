"""Counters and deadlines by key for rate limiting and sign-in throttling, in process memory
or in Redis when configured (shared by every node)."""

from __future__ import annotations

import time
from typing import Any


class RateLimiter:
    def __init__(self, redis: Any = None, prefix: str = "consilium:rl:") -> None:
        self.redis = redis
        self.prefix = prefix
        # key -> (value, monotonic deadline)
        self._local: dict[str, tuple[int, float]] = {}

    def _live(self, key: str) -> tuple[int, float] | None:
        entry = self._local.get(key)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            del self._local[key]
            return None
        return entry

    def _prune(self) -> None:
        if len(self._local) > 100_000:
            now = time.monotonic()
            self._local = {k: v for k, v in self._local.items() if v[1] > now}

    async def hit(self, key: str, *, limit: int, window: float) -> bool:
        """Count one hit; True while the key is within ``limit`` hits per ``window`` seconds
        (a fixed window that starts at the first hit)."""
        if self.redis is not None:
            k = self.prefix + key
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(k)
                pipe.expire(k, max(1, int(window)), nx=True)
                count, _ = await pipe.execute()
            return int(count) <= limit
        entry = self._live(key)
        count, deadline = entry if entry else (0, time.monotonic() + window)
        self._local[key] = (count + 1, deadline)
        self._prune()
        return count + 1 <= limit

    async def count(self, key: str, *, ttl: float) -> int:
        """Add one to a counter that lives ``ttl`` seconds after its last increment."""
        if self.redis is not None:
            k = self.prefix + key
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(k)
                pipe.pexpire(k, max(1, int(ttl * 1000)))
                value, _ = await pipe.execute()
            return int(value)
        entry = self._live(key)
        value = (entry[0] if entry else 0) + 1
        self._local[key] = (value, time.monotonic() + ttl)
        self._prune()
        return value

    async def block(self, key: str, seconds: int) -> None:
        """Block ``key`` for ``seconds`` (see :meth:`block_length`)."""
        if self.redis is not None:
            await self.redis.set(self.prefix + key, int(seconds), px=max(1, int(seconds * 1000)))
            return
        self._local[key] = (int(seconds), time.monotonic() + seconds)
        self._prune()

    async def block_length(self, key: str) -> int:
        """The length in seconds of the block on ``key`` while it lasts, else 0. Callers
        announce the whole length (``Retry-After``), not a countdown: a retry after that long
        always passes, and the answer does not depend on when the block began."""
        if self.redis is not None:
            value = await self.redis.get(self.prefix + key)
            return int(value) if value is not None else 0
        entry = self._live(key)
        return entry[0] if entry else 0

    async def first(self, key: str, *, window: float) -> bool:
        """True for the first call per ``window`` seconds (an alert sent once, not per hit)."""
        if self.redis is not None:
            ok = await self.redis.set(self.prefix + key, 1, nx=True, px=int(window * 1000))
            return bool(ok)
        if self._live(key) is not None:
            return False
        self._local[key] = (1, time.monotonic() + window)
        return True

    async def reset(self, key: str) -> None:
        if self.redis is not None:
            await self.redis.delete(self.prefix + key)
            return
        self._local.pop(key, None)
