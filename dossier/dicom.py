"""DICOM files: the metadata a dossier needs, a PNG preview, and patient identity matching.

The preview follows the display pipeline of PS3.4 (grayscale): stored values → Modality
LUT (Rescale Slope/Intercept, e.g. Hounsfield units for CT) → VOI LUT (Window
Center/Width, or a VOI LUT sequence) → MONOCHROME1 inverted, so the image looks as it
does on the modality's console. A study is attached to a dossier only when its patient
matches the dossier's patient; otherwise it is flagged and waits for a human decision.
"""

from __future__ import annotations

import io
import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from core.errors import ValidationFailed

PREVIEW_MAX = 512


class BadDicom(ValidationFailed):
    code = "bad_dicom"
    title = "The DICOM file cannot be read"


@dataclass
class DicomInfo:
    patient_name: str = ""
    patient_family_name: str = ""
    patient_given_names: str = ""
    patient_id: str = ""
    other_patient_ids: list[str] = field(default_factory=list)
    patient_birth_date: str = ""  # ISO yyyy-mm-dd, "" when absent or malformed
    patient_sex: str = ""
    study_uid: str = ""
    study_date: str = ""
    study_description: str = ""
    accession_number: str = ""
    series_uid: str = ""
    series_number: str = ""
    series_description: str = ""
    modality: str = ""
    sop_instance_uid: str = ""
    rows: int = 0
    columns: int = 0
    frames: int = 1
    has_pixels: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(da: str) -> str:
    da = (da or "").strip()
    if len(da) == 8 and da.isdigit():
        try:
            return date(int(da[:4]), int(da[4:6]), int(da[6:])).isoformat()
        except ValueError:
            return ""
    return ""


def _str(ds: Any, keyword: str) -> str:
    v = ds.get(keyword, "")
    return str(v).strip() if v is not None else ""


def _read(path: Path, *, pixels: bool) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=not pixels)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as e:
        raise BadDicom(f"Fichier DICOM illisible ou tronqué : {e}") from None


def read_metadata(path: Path) -> DicomInfo:
    """Patient, study, series and modality of a DICOM file (no pixel data loaded)."""
    ds = _read(path, pixels=False)
    name = ds.get("PatientName")
    others = ds.get("OtherPatientIDsSequence") or []
    info = DicomInfo(
        patient_name=str(name or "").strip(),
        patient_family_name=str(getattr(name, "family_name", "") or "").strip(),
        patient_given_names=str(getattr(name, "given_name", "") or "").strip(),
        patient_id=_str(ds, "PatientID"),
        other_patient_ids=[str(i.get("PatientID", "")).strip() for i in others if i],
        patient_birth_date=_iso(_str(ds, "PatientBirthDate")),
        patient_sex=_str(ds, "PatientSex").upper()[:1],
        study_uid=_str(ds, "StudyInstanceUID"),
        study_date=_iso(_str(ds, "StudyDate")),
        study_description=_str(ds, "StudyDescription"),
        accession_number=_str(ds, "AccessionNumber"),
        series_uid=_str(ds, "SeriesInstanceUID"),
        series_number=_str(ds, "SeriesNumber"),
        series_description=_str(ds, "SeriesDescription"),
        modality=_str(ds, "Modality"),
        sop_instance_uid=_str(ds, "SOPInstanceUID"),
        rows=int(ds.get("Rows", 0) or 0),
        columns=int(ds.get("Columns", 0) or 0),
        frames=int(ds.get("NumberOfFrames", 1) or 1),
        # stop_before_pixels hides PixelData itself: an image is announced by its geometry.
        has_pixels=bool(ds.get("Rows")) and bool(ds.get("Columns")),
    )
    if not (info.study_uid or info.sop_instance_uid):
        raise BadDicom("Fichier DICOM sans identifiant d'étude ni d'instance.")
    return info


