"""Imaging results (seed 002 § 3.1): the unseen results of the home page, « Marquer comme
vu », the exams history grouped by visit, and the download of a DICOM series.

- **Unseen results** (§ 3.1.1): the reports and exams added in the last 30 days to the
  dossiers I take part in (or consulted by number; not an administrator's view of all), by
  someone else, that I have not opened nor marked as seen. A DICOM study is one result.
  The listing is audited (``result.list``).
- **Exams history** (§ 3.1.2): each visit (a dossier of the patient holding DICOM studies)
  is one node titled by its exams and their date, with the reports of that dossier and the
  way to its images. Only the dossiers I take part in, plus the one I am reading.
- **DICOM series** (§ 3.1.3): the files of one series as a ZIP, for holders of the
  habilitation only (:mod:`dossier.documents.habilitations`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import String, and_, cast, func, or_, select

from core import audit
from core.db import Database, utcnow
from core.errors import NotFound
from core.principal import Principal
from dossier.documents import access, habilitations, seen
from dossier.documents.dicom import instance_sort_key
from dossier.models import Document, DocumentView, Dossier, Patient
from dossier.permissions import visible_dossiers


@dataclass
class UnseenResult:
    """One line of « Derniers résultats non vus »."""

    kind: str  # "report" | "exam"
    dossier_id: uuid.UUID
    dossier_number: str
    patient_name: str
    patient_birth_date: date
    title: str
    added_at: datetime
    first_document_id: uuid.UUID
    study_uid: str = ""
    study_date: str = ""
    modalities: list[str] = field(default_factory=list)
    files: int = 1


async def unseen_results(
    db: Database, principal: Principal, *, page: int, per_page: int
) -> tuple[list[UnseenResult], int]:
    """My unseen results, newest first, paged; and how many there are. An administrator sees
    every dossier but takes part in none: no results are news to them."""
    if not principal.is_user or principal.is_admin:
        return [], 0
    me = principal.subject_id
    since = utcnow() - seen.RECENT
    # One result per DICOM study (per dossier), one per other document: folded in SQL, so a
    # CT study of hundreds of files costs one row and paging happens in the database.
    study = func.nullif(Document.meta["dicom"]["study_uid"].as_string(), "")
    key = func.coalesce(study, cast(Document.id, String))
    grouped = (
        select(
            Document.dossier_id.label("dossier_id"),
            key.label("key"),
            func.count().label("files"),
            func.max(Document.created_at).label("added_at"),
            func.min(cast(Document.id, String)).label("first"),
        )
        .outerjoin(
            DocumentView,
            and_(DocumentView.document_id == Document.id, DocumentView.user_id == me),
        )
        .join(Dossier, Dossier.id == Document.dossier_id)
        .where(
            visible_dossiers(principal, grants=True),
            seen.result_clause(),
            Document.created_at >= since,
            DocumentView.document_id.is_(None),
            or_(Document.author_id.is_(None), Document.author_id != me),
        )
        .group_by(Document.dossier_id, key)
    ).subquery()
    async with db.read() as s:
        total = await s.scalar(select(func.count()).select_from(grouped)) or 0
        page_rows = (
            await s.execute(
                select(grouped)
                .order_by(grouped.c.added_at.desc(), grouped.c.dossier_id, grouped.c.key)
                .offset((page - 1) * per_page)
                .limit(per_page)
            )
        ).all()
        firsts = [uuid.UUID(str(r.first)) for r in page_rows]
        docs = {
            d.id: d
            for d in (await s.execute(select(Document).where(Document.id.in_(firsts)))).scalars()
        }
        heads = {
            d.id: (d, p)
            for d, p in (
                await s.execute(
                    select(Dossier, Patient)
                    .join(Patient, Patient.id == Dossier.patient_id)
                    .where(Dossier.id.in_({r.dossier_id for r in page_rows}))
                )
            ).all()
        }
    shown = []
    for r, first in zip(page_rows, firsts, strict=True):
        doc = docs[first]
        dossier, patient = heads[r.dossier_id]
        dicom = (doc.meta or {}).get("dicom") or {} if doc.category == "dicom" else {}
        modality = str(dicom.get("modality", "") or "")
        shown.append(
            UnseenResult(
                kind="exam" if doc.category == "dicom" else "report",
                dossier_id=r.dossier_id,
                dossier_number=dossier.number,
                patient_name=patient.display_name,
                patient_birth_date=patient.birth_date,
                title=str(
                    dicom.get("study_description")
                    or dicom.get("series_description")
                    or doc.filename
                ),
                added_at=r.added_at,
                first_document_id=doc.id,
                study_uid=str(dicom.get("study_uid", "") or ""),
                study_date=str(dicom.get("study_date", "") or ""),
                modalities=[modality] if modality else [],
                files=int(r.files),
            )
        )
    await audit.record_now(
        db,
        "result.list",
        actor=principal,
        object_type="dossier",
        count=len(shown),
        dossier_ids=sorted({str(i.dossier_id) for i in shown}),
    )
    return shown, total


async def mark_seen(
    db: Database, principal: Principal, dossier_id: uuid.UUID, document_id: uuid.UUID
) -> list[uuid.UUID]:
    """« Marquer comme vu »: the result (a report, or the whole DICOM study) leaves my list;
    it stays in the dossier and in search. Audited as a read marked by hand."""
    async with db.write() as uow:
        s = uow.session
        await access.require_document_read(s, principal, dossier_id)
        doc = await s.get(Document, document_id)
        if doc is None or doc.dossier_id != dossier_id:
            raise NotFound("Document introuvable.", code="document_not_found")
        ids = await seen.same_result(s, doc) if seen.is_result(doc) else [doc.id]
        new = await seen.mark(s, principal.subject_id, ids, "marked")
        audit.record(
            s,
            "document.mark_seen",
            actor=principal,
            object_type="document",
            object_id=doc.id,
            dossier_id=str(dossier_id),
            filename=doc.filename,
            documents=len(ids),
            new=new,
        )
        return ids


# -- exams history, grouped by visit (§ 3.1.2) -------------------------------------------


@dataclass
class VisitReport:
    document_id: uuid.UUID
    filename: str
    added_at: datetime
    seen: bool


@dataclass
class VisitStudy:
    study_uid: str
    description: str
    study_date: str
    modalities: list[str]
    series: int
    files: int


@dataclass
class Visit:
    dossier_id: uuid.UUID
    dossier_number: str
    title: str  # the exams done, « SCANNER CEREBRAL »
    date: str  # ISO date of the exam (or of the dossier when the files carry none)
    current: bool  # the dossier being read
    studies: list[VisitStudy]
    reports: list[VisitReport]


async def exam_history(db: Database, principal: Principal, dossier_id: uuid.UUID) -> list[Visit]:
    """The patient's imaging visits that I may see, newest first (audited)."""
    async with db.read() as s:
        await access.require_document_read(s, principal, dossier_id)
        dossier = await s.get(Dossier, dossier_id)
        assert dossier is not None
        dossiers = (
            await s.execute(
                select(Dossier).where(
                    Dossier.patient_id == dossier.patient_id,
                    or_(Dossier.id == dossier_id, visible_dossiers(principal)),
                )
            )
        ).scalars()
        by_id = {d.id: d for d in dossiers}
        docs = (
            (
                await s.execute(
                    select(Document)
                    .where(Document.dossier_id.in_(list(by_id)), seen.result_clause())
                    .order_by(Document.created_at)
                )
            )
            .scalars()
            .all()
        )
        seen_ids = set()
        if principal.is_user:
            seen_ids = set(
                (
                    await s.execute(
                        select(DocumentView.document_id).where(
                            DocumentView.user_id == principal.subject_id,
                            DocumentView.document_id.in_([d.id for d in docs]),
                        )
                    )
                ).scalars()
            )
    visits = []
    for did, dos in by_id.items():
        mine = [d for d in docs if d.dossier_id == did]
        exams = [d for d in mine if d.category == "dicom"]
        if not exams:
            continue
        studies: dict[str, list[Document]] = {}
        for d in exams:
            studies.setdefault(seen.study_uid(d) or str(d.id), []).append(d)
        out_studies = []
        for uid, files in studies.items():
            files.sort(key=lambda d: instance_sort_key((d.meta or {}).get("dicom") or {}))
            metas = [(f.meta or {}).get("dicom") or {} for f in files]
            out_studies.append(
                VisitStudy(
                    study_uid=uid,
                    description=str(metas[0].get("study_description", "") or ""),
                    study_date=str(metas[0].get("study_date", "") or ""),
                    modalities=sorted({str(m.get("modality", "")) for m in metas} - {""}),
                    series=len({str(m.get("series_uid", "")) for m in metas}),
                    files=len(files),
                )
            )
        dates = sorted(st.study_date for st in out_studies if st.study_date)
        titles = [st.description or " ".join(st.modalities) for st in out_studies]
        visits.append(
            Visit(
                dossier_id=did,
                dossier_number=dos.number,
                title=", ".join(dict.fromkeys(t for t in titles if t)) or "Examen d'imagerie",
                date=dates[-1] if dates else dos.created_at.date().isoformat(),
                current=did == dossier_id,
                studies=out_studies,
                reports=[
                    VisitReport(d.id, d.filename, d.created_at, d.id in seen_ids)
                    for d in mine
                    if d.category != "dicom"
                ],
            )
        )
    visits.sort(key=lambda v: v.date, reverse=True)
    for v in visits:
        await audit.record_now(
            db,
            "dossier.exam_history",
            actor=principal,
            object_type="dossier",
            object_id=v.dossier_id,
            from_dossier=str(dossier_id),
        )
    return visits


