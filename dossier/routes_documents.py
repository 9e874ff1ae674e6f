"""HTTP routes for documents, uploads, signature picture, report, sending, vault and export.

Routes only translate: they read the request, call the write path or the read helper, and
shape the answer. Upload routes read ``request.content`` as a stream, which is why they are
not bound by the app's ``client_max_size`` (that limit applies to JSON bodies); the
document size limit is ``settings.max_upload_bytes``, enforced while streaming.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote

from aiohttp import BodyPartReader, ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, Field, field_validator

from core import audit
from core.api import Api, multipart_reader
from core.auth import client_ip
from core.auth import principal as principal_of
from core.context import DB, LIMITER, NOTIFIER, SETTINGS
from core.db import utcnow
from core.errors import (
    BadRequest,
    Gone,
    NotFound,
    Problem,
    TooLarge,
    TooManyRequests,
    ValidationFailed,
)
from core.heavy import run_heavy
from core.storage import Storage
from core.storage import of as storage_of
from dossier import doc_access, signing, stamp, uploads
from dossier.dicom import instance_sort_key, render_frame
from dossier.documents import (
    SOURCE_LABELS,
    Document,
    UserSignature,
    add_document,
    confirm_identity,
    delete_document,
    get_document,
    list_documents,
    register_storage,
)
from dossier.export import archive_name, stream_zip, zip_name_of
from dossier.filetypes import CATEGORIES
from dossier.report import build_signed_report, generate_report
from dossier.sending import PARIS, find_deposit, open_deposit, send_mss, send_vault

TAGS = ["documents"]
STAMPABLE = {"application/pdf", "image/png", "image/jpeg", "image/webp"}
STREAM_CHUNK = 256 * 1024

# -- models -----------------------------------------------------------------------------


class DocumentOut(BaseModel):
    id: uuid.UUID
    dossier_id: uuid.UUID
    filename: str
    category: str
    category_label: str
    content_type: str
    size: int
    sha256: str
    source: str
    source_label: str
    author_id: uuid.UUID | None
    author_label: str
    created_at: datetime
    version: int
    previous_id: uuid.UUID | None
    has_preview: bool
    identity_mismatch: bool
    identity_warning: str
    identity_confirmed_at: datetime | None
    pending_identity_check: bool
    meta: dict[str, Any]

    @classmethod
    def of(cls, d: Document) -> DocumentOut:
        return cls(
            id=d.id,
            dossier_id=d.dossier_id,
            filename=d.filename,
            category=d.category,
            category_label=CATEGORIES.get(d.category, d.category),
            content_type=d.content_type,
            size=d.size,
            sha256=d.sha256,
            source=d.source,
            source_label=SOURCE_LABELS.get(d.source, d.source),
            author_id=d.author_id,
            author_label=d.author_label,
            created_at=d.created_at,
            version=d.version,
            previous_id=d.previous_id,
            has_preview=d.preview_key is not None,
            identity_mismatch=d.identity_mismatch,
            identity_warning=d.identity_warning,
            identity_confirmed_at=d.identity_confirmed_at,
            pending_identity_check=d.pending_identity_check,
            meta=d.meta or {},
        )


class SeriesImageOut(BaseModel):
    """One instance of a series, in scrolling order (a multi-frame file counts its frames)."""

    document_id: uuid.UUID
    instance_number: int | None
    frames: int
    slice_location: float | None


class SeriesOut(BaseModel):
    """One series of a study: what the viewer scrolls through."""

    series_uid: str
    number: str
    description: str
    modality: str
    instances: int
    images: int  # frames of all its instances
    identity_mismatch: bool
    items: list[SeriesImageOut]  # ordered: Instance Number, Slice Location, position


class StudyOut(BaseModel):
    """The DICOM instances of one study, shown as one exam."""

    study_uid: str
    study_date: str
    description: str
    modalities: list[str]
    patient_name: str
    instances: int
    document_ids: list[uuid.UUID]
    identity_mismatch: bool
    series: list[SeriesOut] = Field(default_factory=list)


class PreviewQuery(BaseModel):
    """A DICOM frame and window for the viewer (without them, the stored preview)."""

    frame: int | None = Field(None, ge=1, le=1_000_000, description="1-based frame number")
    wc: float | None = Field(None, ge=-1e7, le=1e7, description="window center")
    ww: float | None = Field(None, ge=1, le=1e7, description="window width")


class CategoryOut(BaseModel):
    code: str
    label: str
    count: int
    documents: list[DocumentOut]
    studies: list[StudyOut] = Field(default_factory=list)  # DICOM only


def _series(members: list[DocumentOut]) -> list[SeriesOut]:
    by_uid: dict[str, list[DocumentOut]] = {}
    for d in members:  # members come in upload order: the last tie-break
        uid = str((d.meta.get("dicom") or {}).get("series_uid", "")) or str(d.id)
        by_uid.setdefault(uid, []).append(d)
    out = []
    for uid, docs in by_uid.items():
        docs = sorted(docs, key=lambda d: instance_sort_key(d.meta.get("dicom") or {}))
        metas = [d.meta.get("dicom") or {} for d in docs]
        items = [
            SeriesImageOut(
                document_id=d.id,
                instance_number=m.get("instance_number"),
                frames=max(1, int(m.get("frames") or 1)),
                slice_location=m.get("slice_location"),
            )
            for d, m in zip(docs, metas, strict=True)
            if d.has_preview or m.get("has_pixels")
        ]
        if not items:
            continue
        number = str(metas[0].get("series_number", ""))
        out.append(
            SeriesOut(
                series_uid=uid,
                number=number,
                description=str(metas[0].get("series_description", "")),
                modality=str(metas[0].get("modality", "")),
                instances=len(items),
                images=sum(i.frames for i in items),
                identity_mismatch=any(d.pending_identity_check for d in docs),
                items=items,
            )
        )

    def by_number(s: SeriesOut) -> tuple[bool, float, str]:
        try:
            return (False, float(s.number), s.description)
        except ValueError:
            return (True, 0.0, s.description)

    return sorted(out, key=by_number)


def _studies(docs: list[DocumentOut]) -> list[StudyOut]:
    by_uid: dict[str, list[DocumentOut]] = {}
    for d in docs:
        uid = str((d.meta.get("dicom") or {}).get("study_uid", "")) or str(d.id)
        by_uid.setdefault(uid, []).append(d)
    out = []
    for uid, members in by_uid.items():
        first = members[0].meta.get("dicom") or {}
        out.append(
            StudyOut(
                study_uid=uid,
                study_date=str(first.get("study_date", "")),
                description=str(first.get("study_description", "")),
                modalities=sorted(
                    {str((m.meta.get("dicom") or {}).get("modality", "")) for m in members} - {""}
                ),
                patient_name=str(first.get("patient_name", "")),
                instances=len(members),
                document_ids=[m.id for m in members],
                identity_mismatch=any(m.pending_identity_check for m in members),
                series=_series(members),
            )
        )
    return out


class DocumentList(BaseModel):
    categories: list[CategoryOut]
    total: int


class UploadIn(BaseModel):
    filename: str = Field(min_length=1, max_length=400)
    size: int = Field(ge=1)
    sha256: str = ""


class UploadOut(BaseModel):
    id: uuid.UUID
    dossier_id: uuid.UUID
    filename: str
    size: int
    offset: int
    chunk_size: int
    expires_at: datetime


class StampIn(BaseModel):
    pages: Literal["all"] | list[int] = "all"  # 1-based page numbers
    x: float = Field(ge=0, lt=1)
    y: float = Field(ge=0, lt=1)
    width: float = Field(gt=0, le=1)


class VerificationOut(BaseModel):
    signed: bool
    intact: bool
    trusted: bool
    covers_whole_file: bool
    ok: bool
    signer: str
    signed_at: str | None


class SignatureOut(BaseModel):
    width: int
    height: int
    updated_at: datetime


class VaultRecipient(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    phone: str = Field(min_length=6, max_length=30)

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        from email_validator import EmailNotValidError, validate_email

        try:
            return validate_email(v, check_deliverability=False).normalized
        except EmailNotValidError as e:
            raise ValueError(str(e)) from None


class SendIn(BaseModel):
    document_id: uuid.UUID
    channel: Literal["mss", "vault"]
    mss_recipients: list[str] = Field(default_factory=list, max_length=20)
    vault_recipients: list[VaultRecipient] = Field(default_factory=list, max_length=20)
    message: str = Field("", max_length=2000)


class SendOut(BaseModel):
    channel: str
    sent_to: list[str]
    expires_at: datetime | None = None


class VaultCodeIn(BaseModel):
    code: str = Field(min_length=6, max_length=6, pattern=r"^\d{6}$")


# -- helpers ----------------------------------------------------------------------------


def content_disposition(filename: str, inline: bool = False) -> str:
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "'").replace("?", "_")
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


async def _read_audit(request: web.Request, doc: Document, what: str, **details: Any) -> None:
    await audit.record_now(
        request.app[DB],
        "document.read",
        actor=principal_of(request),
        object_type="document",
        object_id=doc.id,
        dossier_id=str(doc.dossier_id),
        filename=doc.filename,
        what=what,
        **details,
    )


async def _readable(
    request: web.Request, dossier_id: uuid.UUID, document_id: uuid.UUID
) -> Document:
    async with request.app[DB].read() as session:
        await doc_access.require_document_read(session, principal_of(request), dossier_id)
        return await get_document(session, document_id, dossier_id)


class Interrupted(BadRequest):
    code = "upload_interrupted"
    title = "The upload was cut before its end"


async def _body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.content.iter_chunked(STREAM_CHUNK):
            yield chunk
    except (ClientPayloadError, ConnectionError) as e:
        raise Interrupted(f"Envoi interrompu : {e}") from None


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    try:
        while chunk := await part.read_chunk(STREAM_CHUNK):
            yield chunk
    except (ClientPayloadError, ConnectionError) as e:
        raise Interrupted(f"Envoi interrompu : {e}") from None


def _filename_from_headers(request: web.Request) -> str:
    name = request.query.get("filename") or unquote(request.headers.get("X-Filename", ""))
    if not name:
        raise BadRequest(
            "Give the file name (?filename=… or X-Filename header), or send multipart/form-data.",
            code="filename_missing",
        )
    return name


async def _file_response(
    request: web.Request, storage: Storage, key: str, filename: str, ctype: str, inline: bool
) -> web.StreamResponse:
    path = storage.blobs.local_path(key)
    headers = {"Content-Disposition": content_disposition(filename, inline)}
    if path is not None:
        # FileResponse answers Range / If-Range (video seeking) and HEAD by itself.
        resp = web.FileResponse(path, headers=headers, chunk_size=STREAM_CHUNK)
        resp.content_type = ctype
        resp.headers["Cache-Control"] = "private, no-store"
        return resp
    out = web.StreamResponse(headers=headers)
    out.content_type = ctype
    await out.prepare(request)
    async for block in storage.blobs.open(key):
        await out.write(block)
    await out.write_eof()
    return out


@asynccontextmanager
async def _local_file(storage: Storage, key: str) -> AsyncIterator[Path]:
    """A path to a blob's bytes: the blob itself on a local store, else a staged copy."""
    path = storage.blobs.local_path(key)
    if path is not None:
        yield path
        return
    w = storage.staging.writer()
    async with w:
        async for block in storage.blobs.open(key):
            await w.write(block)
        staged = await w.finish()
    try:
        yield staged.path
    finally:
        storage.staging.discard_file(staged)


