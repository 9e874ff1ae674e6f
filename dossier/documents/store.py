"""Documents of a dossier: the one write path every source goes through, and the actions
the document routes call.

Uploads, resumable uploads, snapshots and screenshots taken during a call, files sent in a
room's chat, generated reports and stamped versions all end in :func:`add_document`. It
checks the name and the bytes, computes the preview and the DICOM metadata, moves the staged
file into the blob store and adds the row and its audit entry in the caller's transaction.
If that transaction rolls back, the blob is removed again: a blob without a row, or a row
without a blob, is never left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from core import audit
from core.db import Database, UnitOfWork, utcnow
from core.errors import Conflict, NotFound, ValidationFailed
from core.heavy import run_heavy
from core.principal import Principal
from core.storage import StagedFile, Storage
from dossier.documents import access, filetypes, previews, seen
from dossier.documents.dicom import DicomInfo, Identity, identity_mismatches, read_metadata
from dossier.models import Document, Dossier, Patient

Source = Literal[
    "upload", "snapshot", "screenshot", "chat", "report", "stamp", "dicom_node", "pacs", "dicomweb"
]
SOURCE_LABELS = {
    "upload": "Ajouté",
    "snapshot": "Capture pendant l'appel",
    "screenshot": "Capture d'écran pendant l'appel",
    "chat": "Transmis dans la salle",
    "report": "Compte-rendu généré",
    "stamp": "Signature apposée",
    "dicom_node": "Reçu d'une modalité DICOM",
    "pacs": "Importé du PACS",
    "dicomweb": "Reçu par DICOMweb",
}


# -- storage lookup ---------------------------------------------------------------------

# The storage of each running app, by database engine: lets add_document(uow, …) be called
# from any package with just the unit of work it already has.
_STORAGES: weakref.WeakKeyDictionary[Any, Storage] = weakref.WeakKeyDictionary()


def register_storage(engine: AsyncEngine, storage: Storage) -> None:
    _STORAGES[engine.sync_engine] = storage


def storage_for(session: AsyncSession) -> Storage:
    bind = session.bind
    engine = getattr(bind, "sync_engine", bind)
    try:
        return _STORAGES[engine]
    except KeyError:
        raise RuntimeError("documents: setup_documents(app) was not called") from None


def on_rollback_delete(session: AsyncSession, storage: Storage, key: str) -> None:
    """Remove ``key`` if the transaction that would reference it rolls back."""
    sync = session.sync_session

    def cleanup(_session: Any) -> None:
        path = storage.blobs.local_path(key)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        else:  # a remote store: best effort, the orphan sweep catches the rest
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().create_task(storage.blobs.delete(key))

    def forget(_session: Any) -> None:
        with contextlib.suppress(Exception):
            event.remove(sync, "after_soft_rollback", on_rollback)

    def on_rollback(_session: Any, _previous: Any) -> None:
        cleanup(_session)

    event.listen(sync, "after_soft_rollback", on_rollback)
    event.listen(sync, "after_commit", forget, once=True)


def on_commit_delete(session: AsyncSession, storage: Storage, keys: list[str]) -> None:
    """Delete blobs once the transaction removing their rows has committed."""

    def after_commit(_session: Any) -> None:
        for key in keys:
            path = storage.blobs.local_path(key)
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            else:
                with contextlib.suppress(RuntimeError):
                    asyncio.get_running_loop().create_task(storage.blobs.delete(key))

    event.listen(session.sync_session, "after_commit", after_commit, once=True)


# -- the dossier's patient, for DICOM matching -------------------------------------------


async def patient_identity(session: AsyncSession, dossier_id: uuid.UUID) -> Identity | None:
    row = (
        await session.execute(
            select(Patient)
            .join(Dossier, Dossier.patient_id == Patient.id)
            .where(Dossier.id == dossier_id)
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    bd: date = row.birth_date
    return Identity(
        family_names=tuple(n for n in (row.birth_name, row.used_name) if n),
        given_names=tuple(
            n for n in (row.first_name, row.used_first_name, *row.first_names.split()) if n
        ),
        birth_date=bd.isoformat(),
        ids=tuple(i for i in (row.ins, row.ipp) if i),
    )


# -- the write path ---------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    filetype: filetypes.FileType
    dicom: DicomInfo | None


async def _inspect(filename: str, staged: StagedFile) -> Checked:
    t = await asyncio.to_thread(filetypes.check, filename, staged.head, staged.path)
    info = None
    if t is filetypes.DICOM:
        info = await asyncio.to_thread(read_metadata, staged.path)
    else:
        await run_heavy(filetypes.check_structure, t, staged.path, filename)
    return Checked(t, info)


async def add_document(
    uow: UnitOfWork,
    principal: Principal | None,
    dossier_id: uuid.UUID,
    filename: str,
    data: bytes | AsyncIterable[bytes] | StagedFile,
    source: Source = "upload",
    *,
    previous: Document | None = None,
    meta: dict[str, Any] | None = None,
    category: str | None = None,
    check_permission: bool = True,
) -> Document:
    """Add a file to a dossier: THE write path for documents, whatever their source.

    ``data`` is the bytes, an async iterable of chunks (streamed, never held whole), or a
    file already staged by a resumable upload. The caller's ``uow`` commits the row; the
    permission to add documents to the dossier is checked here (``principal=None`` is the
    system itself, e.g. a DICOM node, and skips it).
    """
    session = uow.session
    storage = storage_for(session)
    staged: StagedFile | None = None
    try:
        filename = filetypes.sanitize_filename(filename)
        if check_permission and principal is not None:
            await access.require_document_write(session, principal, dossier_id)
        staged = await storage.staging.stage(data)
        if staged.size == 0:
            raise ValidationFailed("Le fichier est vide.", code="empty_file")
        checked = await _inspect(filename, staged)
    except BaseException:
        if staged is not None and not isinstance(data, StagedFile):
            storage.staging.discard_file(staged)
        raise
    warning = ""
    doc_meta = dict(meta or {})
    if checked.dicom is not None:
        doc_meta["dicom"] = checked.dicom.as_dict()
        who = await patient_identity(session, dossier_id)
        reasons = identity_mismatches(checked.dicom, who) if who else ["Patient du dossier inconnu"]
        warning = " ; ".join(reasons)
    preview = await run_heavy(previews.render, checked.filetype.category, staged.path)
    blob = await storage.blobs.put(staged)
    on_rollback_delete(session, storage, blob.key)
    preview_key = None
    if preview:
        pblob = await storage.blobs.put_bytes(preview)
        preview_key = pblob.key
        on_rollback_delete(session, storage, pblob.key)
    doc = Document(
        id=uuid.uuid4(),
        dossier_id=dossier_id,
        filename=filename,
        category=category or checked.filetype.category,
        content_type=checked.filetype.mime,
        size=blob.size,
        sha256=blob.sha256,
        blob_key=blob.key,
        preview_key=preview_key,
        source=source,
        author_id=principal.subject_id if principal else None,
        author_kind=principal.kind if principal else "system",
        author_label=principal.label if principal else "Consilium",
        created_at=utcnow(),
        previous_id=previous.id if previous else None,
        version=(previous.version + 1) if previous else 1,
        meta=doc_meta,
        identity_mismatch=bool(warning),
        identity_warning=warning,
    )
    session.add(doc)
    await session.flush()
    audit.record(
        session,
        "document.add",
        actor=principal,
        object_type="document",
        object_id=doc.id,
        dossier_id=str(dossier_id),
        filename=filename,
        category=doc.category,
        size=doc.size,
        sha256=doc.sha256,
        source=source,
        identity_mismatch=doc.identity_mismatch,
    )
    uow.emit(
        "document.added",
        {
            "dossier_id": str(dossier_id),
            "document_id": str(doc.id),
            "filename": filename,
            "category": doc.category,
            "identity_mismatch": doc.identity_mismatch,
        },
        dossier_id=str(dossier_id),
    )
    return doc


async def get_document(
    session: AsyncSession, document_id: uuid.UUID, dossier_id: uuid.UUID | None = None
) -> Document:
    doc = await session.get(Document, document_id)
    if doc is None or (dossier_id is not None and doc.dossier_id != dossier_id):
        raise NotFound("Document introuvable.", code="document_not_found")
    return doc


async def list_documents(session: AsyncSession, dossier_id: uuid.UUID) -> list[Document]:
    rows = await session.execute(
        select(Document)
        .where(Document.dossier_id == dossier_id)
        .order_by(Document.created_at, Document.filename)
    )
    return list(rows.scalars())


async def confirm_identity(
    uow: UnitOfWork, principal: Principal, document_id: uuid.UUID, dossier_id: uuid.UUID
) -> Document:
    """A human confirms that a flagged DICOM study belongs to this dossier's patient."""
    session = uow.session
    await access.require_document_write(session, principal, dossier_id)
    doc = await get_document(session, document_id, dossier_id)
    if not doc.identity_mismatch:
        raise Conflict("Ce document n'attend pas de confirmation.", code="nothing_to_confirm")
    if doc.identity_confirmed_at is None:
        doc.identity_confirmed_at = utcnow()
        doc.identity_confirmed_by_id = principal.subject_id
        audit.record(
            session,
            "document.identity_confirm",
            actor=principal,
            object_type="document",
            object_id=doc.id,
            dossier_id=str(dossier_id),
            warning=doc.identity_warning,
        )
    return doc


