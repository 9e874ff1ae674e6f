""" "Exporter tout": a ZIP of the report and every document, streamed, with a manifest.

The seeds insist that each participant files the act in their own record: the export is
that copy. The ZIP is written straight into the HTTP response (zip64, data descriptors),
one chunk at a time, so a dossier holding gigabytes of imaging never sits in memory.
``manifest.json`` lists each file with its SHA-256, author and date, so the receiving
system can check that nothing was altered on the way.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.db import Database, utcnow
from core.principal import Principal
from dossier.documents import access, habilitations
from dossier.documents.filetypes import CATEGORIES
from dossier.documents.store import list_documents
from dossier.models import Document, Dossier, Habilitation
from dossier.report.pdf import build_signed_report

Entry = tuple[str, Document | None, bytes | None]  # name in archive, document or bytes

_COMPRESSIBLE = {"text", "office", "dicom"}


class _Sink:
    """A write-only file object collecting what zipfile writes, drained after each step."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.pos = 0

    def write(self, b: bytes) -> int:
        self.parts.append(bytes(b))
        self.pos += len(b)
        return len(b)

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


def zip_name(number: str) -> str:
    """The ZIP's file name: the dossier's number, what the receiving record will file it by
    ("dossier-TE-2026-000123.zip"). No patient name: the file may travel by plain e-mail."""
    safe = "".join(c for c in number if c.isalnum() or c == "-") or "dossier"
    return f"dossier-{safe}.zip"


async def zip_name_of(session: AsyncSession, dossier_id: uuid.UUID) -> str:
    number = await session.scalar(select(Dossier.number).where(Dossier.id == dossier_id))
    return zip_name(number) if number else f"dossier-{dossier_id}.zip"


def archive_name(doc: Document, used: set[str]) -> str:
    folder = CATEGORIES.get(doc.category, "Autres")
    base = doc.filename
    name = f"{folder}/{base}"
    n = 2
    while name in used:
        stem, dot, ext = base.rpartition(".")
        name = f"{folder}/{stem} ({n}).{ext}" if dot else f"{folder}/{base} ({n})"
        n += 1
    used.add(name)
    return name


async def stream_zip(
    entries: list[Entry],
    open_blob: Any,
    manifest: dict[str, Any],
) -> AsyncIterator[bytes]:
    """Yield the ZIP bytes. ``entries``: (name in archive, document or None, bytes or None)."""
    sink = _Sink()
    zf = zipfile.ZipFile(sink, "w", allowZip64=True)  # type: ignore[call-overload]
    now = datetime.now(UTC).timetuple()[:6]
    for name, doc, data in entries:
        info = zipfile.ZipInfo(name, date_time=now)
        compress = doc is None or doc.category in _COMPRESSIBLE
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        with zf.open(info, "w", force_zip64=True) as out:
            # Deflate and CRC-32 run in a thread (zlib releases the GIL): a gigabyte export
            # must not stall the event loop that forwards a call's media on the same node.
            if data is not None:
                await asyncio.to_thread(out.write, data)
            else:
                assert doc is not None
                async for block in open_blob(doc.blob_key):
                    await asyncio.to_thread(out.write, block)
                    yield sink.drain()
        yield sink.drain()
    info = zipfile.ZipInfo("manifest.json", date_time=now)
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, json.dumps(manifest, ensure_ascii=False, indent=2))
    zf.close()
    yield sink.drain()


@dataclass
class Export:
    """What the "Exporter tout" archive holds, ready to stream with :func:`stream_zip`."""

    zip_name: str
    entries: list[Entry]
    manifest: dict[str, Any]


async def prepare_export(
    db: Database, principal: Principal, dossier_id: uuid.UUID, data_dir: Path
) -> Export:
    """Check the reader, list the files (with a report generated for the export when the
    dossier has none yet), build the manifest and audit the export."""
    async with db.read() as session:
        await access.require_document_read(session, principal, dossier_id)
        docs = await list_documents(session, dossier_id)
        dicom_download = await habilitations.holds(session, principal, Habilitation.dicom_download)
        generated: bytes | None = None
        report_name = ""
        if not any(d.source == "report" for d in docs):
            report_name, generated, _ = await build_signed_report(
                session, dossier_id, principal.label, data_dir
            )
    used: set[str] = set()
    entries: list[Entry] = []
    files: list[dict[str, Any]] = []
    if generated is not None:
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
    omitted = 0
    for d in docs:
        if d.category == "dicom" and not dicom_download:
            omitted += 1  # seed 002 § 3.1.3: DICOM files only for holders of the habilitation
            continue
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
    manifest: dict[str, Any] = {
        "dossier_id": str(dossier_id),
        "exported_at": utcnow().isoformat(),
        "exported_by": principal.label,
        "files": files,
    }
    if omitted:
        manifest["dicom_omitted"] = omitted
    await audit.record_now(
        db,
        "dossier.export",
        actor=principal,
        object_type="dossier",
        object_id=dossier_id,
        files=len(files),
        dicom_omitted=omitted,
    )
    return Export(zip_name, entries, manifest)
