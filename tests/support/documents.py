"""Test material for documents: dossiers written straight into the tables, and real files
(PDF with pymupdf, images with Pillow, DICOM with pydicom) built on the fly."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.db import Database


async def make_dossier(
    db: Database,
    users: dict[str, Any],
    *,
    birth_name: str = "MARTIN",
    used_name: str = "",
    first_name: str = "Jean",
    birth_date: date = date(1980, 1, 1),
    ins: str | None = None,
    ipp: str | None = "123",
    state: str = "awaiting_expertise",
    signed_parts: bool = False,
    closed_at: datetime | None = None,
) -> uuid.UUID:
    """A dossier of requester → expert (no care offer), optionally with both parts signed."""
    from dossier.models import Dossier, DossierState, FormPart, FormSide, FormStatus, Patient

    now = datetime.now(UTC)
    async with db.write() as uow:
        s = uow.session
        p = Patient(
            birth_name=birth_name,
            used_name=used_name,
            first_name=first_name,
            first_names=first_name,
            sex="M",
            birth_date=birth_date,
            birth_commune="PARIS",
            birth_insee_code="75056",
            ins=ins,
            ipp=ipp,
            created_by_id=users["requester"].id,
        )
        s.add(p)
        await s.flush()
        d = Dossier(
            patient_id=p.id,
            requester_id=users["requester"].id,
            created_by_id=users["requester"].id,
            expert_id=users["expert"].id,
            state=DossierState(state),
            consent=True,
            consent_comment="Consentement oral recueilli",
            urgent=True,
            submitted_at=now,
            closed_at=closed_at,
        )
        s.add(d)
        await s.flush()
        if signed_parts:
            for side, user, fields, values in (
                (
                    FormSide.requester,
                    users["requester"],
                    [{"name": "question", "label": "Question posée", "type": "textarea"}],
                    {"question": "ECG anormal ?"},
                ),
                (
                    FormSide.expert,
                    users["expert"],
                    [{"name": "avis", "label": "Avis du médecin requis", "type": "textarea"}],
                    {"avis": "L'examen paraît normal, à revérifier dans 1 mois."},
                ),
            ):
                s.add(
                    FormPart(
                        dossier_id=d.id,
                        side=side,
                        fields=fields,
                        values=values,
                        status=FormStatus.signed,
                        signed_by_id=user.id,
                        signed_at=now,
                    )
                )
        return d.id


def pdf_bytes(pages: int = 2, text: str = "Résultat d'analyse") -> bytes:
    import pymupdf

    doc = pymupdf.open()
    for i in range(pages):
        page = doc.new_page()
        page.insert_text((72, 72), f"{text} — page {i + 1}")
    out = doc.tobytes()
    doc.close()
    return bytes(out)


def png_bytes(
    size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 30, 30)
) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def signature_png() -> bytes:
    from PIL import Image, ImageDraw

    im = Image.new("RGBA", (300, 100), (255, 255, 255, 0))
    ImageDraw.Draw(im).line(
        [(10, 80), (100, 20), (200, 80), (290, 20)], fill=(0, 0, 120, 255), width=6
    )
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def docx_bytes() -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<document/>")
    return buf.getvalue()


def mp4_bytes(size: int = 200_000) -> bytes:
    head = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    return head + bytes(range(256)) * (size // 256)


def dicom_bytes(
    *,
    name: str = "MARTIN^JEAN",
    birth_date: str = "19800101",
    patient_id: str = "123",
    modality: str = "CT",
    pixels: np.ndarray | None = None,
    slope: float | None = 1.0,
    intercept: float | None = -1024.0,
    window: tuple[float, float] | None = (40.0, 400.0),
    photometric: str = "MONOCHROME2",
) -> bytes:
    """A real single-frame DICOM file (Explicit VR Little Endian) written by pydicom."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    if pixels is None:
        pixels = np.tile(np.linspace(0, 2000, 64, dtype=np.uint16), (64, 1))
    meta = FileMetaDataset()
    sop_class = "1.2.840.10008.5.1.4.1.1.2" if modality == "CT" else "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = name
    ds.PatientID = patient_id
    ds.PatientBirthDate = birth_date
    ds.PatientSex = "M"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyDate = "20240808"
    ds.StudyDescription = "SCANNER CEREBRAL" if modality == "CT" else "IRM GENOU"
    ds.SeriesDescription = "AXIAL"
    ds.SeriesNumber = 1
    ds.Modality = modality
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    signed = pixels.dtype.kind == "i"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0
    if slope is not None and intercept is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def blob_files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "blobs").glob("*/*") if p.is_file()]


def staging_files(data_dir: Path) -> list[Path]:
    """Staged bytes (not the empty lock file beside a resumable upload's bytes)."""
    return [p for p in (data_dir / "staging").glob("*/*") if p.is_file() and p.suffix != ".lock"]


def staging_locks(data_dir: Path) -> list[Path]:
    return list((data_dir / "staging").glob("*/*.lock"))
