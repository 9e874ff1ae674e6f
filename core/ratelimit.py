"""Fixed-window rate limiting by key, in process memory or in Redis when configured."""

from __future__ import annotations

import time
from typing import Any


class RateLimiter:
    def __init__(self, redis: Any = None, prefix: str = "consilium:rl:") -> None:
        self.redis = redis
        self.prefix = prefix
        self._local: dict[str, tuple[int, float]] = {}

    async def hit(self, key: str, *, limit: int, window: float) -> bool:
        """Count one hit; True while the key is within ``limit`` hits per ``window`` seconds."""
        if self.redis is not None:
            k = self.prefix + key
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(k)
                pipe.expire(k, max(1, int(window)), nx=True)
                count, _ = await pipe.execute()
            return int(count) <= limit
        now = time.monotonic()
        count, start = self._local.get(key, (0, now))
        if now - start >= window:
            count, start = 0, now
        count += 1
        self._local[key] = (count, start)
        if len(self._local) > 100_000:
            self._local = {k: v for k, v in self._local.items() if now - v[1] < window}
        return count <= limit
