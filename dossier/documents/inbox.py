"""The reconciliation list: DICOM exams received by the node (C-STORE) that matched no
dossier, or several, wait here for the secretariat instead of in an invisible folder.

One row per exam (Study Instance UID) with what the DICOM header says of the patient; its
instances are files under ``<data_dir>/dicom-inbox/<folder>/``. The secretariat attaches an
exam to a dossier (every instance through :func:`dossier.documents.store.add_document`, in
one transaction: all of them or none) or rejects it (the files are removed); both are
audited. Files leave the inbox only once the transaction that says so has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.db import Database, utcnow
from core.errors import Conflict, Forbidden, NotFound
from core.principal import Principal
from core.storage import StagedFile, Storage
from dossier.documents import access
from dossier.documents.dicom import DicomInfo, read_metadata
from dossier.documents.store import add_document, storage_for
from dossier.models import DicomInboxStudy

_SAFE = re.compile(r"[^0-9A-Za-z.\-]")


def inbox_root(data_dir: Path) -> Path:
    return data_dir / "dicom-inbox"


def _require_secretariat(principal: Principal) -> None:
    if principal.kind != "user" or principal.role not in ("secretary", "admin"):
        raise Forbidden(
            "La liste de rapprochement est réservée au secrétariat.", code="inbox_forbidden"
        )


async def keep_unmatched(
    db: Database,
    data_dir: Path,
    path: Path,
    info: DicomInfo,
    reason: str,
    candidates: list[uuid.UUID],
) -> DicomInboxStudy:
    """Put a received instance aside and list its exam for reconciliation (audited)."""
    study_uid = (info.study_uid or "unknown")[:64]
    folder = _SAFE.sub("_", study_uid)[:100]
    dest_dir = inbox_root(data_dir) / folder
    dest = dest_dir / f"{_SAFE.sub('_', info.sop_instance_uid or uuid.uuid4().hex)[:100]}.dcm"

    def keep_aside() -> None:
        dest_dir.mkdir(parents=True, exist_ok=True)
        path.replace(dest)

    await asyncio.to_thread(keep_aside)
    async with db.write() as uow:
        s = uow.session
        row = (
            await s.execute(
                select(DicomInboxStudy).where(
                    DicomInboxStudy.study_uid == study_uid, DicomInboxStudy.status == "pending"
                )
            )
        ).scalar_one_or_none()
        if row is None:
            row = DicomInboxStudy(
                study_uid=study_uid,
                folder=folder,
                patient_name=info.patient_name[:200],
                patient_id=info.patient_id[:64],
                patient_birth_date=info.patient_birth_date[:10],
                modality=info.modality[:16],
                study_date=info.study_date[:10],
                description=info.study_description[:200],
                reason=reason,
                candidates=[str(c) for c in candidates],
                instances=0,
                received_at=utcnow(),
                status="pending",
                comment="",
            )
            s.add(row)
        row.instances = len(list(dest_dir.glob("*.dcm")))
        await s.flush()
        audit.record(
            s,
            "dicom.unmatched",
            object_type="dicom",
            object_id=study_uid,
            actor_label="Consilium (nœud DICOM)",
            outcome="failure",
            reason=reason,
            candidates=[str(c) for c in candidates],
            patient_id=info.patient_id,
            modality=info.modality,
            inbox_id=str(row.id),
        )
    return row


async def pending_exams(db: Database, principal: Principal) -> list[DicomInboxStudy]:
    """The exams waiting for reconciliation, newest first (the listing is audited)."""
    _require_secretariat(principal)
    async with db.read() as s:
        rows = list(
            (
                await s.execute(
                    select(DicomInboxStudy)
                    .where(DicomInboxStudy.status == "pending")
                    .order_by(DicomInboxStudy.received_at.desc())
                )
            ).scalars()
        )
    await audit.record_now(
        db, "dicom_inbox.list", actor=principal, object_type="dicom_inbox", count=len(rows)
    )
    return rows


async def _pending(s: AsyncSession, item_id: uuid.UUID) -> DicomInboxStudy:
    row = await s.get(DicomInboxStudy, item_id)
    if row is None:
        raise NotFound("Examen introuvable dans la liste de rapprochement.", code="inbox_not_found")
    if row.status != "pending":
        raise Conflict("Cet examen a déjà été traité.", code="inbox_already_resolved")
    return row


def _remove_after_commit(s: AsyncSession, folder: Path) -> None:
    def after_commit(_session: Any) -> None:
        shutil.rmtree(folder, ignore_errors=True)

    event.listen(s.sync_session, "after_commit", after_commit, once=True)


async def attach_exam(
    db: Database,
    data_dir: Path,
    principal: Principal,
    item_id: uuid.UUID,
    dossier_id: uuid.UUID,
) -> DicomInboxStudy:
    """File every instance of a waiting exam into a dossier (all or none; audited)."""
    _require_secretariat(principal)
    async with db.write() as uow:
        s = uow.session
        row = await _pending(s, item_id)
        await access.require_document_write(s, principal, dossier_id)
        storage: Storage = storage_for(s)
        folder = inbox_root(data_dir) / row.folder
        files = sorted(folder.glob("*.dcm")) if folder.is_dir() else []
        if not files:
            raise Conflict("Les images de cet examen ne sont plus disponibles.", code="inbox_empty")

        def stage(src: Path) -> tuple[StagedFile, str]:
            # A copy in the staging area: the inbox keeps its file until the commit.
            dest = storage.staging.root / "once" / f"{uuid.uuid4().hex}.part"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            data = dest.read_bytes()
            info = read_metadata(dest)
            name = f"{info.modality or 'DICOM'} {info.study_date} {info.sop_instance_uid[-12:]}.dcm"
            return StagedFile(dest, len(data), hashlib.sha256(data).hexdigest(), data[:65536]), name

        staged_paths: list[Path] = []
        try:
            for src in files:
                staged, name = await asyncio.to_thread(stage, src)
                staged_paths.append(staged.path)
                await add_document(
                    uow,
                    principal,
                    dossier_id,
                    name,
                    staged,
                    "dicom_node",
                    meta={"inbox": str(row.id)},
                )
        except BaseException:
            for p in staged_paths:
                with contextlib.suppress(OSError):
                    p.unlink(missing_ok=True)
            raise
        row.status = "attached"
        row.dossier_id = dossier_id
        row.resolved_by_id = principal.subject_id
        row.resolved_at = utcnow()
        audit.record(
            s,
            "dicom_inbox.attach",
            actor=principal,
            object_type="dicom_inbox",
            object_id=row.id,
            dossier_id=str(dossier_id),
            study_uid=row.study_uid,
            instances=len(files),
        )
        _remove_after_commit(s, folder)
    return row


async def reject_exam(
    db: Database, data_dir: Path, principal: Principal, item_id: uuid.UUID, comment: str
) -> DicomInboxStudy:
    """Refuse a waiting exam: it is removed, with who and why in the audit log."""
    _require_secretariat(principal)
    async with db.write() as uow:
        s = uow.session
        row = await _pending(s, item_id)
        row.status = "rejected"
        row.comment = comment[:500]
        row.resolved_by_id = principal.subject_id
        row.resolved_at = utcnow()
        audit.record(
            s,
            "dicom_inbox.reject",
            actor=principal,
            object_type="dicom_inbox",
            object_id=row.id,
            study_uid=row.study_uid,
            patient_id=row.patient_id,
            comment=row.comment,
        )
        _remove_after_commit(s, inbox_root(data_dir) / row.folder)
    return row
