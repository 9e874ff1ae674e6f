"""What a file is, from its bytes; what its name claims; whether the two agree.

The name of an uploaded file is a claim made by the sender; the bytes are the evidence.
A ``.pdf`` that does not start with ``%PDF-`` is refused rather than stored under a name
that would make a reader open it with the wrong program.
"""

from __future__ import annotations

import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from core.errors import ValidationFailed

# Category code -> French label, in the order the dossier lists them.
CATEGORIES: dict[str, str] = {
    "report": "Comptes-rendus",
    "pdf": "PDFs",
    "image": "Images",
    "dicom": "Imagerie DICOM",
    "video": "Vidéos",
    "office": "Documents bureautiques",
    "text": "Textes",
}


@dataclass(frozen=True)
class FileType:
    mime: str
    category: str
    extensions: tuple[str, ...]  # the extensions a name may carry for this type

    def __reduce__(self) -> tuple[object, tuple[str]]:
        # Sent to a core.heavy worker and back, a type stays the very constant (``t is PDF``).
        return (by_mime, (self.mime,))


def by_mime(mime: str) -> FileType:
    return next(t for t in _ALL if t.mime == mime)


PDF = FileType("application/pdf", "pdf", (".pdf",))
PNG = FileType("image/png", "image", (".png",))
JPEG = FileType("image/jpeg", "image", (".jpg", ".jpeg", ".jpe", ".jfif"))
GIF = FileType("image/gif", "image", (".gif",))
WEBP = FileType("image/webp", "image", (".webp",))
HEIC = FileType("image/heic", "image", (".heic", ".heif"))  # phone photos
AVIF = FileType("image/avif", "image", (".avif",))
MP4 = FileType("video/mp4", "video", (".mp4", ".m4v"))
MOV = FileType("video/quicktime", "video", (".mov", ".qt"))
WEBM = FileType("video/webm", "video", (".webm", ".mkv"))
DICOM = FileType("application/dicom", "dicom", (".dcm", ".dicom", ".dic", ""))
DOCX = FileType(
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "office",
    (".docx",),
)
XLSX = FileType(
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "office", (".xlsx",)
)
PPTX = FileType(
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "office",
    (".pptx",),
)
ODT = FileType("application/vnd.oasis.opendocument.text", "office", (".odt",))
ODS = FileType("application/vnd.oasis.opendocument.spreadsheet", "office", (".ods",))
ODP = FileType("application/vnd.oasis.opendocument.presentation", "office", (".odp",))
TEXT = FileType("text/plain", "text", (".txt", ".csv", ".md", ".log", ".hl7", ".xml", ".json"))

_ALL = (
    PDF,
    PNG,
    JPEG,
    GIF,
    WEBP,
    HEIC,
    AVIF,
    MP4,
    MOV,
    WEBM,
    DICOM,
    DOCX,
    XLSX,
    PPTX,
    ODT,
    ODS,
    ODP,
    TEXT,
)
_BY_EXT: dict[str, FileType] = {e: t for t in _ALL for e in t.extensions if e}


def openapi_content() -> dict[str, dict[str, object]]:
    """The OpenAPI ``content`` of a route that answers a stored file with its own type."""
    return {t.mime: {"schema": {"type": "string", "format": "binary"}} for t in _ALL}


_ODF = {
    b"application/vnd.oasis.opendocument.text": ODT,
    b"application/vnd.oasis.opendocument.spreadsheet": ODS,
    b"application/vnd.oasis.opendocument.presentation": ODP,
}
_HEIF_BRANDS = {
    b"heic",
    b"heix",
    b"heim",
    b"heis",
    b"hevc",
    b"hevx",
    b"mif1",
    b"msf1",
    b"avif",
    b"avis",
}
_OOXML_MAIN = {"word/": DOCX, "xl/": XLSX, "ppt/": PPTX}


class ContentMismatch(ValidationFailed):
    code = "content_mismatch"
    title = "The file's content does not match its name"


class UnsupportedType(ValidationFailed):
    status, code, title = 415, "unsupported_type", "This kind of file is not accepted"


def _sniff_head(head: bytes) -> FileType | None:
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if len(head) >= 132 and head[128:132] == b"DICM":
        return DICOM
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return AVIF if brand in (b"avif", b"avis") else HEIC
        return MOV if brand == b"qt  " else MP4
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return WEBM
    return None


# Reading a zip container: its directory only, and at most this much of one member. A small
# upload whose ``mimetype`` member inflates to hundreds of MiB is refused before any inflating.
ZIP_MAX_MEMBERS = 20_000
ZIP_MEMBER_READ = 512
ZIP_MAX_RATIO = 200  # declared size / compressed size of a member we read


class SuspiciousArchive(ValidationFailed):
    code = "suspicious_archive"
    title = "The archive declares sizes or compression ratios that are not acceptable"


def _sniff_zip(path: Path, filename: str = "") -> FileType | None:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > ZIP_MAX_MEMBERS:
                raise SuspiciousArchive(f"« {filename} » : archive de {len(infos)} éléments.")
            by_name = {i.filename: i for i in infos}
            mimetype = by_name.get("mimetype")
            if mimetype is not None:
                ratio = mimetype.file_size / max(mimetype.compress_size, 1)
                if mimetype.file_size > ZIP_MEMBER_READ or ratio > ZIP_MAX_RATIO:
                    raise SuspiciousArchive(
                        f"« {filename} » : archive suspecte (élément « mimetype » de "
                        f"{mimetype.file_size} octets, compressé {ratio:.0f} fois)."
                    )
                with zf.open(mimetype) as member:
                    # Bounded even if the declared size lies: never more than this is inflated.
                    return _ODF.get(member.read(ZIP_MEMBER_READ + 1).strip())
            if "[Content_Types].xml" in by_name:
                for prefix, t in _OOXML_MAIN.items():
                    if any(n.startswith(prefix) for n in by_name):
                        return t
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, KeyError, ValueError, EOFError):
        return None
    return None


