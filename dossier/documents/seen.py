"""Results a user has seen (seed 002 § 3.1.1 « derniers résultats non vus »).

A *result* is a report or an exam: a document of category ``report`` or ``dicom`` (or made
by the report generator or received from a DICOM modality). The home page lists the results
of my dossiers from the last 30 days that I have not seen; opening one (its content, or its
images in the viewer) or « Marquer comme vu » writes a :class:`DocumentView` row, here only,
inside the transaction that writes the read's audit row.

A DICOM exam is one result however many files it has: seeing one image of a study marks
every file of that study in the dossier as seen.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from dossier.models import Document, DocumentView

RESULT_CATEGORIES = ("report", "dicom")
RESULT_SOURCES = ("report", "dicom_node")
RECENT = timedelta(days=30)


def is_result(doc: Document) -> bool:
    return doc.category in RESULT_CATEGORIES or doc.source in RESULT_SOURCES


def result_clause() -> ColumnElement[bool]:
    """A WHERE clause on ``Document``: the reports and exams."""
    return or_(Document.category.in_(RESULT_CATEGORIES), Document.source.in_(RESULT_SOURCES))


def study_uid(doc: Document) -> str:
    return str(((doc.meta or {}).get("dicom") or {}).get("study_uid", "") or "")


async def already_seen(session: AsyncSession, user_id: uuid.UUID, document_id: uuid.UUID) -> bool:
    row = await session.execute(
        select(DocumentView.document_id).where(
            DocumentView.user_id == user_id, DocumentView.document_id == document_id
        )
    )
    return row.first() is not None


async def same_result(session: AsyncSession, doc: Document) -> list[uuid.UUID]:
    """The documents that make one result with ``doc``: the files of its DICOM study in the
    dossier, or the document alone."""
    uid = study_uid(doc) if doc.category == "dicom" else ""
    if not uid:
        return [doc.id]
    rows = await session.execute(
        select(Document.id, Document.meta).where(
            Document.dossier_id == doc.dossier_id, Document.category == "dicom"
        )
    )
    ids = [i for i, meta in rows if str(((meta or {}).get("dicom") or {}).get("study_uid")) == uid]
    return ids or [doc.id]


async def mark(
    session: AsyncSession, user_id: uuid.UUID, document_ids: Iterable[uuid.UUID], how: str
) -> int:
    """Write the seen rows (in the caller's transaction); idempotent. Returns how many rows
    are new."""
    ids = list(dict.fromkeys(document_ids))
    if not ids:
        return 0
    bind = session.bind
    dialect = bind.dialect.name if bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    now = utcnow()
    stmt = (
        insert(DocumentView)
        .values([{"user_id": user_id, "document_id": i, "seen_at": now, "how": how} for i in ids])
        .on_conflict_do_nothing(index_elements=["user_id", "document_id"])
    )
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


def recent_since() -> object:
    return utcnow() - RECENT
