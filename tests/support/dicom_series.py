"""DICOM series for the viewer's tests: slices of one series (pydicom, written on the fly)
with Instance Number, Slice Location and Image Position, and multi-frame files whose
frames differ, so that a test can tell from the pixels which image it is looking at."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"


@dataclass
class Study:
    """The identifiers shared by the files of one exam."""

    study_uid: str = field(default_factory=generate_uid)
    patient_name: str = "MARTIN^JEAN"
    patient_id: str = "123"
    birth_date: str = "19800101"
    description: str = "SCANNER THORACIQUE"


def _base(study: Study, sop_class: str, series_uid: str, series_number: int, desc: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = study.birth_date
    ds.PatientSex = "M"
    ds.StudyInstanceUID = study.study_uid
    ds.StudyDate = "20240808"
    ds.StudyDescription = study.description
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = desc
    ds.Modality = "CT"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = 1
    ds.RescaleIntercept = -1024
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    return ds


def _save(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def slice_pixels(level_hu: float, size: int = 64, lungs: float = 0.12) -> np.ndarray:
    """An axial "phantom": air around a body whose middle third is ``level_hu`` Hounsfield
    units (stored = HU + 1024), two lungs (-800 HU, ``lungs`` = their half-height as a
    fraction of the image) and a spine (700 HU), all outside the middle third, so that the
    brightness of the middle tells slices apart and the picture still looks like a CT."""
    y, x = np.mgrid[0:size, 0:size] / size
    hu = np.full((size, size), -1024.0)
    hu[((x - 0.5) / 0.46) ** 2 + ((y - 0.5) / 0.40) ** 2 <= 1] = level_hu
    for cx in (0.2, 0.8):
        hu[((x - cx) / 0.08) ** 2 + ((y - 0.48) / lungs) ** 2 <= 1] = -800
    hu[(x - 0.5) ** 2 + (y - 0.82) ** 2 <= 0.06**2] = 700
    return (hu + 1024).astype(np.uint16)


def series_slice(
    study: Study,
    series_uid: str,
    *,
    instance: int | None,
    level_hu: float,
    z: float | None = None,
    series_number: int = 2,
    description: str = "THORAX AXIAL",
    size: int = 64,
) -> bytes:
    """One CT slice of a series; ``instance=None`` leaves Instance Number out."""
    ds = _base(study, CT_IMAGE, series_uid, series_number, description)
    if instance is not None:
        ds.InstanceNumber = instance
    if z is not None:
        ds.SliceLocation = z
        ds.ImagePositionPatient = [-100.0, -100.0, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    px = slice_pixels(level_hu, size, lungs=0.1 + 0.02 * (instance or 0))
    ds.Rows, ds.Columns = px.shape
    ds.PixelData = px.tobytes()
    return _save(ds)


def multiframe(
    study: Study,
    *,
    levels_hu: list[float],
    series_number: int = 3,
    description: str = "RECONSTRUCTION CORONALE",
    size: int = 64,
) -> bytes:
    """One multi-frame file (Number of Frames = len(levels_hu)), frame k at levels_hu[k]."""
    ds = _base(study, ENHANCED_CT, generate_uid(), series_number, description)
    ds.InstanceNumber = 1
    stack = np.stack(
        [slice_pixels(level, size, lungs=0.1 + 0.03 * k) for k, level in enumerate(levels_hu)]
    )
    ds.NumberOfFrames = len(levels_hu)
    ds.Rows, ds.Columns = stack.shape[1:]
    ds.PixelData = stack.tobytes()
    return _save(ds)
