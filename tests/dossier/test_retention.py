from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.audit import AuditEntry
from core.context import DB
from core.db import utcnow
from core.storage import of as storage_of
from dossier.models import Document, Dossier
from dossier.retention import purge_expired
from tests.conftest import make_settings
from tests.support.documents import blob_files, make_dossier, pdf_bytes, png_bytes


@pytest.fixture
def settings(database_url, tmp_path, smtp):
    return make_settings(
        database_url,
        tmp_path / "data",
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        retention_days=365,
        retention_reminder_days=30,
    )


async def test_closed_dossiers_get_a_reminder_then_are_purged_keeping_the_audit(
    app, client, users, smtp, settings
):
    now = utcnow()
    closed = await make_dossier(app[DB], users, state="closed", closed_at=now)
    still_open = await make_dossier(app[DB], users, birth_name="SIMON", state="expertised")
    await client.sign_in_as(users["requester"].id)
    for dossier_id in (closed, still_open):
        for name, data in (("a.pdf", pdf_bytes(1)), ("b.png", png_bytes())):
            r = await client.post(
                f"/api/v1/dossiers/{dossier_id}/documents?filename={name}", data=data
            )
            assert r.status == 201
    assert len(blob_files(settings.data_dir)) == 8  # 4 files + 4 previews

    # 300 days later: nothing due yet.
    report = await purge_expired(app, now + timedelta(days=300))
    assert report.reminded == [] and report.purged == []
    # 340 days: the reminder (once), to the requester and the expert.
    report = await purge_expired(app, now + timedelta(days=340))
    assert report.reminded == [closed] and report.purged == []
    [mail] = await smtp.wait_for("requerant@demo.consilium.fr")
    assert "Exporter tout" in smtp.text_of(mail)
    assert len(smtp.messages) == 2
    report = await purge_expired(app, now + timedelta(days=341))
    assert report.reminded == []
    # 366 days: purged; documents and blobs gone, the open dossier untouched, audit kept.
    report = await purge_expired(app, now + timedelta(days=366))
    assert report.purged == [closed] and report.blobs_deleted == 4
    assert len(blob_files(settings.data_dir)) == 4
    async with app[DB].read() as s:
        assert await s.get(Dossier, closed) is None
        assert await s.get(Dossier, still_open) is not None
        n = (await s.execute(select(func.count()).select_from(Document))).scalar_one()
        assert n == 2
        actions = set(
            (
                await s.execute(
                    select(AuditEntry.action).where(
                        AuditEntry.details["dossier_id"].as_string() == str(closed)
                    )
                )
            ).scalars()
        )
        purge = (
            await s.execute(select(AuditEntry).where(AuditEntry.action == "dossier.purge"))
        ).scalar_one()
    assert "document.add" in actions  # the trace of what happened stays
    assert purge.object_id == str(closed) and purge.details["documents"] == 2
    assert storage_of(app).blobs is not None


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_blobs_left_by_a_crash_are_swept_but_not_fresh_or_used_ones(
    app, client, users, settings
):
    import os
    import time

    from dossier.retention import sweep_orphans

    dossier_id = await make_dossier(app[DB], users)
    await client.sign_in_as(users["requester"].id)
    r = await client.post(
        f"/api/v1/dossiers/{dossier_id}/documents?filename=a.pdf", data=pdf_bytes(1)
    )
    assert r.status == 201
    storage = storage_of(app)
    old = await storage.blobs.put_bytes(b"orphan from a crash")
    fresh = await storage.blobs.put_bytes(b"a transaction still running")
    past = time.time() - 7200
    os.utime(storage.blobs.local_path(old.key), (past, past))
    for key in storage.blobs.list_keys():  # the document's own blobs are old too
        if key not in (old.key, fresh.key):
            os.utime(storage.blobs.local_path(key), (past, past))
    assert await sweep_orphans(app[DB], storage) == 1
    keys = storage.blobs.list_keys()
    assert old.key not in keys and fresh.key in keys and len(keys) == 3


async def test_the_retention_run_happens_on_one_node_of_the_cluster_at_a_time(
    app, settings, backend
):
    """Two nodes share one database: while one runs the purge, the other skips its turn."""
    from core.db import Database
    from core.events import EventBus
    from dossier.retention import run_once

    other = Database(settings.database_url, EventBus())
    try:
        async with other.cluster_lock("dossier-retention") as held:
            assert held
            # SQLite is the one-node setting: no cluster, the run always happens.
            assert await run_once(app) is (backend == "sqlite")
        assert await run_once(app) is True
        async with other.cluster_lock("dossier-retention") as held:
            assert held  # released by the run that finished
    finally:
        await other.close()
