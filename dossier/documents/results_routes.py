"""HTTP routes of imaging results (seed 002 § 3.1): my unseen results, « Marquer comme vu »,
the exams history by visit, a DICOM series as a ZIP of DICOM files, and the habilitations
an administrator gives. They translate to :mod:`dossier.documents.results` and
:mod:`dossier.documents.habilitations`."""

from __future__ import annotations

from aiohttp import web

from core.auth import principal as principal_of
from core.context import DB
from core.errors import NotFound
from core.storage import of as storage_of
from dossier.documents import habilitations, results
from dossier.documents.export import Entry, stream_zip
from dossier.documents.schemas import (
    HabilitationsOut,
    SeenOut,
    UnseenPage,
    UnseenQuery,
    UnseenResultOut,
    VisitOut,
    VisitReportOut,
    VisitStudyOut,
)
from dossier.models import Habilitation
from dossier.web import RouteTable, content_disposition, uuid_of

TAGS = ["documents"]
routes = RouteTable()


@routes.get("/me/unseen-results", query=UnseenQuery, response=UnseenPage, tags=TAGS)
async def my_unseen_results(request: web.Request, query: UnseenQuery) -> UnseenPage:
    """« Derniers résultats non vus »: reports and exams of my dossiers (30 days), newest
    first; a DICOM study counts once."""
    items, total = await results.unseen_results(
        request.app[DB], principal_of(request), page=query.page, per_page=query.per_page
    )
    return UnseenPage(
        items=[UnseenResultOut.model_validate(i, from_attributes=True) for i in items],
        total=total,
        page=query.page,
        per_page=query.per_page,
    )


@routes.post("/dossiers/{dossier_id}/documents/{document_id}/seen", response=SeenOut, tags=TAGS)
async def mark_document_seen(request: web.Request) -> SeenOut:
    """« Marquer comme vu »: the result leaves my unseen results (a DICOM study as a whole)."""
    ids = await results.mark_seen(
        request.app[DB],
        principal_of(request),
        uuid_of(request, "dossier_id"),
        uuid_of(request, "document_id"),
    )
    return SeenOut(document_ids=ids)


@routes.get("/dossiers/{dossier_id}/exam-history", response=list[VisitOut], tags=TAGS)
async def exam_history(request: web.Request) -> list[VisitOut]:
    """The patient's imaging visits I may see: exams and date, reports, newest first."""
    visits = await results.exam_history(
        request.app[DB], principal_of(request), uuid_of(request, "dossier_id")
    )
    return [
        VisitOut(
            dossier_id=v.dossier_id,
            dossier_number=v.dossier_number,
            title=v.title,
            date=v.date,
            current=v.current,
            studies=[VisitStudyOut.model_validate(s, from_attributes=True) for s in v.studies],
            reports=[VisitReportOut.model_validate(r, from_attributes=True) for r in v.reports],
        )
        for v in visits
    ]


@routes.get(
    "/dossiers/{dossier_id}/dicom-series/{series_uid}",
    tags=TAGS,
    errors=[403],
    raw_response={"application/zip": {"schema": {"type": "string"}}},
)
async def download_dicom_series(request: web.Request) -> web.StreamResponse:
    """A series as DICOM files (ZIP), for holders of the « dicom_download » habilitation."""
    uid = request.match_info["series_uid"]
    if not uid or len(uid) > 64:
        raise NotFound("Cette série n'existe pas dans le dossier.", code="series_not_found")
    name, files = await results.series_files(
        request.app[DB], principal_of(request), uuid_of(request, "dossier_id"), uid
    )
    resp = web.StreamResponse(
        headers={
            "Content-Disposition": content_disposition(name),
            "Cache-Control": "private, no-store",
        }
    )
    resp.content_type = "application/zip"
    await resp.prepare(request)
    entries: list[Entry] = [(f"{n + 1:04d}-{d.filename}", d, None) for n, d in enumerate(files)]
    manifest = {"series_uid": uid, "files": [str(d.id) for d in files]}
    async for chunk in stream_zip(entries, storage_of(request.app).blobs.open, manifest):
        if chunk:
            await resp.write(chunk)
    await resp.write_eof()
    return resp


def _habilitation(request: web.Request) -> Habilitation:
    try:
        return Habilitation(request.match_info["name"])
    except ValueError:
        raise NotFound("Habilitation inconnue.", code="unknown_habilitation") from None


@routes.get("/me/habilitations", response=HabilitationsOut, tags=TAGS)
async def my_habilitations(request: web.Request) -> HabilitationsOut:
    """The habilitations my account holds (e.g. ``dicom_download``)."""
    held = await habilitations.mine(request.app[DB], principal_of(request))
    return HabilitationsOut(habilitations=sorted(h.value for h in held))


@routes.put(
    "/users/{user_id}/habilitations/{name}",
    response=HabilitationsOut,
    auth="admin",
    tags=["admin"],
)
async def grant_habilitation(request: web.Request) -> HabilitationsOut:
    """Give a user an habilitation (administrators)."""
    held = await habilitations.grant(
        request.app[DB], principal_of(request), uuid_of(request, "user_id"), _habilitation(request)
    )
    return HabilitationsOut(habilitations=sorted(h.value for h in held))


@routes.delete(
    "/users/{user_id}/habilitations/{name}",
    response=HabilitationsOut,
    auth="admin",
    tags=["admin"],
)
async def revoke_habilitation(request: web.Request) -> HabilitationsOut:
    """Take an habilitation back (administrators)."""
    held = await habilitations.revoke(
        request.app[DB], principal_of(request), uuid_of(request, "user_id"), _habilitation(request)
    )
    return HabilitationsOut(habilitations=sorted(h.value for h in held))
