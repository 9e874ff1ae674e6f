"""Retention: closed dossiers are purged after ``retention_days``, with a reminder before.

Téléexpertise files are not meant to be kept on the platform (seed 000): each participant
files the report in their own record. ``retention_reminder_days`` before the purge, the
requester and the expert receive an e-mail inviting them to export the dossier. At the
purge, the documents, their blobs, the vault deposits and the dossier's own rows go; the
audit log stays (it records that the dossier existed and who did what, not its content).

:func:`purge_expired` is a plain function (``now`` is a parameter) so tests and operators
can run it at will; :func:`start` runs it periodically inside the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aiohttp import web
from sqlalchemy import delete, select, update

from core import audit
from core.accounts import User
from core.config import Settings
from core.context import DB, NOTIFIER, SETTINGS
from core.db import Database, utcnow
from core.notify import DeliveryError, Email, Notifier
from core.paris_time import paris_date
from core.storage import Storage
from core.storage import of as storage_of
from dossier.documents.store import on_commit_delete
from dossier.documents.uploads import purge_stale_uploads
from dossier.models import (
    Document,
    Dossier,
    DossierState,
    Patient,
    RetentionNotice,
    Upload,
    UserSignature,
    VaultDeposit,
)
from rooms.models import RoomAttachment  # files sent in rooms share the blob store

log = logging.getLogger(__name__)
INTERVAL_SECONDS = 3600


@dataclass
class PurgeReport:
    reminded: list[uuid.UUID] = field(default_factory=list)
    purged: list[uuid.UUID] = field(default_factory=list)
    blobs_deleted: int = 0


async def _remind(
    db: Database, notifier: Notifier, settings: Settings, now: datetime
) -> list[uuid.UUID]:

    keep = timedelta(days=settings.retention_days)
    window = timedelta(days=settings.retention_days - settings.retention_reminder_days)
    if settings.retention_reminder_days <= 0:
        return []
    async with db.read() as session:
        rows = (
            await session.execute(
                select(Dossier, Patient)
                .join(Patient, Patient.id == Dossier.patient_id)
                .where(
                    Dossier.state == DossierState.closed,
                    Dossier.closed_at.is_not(None),
                    Dossier.closed_at <= now - window,
                    Dossier.closed_at > now - keep,
                    Dossier.id.not_in(select(RetentionNotice.dossier_id)),
                )
            )
        ).all()
        people: dict[uuid.UUID, list[User]] = {}
        for d, _p in rows:
            ids = {i for i in (d.requester_id, d.expert_id) if i}
            people[d.id] = [u for i in ids if (u := await session.get(User, i)) is not None]
    done: list[uuid.UUID] = []
    for d, p in rows:
        assert d.closed_at is not None
        purge_at = d.closed_at + keep
        for user in people[d.id]:
            with contextlib.suppress(DeliveryError):
                await notifier.send_email(
                    Email(
                        to=user.email,
                        subject=(
                            f"[Consilium] Dossier n° {d.number} bientôt supprimé : "
                            "pensez à l'exporter"
                        ),
                        text=(
                            f"Bonjour {user.display_name},\n\nLe dossier n° {d.number} de "
                            f"{p.display_name}, clôturé le {paris_date(d.closed_at)}, sera "
                            f"supprimé de Consilium le {paris_date(purge_at)}.\n\n"
                            "Si ce n'est déjà fait, exportez-le (« Exporter tout ») vers le "
                            "dossier patient de votre établissement ou de votre cabinet :\n"
                            f"{settings.public_url}/dossiers/{d.id}\n"
                        ),
                    )
                )
        async with db.write() as uow:
            uow.session.add(
                RetentionNotice(
                    dossier_id=d.id,
                    reminded_at=now,
                    purge_after=purge_at,
                    recipients=",".join(u.email for u in people[d.id])[:600],
                )
            )
            audit.record(
                uow.session,
                "dossier.retention_reminder",
                object_type="dossier",
                object_id=d.id,
                actor_label="Consilium",
                purge_after=purge_at.isoformat(),
            )
        done.append(d.id)
    return done


async def purge_dossier(db: Database, storage: Storage, dossier_id: uuid.UUID, why: str) -> int:
    """Delete a dossier's content and blobs (audit rows stay); returns the blobs removed."""

    async with db.write() as uow:
        s = uow.session
        docs = list(
            (await s.execute(select(Document).where(Document.dossier_id == dossier_id))).scalars()
        )
        keys = [k for d in docs for k in (d.blob_key, d.preview_key) if k]
        uploads = list(
            (await s.execute(select(Upload.id).where(Upload.dossier_id == dossier_id))).scalars()
        )
        await s.execute(delete(VaultDeposit).where(VaultDeposit.dossier_id == dossier_id))
        await s.execute(
            update(Document).where(Document.dossier_id == dossier_id).values(previous_id=None)
        )
        await s.execute(delete(Document).where(Document.dossier_id == dossier_id))
        await s.execute(delete(Upload).where(Upload.dossier_id == dossier_id))
        await s.execute(delete(RetentionNotice).where(RetentionNotice.dossier_id == dossier_id))
        d = await s.get(Dossier, dossier_id)
        if d is not None:
            await s.delete(d)
        audit.record(
            s,
            "dossier.purge",
            object_type="dossier",
            object_id=dossier_id,
            actor_label="Consilium",
            reason=why,
            documents=len(docs),
        )
        on_commit_delete(s, storage, keys)
    for up in uploads:
        storage.staging.discard(up.hex)
    return len(keys)


