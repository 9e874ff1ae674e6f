"""DICOMweb for one dossier: STOW-RS to receive instances (a viewer or a gateway acting
for a signed-in user), WADO-RS to serve the dossier's instances to a viewer (DICOM PS3.18).

STOW-RS: each part of the ``multipart/related; type="application/dicom"`` body is staged,
read, and added through :func:`dossier.documents.store.add_document` (``source="dicomweb"``)
in one transaction; a part that is not a readable DICOM instance is listed in the answer's
Failed SOP Sequence and the others are kept (200 all stored, 202 some, 409 none).
WADO-RS answers the stored files as they were received (``transfer-syntax=*``). Every read
is audited like a document read.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.db import Database
from core.errors import NotFound, Problem
from core.principal import Principal
from core.storage import StagedFile
from dossier.documents import access
from dossier.documents.dicom import read_metadata
from dossier.documents.store import add_document, list_documents, record_read, storage_for
from dossier.models import Document


@dataclass
class Stored:
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str


@dataclass
class Failed:
    sop_class_uid: str
    sop_instance_uid: str
    reason: int  # DICOM failure reason (0xC000 cannot understand, 0xA700 out of resources)
    detail: str


def _sop_class(path: Path) -> str:
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    return str(ds.get("SOPClassUID", ""))


async def store_instances(
    db: Database,
    principal: Principal,
    dossier_id: uuid.UUID,
    parts: AsyncIterator[AsyncIterable[bytes]],
) -> tuple[list[Stored], list[Failed]]:
    """STOW-RS into a dossier: every readable DICOM part becomes a document (one transaction)."""
    stored: list[Stored] = []
    failed: list[Failed] = []
    async with db.write() as uow:
        s = uow.session
        await access.require_document_write(s, principal, dossier_id)
        storage = storage_for(s)
        async for chunks in parts:
            staged: StagedFile | None = None
            try:
                staged = await storage.staging.stage(chunks)
                info = await asyncio.to_thread(read_metadata, staged.path)
                sop_class = await asyncio.to_thread(_sop_class, staged.path)
                sop = info.sop_instance_uid
                name = f"{info.modality or 'DICOM'} {info.study_date} {sop[-12:]}.dcm"
                await add_document(uow, principal, dossier_id, name, staged, "dicomweb")
                staged = None  # the blob store owns it now
                stored.append(
                    Stored(sop_class, info.sop_instance_uid, info.study_uid, info.series_uid)
                )
            except Problem as e:
                if e.status >= 500 or e.code == "too_large":
                    raise
                failed.append(Failed("", "", 0xC000, e.detail or e.title))
            except Exception as e:  # pydicom: not a DICOM instance
                failed.append(Failed("", "", 0xC000, f"Instance DICOM illisible : {e}"[:200]))
            finally:
                if staged is not None:
                    storage.staging.discard_file(staged)
    return stored, failed


async def instances(
    db: Database,
    principal: Principal,
    dossier_id: uuid.UUID,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
) -> list[Document]:
    """The dossier's DICOM documents of a study (series, instance), audited as reads."""
    async with db.read() as s:
        await access.require_document_read(s, principal, dossier_id)
        docs = await list_documents(s, dossier_id)
    out = []
    for d in docs:
        m = (d.meta or {}).get("dicom") or {}
        if d.category != "dicom" or m.get("study_uid") != study_uid:
            continue
        if series_uid is not None and m.get("series_uid") != series_uid:
            continue
        if sop_uid is not None and m.get("sop_instance_uid") != sop_uid:
            continue
        out.append(d)
    if not out:
        raise NotFound("Aucune instance DICOM de ce dossier ne correspond.", code="dicom_not_found")
    for d in out:
        await record_read(db, principal, d, "dicomweb")
    return out


def metadata_json(path: Path) -> dict[str, Any]:
    """The DICOM JSON of an instance without its pixel data (WADO-RS metadata)."""
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return ds.to_json_dict(bulk_data_threshold=1 << 20, bulk_data_element_handler=lambda _: "")
