"""DICOM files: the metadata a dossier needs, a PNG preview, and patient identity matching.

The preview follows the display pipeline of PS3.4 (grayscale): stored values → Modality
LUT (Rescale Slope/Intercept, e.g. Hounsfield units for CT) → VOI LUT (Window
Center/Width, or a VOI LUT sequence) → MONOCHROME1 inverted, so the image looks as it
does on the modality's console. :func:`render_frame` renders any frame of a multi-frame
file, with the file's window or one the viewer asks for (a preset such as "Poumon", or a
window dragged with the mouse). :func:`instance_sort_key` orders a series' instances as a
radiologist scrolls them. A study is attached to a dossier only when its patient matches
the dossier's patient; otherwise it is flagged and waits for a human decision.
"""

from __future__ import annotations

import io
import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from core.errors import ValidationFailed

PREVIEW_MAX = 512  # the stored preview (list, thumbnails)
RENDER_MAX = 1024  # a frame rendered on request for the viewer


class BadDicom(ValidationFailed):
    code = "bad_dicom"
    title = "The DICOM file cannot be read"


class FrameOutOfRange(ValidationFailed):
    code = "frame_out_of_range"
    title = "The file has no such frame"


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
    # Where the image sits in its series (to scroll the series in the right order).
    instance_number: int | None = None
    slice_location: float | None = None
    image_position: list[float] = field(default_factory=list)  # ImagePositionPatient (mm)
    image_orientation: list[float] = field(default_factory=list)  # row then column cosines
    # The modality's own display window (first value when several are given).
    window_center: float | None = None
    window_width: float | None = None
    photometric: str = ""

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


def _first(value: Any) -> Any:
    """The first value of a multi-valued element (Window Center may hold several)."""
    if value is None or isinstance(value, str | bytes):
        return value
    try:
        return value[0] if len(value) else None
    except TypeError:
        return value


def _float(ds: Any, keyword: str) -> float | None:
    try:
        v = float(_first(ds.get(keyword)))
    except (TypeError, ValueError):
        return None
    return v if v == v and abs(v) != float("inf") else None  # NaN and infinities dropped


def _int(ds: Any, keyword: str) -> int | None:
    v = _float(ds, keyword)
    return int(v) if v is not None else None


def _floats(ds: Any, keyword: str, n: int) -> list[float]:
    v = ds.get(keyword)
    try:
        out = [float(x) for x in v] if v is not None else []
    except (TypeError, ValueError):
        return []
    return out if len(out) == n else []


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
        instance_number=_int(ds, "InstanceNumber"),
        slice_location=_float(ds, "SliceLocation"),
        image_position=_floats(ds, "ImagePositionPatient", 3),
        image_orientation=_floats(ds, "ImageOrientationPatient", 6),
        window_center=_float(ds, "WindowCenter"),
        window_width=_float(ds, "WindowWidth"),
        photometric=_str(ds, "PhotometricInterpretation"),
    )
    if not (info.study_uid or info.sop_instance_uid):
        raise BadDicom("Fichier DICOM sans identifiant d'étude ni d'instance.")
    return info


def render_preview(path: Path, max_size: int = PREVIEW_MAX) -> bytes | None:
    """A PNG of the (middle frame of the) image, windowed for display; None without pixels."""
    out = render_frame(path, None, max_size=max_size)
    return out.png if out else None


@dataclass(frozen=True)
class Rendered:
    """A frame rendered for display, and the window it was displayed with."""

    png: bytes
    frame: int  # 0-based
    frames: int
    window_center: float | None  # None for colour images (no window applies)
    window_width: float | None


def render_frame(
    path: Path,
    frame: int | None,
    *,
    window: tuple[float, float] | None = None,
    max_size: int = RENDER_MAX,
) -> Rendered | None:
    """One frame (0-based; None: the middle one) as a PNG; None when the file has no image.

    ``window`` (center, width), in the units of the Modality LUT's output (Hounsfield units
    for CT), replaces the file's own VOI with the linear function of PS3.3 C.11.2.1.2.1.
    Only the asked frame is decoded, so scrolling a 500-frame file stays cheap.
    """
    import numpy as np
    from PIL import Image
    from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array

    ds = _read(path, pixels=False)
    if not (ds.get("Rows") and ds.get("Columns")):
        return None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    index = frames // 2 if frame is None else frame
    if not 0 <= index < frames:
        raise FrameOutOfRange(
            f"Image {index + 1} demandée, le fichier en compte {frames}.", frames=frames
        )
    try:
        arr = pixel_array(str(path), index=index if frames > 1 else None)
    except Exception as e:  # decoders raise many kinds (missing handler, truncated data)
        raise BadDicom(f"Pixels DICOM illisibles : {e}") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    center: float | None
    width: float | None
    if samples == 3:
        # pixel_array already converts YBR_FULL(_422) to RGB: no window for colour images.
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
        center = width = None
    else:
        values = np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)
        if window is not None:
            center, width = window
            out = _linear_window(values, center, width)
        else:
            if "WindowCenter" in ds or "VOILUTSequence" in ds:
                voi = apply_voi_lut(values, ds, index=0)
                lo, hi = _voi_range(ds)
            else:
                voi, lo, hi = values, float(np.min(values)), float(np.max(values))
            scaled = (np.asarray(voi, dtype=np.float32) - lo) / max(hi - lo, 1e-9)
            out = np.clip(scaled * 255.0, 0, 255).astype(np.uint8)
            center, width = _file_window(ds, values)
        if photometric == "MONOCHROME1":
            out = 255 - out
        img = Image.fromarray(out, "L")
    img.thumbnail((max_size, max_size))
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=False, compress_level=3)
    return Rendered(buf.getvalue(), index, frames, center, width)


def _linear_window(values: Any, center: float, width: float) -> Any:
    """PS3.3 C.11.2.1.2.1, "LINEAR", to 0-255."""
    import numpy as np

    width = max(float(width), 1.0)
    scaled = ((values - (center - 0.5)) / (width - 1.0) + 0.5) if width > 1 else values - center
    return np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)


def _file_window(ds: Any, values: Any) -> tuple[float, float]:
    """The window the file is shown with by default, as (center, width).

    The file's first Window Center/Width when it has one; otherwise (no window, or a VOI LUT
    sequence, which has no center) the span of the image's values, which is where a manual
    windowing starts from.
    """
    import numpy as np

    c, w = _float(ds, "WindowCenter"), _float(ds, "WindowWidth")
    if c is not None and w is not None and w > 0 and "VOILUTSequence" not in ds:
        return c, w
    lo, hi = float(np.min(values)), float(np.max(values))
    return (lo + hi) / 2, max(hi - lo, 1.0)


def instance_sort_key(meta: dict[str, Any]) -> tuple[Any, ...]:
    """How a series' instances follow each other: Instance Number, then Slice Location,
    then the position along the slice normal (Image Position · (row × column cosines)).
    Missing values sort last; the caller adds its own tie-break (e.g. the upload order)."""
    number = meta.get("instance_number")
    location = meta.get("slice_location")
    along = _along_normal(meta.get("image_position") or [], meta.get("image_orientation") or [])
    return (
        number is None,
        number if number is not None else 0,
        location is None,
        location if location is not None else 0.0,
        along is None,
        along if along is not None else 0.0,
    )


def _along_normal(position: list[float], orientation: list[float]) -> float | None:
    if len(position) != 3 or len(orientation) != 6:
        return None
    r, c = orientation[:3], orientation[3:]
    normal = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    return sum(p * n for p, n in zip(position, normal, strict=True))


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
