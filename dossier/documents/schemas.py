"""Request and response models of the document routes (they feed /api/v1/openapi.json)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from core.paris_time import paris_date
from dossier.documents.dicom import instance_sort_key
from dossier.documents.filetypes import CATEGORIES
from dossier.documents.store import SOURCE_LABELS
from dossier.models import Document


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


def series_of(members: list[DocumentOut]) -> list[SeriesOut]:
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


def studies_of(docs: list[DocumentOut]) -> list[StudyOut]:
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
                series=series_of(members),
            )
        )
    return out


class DocumentList(BaseModel):
    categories: list[CategoryOut]
    total: int
    # The reader holds the habilitation to download DICOM files (seed 002 § 3.1.3).
    dicom_download: bool = False


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
    document_id: uuid.UUID | None = None  # once a tus client's last chunk completed it


MAX_STAMP_PAGES = 500


class StampIn(BaseModel):
    # 1-based page numbers, each once; the PDF's page count is checked before any rendering
    pages: (
        Literal["all"]
        | Annotated[list[Annotated[int, Field(ge=1)]], Field(max_length=MAX_STAMP_PAGES)]
    ) = "all"
    x: float = Field(ge=0, lt=1)
    y: float = Field(ge=0, lt=1)
    width: float = Field(gt=0, le=1)

    @field_validator("pages")
    @classmethod
    def _unique(cls, v: Literal["all"] | list[int]) -> Literal["all"] | list[int]:
        if isinstance(v, list):
            if not v:
                raise ValueError('give at least one page, or "all"')
            if len(set(v)) != len(v):
                raise ValueError("each page once")
        return v


class SignatureOut(BaseModel):
    width: int
    height: int
    updated_at: datetime


def _call_of(d: Document) -> dict[str, Any] | None:
    call = (d.meta or {}).get("call")
    return call if isinstance(call, dict) and call.get("room_id") else None


def call_label(call: dict[str, Any]) -> str:
    """« Pendant la téléconsultation du 08/12/2026 » (« Pendant l'appel du … » for a room
    that is not a téléconsultation)."""
    try:
        day = paris_date(datetime.fromisoformat(str(call.get("at"))))
    except ValueError:
        day = "—"
    what = "la téléconsultation" if call.get("kind") == "teleconsultation" else "l'appel"
    return f"Pendant {what} du {day}"


def document_list(docs: list[Document]) -> DocumentList:
    """The documents grouped by category, in the categories' order (DICOM also by study);
    the screenshots, snapshots and files of a call held in a room of the dossier come first,
    one group per call (« Pendant la téléconsultation du … »), rather than mixed into
    « Images »."""
    cats = []
    calls: dict[str, list[Document]] = {}
    for d in docs:
        if (c := _call_of(d)) is not None and d.category != "dicom":
            calls.setdefault(str(c["room_id"]), []).append(d)
    in_call = {d.id for group in calls.values() for d in group}
    for room_id, group in sorted(
        calls.items(), key=lambda kv: str((_call_of(kv[1][0]) or {}).get("at")), reverse=True
    ):
        call = _call_of(group[0]) or {}
        cats.append(
            CategoryOut(
                code=f"call:{room_id}",
                label=call_label(call),
                count=len(group),
                documents=[DocumentOut.of(d) for d in group],
                studies=[],
            )
        )
    for code, label in CATEGORIES.items():
        mine = [DocumentOut.of(d) for d in docs if d.category == code and d.id not in in_call]
        if mine:
            cats.append(
                CategoryOut(
                    code=code,
                    label=label,
                    count=len(mine),
                    documents=mine,
                    studies=studies_of(mine) if code == "dicom" else [],
                )
            )
    return DocumentList(categories=cats, total=len(docs))


# -- imaging results (seed 002 § 3.1) ----------------------------------------------------


class UnseenQuery(BaseModel):
    page: int = Field(1, ge=1, le=10_000)
    per_page: int = Field(20, ge=1, le=50)


class UnseenResultOut(BaseModel):
    """One line of « Derniers résultats non vus »: a report, or a DICOM exam (its files)."""

    kind: Literal["report", "exam"]
    dossier_id: uuid.UUID
    dossier_number: str
    patient_name: str
    patient_birth_date: date
    title: str
    added_at: datetime
    first_document_id: uuid.UUID
    study_uid: str
    study_date: str
    modalities: list[str]
    files: int


class UnseenPage(BaseModel):
    items: list[UnseenResultOut]
    total: int
    page: int
    per_page: int


class SeenOut(BaseModel):
    document_ids: list[uuid.UUID] = Field(description="The documents now seen (a whole study)")


class VisitReportOut(BaseModel):
    document_id: uuid.UUID
    filename: str
    added_at: datetime
    seen: bool


class VisitStudyOut(BaseModel):
    study_uid: str
    description: str
    study_date: str
    modalities: list[str]
    series: int
    files: int


class VisitOut(BaseModel):
    """One visit of the patient (a dossier with DICOM studies), seed 002 § 3.1.2."""

    dossier_id: uuid.UUID
    dossier_number: str
    title: str
    date: str
    current: bool
    studies: list[VisitStudyOut]
    reports: list[VisitReportOut]


class HabilitationsOut(BaseModel):
    habilitations: list[str]


# -- PACS -----------------------------------------------------------------------------------


class PacsStudyOut(BaseModel):
    """An exam known to the establishment's PACS (a C-FIND answer, study level)."""

    study_uid: str
    study_date: str
    description: str
    modalities: list[str]
    accession_number: str
    patient_name: str
    patient_id: str
    patient_birth_date: str
    instances: int | None


class PacsStudyList(BaseModel):
    studies: list[PacsStudyOut]


class PacsPullIn(BaseModel):
    study_uid: str = Field(min_length=1, max_length=64, pattern=r"^[0-9]+(\.[0-9]+)*$")


class PacsPullOut(BaseModel):
    """A background retrieval of one study into the dossier, and where it stands."""

    id: uuid.UUID
    dossier_id: uuid.UUID
    study_uid: str
    status: Literal["queued", "running", "filing", "done", "failed"]
    total: int | None = Field(description="instances the PACS announced (once known)")
    received: int
    documents: int = Field(description="documents added to the dossier (once done)")
    error: str
    requested_by: str
    created_at: datetime
    finished_at: datetime | None


class PacsPullList(BaseModel):
    pulls: list[PacsPullOut]


# -- the reconciliation list ------------------------------------------------------------------


class InboxExamOut(BaseModel):
    """An exam received by the DICOM node that matched no dossier (or several)."""

    id: uuid.UUID
    study_uid: str
    patient_name: str
    patient_id: str
    patient_birth_date: str
    modality: str
    study_date: str
    description: str
    reason: Literal["no_matching_dossier", "several_matching_dossiers"]
    candidates: list[str]
    instances: int
    received_at: datetime
    status: Literal["pending", "attached", "rejected"]
    dossier_id: uuid.UUID | None
    resolved_at: datetime | None
    comment: str


class InboxList(BaseModel):
    exams: list[InboxExamOut]


class InboxAttachIn(BaseModel):
    dossier_id: uuid.UUID


class InboxRejectIn(BaseModel):
    comment: str = Field("", max_length=500)