def render_preview(path: Path, max_size: int = PREVIEW_MAX) -> bytes | None:
    """A PNG of the (middle frame of the) image, windowed for display; None without pixels."""
    import numpy as np
    from PIL import Image
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = _read(path, pixels=True)
    if "PixelData" not in ds:
        return None
    try:
        arr = ds.pixel_array
    except Exception as e:  # decoders raise many kinds (missing handler, truncated data)
        raise BadDicom(f"Pixels DICOM illisibles : {e}") from None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if frames > 1:
        arr = arr[frames // 2]
    if samples == 3:
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            arr = convert_color_space(arr, photometric, "RGB")
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    else:
        values = apply_modality_lut(arr, ds)
        if "WindowCenter" in ds or "VOILUTSequence" in ds:
            values = apply_voi_lut(values, ds, index=0)
            lo, hi = _voi_range(ds)
        else:
            lo, hi = float(np.min(values)), float(np.max(values))
        scaled = (np.asarray(values, dtype=np.float64) - lo) / max(hi - lo, 1e-9)
        out = np.clip(scaled * 255.0, 0, 255).astype(np.uint8)
        if photometric == "MONOCHROME1":
            out = 255 - out
        img = Image.fromarray(out, "L")
    img.thumbnail((max_size, max_size))
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _voi_range(ds: Any) -> tuple[float, float]:
    """The output range of pydicom's VOI step (PS3.3 C.11.2.1.2), to scale it to 0-255."""
    if "VOILUTSequence" in ds:  # pydicom prefers the LUT when both are present
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    bits = int(ds.get("BitsStored", 16) or 16)
    if ds.get("ModalityLUTSequence"):
        lo, hi = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    elif int(ds.get("PixelRepresentation", 0) or 0) == 0:
        lo, hi = 0.0, float(2**bits - 1)
    else:
        lo, hi = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        lo, hi = lo * float(slope) + float(intercept), hi * float(slope) + float(intercept)
    return lo, hi


# -- identity ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """The dossier patient's identity, as far as DICOM can be compared with it."""

    family_names: tuple[str, ...]  # birth name and used name
    given_names: tuple[str, ...]
    birth_date: str  # ISO
    ids: tuple[str, ...] = ()  # INS, IPP


def _norm(s: str) -> str:
    s = unicodedata.normalize("NFKD", s)
    s = "".join(c for c in s if not unicodedata.combining(c))
    return " ".join("".join(c if c.isalnum() else " " for c in s.upper()).split())


def identity_mismatches(info: DicomInfo, who: Identity) -> list[str]:
    """Why this study may not belong to this patient (empty: it matches).

    A shared identifier (INS or IPP equal to the DICOM Patient ID) is enough on its own;
    otherwise the family name and the birth date must both agree. Missing data is a mismatch:
    the rule is "never attach silently", not "attach unless proven wrong".
    """
    dicom_ids = {i for i in [info.patient_id, *info.other_patient_ids] if i}
    ours = {i for i in who.ids if i}
    if dicom_ids & ours:
        if info.patient_birth_date and who.birth_date and info.patient_birth_date != who.birth_date:
            return [f"Date de naissance DICOM {info.patient_birth_date} ≠ patient {who.birth_date}"]
        return []
    reasons: list[str] = []
    family = _norm(info.patient_family_name or info.patient_name.split("^")[0])
    names = {_norm(n) for n in who.family_names if n}
    if not family:
        reasons.append("Nom du patient absent du fichier DICOM")
    elif family not in names:
        reasons.append(
            f"Nom DICOM « {info.patient_name} » ≠ patient « {' / '.join(sorted(names))} »"
        )
    if not info.patient_birth_date:
        reasons.append("Date de naissance absente du fichier DICOM")
    elif info.patient_birth_date != who.birth_date:
        reasons.append(
            f"Date de naissance DICOM {info.patient_birth_date} ≠ patient {who.birth_date}"
        )
    return reasons
