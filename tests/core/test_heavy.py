"""The bounded worker pool keeps answering past its recycling point: with Python 3.11's
``max_tasks_per_child``, a pool whose worker was recycled while tasks were queued hung for
good (every preview, file check and stamp after the 50th then waited for ever)."""

from __future__ import annotations

import asyncio
import os

from core import heavy


async def test_the_pool_answers_queued_work_across_recyclings():
    heavy.configure(workers=1, memory_mb=1536, max_pixels=50_000_000)
    batch = heavy.limits().tasks_per_worker + 10
    pids: set[int] = set()
    for _ in range(3):
        work = asyncio.gather(*(heavy.run_heavy(os.getpid) for _ in range(batch)))
        # generous: a spawned worker starts in about a second; a hung pool never answers
        pids.update(await asyncio.wait_for(work, 120))
    assert os.getpid() not in pids
    assert len(pids) >= 3  # the workers were replaced
