"""HTTP routes of a dossier's documents: listing, upload (streamed or resumable), download,
previews, removal, identity confirmation, stamping, my signature picture, export.

Routes only translate: they read the request, call an action of this package, and shape
the answer. Upload routes read ``request.content`` as a stream, which is why they are not
bound by the app's ``client_max_size`` (that limit applies to JSON bodies); the document
size limit is ``settings.max_upload_bytes``, enforced while streaming.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from core import filetypes
from core.api import multipart_reader
from core.auth import principal as principal_of
from core.context import DB, SETTINGS
from core.errors import (
    BadRequest,
    Conflict,
    NotFound,
    TooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from core.heavy import run_heavy
from core.storage import of as storage_of
from dossier.documents import (
    dicomweb,
    habilitations,
    inbox,
    pacs,
    signature_picture,
    stamping,
    store,
    tus,
    uploads,
)
from dossier.documents.dicom import render_frame
from dossier.documents.export import prepare_export, stream_zip
from dossier.documents.schemas import (
    DocumentList,
    DocumentOut,
    InboxAttachIn,
    InboxExamOut,
    InboxList,
    InboxRejectIn,
    PacsPullIn,
    PacsPullList,
    PacsPullOut,
    PacsStudyList,
    PacsStudyOut,
    PreviewQuery,
    SignatureOut,
    StampIn,
    UploadIn,
    UploadOut,
    document_list,
)
from dossier.models import DicomInboxStudy, Document, Habilitation, Upload
from dossier.web import (
    RouteTable,
    body_chunks,
    content_disposition,
    file_response,
    filename_from_headers,
    local_file,
    part_chunks,
    uuid_of,
)

TAGS = ["documents"]
routes = RouteTable()


# -- documents --------------------------------------------------------------------------


@routes.get("/dossiers/{dossier_id}/documents", response=DocumentList, tags=TAGS)
async def list_dossier_documents(request: web.Request) -> DocumentList:
    """The dossier's documents, grouped by type as the dossier view lists them."""
    db, p = request.app[DB], principal_of(request)
    docs = await store.documents_for_reader(db, p, uuid_of(request, "dossier_id"))
    out = document_list(docs)
    out.dicom_download = Habilitation.dicom_download in await habilitations.mine(db, p)
    return out