async def purge_expired(
    app_or_db: web.Application | Database,
    now: datetime,
    *,
    settings: Settings | None = None,
    storage: Storage | None = None,
    notifier: Notifier | None = None,
) -> PurgeReport:
    """Send due reminders and purge closed dossiers past the retention period."""

    if isinstance(app_or_db, web.Application):
        db = app_or_db[DB]
        settings = settings or app_or_db[SETTINGS]
        storage = storage or storage_of(app_or_db)
        notifier = notifier or app_or_db[NOTIFIER]
    else:
        db = app_or_db
    assert settings is not None and storage is not None, "settings and storage are needed"
    report = PurgeReport()
    if notifier is not None:
        report.reminded = await _remind(db, notifier, settings, now)
    limit = now - timedelta(days=settings.retention_days)
    async with db.read() as session:
        due = list(
            (
                await session.execute(
                    select(Dossier.id).where(
                        Dossier.state == DossierState.closed,
                        Dossier.closed_at.is_not(None),
                        Dossier.closed_at <= limit,
                    )
                )
            ).scalars()
        )
    for dossier_id in due:
        try:
            report.blobs_deleted += await purge_dossier(
                db, storage, dossier_id, f"retention {settings.retention_days} days"
            )
            report.purged.append(dossier_id)
        except Exception:  # one failing dossier must not stop the others
            log.exception("purge of dossier %s failed", dossier_id)
    return report


async def sweep_orphans(db: Database, storage: Storage, min_age_seconds: float = 3600) -> int:
    """Delete blobs no row refers to (left by a process killed mid-write), and old staging
    files. Fresh blobs are spared: they may belong to a transaction still running."""

    async with db.read() as session:
        used: set[str] = set()
        for col in (
            Document.blob_key,
            Document.preview_key,
            UserSignature.blob_key,
            RoomAttachment.blob_key,
        ):
            used.update(k for k in (await session.execute(select(col))).scalars() if k)
    removed = 0
    for key in await asyncio.to_thread(storage.blobs.list_keys):
        if key in used:
            continue
        try:
            if storage.blobs.age_seconds(key) < min_age_seconds:
                continue
        except FileNotFoundError:
            continue
        await storage.blobs.delete(key)
        removed += 1
    removed += await asyncio.to_thread(storage.staging.sweep, 86400)
    return removed


async def run_once(app: web.Application) -> bool:
    """One retention run (reminders, purge, stale uploads, orphan blobs), once per cluster:
    the node that holds the lock runs it and the others skip (False)."""

    async with app[DB].cluster_lock("dossier-retention") as held:
        if held:
            await purge_expired(app, utcnow())
            await purge_stale_uploads(app[DB], storage_of(app))
            await sweep_orphans(app[DB], storage_of(app))
        return held


def start(app: web.Application) -> None:
    """Run the purge every hour in the server (first run a minute after start), on one node
    of the cluster at a time (:meth:`core.db.Database.cluster_lock`)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:

        async def loop() -> None:
            await asyncio.sleep(60)
            while True:
                try:
                    await run_once(app)
                except Exception:
                    log.exception("retention run failed")
                await asyncio.sleep(INTERVAL_SECONDS)

        task = asyncio.create_task(loop(), name="dossier-retention")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(ctx)
