"""HTTP routes of the report: generate it, verify a PDF's signature, the root certificate."""

from __future__ import annotations

import asyncio

from aiohttp import web

from core.auth import principal as principal_of
from core.context import DB, SETTINGS
from core.errors import ValidationFailed
from core.storage import of as storage_of
from dossier.documents import store
from dossier.documents.schemas import DocumentOut
from dossier.report import signing
from dossier.report.filings import filings_of
from dossier.report.pdf import file_report
from dossier.report.schemas import ReportFilingOut, VerificationOut
from dossier.web import RouteTable, uuid_of

TAGS = ["documents"]
routes = RouteTable()


@routes.get(
    "/dossiers/{dossier_id}/documents/{document_id}/verification",
    response=VerificationOut,
    tags=TAGS,
    errors=[422],
)
async def verify_document(request: web.Request) -> VerificationOut:
    """Check a PDF's electronic signature (PAdES) against this installation's root."""
    db, p = request.app[DB], principal_of(request)
    doc = await store.readable_document(
        db, p, uuid_of(request, "dossier_id"), uuid_of(request, "document_id")
    )
    if doc.content_type != "application/pdf":
        raise ValidationFailed("Seuls les PDF portent une signature.", code="not_a_pdf")
    await store.record_read(db, p, doc, "verification")
    pdf = await storage_of(request.app).blobs.read(doc.blob_key)
    v = await signing.verify_pdf(request.app[SETTINGS].data_dir, pdf)
    return VerificationOut(
        signed=v.signed,
        intact=v.intact,
        trusted=v.trusted,
        covers_whole_file=v.covers_whole_file,
        ok=v.ok,
        signer=v.signer,
        signed_at=v.signed_at,
    )


@routes.get(
    "/signing/root.pem",
    auth="none",
    tags=TAGS,
    raw_response={"application/x-pem-file": {"schema": {"type": "string"}}},
)
async def signing_root(request: web.Request) -> web.Response:
    """This installation's root certificate, to verify its reports' signatures."""
    pki = await asyncio.to_thread(signing.ensure_pki, request.app[SETTINGS].data_dir)
    return web.Response(
        body=pki.ca_cert.read_bytes(),
        content_type="application/x-pem-file",
        headers={"Content-Disposition": 'attachment; filename="consilium-racine.pem"'},
    )


@routes.post(
    "/dossiers/{dossier_id}/report", response=DocumentOut, status=201, tags=TAGS, errors=[422]
)
async def make_report(request: web.Request) -> DocumentOut:
    """Generate the report PDF ("Générer PDF"), signed (PAdES), filed in the dossier."""
    doc = await file_report(
        request.app[DB],
        principal_of(request),
        uuid_of(request, "dossier_id"),
        request.app[SETTINGS].data_dir,
    )
    return DocumentOut.of(doc)


@routes.get(
    "/dossiers/{dossier_id}/report-filings",
    response=list[ReportFilingOut],
    tags=TAGS,
    errors=[404],
)
async def report_filings(request: web.Request) -> list[ReportFilingOut]:
    """Where the signed reports stand in the establishment's record (DPI, FHIR push):
    « Compte-rendu déposé dans le DPI le … » on the dossier page."""
    rows = await filings_of(request.app[DB], principal_of(request), uuid_of(request, "dossier_id"))
    return [
        ReportFilingOut(
            document_id=f.document_id,
            status=f.status,
            attempts=f.attempts,
            created_at=f.created_at,
            filed_at=f.filed_at,
            next_attempt_at=f.next_attempt_at if f.status == "pending" else None,
            last_attempt_at=f.last_attempt_at,
            last_error=f.last_error,
            remote_id=f.remote_id,
        )
        for f in rows
    ]
