"""PACS imports are run by the process that started them, and their progress is shared over
Redis: with several workers (serve --workers) or nodes, the page's polls reach any of them."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime

import pytest

from dossier.documents.pacs import JOB_LOST_SECONDS, PacsJobs, PullJob
from tests.conftest import REDIS_URL, need

pytestmark = [pytest.mark.redis]


async def test_a_pull_started_on_one_process_is_seen_by_another_and_a_lost_one_fails() -> None:
    need("redis", REDIS_URL)
    import redis.asyncio as aioredis

    redis = aioredis.from_url(REDIS_URL)
    prefix = f"consilium-pacs-{uuid.uuid4().hex[:8]}:"
    try:
        here, there = PacsJobs(redis=redis, prefix=prefix), PacsJobs(redis=redis, prefix=prefix)
        dossier = uuid.uuid4()
        job = PullJob(uuid.uuid4(), dossier, "1.2.3.4", "Dr Claire Martin", status="running")
        job.total, job.received = 40, 12
        here.jobs[job.id] = job
        await here.share(job)
        [seen] = await there.of_dossier(dossier)
        assert (seen.id, seen.status, seen.total, seen.received) == (job.id, "running", 40, 12)
        assert seen.created_at == job.created_at and seen.requested_by == "Dr Claire Martin"
        assert await there.of_dossier(uuid.uuid4()) == []

        job.status, job.documents, job.finished_at = "done", 40, datetime.now(UTC)
        await here.share(job)
        [seen] = await there.of_dossier(dossier)
        assert (seen.status, seen.documents, seen.finished_at) == ("done", 40, job.finished_at)

        # A process that died mid-import stops sharing: its job is shown as interrupted, so
        # the same study can be imported again.
        lost = PullJob(uuid.uuid4(), dossier, "1.2.3.5", "Dr Claire Martin", status="running")
        entry = json.loads(lost.to_json())
        entry["shared_at"] = time.time() - JOB_LOST_SECONDS - 5
        await redis.hset(f"{prefix}pacs:jobs:{dossier}", str(lost.id), json.dumps(entry))
        gone = {j.id: j for j in await there.of_dossier(dossier)}[lost.id]
        assert gone.status == "failed" and "interrompu" in gone.error
        assert gone.finished_at is not None
    finally:
        keys = [k async for k in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
