"""What the outbox workers share (webhook deliveries, FHIR report filings): the loop that
drains a durable table of due rows, woken at once by a new row or else every few seconds,
and the exponential back-off with jitter between a row's attempts.

A subclass says how one pass goes (``run_pass``: claim due rows, send them, record the
outcome; True when it did something, so the next pass follows at once) and how many rows
wait (``count_pending``, the metrics' queue length).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import aiohttp

log = logging.getLogger(__name__)


class OutboxWorker:
    #: what a failed pass is called in the log
    label = "outbox"

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self.pending = 0  # rows waiting, as last counted

    # -- what a subclass gives -------------------------------------------------------------

    def timings(self) -> tuple[float, float, float, float]:
        """(request timeout, poll period, first retry delay, longest retry delay), seconds."""
        raise NotImplementedError

    async def run_pass(self, http: aiohttp.ClientSession) -> bool:
        raise NotImplementedError

    async def count_pending(self) -> int:
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def backoff(self, attempt: int) -> float:
        """Seconds before attempt ``attempt + 1`` (``attempt`` ≥ 1 failed)."""
        _, _, base, most = self.timings()
        return float(min(base * 2 ** (attempt - 1), most) * random.uniform(0.8, 1.2))

    async def run(self) -> None:
        timeout, poll, _, _ = self.timings()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
            while True:
                try:
                    busy = await self.run_pass(http)
                    self.pending = await self.count_pending()
                except asyncio.CancelledError:
                    raise
                except Exception:  # the database is away: try again at the next tick
                    log.warning("%s pass failed", self.label, exc_info=True)
                    busy = False
                if busy:
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), poll)