def _is_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    sample = head
    # A cut in the middle of a multi-byte character at the end of the sample is fine.
    for cut in range(4):
        try:
            text = sample[: len(sample) - cut].decode("utf-8")
            break
        except UnicodeDecodeError:
            continue
    else:
        try:
            text = sample.decode("cp1252")
        except UnicodeDecodeError:
            return False
    controls = sum(1 for c in text if unicodedata.category(c) == "Cc" and c not in "\r\n\t\f")
    return controls == 0


def detect(head: bytes, path: Path | None = None, filename: str = "") -> FileType | None:
    """The type of a file from its first bytes (and a zip container's directory)."""
    t = _sniff_head(head)
    if t is not None:
        return t
    if head.startswith(b"PK\x03\x04") and path is not None:
        return _sniff_zip(path, filename)
    if _is_text(head):
        return TEXT
    return None


def check(filename: str, head: bytes, path: Path | None = None) -> FileType:
    """The detected type, if accepted and consistent with the name; else a 415 or 422.

    An image's dimensions are read from its header (nothing decoded) and refused above the
    pixel limit, before anything else opens it.
    """
    t = detect(head, path, filename)
    ext = PurePosixPath(filename).suffix.lower()
    if t is None:
        if ext in _BY_EXT:
            raise ContentMismatch(
                f"« {filename} » n'est pas un fichier {ext[1:].upper()} valide "
                "(contenu tronqué ou falsifié)",
                expected=_BY_EXT[ext].mime,
            )
        raise UnsupportedType(
            "Type de fichier non accepté : PDF, images, vidéos, DICOM, "
            "documents bureautiques ou texte."
        )
    if ext and ext in _BY_EXT and ext not in t.extensions:
        raise ContentMismatch(
            f"« {filename} » se présente comme {ext[1:].upper()} mais son contenu est {t.mime}",
            expected=_BY_EXT[ext].mime,
            detected=t.mime,
        )
    if t.category == "image" and path is not None:
        check_pixels(t, path, filename)
    return t


# The one pixel limit: uploads above it are refused, and Pillow (here and in core.heavy's
# workers) refuses to open anything larger. Set from ``CONSILIUM_MAX_IMAGE_PIXELS``.
_max_pixels = 50_000_000


def set_max_image_pixels(n: int) -> None:
    global _max_pixels
    from PIL import Image

    _max_pixels = n
    Image.MAX_IMAGE_PIXELS = n


def max_image_pixels() -> int:
    return _max_pixels


class ImageTooLarge(ValidationFailed):
    code = "image_too_large"
    title = "The image has more pixels than the server accepts"


def check_pixels(t: FileType, path: Path, filename: str) -> None:
    """Refuse an image whose header announces more pixels than the limit (422)."""
    if t in (HEIC, AVIF):  # Pillow reads neither natively
        return
    import warnings

    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = _max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:  # lazy: reads the header, decodes nothing
                width, height = im.size
    except Image.DecompressionBombError:
        width = height = 0
        pixels = _max_pixels + 1
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise Truncated(f"« {filename} » : image illisible ou tronquée ({e}).") from None
    else:
        pixels = width * height
    if pixels > _max_pixels:
        size = f"{width} × {height} pixels" if width else "trop de pixels"
        raise ImageTooLarge(
            f"« {filename} » : image trop grande ({size} ; au plus "
            f"{_max_pixels // 1_000_000} millions de pixels).",
            max_pixels=_max_pixels,
        )


class Truncated(ValidationFailed):
    code = "corrupt_file"
    title = "The file is truncated or corrupt"


def check_structure(t: FileType, path: Path, filename: str) -> None:
    """Open PDFs and images for real: a right signature on a truncated file is refused.

    Run it with :func:`core.heavy.run_heavy` (pymupdf and Pillow allocate in C).
    """
    if t is PDF:
        import pymupdf

        try:
            with pymupdf.open(path, filetype="pdf") as doc:
                if doc.page_count < 1 or (not doc.is_pdf):
                    raise Truncated(f"« {filename} » : PDF sans page lisible.")
                if not doc.needs_pass:
                    doc[0].get_text()
        except (RuntimeError, ValueError) as e:
            raise Truncated(f"« {filename} » : PDF illisible ou tronqué ({e}).") from None
    elif t.category == "image" and t not in (HEIC, AVIF):  # Pillow reads neither natively
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                im.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise Truncated(f"« {filename} » : image illisible ou tronquée ({e}).") from None
        except Image.DecompressionBombError:
            raise ImageTooLarge(f"« {filename} » : image trop grande.") from None


class BadFilename(ValidationFailed):
    code = "bad_filename"
    title = "The file name is not acceptable"


def sanitize_filename(name: str) -> str:
    """A safe base name: no directories, no control characters, no dot-files, ≤ 180 chars.

    Path tricks (``../``, absolute paths, drive letters, NUL) are refused outright rather
    than rewritten: a client sending them is broken or hostile, and a clear 422 says so.
    """
    if not name or not name.strip():
        raise BadFilename("Le nom de fichier est vide.")
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in name):
        raise BadFilename("Le nom de fichier contient des caractères de contrôle.")
    if "/" in name or "\\" in name or PureWindowsPath(name).drive:
        raise BadFilename("Le nom de fichier ne doit pas contenir de chemin.")
    name = unicodedata.normalize("NFC", name).strip()
    if name in (".", "..") or name.startswith("."):
        raise BadFilename("Le nom de fichier ne doit pas commencer par un point.")
    if len(name) > 180:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 180 - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else name[:180]
    return name