@routes.post(
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
    max_bytes = request.app[SETTINGS].max_upload_bytes
    if request.content_length and request.content_length > max_bytes + 65536:
        raise TooLarge(f"Le fichier dépasse {max_bytes} octets.", max_bytes=max_bytes)
    filename, chunks = await _file_of(request)
    try:
        doc = await store.upload_document(
            request.app[DB], principal_of(request), uuid_of(request, "dossier_id"), filename, chunks
        )
    except TooLarge as e:  # the page says how large a file may be
        raise TooLarge(e.detail, code=e.code, max_bytes=max_bytes) from None
    return DocumentOut.of(doc)


async def _file_of(request: web.Request) -> tuple[str, AsyncIterator[bytes]]:
    """The file name and the byte stream of an upload (multipart `file` or raw body)."""
    if not request.content_type.startswith("multipart/"):
        return filename_from_headers(request), body_chunks(request)
    try:
        reader = await multipart_reader(request)
        part = await reader.next()
        while part is not None and (not isinstance(part, BodyPartReader) or part.name != "file"):
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
    return filename, part_chunks(part)


async def _readable(request: web.Request) -> store.Document:
    return await store.readable_document(
        request.app[DB],
        principal_of(request),
        uuid_of(request, "dossier_id"),
        uuid_of(request, "document_id"),
    )


@routes.get("/dossiers/{dossier_id}/documents/{document_id}", response=DocumentOut, tags=TAGS)
async def get_dossier_document(request: web.Request) -> DocumentOut:
    """A document's description (type, size, checksum, author, DICOM metadata…)."""
    doc = await _readable(request)
    await store.record_read(request.app[DB], principal_of(request), doc, "metadata")
    return DocumentOut.of(doc)


@routes.get(
    "/dossiers/{dossier_id}/documents/{document_id}/content",
    tags=TAGS,
    raw_response=filetypes.openapi_content(),  # the file's own (sniffed) type
)
async def download_document(request: web.Request) -> web.StreamResponse:
    """Download (``?inline=1`` to view); answers Range requests (video seeking)."""
    doc = await _readable(request)
    # A flagged DICOM study stays downloadable: the flag is shown, the file is the evidence.
    db, p = request.app[DB], principal_of(request)
    inline = request.query.get("inline") == "1"
    if habilitations.needs_dicom_right(doc):  # viewing renders frames; the file is a download
        await habilitations.require_dicom_download(
            db, p, doc.dossier_id, "content", document_id=str(doc.id)
        )
    rng = request.headers.get("Range", "")
    if not rng or rng.startswith("bytes=0-"):  # one audit row per viewing, not per seek
        await store.record_read(db, p, doc, "content", opens=True)
    return await file_response(
        request,
        storage_of(request.app),
        doc.blob_key,
        doc.filename,
        doc.content_type,
        inline,
    )


@routes.get(
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
    doc = await _readable(request)
    db, p, storage = request.app[DB], principal_of(request), storage_of(request.app)
    no_store = {"Cache-Control": "private, no-store"}
    if query.frame is None and query.wc is None and query.ww is None:
        if not doc.preview_key:
            raise NotFound("Pas d'aperçu pour ce document.", code="no_preview")
        await store.record_read(db, p, doc, "preview")
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
    async with local_file(storage, doc.blob_key) as path:
        out = await run_heavy(render_frame, path, frame, window=window)
    if out is None:
        raise NotFound("Ce fichier DICOM ne contient pas d'image.", code="no_preview")
    await store.record_read(
        db,
        p,
        doc,
        "preview",
        opens=True,  # an image shown in the viewer: the exam is seen
        frame=out.frame + 1,
        window=list(window) if window else None,
    )
    headers = {**no_store, "X-Frame-Count": str(out.frames)}
    if out.window_center is not None and out.window_width is not None:
        headers["X-Window-Center"] = f"{out.window_center:g}"
        headers["X-Window-Width"] = f"{out.window_width:g}"
    return web.Response(body=out.png, content_type="image/png", headers=headers)


@routes.delete("/dossiers/{dossier_id}/documents/{document_id}", tags=TAGS, errors=[409])
async def remove_document(request: web.Request) -> None:
    """Remove a document added by mistake (its author, or an administrator)."""
    await store.remove_document(
        request.app[DB],
        principal_of(request),
        uuid_of(request, "document_id"),
        uuid_of(request, "dossier_id"),
    )


@routes.post(
    "/dossiers/{dossier_id}/documents/{document_id}/confirm-identity",
    response=DocumentOut,
    tags=TAGS,
    errors=[409],
)
async def confirm_document_identity(request: web.Request) -> DocumentOut:
    """Confirm that a flagged DICOM study does belong to the dossier's patient."""
    doc = await store.confirm_document_identity(
        request.app[DB],
        principal_of(request),
        uuid_of(request, "document_id"),
        uuid_of(request, "dossier_id"),
    )
    return DocumentOut.of(doc)


@routes.post(
    "/dossiers/{dossier_id}/documents/{document_id}/stamp",
    body=StampIn,
    response=DocumentOut,
    status=201,
    tags=TAGS,
    errors=[409],
)
async def stamp_document(request: web.Request, body: StampIn) -> DocumentOut:
    """Apply my signature picture on the pages of a PDF (or on a photo): a new version."""
    new = await stamping.stamp_document(
        request.app[DB],
        principal_of(request),
        uuid_of(request, "dossier_id"),
        uuid_of(request, "document_id"),
        pages=body.pages,
        x=body.x,
        y=body.y,
        width=body.width,
    )
    return DocumentOut.of(new)


# -- resumable uploads ------------------------------------------------------------------


def _upload_out(request: web.Request, up: Upload, offset: int) -> UploadOut:
    return UploadOut(
        id=up.id,
        dossier_id=up.dossier_id,
        filename=up.filename,
        size=up.size,
        offset=offset,
        chunk_size=request.app[SETTINGS].upload_chunk_bytes,
        expires_at=up.expires_at,
        document_id=up.document_id,
    )


@routes.post(
    "/dossiers/{dossier_id}/uploads",
    body=UploadIn,
    response=UploadOut,
    status=201,
    tags=TAGS,
)
async def start_upload(request: web.Request, body: UploadIn) -> web.Response:
    """Start a resumable upload for a large file (then PATCH chunks, then complete)."""
    max_bytes = request.app[SETTINGS].max_upload_bytes
    try:
        up = await uploads.start_upload(
            request.app[DB],
            principal_of(request),
            uuid_of(request, "dossier_id"),
            filename=body.filename,
            size=body.size,
            sha256=body.sha256,
            max_bytes=max_bytes,
        )
    except TooLarge as e:  # the page says how large a file may be
        raise TooLarge(e.detail, code=e.code, max_bytes=max_bytes) from None
    return web.json_response(
        _upload_out(request, up, 0).model_dump(mode="json"),
        status=201,
        headers={"Location": f"/api/v1/uploads/{up.id}", "Upload-Offset": "0"},
    )


@routes.post(
    "/dossiers/{dossier_id}/tus",
    status=201,
    tags=TAGS,
    errors=[412, 413],
    raw_body={"required": False, "content": {"application/offset+octet-stream": {}}},
)
async def start_tus_upload(request: web.Request) -> web.Response:
    """tus 1.0 creation: ``Upload-Length`` and ``Upload-Metadata`` (``filename``, optional
    ``sha256`` in hex) start a resumable upload; then PATCH ``Location`` as tus says."""
    tus.check_version(request.headers)
    meta = tus.metadata(request.headers)
    size = tus.upload_length(request.headers)
    filename = meta.get("filename") or meta.get("name") or ""
    if not filename:
        raise BadRequest(
            "Upload-Metadata : le nom du fichier (filename) est requis.", code="filename_missing"
        )
    max_bytes = request.app[SETTINGS].max_upload_bytes
    try:
        up = await uploads.start_upload(
            request.app[DB],
            principal_of(request),
            uuid_of(request, "dossier_id"),
            filename=filename[:400],
            size=size,
            sha256=meta.get("sha256", ""),
            max_bytes=max_bytes,
        )
    except TooLarge as e:
        raise TooLarge(e.detail, code=e.code, max_bytes=max_bytes) from None
    return web.Response(
        status=201,
        headers={
            **tus.RESUMABLE,
            "Location": f"/api/v1/uploads/{up.id}",
            "Upload-Offset": "0",
        },
    )


@routes.route("OPTIONS", "/dossiers/{dossier_id}/tus", status=204, tags=TAGS)
async def tus_options(request: web.Request) -> web.Response:
    """tus discovery: version, extensions, largest file and checksum algorithms."""
    settings = request.app[SETTINGS]
    return web.Response(
        status=204,
        headers=tus.discovery_headers(settings.max_upload_bytes, settings.upload_chunk_bytes),
    )


async def _status(request: web.Request) -> tuple[Upload, int]:
    up = await uploads.get_upload(
        request.app[DB], principal_of(request), uuid_of(request, "upload_id")
    )
    return up, await uploads.current_offset(storage_of(request.app), up)


@routes.get("/uploads/{upload_id}", response=UploadOut, tags=TAGS, errors=[410])
async def upload_status(request: web.Request) -> web.Response:
    """Where a resumable upload stands (resume from ``offset``)."""
    up, offset = await _status(request)
    return web.json_response(
        _upload_out(request, up, offset).model_dump(mode="json"),
        headers={"Upload-Offset": str(offset), "Upload-Length": str(up.size), **_done(up)},
    )


def _done(up: Upload) -> dict[str, str]:
    """The document a completed upload became (tus clients: see ``upload_chunk``)."""
    return {"Consilium-Document-Id": str(up.document_id)} if up.document_id else {}


@routes.route("HEAD", "/uploads/{upload_id}", tags=TAGS, errors=[410])
async def upload_head(request: web.Request) -> web.Response:
    """The offset in the ``Upload-Offset`` header (tus-style)."""
    tus.check_version(request.headers)
    up, offset = await _status(request)
    return web.Response(
        status=200,
        headers={
            **tus.RESUMABLE,
            "Upload-Offset": str(offset),
            "Upload-Length": str(up.size),
            "Cache-Control": "no-store",
            **_done(up),
        },
    )


@routes.patch(
    "/uploads/{upload_id}",
    tags=TAGS,
    errors=[409, 410, 412, 413, 415, 423],
    raw_body={
        "required": True,
        "content": {
            "application/offset+octet-stream": {"schema": {"type": "string", "format": "binary"}}
        },
    },
)
async def upload_chunk(request: web.Request) -> web.Response:
    """Append bytes at ``Upload-Offset``; answers the new offset. An ``Upload-Checksum``
    (tus checksum extension) is verified before the chunk is kept. A tus client's last
    chunk completes the upload: the answer names the document (``Consilium-Document-Id``),
    and so does ``HEAD`` afterwards, until the upload expires, for a client that lost it."""
    tus.check_version(request.headers)
    if request.content_type != "application/offset+octet-stream":
        raise UnsupportedMediaType(
            "Envoyez les octets en application/offset+octet-stream.", code="offset_stream"
        )
    raw = request.headers.get("Upload-Offset", "")
    if not raw.isdigit():
        raise BadRequest("Upload-Offset header required.", code="offset_missing")
    upload_id = uuid_of(request, "upload_id")
    new, size = await uploads.append_chunk(
        request.app[DB],
        storage_of(request.app),
        principal_of(request),
        upload_id,
        int(raw),
        body_chunks(request),
        checksum=tus.checksum(request.headers),
    )
    headers = {**tus.RESUMABLE, "Upload-Offset": str(new)}
    if new == size and tus.is_tus(request.headers):
        doc = await uploads.complete_upload(
            request.app[DB],
            storage_of(request.app),
            principal_of(request),
            upload_id,
            keep_row=True,
        )
        headers["Consilium-Document-Id"] = str(doc.id)
    return web.Response(status=204, headers=headers)


@routes.post(
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
        storage_of(request.app),
        principal_of(request),
        uuid_of(request, "upload_id"),
    )
    return DocumentOut.of(doc)


@routes.delete("/uploads/{upload_id}", tags=TAGS)
async def cancel_upload(request: web.Request) -> web.Response:
    """Give up a resumable upload (its bytes are removed): tus termination."""
    tus.check_version(request.headers)
    await uploads.abort_upload(
        request.app[DB],
        storage_of(request.app),
        principal_of(request),
        uuid_of(request, "upload_id"),
    )
    return web.Response(status=204, headers=tus.RESUMABLE)


# -- my signature picture ---------------------------------------------------------------


@routes.put(
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
    data = bytearray()
    if request.content_type.startswith("multipart/"):
        reader = await multipart_reader(request)
        part = await reader.next()
        if not isinstance(part, BodyPartReader):
            raise BadRequest("Send the picture as the `file` field.", code="file_missing")
        chunks: AsyncIterator[bytes] = part_chunks(part)
    else:
        chunks = body_chunks(request)
    async for c in chunks:
        data += c
        if len(data) > stamping.MAX_SIGNATURE_BYTES:
            raise TooLarge("La signature dépasse 2 Mo.")
    row = await signature_picture.set_signature_picture(
        request.app[DB], principal_of(request), bytes(data)
    )
    return SignatureOut(width=row.width, height=row.height, updated_at=row.updated_at)


@routes.get(
    "/me/signature",
    tags=TAGS,
    errors=[404],
    raw_response={"image/png": {"schema": {"type": "string"}}},
)
async def get_signature(request: web.Request) -> web.Response:
    """My signature picture (PNG)."""
    png = await signature_picture.signature_picture(request.app[DB], principal_of(request))
    return web.Response(body=png, content_type="image/png")


@routes.delete("/me/signature", tags=TAGS)
async def delete_signature(request: web.Request) -> None:
    """Remove my signature picture."""
    await signature_picture.delete_signature_picture(request.app[DB], principal_of(request))


# -- export -----------------------------------------------------------------------------


@routes.get(
    "/dossiers/{dossier_id}/export",
    tags=TAGS,
    raw_response={"application/zip": {"schema": {"type": "string"}}},
)
async def export_dossier(request: web.Request) -> web.StreamResponse:
    """ "Exporter tout": a ZIP of the report and every document, with a manifest."""
    export = await prepare_export(
        request.app[DB],
        principal_of(request),
        uuid_of(request, "dossier_id"),
        request.app[SETTINGS].data_dir,
    )
    resp = web.StreamResponse(
        headers={
            "Content-Disposition": content_disposition(export.zip_name),
            "Cache-Control": "private, no-store",
        }
    )
    resp.content_type = "application/zip"
    await resp.prepare(request)
    async for chunk in stream_zip(
        export.entries, storage_of(request.app).blobs.open, export.manifest
    ):
        if chunk:
            await resp.write(chunk)
    await resp.write_eof()
    return resp


# -- the establishment's PACS -----------------------------------------------------------------


def _pull_out(job: pacs.PullJob) -> PacsPullOut:
    return PacsPullOut.model_validate(job, from_attributes=True)


@routes.get(
    "/dossiers/{dossier_id}/pacs/studies",
    response=PacsStudyList,
    tags=TAGS,
    errors=[409, 502],
)
async def search_pacs(request: web.Request) -> PacsStudyList:
    """The patient's exams in the establishment's PACS (C-FIND by identifier, name + birth date)."""
    studies = await pacs.search_studies(
        request.app[DB],
        request.app[SETTINGS],
        principal_of(request),
        uuid_of(request, "dossier_id"),
    )
    return PacsStudyList(
        studies=[PacsStudyOut.model_validate(s, from_attributes=True) for s in studies]
    )


@routes.post(
    "/dossiers/{dossier_id}/pacs/pulls",
    body=PacsPullIn,
    response=PacsPullOut,
    status=202,
    tags=TAGS,
    errors=[409, 422],
)
async def pull_from_pacs(request: web.Request, body: PacsPullIn) -> PacsPullOut:
    """Import a study from the PACS into the dossier, in the background (C-GET)."""
    job = await pacs.start_pull(
        request.app, principal_of(request), uuid_of(request, "dossier_id"), body.study_uid
    )
    return _pull_out(job)


@routes.get("/dossiers/{dossier_id}/pacs/pulls", response=PacsPullList, tags=TAGS)
async def list_pacs_pulls(request: web.Request) -> PacsPullList:
    """The imports from the PACS started in this dossier (on any node, with Redis), newest first."""
    jobs = await pacs.readable_jobs(
        request.app, principal_of(request), uuid_of(request, "dossier_id")
    )
    return PacsPullList(pulls=[_pull_out(j) for j in jobs])


@routes.get("/dossiers/{dossier_id}/pacs/pulls/{pull_id}", response=PacsPullOut, tags=TAGS)
async def get_pacs_pull(request: web.Request) -> PacsPullOut:
    """One import from the PACS and its progress."""
    dossier_id = uuid_of(request, "dossier_id")
    pull_id = uuid_of(request, "pull_id")
    for j in await pacs.readable_jobs(request.app, principal_of(request), dossier_id):
        if j.id == pull_id:
            return _pull_out(j)
    raise NotFound("Import introuvable.", code="pacs_pull_not_found")


# -- the reconciliation list of unmatched DICOM exams ------------------------------------------


def _exam_out(row: DicomInboxStudy) -> InboxExamOut:
    return InboxExamOut.model_validate(row, from_attributes=True)


@routes.get("/dicom-inbox", response=InboxList, tags=TAGS, errors=[403])
async def list_inbox(request: web.Request) -> InboxList:
    """Exams received by the DICOM node that wait to be attached to a dossier (secretariat)."""
    rows = await inbox.pending_exams(request.app[DB], principal_of(request))
    return InboxList(exams=[_exam_out(r) for r in rows])


@routes.post(
    "/dicom-inbox/{exam_id}/attach",
    body=InboxAttachIn,
    response=InboxExamOut,
    tags=TAGS,
    errors=[403, 409],
)
async def attach_inbox_exam(request: web.Request, body: InboxAttachIn) -> InboxExamOut:
    """Attach a waiting exam to a dossier: every image becomes a document of the dossier."""
    row = await inbox.attach_exam(
        request.app[DB],
        request.app[SETTINGS].data_dir,
        principal_of(request),
        uuid_of(request, "exam_id"),
        body.dossier_id,
    )
    return _exam_out(row)


@routes.post(
    "/dicom-inbox/{exam_id}/reject",
    body=InboxRejectIn,
    response=InboxExamOut,
    tags=TAGS,
    errors=[403, 409],
)
async def reject_inbox_exam(request: web.Request, body: InboxRejectIn) -> InboxExamOut:
    """Reject a waiting exam (its images are removed; who and why are audited)."""
    row = await inbox.reject_exam(
        request.app[DB],
        request.app[SETTINGS].data_dir,
        principal_of(request),
        uuid_of(request, "exam_id"),
        body.comment,
    )
    return _exam_out(row)


# -- DICOMweb (STOW-RS, WADO-RS) for one dossier --------------------------------------------

_DICOM_RELATED = {
    "multipart/related": {"schema": {"type": "string", "format": "binary"}},
}


def _dicom_json(body: Any, status: int = 200) -> web.Response:
    # Exactly "application/dicom+json" (no charset parameter): clients compare the type.
    return web.Response(
        body=json.dumps(body).encode(),
        status=status,
        headers={"Content-Type": "application/dicom+json"},
    )


def _dcm_ui(v: str) -> dict[str, Any]:
    return {"vr": "UI", "Value": [v]} if v else {"vr": "UI"}


async def _related_parts(request: web.Request) -> AsyncIterator[AsyncIterator[bytes]]:
    ctype = request.headers.get("Content-Type", "")
    if not ctype.startswith("multipart/related"):
        raise UnsupportedMediaType(
            'STOW-RS expects multipart/related; type="application/dicom".', code="not_multipart"
        )
    try:
        reader = await multipart_reader(request)
        while (part := await reader.next()) is not None:
            if isinstance(part, BodyPartReader):
                yield part_chunks(part)
    except (ValueError, HttpProcessingError) as e:
        raise BadRequest(
            f"The multipart body is malformed: {e}", code="malformed_multipart"
        ) from None


@routes.post(
    "/dossiers/{dossier_id}/dicomweb/studies",
    tags=TAGS,
    errors=[409, 413, 415],
    raw_body={"required": True, "content": _DICOM_RELATED},
    raw_response={"application/dicom+json": {"schema": {"type": "object"}}},
)
async def stow_rs(request: web.Request) -> web.StreamResponse:
    """STOW-RS: store DICOM instances in the dossier (200 all, 202 some, 409 problem+json none)."""
    dossier_id = uuid_of(request, "dossier_id")
    stored, failed = await dicomweb.store_instances(
        request.app[DB], principal_of(request), dossier_id, _related_parts(request)
    )
    base = f"{request.scheme}://{request.host}/api/v1/dossiers/{dossier_id}/dicomweb/studies"
    body: dict[str, Any] = {}
    if stored:
        body["00081190"] = {"vr": "UR", "Value": [f"{base}/{stored[0].study_uid}"]}
        body["00081199"] = {
            "vr": "SQ",
            "Value": [
                {
                    "00081150": _dcm_ui(s.sop_class_uid),
                    "00081155": _dcm_ui(s.sop_instance_uid),
                    "00081190": {
                        "vr": "UR",
                        "Value": [
                            f"{base}/{s.study_uid}/series/{s.series_uid}/instances/{s.sop_instance_uid}"
                        ],
                    },
                }
                for s in stored
            ],
        }
    if failed:
        body["00081198"] = {
            "vr": "SQ",
            "Value": [
                {
                    "00081150": _dcm_ui(f.sop_class_uid),
                    "00081155": _dcm_ui(f.sop_instance_uid),
                    "00081197": {"vr": "US", "Value": [f.reason]},
                }
                for f in failed
            ],
        }
    if not stored:
        # Nothing stored: a problem+json 409 that also carries the Failed SOP Sequence.
        raise Conflict("Aucune instance DICOM lisible dans l'envoi.", code="nothing_stored", **body)
    return _dicom_json(body, 200 if not failed else 202)


async def _multipart_dicom(request: web.Request, docs: list[Document]) -> web.StreamResponse:
    boundary = uuid.uuid4().hex
    resp = web.StreamResponse(
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Cache-Control": "private, no-store",
        }
    )
    await resp.prepare(request)
    storage = storage_of(request.app)
    for d in docs:
        await resp.write(
            f"--{boundary}\r\nContent-Type: application/dicom; transfer-syntax=*\r\n\r\n".encode()
        )
        async for block in storage.blobs.open(d.blob_key):
            await resp.write(block)
        await resp.write(b"\r\n")
    await resp.write(f"--{boundary}--\r\n".encode())
    await resp.write_eof()
    return resp


_WADO = {"multipart/related": {"schema": {"type": "string", "format": "binary"}}}


@routes.get("/dossiers/{dossier_id}/dicomweb/studies/{study_uid}", tags=TAGS, raw_response=_WADO)
async def wado_study(request: web.Request) -> web.StreamResponse:
    """WADO-RS: every instance of the study in the dossier (multipart/related)."""
    docs = await dicomweb.instances(
        request.app[DB],
        principal_of(request),
        uuid_of(request, "dossier_id"),
        request.match_info["study_uid"],
    )
    return await _multipart_dicom(request, docs)


@routes.get(
    "/dossiers/{dossier_id}/dicomweb/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}",
    tags=TAGS,
    raw_response=_WADO,
)
async def wado_instance(request: web.Request) -> web.StreamResponse:
    """WADO-RS: one instance of the dossier (multipart/related)."""
    docs = await dicomweb.instances(
        request.app[DB],
        principal_of(request),
        uuid_of(request, "dossier_id"),
        request.match_info["study_uid"],
        request.match_info["series_uid"],
        request.match_info["sop_uid"],
    )
    return await _multipart_dicom(request, docs)


@routes.get(
    "/dossiers/{dossier_id}/dicomweb/studies/{study_uid}/metadata",
    tags=TAGS,
    raw_response={"application/dicom+json": {"schema": {"type": "array"}}},
)
async def wado_metadata(request: web.Request) -> web.StreamResponse:
    """WADO-RS: the DICOM JSON of the study's instances in the dossier (no pixel data)."""
    docs = await dicomweb.instances(
        request.app[DB],
        principal_of(request),
        uuid_of(request, "dossier_id"),
        request.match_info["study_uid"],
    )
    storage = storage_of(request.app)
    out = []
    for d in docs:
        async with local_file(storage, d.blob_key) as path:
            out.append(await run_heavy(dicomweb.metadata_json, path))
    return _dicom_json(out)