async def delete_document(
    uow: UnitOfWork, principal: Principal, document_id: uuid.UUID, dossier_id: uuid.UUID
) -> None:
    """Remove a document added by mistake (its blobs go once the removal has committed)."""
    session = uow.session
    await access.require_document_write(session, principal, dossier_id)
    doc = await get_document(session, document_id, dossier_id)
    if doc.source == "report" and doc.meta.get("signed"):
        raise Conflict("Un compte-rendu signé ne se supprime pas.", code="report_locked")
    if doc.author_id != principal.subject_id and not principal.is_admin:
        raise Conflict("Seul l'auteur d'un document peut le retirer.", code="not_document_author")
    keys = [k for k in (doc.blob_key, doc.preview_key) if k]
    audit.record(
        session,
        "document.delete",
        actor=principal,
        object_type="document",
        object_id=doc.id,
        dossier_id=str(dossier_id),
        filename=doc.filename,
        sha256=doc.sha256,
    )
    await session.delete(doc)
    on_commit_delete(session, storage_for(session), keys)


def blob_path(storage: Storage, key: str) -> Path | None:
    return storage.blobs.local_path(key)


# -- the actions the routes call (one transaction each) ------------------------------------


async def upload_document(
    db: Database,
    principal: Principal,
    dossier_id: uuid.UUID,
    filename: str,
    chunks: AsyncIterable[bytes],
) -> Document:
    """Add a document streamed by its author (a single-request upload)."""
    async with db.write() as uow:
        return await add_document(uow, principal, dossier_id, filename, chunks)