# -- a DICOM series as DICOM files (§ 3.1.3) ---------------------------------------------


async def series_files(
    db: Database, principal: Principal, dossier_id: uuid.UUID, series_uid: str
) -> tuple[str, list[Document]]:
    """The files of one series, for a holder of the habilitation (the refusal and the
    download are audited); and the archive's name."""
    async with db.read() as s:
        await access.require_document_read(s, principal, dossier_id)
        dossier = await s.get(Dossier, dossier_id)
        rows = (
            (
                await s.execute(
                    select(Document).where(
                        Document.dossier_id == dossier_id, Document.category == "dicom"
                    )
                )
            )
            .scalars()
            .all()
        )
    files = [
        d for d in rows if str(((d.meta or {}).get("dicom") or {}).get("series_uid")) == series_uid
    ]
    if not files:
        raise NotFound("Cette série n'existe pas dans le dossier.", code="series_not_found")
    await habilitations.require_dicom_download(
        db, principal, dossier_id, "series", series_uid=series_uid
    )
    files.sort(key=lambda d: instance_sort_key((d.meta or {}).get("dicom") or {}))
    async with db.write() as uow:
        audit.record(
            uow.session,
            "document.download_dicom",
            actor=principal,
            object_type="dossier",
            object_id=dossier_id,
            what="series",
            series_uid=series_uid,
            document_ids=[str(d.id) for d in files],
        )
        if principal.is_user:
            await seen.mark(uow.session, principal.subject_id, [d.id for d in files], "opened")
    number = dossier.number if dossier is not None else str(dossier_id)
    meta = (files[0].meta or {}).get("dicom") or {}
    label = str(meta.get("series_number") or "") or series_uid[-8:]
    return f"{number}-serie-{label}.zip", files
