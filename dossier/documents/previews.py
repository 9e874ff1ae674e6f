"""Previews: a PNG thumbnail for images, the first page of PDFs, the DICOM image.

Rendering runs in core.heavy's worker processes (bounded memory, Pillow's pixel limit).
A file that cannot be rendered gets no preview; it is still a valid document.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

from dossier.documents.dicom import render_preview

log = logging.getLogger(__name__)

THUMB_MAX = 512


def image_thumbnail(path: Path, max_size: int = THUMB_MAX) -> bytes:
    from PIL import Image, ImageOps

    with Image.open(path) as src:
        src.draft("RGB", (max_size, max_size))  # JPEG: decode at a reduced scale
        src.seek(0)
        im: Image.Image = ImageOps.exif_transpose(src)
        im.thumbnail((max_size, max_size))
        if im.mode not in ("RGB", "RGBA", "L", "LA"):
            im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
        buf = io.BytesIO()
        im.save(buf, "PNG", optimize=True)
        return buf.getvalue()


def pdf_first_page(path: Path, max_size: int = THUMB_MAX) -> bytes:
    import pymupdf

    with pymupdf.open(path) as doc:
        page = doc[0]
        rect = page.rect
        zoom = max_size / max(rect.width, rect.height, 1)
        pix = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), alpha=False)
        return bytes(pix.tobytes("png"))


def render(category: str, path: Path) -> bytes | None:
    """The preview PNG of a stored file, or None (unsupported or unreadable)."""
    try:
        if category == "image":
            return image_thumbnail(path)
        if category in ("pdf", "report"):
            return pdf_first_page(path)
        if category == "dicom":
            return render_preview(path)
    except Exception as e:  # a broken file has no preview, and that is all
        log.info("no preview for %s: %s", path.name, e)
    return None
