"""Resumable uploads for large files (a 1.5 GB imaging export over a hospital link).

The protocol follows tus (tus.io) in spirit, with the API's JSON conventions:

1. ``POST /api/v1/dossiers/{id}/uploads`` ``{filename, size, sha256?}`` → ``{id, offset: 0}``
2. ``PATCH /api/v1/uploads/{id}`` with header ``Upload-Offset: n`` and the next bytes as an
   ``application/offset+octet-stream`` body → 204 with the new ``Upload-Offset``.
3. After a cut, ``HEAD`` (or ``GET``) ``/api/v1/uploads/{id}`` gives the offset the server
   holds: every byte received before the cut is kept, and the client resumes from there.
4. ``POST /api/v1/uploads/{id}/complete`` checks size, checksum and content, and turns the
   bytes into a document through :func:`dossier.documents.add_document`.

The bytes live in the staging area under the upload's id; only the offset (the staged file's
size) is state, so a restart loses nothing. Chunks of one upload are serialised by a lock on
the staged file (:meth:`core.storage.Staging.exclusive`), whichever process or node each
request reaches: two PATCHes racing for the same offset cannot interleave.

The same resource speaks tus 1.0 (core, creation, checksum, termination) for tus clients
(tus-js-client, Uppy): ``POST /api/v1/dossiers/{id}/tus`` creates it from ``Upload-Length``
and ``Upload-Metadata``, and a tus client's last PATCH completes it (no step 4).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from sqlalchemy import select

from core import audit
from core.db import Database, UnitOfWork, utcnow
from core.errors import Conflict, Gone, NotFound, Problem, TooLarge, ValidationFailed
from core.principal import Principal
from core.storage import Storage
from dossier.documents import access as doc_access
from dossier.documents import filetypes
from dossier.documents.store import add_document
from dossier.models import Document, Upload

UPLOAD_TTL = timedelta(hours=24)
_SHA = re.compile(r"^[0-9a-f]{64}$")


class OffsetMismatch(Conflict):
    code = "offset_mismatch"
    title = "The chunk does not start where the upload stands"


class UploadBusy(Problem):
    status, code, title = 423, "upload_busy", "Another request is writing this upload"


class ChecksumMismatch(Problem):
    # tus 1.0 checksum extension: "460 Checksum Mismatch"
    status, code, title = 460, "checksum_mismatch", "Checksum Mismatch"


#: algorithms a chunk's ``Upload-Checksum`` may use (tus checksum extension; IANA names)
CHECKSUM_ALGORITHMS = ("sha1", "sha256", "sha512", "md5")
#: how long a chunk waits for another request still writing the same upload
LOCK_WAIT_SECONDS = 10.0


@asynccontextmanager
async def _exclusive(storage: Storage, upload_id: uuid.UUID) -> AsyncIterator[None]:
    """One writer per upload, whichever process or node each request reached."""
    async with storage.staging.exclusive(upload_id.hex, LOCK_WAIT_SECONDS) as held:
        if not held:
            raise UploadBusy(
                "Un autre envoi écrit encore ce fichier ; réessayez dans un instant.",
                retry_after=1,
            )
        yield


async def create_upload(
    uow: UnitOfWork,
    principal: Principal,
    dossier_id: uuid.UUID,
    *,
    filename: str,
    size: int,
    sha256: str = "",
    max_bytes: int,
) -> Upload:
    session = uow.session
    await doc_access.require_document_write(session, principal, dossier_id)
    filename = filetypes.sanitize_filename(filename)
    if size <= 0:
        raise ValidationFailed("Le fichier est vide.", code="empty_file")
    if size > max_bytes:
        raise TooLarge(f"Le fichier dépasse la taille maximale de {max_bytes} octets.")
    sha256 = sha256.lower()
    if sha256 and not _SHA.match(sha256):
        raise ValidationFailed("sha256 : 64 chiffres hexadécimaux.", code="bad_checksum")
    up = Upload(
        id=uuid.uuid4(),
        dossier_id=dossier_id,
        owner_id=principal.subject_id,
        filename=filename,
        size=size,
        sha256=sha256,
        created_at=utcnow(),
        expires_at=utcnow() + UPLOAD_TTL,
    )
    session.add(up)
    audit.record(
        session,
        "document.upload_start",
        actor=principal,
        object_type="document",
        object_id=up.id,
        dossier_id=str(dossier_id),
        filename=filename,
        size=size,
    )
    return up


async def start_upload(
    db: Database,
    principal: Principal,
    dossier_id: uuid.UUID,
    *,
    filename: str,
    size: int,
    sha256: str = "",
    max_bytes: int,
) -> Upload:
    """Start a resumable upload: :func:`create_upload` in a transaction of its own."""
    async with db.write() as uow:
        return await create_upload(
            uow,
            principal,
            dossier_id,
            filename=filename,
            size=size,
            sha256=sha256,
            max_bytes=max_bytes,
        )


async def get_upload(db: Database, principal: Principal, upload_id: uuid.UUID) -> Upload:
    async with db.read() as session:
        up = await session.get(Upload, upload_id)
    if up is None or up.owner_id != principal.subject_id:
        raise NotFound("Envoi introuvable.", code="upload_not_found")
    if up.expires_at < utcnow():
        raise Gone("Cet envoi a expiré ; recommencez.", code="upload_expired")
    return up


async def append_chunk(
    db: Database,
    storage: Storage,
    principal: Principal,
    upload_id: uuid.UUID,
    offset: int,
    chunks: AsyncIterable[bytes],
    checksum: tuple[str, bytes] | None = None,
) -> tuple[int, int]:
    """Append the bytes of one PATCH at ``offset``; returns (new offset, upload length).

    A connection cut in the middle keeps what arrived: the client asks for the offset and
    sends the rest. With a ``checksum`` (algorithm, digest) the chunk is kept only when its
    bytes match it; otherwise the file goes back to ``offset`` (460).
    """
    up = await get_upload(db, principal, upload_id)
    if up.document_id is not None:
        raise OffsetMismatch("Cet envoi est déjà terminé.", offset=up.size)
    async with _exclusive(storage, upload_id):
        current = storage.staging.resumable_size(up.id.hex)
        if offset != current:
            raise OffsetMismatch(
                f"Le serveur détient {current} octets ; reprenez à cet offset.", offset=current
            )
        digest = hashlib.new(checksum[0]) if checksum else None
        w = storage.staging.append(up.id.hex, limit=up.size)
        try:
            async for chunk in chunks:
                await w.write(chunk)
                if digest is not None:
                    digest.update(chunk)
        except TooLarge:
            await w.close_keep()
            if digest is not None:
                storage.staging.truncate(up.id.hex, offset)
            raise TooLarge(
                f"Plus d'octets que les {up.size} annoncés.", code="upload_overflow"
            ) from None
        except BaseException:
            # A cut connection (aiohttp payload error, cancellation): keep what arrived,
            # unless the chunk carried a checksum that can no longer be verified.
            await w.close_keep()
            if digest is not None:
                storage.staging.truncate(up.id.hex, offset)
            raise
        new = await w.close_keep()
        if checksum is not None and digest is not None and digest.digest() != checksum[1]:
            storage.staging.truncate(up.id.hex, offset)
            raise ChecksumMismatch(
                "Le bloc reçu ne correspond pas à sa somme de contrôle ; renvoyez-le.",
                offset=offset,
            )
        return new, up.size


async def current_offset(storage: Storage, up: Upload) -> int:
    """The bytes held, once any chunk still being written has been flushed."""
    if up.document_id is not None:
        return up.size
    async with _exclusive(storage, up.id):
        return storage.staging.resumable_size(up.id.hex)


async def complete_upload(
    db: Database,
    storage: Storage,
    principal: Principal,
    upload_id: uuid.UUID,
    *,
    keep_row: bool = False,
) -> Document:
    """Turn a fully received upload into a document (checksum, content, name checked).

    ``keep_row``: the upload stays, naming its document, until it expires (a tus client
    whose last answer was lost asks HEAD and learns it was done); otherwise it goes.
    """
    up = await get_upload(db, principal, upload_id)
    if up.document_id is not None:
        async with db.read() as session:
            done = await session.get(Document, up.document_id)
        if done is None:
            raise NotFound("Le document de cet envoi a été retiré.", code="document_not_found")
        return done
    async with _exclusive(storage, upload_id):
        have = storage.staging.resumable_size(up.id.hex)
        if have != up.size:
            raise OffsetMismatch(
                f"Envoi incomplet : {have} octets reçus sur {up.size}.", offset=have
            )
        staged = await storage.staging.seal(up.id.hex)
        try:
            if up.sha256 and staged.sha256 != up.sha256:
                raise ValidationFailed(
                    "La somme de contrôle SHA-256 ne correspond pas au fichier reçu.",
                    code="checksum_mismatch",
                    sha256=staged.sha256,
                )
            async with db.write() as uow:
                doc = await add_document(
                    uow, principal, up.dossier_id, up.filename, staged, "upload"
                )
                row = await uow.session.get(Upload, up.id)
                if row is not None and keep_row:
                    row.document_id = doc.id
                elif row is not None:
                    await uow.session.delete(row)
            storage.staging.discard(up.id.hex)  # the lock file left beside the bytes
            return doc
        except Problem:
            # The bytes are refused for good (content, checksum): nothing is left behind.
            await abort_upload(db, storage, principal, up.id, reason="refused")
            raise


async def abort_upload(
    db: Database, storage: Storage, principal: Principal, upload_id: uuid.UUID, reason: str = ""
) -> None:
    async with db.write() as uow:
        up = await uow.session.get(Upload, upload_id)
        if up is None or up.owner_id != principal.subject_id:
            raise NotFound("Envoi introuvable.", code="upload_not_found")
        await uow.session.delete(up)
        audit.record(
            uow.session,
            "document.upload_abort",
            actor=principal,
            object_type="document",
            object_id=upload_id,
            dossier_id=str(up.dossier_id),
            reason=reason or "cancelled",
        )
    storage.staging.discard(upload_id.hex)


async def purge_stale_uploads(db: Database, storage: Storage) -> int:
    """Drop uploads nobody finished within their lifetime."""
    now = utcnow()
    async with db.write() as uow:
        rows = list(
            (await uow.session.execute(select(Upload).where(Upload.expires_at < now))).scalars()
        )
        for up in rows:
            await uow.session.delete(up)
    for up in rows:
        storage.staging.discard(up.id.hex)
    return len(rows)