async def remove_document(
    db: Database, principal: Principal, document_id: uuid.UUID, dossier_id: uuid.UUID
) -> None:
    async with db.write() as uow:
        await delete_document(uow, principal, document_id, dossier_id)


async def confirm_document_identity(
    db: Database, principal: Principal, document_id: uuid.UUID, dossier_id: uuid.UUID
) -> Document:
    async with db.write() as uow:
        return await confirm_identity(uow, principal, document_id, dossier_id)


async def documents_for_reader(
    db: Database, principal: Principal, dossier_id: uuid.UUID
) -> list[Document]:
    """The dossier's documents for someone who may read them (the listing is audited)."""
    async with db.read() as session:
        await access.require_document_read(session, principal, dossier_id)
        docs = await list_documents(session, dossier_id)
    await audit.record_now(
        db,
        "document.list",
        actor=principal,
        object_type="dossier",
        object_id=dossier_id,
        count=len(docs),
    )
    return docs


async def readable_document(
    db: Database, principal: Principal, dossier_id: uuid.UUID, document_id: uuid.UUID
) -> Document:
    """A document the principal may read (the caller audits what is read with
    :func:`record_read`: a video's seeks are one viewing)."""
    async with db.read() as session:
        await access.require_document_read(session, principal, dossier_id)
        return await get_document(session, document_id, dossier_id)


async def record_read(
    db: Database,
    principal: Principal,
    doc: Document,
    what: str,
    *,
    opens: bool = False,
    **details: Any,
) -> None:
    """Audit a read. ``opens``: the reader opened the document itself (its content, or an
    image in the viewer), not a thumbnail: a report or an exam is then seen by that user
    (:mod:`dossier.documents.seen`), in the audit row's transaction."""
    row = {
        "actor": principal,
        "object_type": "document",
        "object_id": doc.id,
        "dossier_id": str(doc.dossier_id),
        "filename": doc.filename,
        "what": what,
        **details,
    }
    if opens and principal.is_user and seen.is_result(doc):
        async with db.read() as session:
            fresh = not await seen.already_seen(session, principal.subject_id, doc.id)
        if fresh:
            async with db.write() as uow:
                audit.record(uow.session, "document.read", **row)
                ids = await seen.same_result(uow.session, doc)
                await seen.mark(uow.session, principal.subject_id, ids, "opened")
            return
    await audit.record_now(db, "document.read", **row)