# -- setup ------------------------------------------------------------------------------


def setup_documents(app: web.Application) -> None:
    """Register the documents routes (called from ``dossier.setup``)."""
    from dossier import retention

    storage = storage_of(app)
    register_storage(app[DB].engine, storage)
    api = Api.of(app)
    settings = app[SETTINGS]

    # -- documents ----------------------------------------------------------------------

    @api.get("/dossiers/{dossier_id}/documents", response=DocumentList, tags=TAGS)
    async def list_dossier_documents(request: web.Request) -> DocumentList:
        """The dossier's documents, grouped by type as the dossier view lists them."""
        dossier_id = uuid.UUID(request.match_info["dossier_id"])
        p = principal_of(request)
        async with request.app[DB].read() as session:
            await doc_access.require_document_read(session, p, dossier_id)
            docs = await list_documents(session, dossier_id)
        await audit.record_now(
            request.app[DB],
            "document.list",
            actor=p,
            object_type="dossier",
            object_id=dossier_id,
            count=len(docs),
        )
        cats = []
        for code, label in CATEGORIES.items():
            mine = [DocumentOut.of(d) for d in docs if d.category == code]
            if mine:
                cats.append(
                    CategoryOut(
                        code=code,
                        label=label,
                        count=len(mine),
                        documents=mine,
                        studies=_studies(mine) if code == "dicom" else [],
                    )
                )
        return DocumentList(categories=cats, total=len(docs))

    @api.post(
        "/dossiers/{dossier_id}/documents",
        response=DocumentOut,
        status=201,
        tags=TAGS,
        errors=[413, 415, 422],
        raw_body={
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        },
    )
    async def upload_document(request: web.Request) -> DocumentOut:
        """Add a document, streamed to storage (multipart `file`, or raw body + ?filename=)."""
        dossier_id = uuid.UUID(request.match_info["dossier_id"])
        p = principal_of(request)
        if request.content_length and request.content_length > settings.max_upload_bytes + 65536:
            raise TooLarge(
                f"Le fichier dépasse {settings.max_upload_bytes} octets.",
                max_bytes=settings.max_upload_bytes,
            )
        try:
            return await _upload_document(request, dossier_id, p)
        except TooLarge as e:  # the page says how large a file may be
            raise TooLarge(e.detail, code=e.code, max_bytes=settings.max_upload_bytes) from None

    async def _upload_document(request: web.Request, dossier_id: uuid.UUID, p: Any) -> DocumentOut:
        db = request.app[DB]
        if request.content_type.startswith("multipart/"):
            try:
                reader = await request.multipart()
                part = await reader.next()
                while part is not None and (
                    not isinstance(part, BodyPartReader) or part.name != "file"
                ):
                    part = await reader.next()
            except (ValueError, HttpProcessingError) as e:
                raise BadRequest(
                    f"The multipart body is malformed: {e}", code="malformed_multipart"
                ) from None
            if part is None or not isinstance(part, BodyPartReader):
                raise BadRequest("The form has no `file` field.", code="file_missing")
            filename = unquote(part.filename or "")
            if not filename:
                raise BadRequest("The `file` part has no file name.", code="filename_missing")
            async with db.write() as uow:
                doc = await add_document(uow, p, dossier_id, filename, _part_chunks(part))
        else:
            filename = _filename_from_headers(request)
            async with db.write() as uow:
                doc = await add_document(uow, p, dossier_id, filename, _body_chunks(request))
        return DocumentOut.of(doc)

    @api.get("/dossiers/{dossier_id}/documents/{document_id}", response=DocumentOut, tags=TAGS)
    async def get_dossier_document(request: web.Request) -> DocumentOut:
        """A document's description (type, size, checksum, author, DICOM metadata…)."""
        doc = await _readable(
            request,
            uuid.UUID(request.match_info["dossier_id"]),
            uuid.UUID(request.match_info["document_id"]),
        )
        await _read_audit(request, doc, "metadata")
        return DocumentOut.of(doc)

    @api.get(
        "/dossiers/{dossier_id}/documents/{document_id}/content",
        tags=TAGS,
        raw_response={"application/octet-stream": {"schema": {"type": "string"}}},
    )
    async def download_document(request: web.Request) -> web.StreamResponse:
        """Download (``?inline=1`` to view); answers Range requests (video seeking)."""
        doc = await _readable(
            request,
            uuid.UUID(request.match_info["dossier_id"]),
            uuid.UUID(request.match_info["document_id"]),
        )
        if doc.pending_identity_check and request.query.get("inline") != "1":
            pass  # downloading stays possible: the flag is shown, the file is the evidence
        rng = request.headers.get("Range", "")
        if not rng or rng.startswith("bytes=0-"):  # one audit row per viewing, not per seek
            await _read_audit(request, doc, "content")
        return await _file_response(
            request,
            storage,
            doc.blob_key,
            doc.filename,
            doc.content_type,
            request.query.get("inline") == "1",
        )

    @api.get(
        "/dossiers/{dossier_id}/documents/{document_id}/preview",
        query=PreviewQuery,
        tags=TAGS,
        errors=[422],
        raw_response={"image/png": {"schema": {"type": "string"}}},
    )
    async def preview_document(request: web.Request, query: PreviewQuery) -> web.StreamResponse:
        """A PNG preview: thumbnail, PDF first page, or DICOM image with its windowing.

        For a DICOM image, ``frame`` (1-based) picks a frame of a multi-frame file and
        ``wc``/``ww`` (together) replace the file's window; the answer then carries
        ``X-Frame-Count``, ``X-Window-Center`` and ``X-Window-Width``.
        """
        doc = await _readable(
            request,
            uuid.UUID(request.match_info["dossier_id"]),
            uuid.UUID(request.match_info["document_id"]),
        )
        no_store = {"Cache-Control": "private, no-store"}
        if query.frame is None and query.wc is None and query.ww is None:
            if not doc.preview_key:
                raise NotFound("Pas d'aperçu pour ce document.", code="no_preview")
            await _read_audit(request, doc, "preview")
            data = await storage.blobs.read(doc.preview_key)
            return web.Response(body=data, content_type="image/png", headers=no_store)
        if doc.category != "dicom":
            raise ValidationFailed(
                "Image et fenêtrage ne s'appliquent qu'aux fichiers DICOM.", code="not_dicom"
            )
        if (query.wc is None) != (query.ww is None):
            raise ValidationFailed(
                "Donnez le centre (wc) et la largeur (ww) de la fenêtre ensemble.",
                code="window_incomplete",
            )
        window = (query.wc, query.ww) if query.wc is not None and query.ww is not None else None
        frame = None if query.frame is None else query.frame - 1

        async with _local_file(storage, doc.blob_key) as path:
            out = await run_heavy(render_frame, path, frame, window=window)
        if out is None:
            raise NotFound("Ce fichier DICOM ne contient pas d'image.", code="no_preview")
        await _read_audit(
            request, doc, "preview", frame=out.frame + 1, window=list(window) if window else None
        )
        headers = {**no_store, "X-Frame-Count": str(out.frames)}
        if out.window_center is not None and out.window_width is not None:
            headers["X-Window-Center"] = f"{out.window_center:g}"
            headers["X-Window-Width"] = f"{out.window_width:g}"
        return web.Response(body=out.png, content_type="image/png", headers=headers)

    @api.delete("/dossiers/{dossier_id}/documents/{document_id}", tags=TAGS, errors=[409])
    async def remove_document(request: web.Request) -> None:
        """Remove a document added by mistake (its author, or an administrator)."""
        async with request.app[DB].write() as uow:
            await delete_document(
                uow,
                principal_of(request),
                uuid.UUID(request.match_info["document_id"]),
                uuid.UUID(request.match_info["dossier_id"]),
            )

    @api.post(
        "/dossiers/{dossier_id}/documents/{document_id}/confirm-identity",
        response=DocumentOut,
        tags=TAGS,
        errors=[409],
    )
    async def confirm_document_identity(request: web.Request) -> DocumentOut:
        """Confirm that a flagged DICOM study does belong to the dossier's patient."""
        async with request.app[DB].write() as uow:
            doc = await confirm_identity(
                uow,
                principal_of(request),
                uuid.UUID(request.match_info["document_id"]),
                uuid.UUID(request.match_info["dossier_id"]),
            )
        return DocumentOut.of(doc)

    @api.post(
        "/dossiers/{dossier_id}/documents/{document_id}/stamp",
        body=StampIn,
        response=DocumentOut,
        status=201,
        tags=TAGS,
        errors=[409],
    )
    async def stamp_document(request: web.Request, body: StampIn) -> DocumentOut:
        """Apply my signature picture on the pages of a PDF (or on a photo): a new version."""
        dossier_id = uuid.UUID(request.match_info["dossier_id"])
        p = principal_of(request)
        db = request.app[DB]
        async with db.write() as uow:
            await doc_access.require_document_write(uow.session, p, dossier_id)
            doc = await get_document(
                uow.session, uuid.UUID(request.match_info["document_id"]), dossier_id
            )
            sig = await uow.session.get(UserSignature, p.subject_id)
            if sig is None:
                raise ValidationFailed(
                    "Chargez d'abord votre signature (Paramètres → Charger une signature).",
                    code="no_signature",
                )
            if doc.category not in ("pdf", "image") or doc.content_type not in STAMPABLE:
                raise ValidationFailed(
                    "La signature s'appose sur un PDF ou une photo.", code="not_stampable"
                )
            if doc.source == "report" and doc.meta.get("signed"):
                raise ValidationFailed(
                    "Le compte-rendu signé ne se modifie pas.", code="report_locked"
                )
            original = await storage.blobs.read(doc.blob_key)
            picture = await storage.blobs.read(sig.blob_key)
            import asyncio

            if doc.category == "pdf":
                pages = None if body.pages == "all" else [n - 1 for n in body.pages]
                out = await asyncio.to_thread(
                    lambda: stamp.stamp_pdf(
                        original, picture, x=body.x, y=body.y, width=body.width, pages=pages
                    )
                )
            else:
                out = await asyncio.to_thread(
                    lambda: stamp.stamp_image(
                        original, picture, x=body.x, y=body.y, width=body.width
                    )
                )
            new = await add_document(
                uow,
                p,
                dossier_id,
                doc.filename,
                out,
                "stamp",
                previous=doc,
                meta={
                    "stamp": {
                        "pages": body.pages,
                        "x": body.x,
                        "y": body.y,
                        "width": body.width,
                        "from_document": str(doc.id),
                    }
                },
            )
        return DocumentOut.of(new)

    @api.get(
        "/dossiers/{dossier_id}/documents/{document_id}/verification",
        response=VerificationOut,
        tags=TAGS,
        errors=[422],
    )
    async def verify_document(request: web.Request) -> VerificationOut:
        """Check a PDF's electronic signature (PAdES) against this installation's root."""
        doc = await _readable(
            request,
            uuid.UUID(request.match_info["dossier_id"]),
            uuid.UUID(request.match_info["document_id"]),
        )
        if doc.content_type != "application/pdf":
            raise ValidationFailed("Seuls les PDF portent une signature.", code="not_a_pdf")
        await _read_audit(request, doc, "verification")
        v = await signing.verify_pdf(settings.data_dir, await storage.blobs.read(doc.blob_key))
        return VerificationOut(
            signed=v.signed,
            intact=v.intact,
            trusted=v.trusted,
            covers_whole_file=v.covers_whole_file,
            ok=v.ok,
            signer=v.signer,
            signed_at=v.signed_at,
        )

    @api.get(
        "/signing/root.pem",
        auth="none",
        tags=TAGS,
        raw_response={"application/x-pem-file": {"schema": {"type": "string"}}},
    )
    async def signing_root(request: web.Request) -> web.Response:
        """This installation's root certificate, to verify its reports' signatures."""
        import asyncio

        pki = await asyncio.to_thread(signing.ensure_pki, settings.data_dir)
        return web.Response(
            body=pki.ca_cert.read_bytes(),
            content_type="application/x-pem-file",
            headers={"Content-Disposition": 'attachment; filename="consilium-racine.pem"'},
        )

    # -- resumable uploads --------------------------------------------------------------

    def _upload_out(up: Any, offset: int) -> UploadOut:
        return UploadOut(
            id=up.id,
            dossier_id=up.dossier_id,
            filename=up.filename,
            size=up.size,
            offset=offset,
            chunk_size=settings.upload_chunk_bytes,
            expires_at=up.expires_at,
        )

    @api.post(
        "/dossiers/{dossier_id}/uploads",
        body=UploadIn,
        response=UploadOut,
        status=201,
        tags=TAGS,
    )
    async def start_upload(request: web.Request, body: UploadIn) -> web.Response:
        """Start a resumable upload for a large file (then PATCH chunks, then complete)."""
        dossier_id = uuid.UUID(request.match_info["dossier_id"])
        try:
            async with request.app[DB].write() as uow:
                up = await uploads.create_upload(
                    uow,
                    principal_of(request),
                    dossier_id,
                    filename=body.filename,
                    size=body.size,
                    sha256=body.sha256,
                    max_bytes=settings.max_upload_bytes,
                )
        except TooLarge as e:  # the page says how large a file may be
            raise TooLarge(e.detail, code=e.code, max_bytes=settings.max_upload_bytes) from None
        out = _upload_out(up, 0)
        return web.json_response(
            out.model_dump(mode="json"),
            status=201,
            headers={"Location": f"/api/v1/uploads/{up.id}", "Upload-Offset": "0"},
        )

    async def _status(request: web.Request) -> tuple[Any, int]:
        up = await uploads.get_upload(
            request.app[DB], principal_of(request), uuid.UUID(request.match_info["upload_id"])
        )
        return up, await uploads.current_offset(storage, up)

    @api.get("/uploads/{upload_id}", response=UploadOut, tags=TAGS, errors=[410])
    async def upload_status(request: web.Request) -> web.Response:
        """Where a resumable upload stands (resume from ``offset``)."""
        up, offset = await _status(request)
        return web.json_response(
            _upload_out(up, offset).model_dump(mode="json"),
            headers={"Upload-Offset": str(offset), "Upload-Length": str(up.size)},
        )

    @api.route("HEAD", "/uploads/{upload_id}", tags=TAGS, errors=[410])
    async def upload_head(request: web.Request) -> web.Response:
        """The offset in the ``Upload-Offset`` header (tus-style)."""
        up, offset = await _status(request)
        return web.Response(
            status=200,
            headers={
                "Upload-Offset": str(offset),
                "Upload-Length": str(up.size),
                "Cache-Control": "no-store",
            },
        )

    @api.patch(
        "/uploads/{upload_id}",
        tags=TAGS,
        errors=[409, 410, 413],
        raw_body={
            "required": True,
            "content": {
                "application/offset+octet-stream": {
                    "schema": {"type": "string", "format": "binary"}
                }
            },
        },
    )
    async def upload_chunk(request: web.Request) -> web.Response:
        """Append bytes at ``Upload-Offset``; answers the new offset."""
        raw = request.headers.get("Upload-Offset", "")
        if not raw.isdigit():
            raise BadRequest("Upload-Offset header required.", code="offset_missing")
        new = await uploads.append_chunk(
            request.app[DB],
            storage,
            principal_of(request),
            uuid.UUID(request.match_info["upload_id"]),
            int(raw),
            _body_chunks(request),
        )
        return web.Response(status=204, headers={"Upload-Offset": str(new)})

    @api.post(
        "/uploads/{upload_id}/complete",
        response=DocumentOut,
        status=201,
        tags=TAGS,
        errors=[409, 410, 415, 422],
    )
    async def complete_upload(request: web.Request) -> DocumentOut:
        """Finish a resumable upload: size, checksum and content checked, document added."""
        doc = await uploads.complete_upload(
            request.app[DB],
            storage,
            principal_of(request),
            uuid.UUID(request.match_info["upload_id"]),
        )
        return DocumentOut.of(doc)

    @api.delete("/uploads/{upload_id}", tags=TAGS)
    async def cancel_upload(request: web.Request) -> None:
        """Give up a resumable upload (its bytes are removed)."""
        await uploads.abort_upload(
            request.app[DB],
            storage,
            principal_of(request),
            uuid.UUID(request.match_info["upload_id"]),
        )

    # -- my signature picture -----------------------------------------------------------

    @api.put(
        "/me/signature",
        response=SignatureOut,
        tags=TAGS,
        errors=[413, 422],
        raw_body={
            "required": True,
            "content": {
                "image/png": {"schema": {"type": "string", "format": "binary"}},
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            },
        },
    )
    async def put_signature(request: web.Request) -> SignatureOut:
        """Upload my signature picture ("Charger une signature"), PNG or JPEG, ≤ 2 MB."""
        p = principal_of(request)
        data = bytearray()
        if request.content_type.startswith("multipart/"):
            reader = await multipart_reader(request)
            part = await reader.next()
            if not isinstance(part, BodyPartReader):
                raise BadRequest("Send the picture as the `file` field.", code="file_missing")
            chunks: AsyncIterator[bytes] = _part_chunks(part)
        else:
            chunks = _body_chunks(request)
        async for c in chunks:
            data += c
            if len(data) > stamp.MAX_SIGNATURE_BYTES:
                raise TooLarge("La signature dépasse 2 Mo.")
        png, w, h = stamp.normalise_signature(bytes(data))
        db = request.app[DB]
        async with db.write() as uow:
            from dossier.documents import _on_rollback_delete, on_commit_delete

            blob = await storage.blobs.put_bytes(png)
            _on_rollback_delete(uow.session, storage, blob.key)
            row = await uow.session.get(UserSignature, p.subject_id)
            if row is None:
                row = UserSignature(user_id=p.subject_id, blob_key=blob.key, width=w, height=h)
                uow.session.add(row)
            else:
                on_commit_delete(uow.session, storage, [row.blob_key])
                row.blob_key, row.width, row.height = blob.key, w, h
            row.updated_at = utcnow()
            audit.record(
                uow.session,
                "account.signature_set",
                actor=p,
                object_type="user",
                object_id=p.subject_id,
            )
        return SignatureOut(width=w, height=h, updated_at=row.updated_at)

    @api.get(
        "/me/signature",
        tags=TAGS,
        errors=[404],
        raw_response={"image/png": {"schema": {"type": "string"}}},
    )
    async def get_signature(request: web.Request) -> web.Response:
        """My signature picture (PNG)."""
        p = principal_of(request)
        async with request.app[DB].read() as session:
            row = await session.get(UserSignature, p.subject_id)
        if row is None:
            raise NotFound("Aucune signature chargée.", code="no_signature")
        return web.Response(body=await storage.blobs.read(row.blob_key), content_type="image/png")

    @api.delete("/me/signature", tags=TAGS)
    async def delete_signature(request: web.Request) -> None:
        """Remove my signature picture."""
        from dossier.documents import on_commit_delete

        p = principal_of(request)
        async with request.app[DB].write() as uow:
            row = await uow.session.get(UserSignature, p.subject_id)
            if row is None:
                return
            on_commit_delete(uow.session, storage, [row.blob_key])
            await uow.session.delete(row)
            audit.record(
                uow.session,
                "account.signature_delete",
                actor=p,
                object_type="user",
                object_id=p.subject_id,
            )

    # -- report -------------------------------------------------------------------------

    @api.post(
        "/dossiers/{dossier_id}/report", response=DocumentOut, status=201, tags=TAGS, errors=[422]
    )
    async def make_report(request: web.Request) -> DocumentOut:
        """Generate the report PDF ("Générer PDF"), signed (PAdES), filed in the dossier."""
        async with request.app[DB].write() as uow:
            doc = await generate_report(
                uow,
                principal_of(request),
                uuid.UUID(request.match_info["dossier_id"]),
                settings.data_dir,
            )
        return DocumentOut.of(doc)

    # -- sending ------------------------------------------------------------------------

    @api.post(
        "/dossiers/{dossier_id}/send", body=SendIn, response=SendOut, tags=TAGS, errors=[403, 502]
    )
    async def send_document(request: web.Request, body: SendIn) -> SendOut:
        """Send a PDF of the dossier by MSSanté, or through the vault (link + SMS code)."""
        dossier_id = uuid.UUID(request.match_info["dossier_id"])
        p = principal_of(request)
        app = request.app
        if body.channel == "mss":
            if not body.mss_recipients:
                raise ValidationFailed("Choisissez au moins un destinataire.", code="no_recipient")
            sent = await send_mss(
                app[DB],
                storage,
                app[NOTIFIER],
                p,
                dossier_id,
                body.document_id,
                body.mss_recipients,
                body.message,
            )
            if not sent:
                raise Problem(
                    "La messagerie sécurisée n'a pas accepté l'envoi.",
                    status=502,
                    code="delivery_failed",
                    title="Delivery failed",
                )
            return SendOut(channel="mss", sent_to=sent)
        if not body.vault_recipients:
            raise ValidationFailed("Choisissez au moins un destinataire.", code="no_recipient")
        sent, expires = [], None
        for r in body.vault_recipients:
            dep = await send_vault(
                app[DB], settings, app[NOTIFIER], p, dossier_id, body.document_id, r.email, r.phone
            )
            sent.append(r.email)
            expires = dep.expires_at
        return SendOut(channel="vault", sent_to=sent, expires_at=expires)

    # -- vault (recipients without an account) ------------------------------------------

    async def _vault_download(request: web.Request, token: str, code: str) -> web.StreamResponse:
        # Per deposit, 5 wrong codes burn the link; per address, many links cannot be probed.
        if not await request.app[LIMITER].hit(f"vault:{client_ip(request)}", limit=30, window=3600):
            raise TooManyRequests("Trop de tentatives ; réessayez plus tard.", code="rate_limited")
        _dep, doc = await open_deposit(request.app[DB], settings, token, code, client_ip(request))
        return await _file_response(
            request, storage, doc.blob_key, doc.filename, doc.content_type, False
        )

    @api.post(
        "/vault/{token}",
        body=VaultCodeIn,
        auth="none",
        tags=["vault"],
        errors=[403, 404, 410, 429],
        raw_response={"application/pdf": {"schema": {"type": "string"}}},
    )
    async def vault_api(request: web.Request, body: VaultCodeIn) -> web.StreamResponse:
        """Download a vault document with the code received by SMS."""
        return await _vault_download(request, request.match_info["token"], body.code)

    async def vault_page(request: web.Request) -> web.Response:
        token = request.match_info["token"]
        error = ""
        if request.method == "POST":
            form = await request.post()
            try:
                return await _vault_download(request, token, str(form.get("code", "")))  # type: ignore[return-value]
            except Gone as e:
                return _vault_html(str(e.detail), status=410)
            except NotFound as e:
                return _vault_html(str(e.detail), status=404)
            except Problem as e:
                error = str(e.detail or e.title)
        try:
            dep = await find_deposit(request.app[DB], settings, token)
        except Gone as e:
            return _vault_html(str(e.detail), status=410)
        except NotFound as e:
            return _vault_html(str(e.detail), status=404)
        until = dep.expires_at.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M")
        form_html = (
            f"<p>Un document médical vous a été transmis de façon sécurisée. "
            f"Ce lien est valable jusqu'au {until}.</p>"
            + (f"<p class='error' role='alert'>{html.escape(error)}</p>" if error else "")
            + f"<form method='post' action='/vault/{html.escape(token)}'>"
            "<label for='code'>Code reçu par SMS</label> "
            "<input id='code' name='code' inputmode='numeric' autocomplete='one-time-code' "
            "pattern='[0-9]{6}' maxlength='6' required> "
            "<button type='submit'>Télécharger le document</button></form>"
        )
        return _vault_html(form_html, status=403 if error else 200, raw=True)

    app.router.add_get("/vault/{token}", vault_page)
    app.router.add_post("/vault/{token}", vault_page)

    # -- export -------------------------------------------------------------------------

    @api.get(
        "/dossiers/{dossier_id}/export",
        tags=TAGS,
        raw_response={"application/zip": {"schema": {"type": "string"}}},
    )
    async def export_dossier(request: web.Request) -> web.StreamResponse:
        """ "Exporter tout": a ZIP of the report and every document, with a manifest."""
        dossier_id = uuid.UUID(request.match_info["dossier_id"])
        p = principal_of(request)
        db = request.app[DB]
        async with db.read() as session:
            await doc_access.require_document_read(session, p, dossier_id)
            docs = await list_documents(session, dossier_id)
            generated: bytes | None = None
            report_name = ""
            if not any(d.source == "report" for d in docs):
                report_name, generated, _ = await build_signed_report(
                    session, dossier_id, p.label, settings.data_dir
                )
        used: set[str] = set()
        entries: list[tuple[str, Document | None, bytes | None]] = []
        files: list[dict[str, Any]] = []
        if generated is not None:
            import hashlib

            name = f"{CATEGORIES['report']}/{report_name}"
            used.add(name)
            entries.append((name, None, generated))
            files.append(
                {
                    "path": name,
                    "size": len(generated),
                    "sha256": hashlib.sha256(generated).hexdigest(),
                    "category": "report",
                    "generated_for_export": True,
                }
            )
        for d in docs:
            name = archive_name(d, used)
            entries.append((name, d, None))
            files.append(
                {
                    "path": name,
                    "document_id": str(d.id),
                    "filename": d.filename,
                    "category": d.category,
                    "content_type": d.content_type,
                    "size": d.size,
                    "sha256": d.sha256,
                    "source": d.source,
                    "author": d.author_label,
                    "added_at": d.created_at.isoformat(),
                    "version": d.version,
                    "identity_mismatch": d.identity_mismatch,
                }
            )
        async with db.read() as session:
            zip_name = await zip_name_of(session, dossier_id)
        manifest = {
            "dossier_id": str(dossier_id),
            "exported_at": utcnow().isoformat(),
            "exported_by": p.label,
            "files": files,
        }
        await audit.record_now(
            db,
            "dossier.export",
            actor=p,
            object_type="dossier",
            object_id=dossier_id,
            files=len(files),
        )
        resp = web.StreamResponse(
            headers={
                "Content-Disposition": content_disposition(zip_name),
                "Cache-Control": "private, no-store",
            }
        )
        resp.content_type = "application/zip"
        await resp.prepare(request)
        async for chunk in stream_zip(entries, storage.blobs.open, manifest):
            if chunk:
                await resp.write(chunk)
        await resp.write_eof()
        return resp

    retention.start(app)
    # The DICOM node starts when the deployment gives it a port (seed 003's gateway).
    if settings.dicom_port:
        from dossier import dicom_node

        dicom_node.start(app, settings.host, settings.dicom_port)


def _vault_html(body: str, *, status: int = 200, raw: bool = False) -> web.Response:
    content = body if raw else f"<p role='alert'>{html.escape(body)}</p>"
    page = (
        "<!doctype html><html lang='fr'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        "<title>Consilium — coffre-fort numérique</title>"
        "</head><body><h1>Consilium — coffre-fort numérique</h1>"
        f"{content}</body></html>"
    )
    resp = web.Response(text=page, content_type="text/html", charset="utf-8", status=status)
    # The page's only style is inline: allow exactly that, nothing else.
    resp.headers["Content-Security-Policy"] = (
        "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp
