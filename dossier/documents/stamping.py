"""Stamp a user's signature picture on a PDF (every page or one) or on an image.

The position is given as fractions of the page (``x``, ``y`` of the top-left corner and
``width``), so the client can place it on a preview of any size; the height follows the
picture's aspect ratio. The result is a new file: the original document is kept, and the
stamped one becomes its next version.
"""

from __future__ import annotations

import io
import uuid
from typing import Literal

from core.db import Database
from core.errors import ValidationFailed
from core.heavy import run_heavy
from core.principal import Principal
from dossier.documents import access
from dossier.documents.store import add_document, get_document, storage_for
from dossier.models import Document, UserSignature

MAX_PAGES = 500  # one stamp request draws on this many pages at most
STAMPABLE = {"application/pdf", "image/png", "image/jpeg", "image/webp"}


class BadSignatureImage(ValidationFailed):
    code = "bad_signature_image"
    title = "The signature picture cannot be used"


class BadPages(ValidationFailed):
    code = "bad_pages"
    title = "The pages to stamp are not in the document"


MAX_SIGNATURE_BYTES = 2 * 1024 * 1024
MAX_SIGNATURE_PIXELS = 4000 * 4000


def normalise_signature(data: bytes) -> tuple[bytes, int, int]:
    """A PNG/JPEG signature picture re-encoded as a PNG (strips metadata), with its size."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_SIGNATURE_BYTES:
        raise BadSignatureImage("La signature dépasse 2 Mo.")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format not in ("PNG", "JPEG"):
                raise BadSignatureImage("La signature doit être une image PNG ou JPEG.")
            if im.width * im.height > MAX_SIGNATURE_PIXELS:
                raise BadSignatureImage("L'image de signature est trop grande.")
            im.load()
            out = im.convert("RGBA")
            if max(out.size) > 1200:
                out.thumbnail((1200, 1200))
            buf = io.BytesIO()
            out.save(buf, "PNG", optimize=True)
            return buf.getvalue(), out.width, out.height
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise BadSignatureImage(f"Image de signature illisible : {e}") from None


def _check_position(x: float, y: float, width: float) -> None:
    if not (0 <= x < 1 and 0 <= y < 1 and 0 < width <= 1 and x + width <= 1.0001):
        raise ValidationFailed(
            "La position doit être dans la page (fractions entre 0 et 1).", code="bad_position"
        )


def stamp_pdf(
    pdf: bytes,
    signature_png: bytes,
    *,
    x: float,
    y: float,
    width: float,
    pages: list[int] | None = None,
) -> bytes:
    """``pdf`` with the signature drawn at (x, y, width) on ``pages`` (0-based; None: all)."""
    import pymupdf
    from PIL import Image

    _check_position(x, y, width)
    with Image.open(io.BytesIO(signature_png)) as im:
        ratio = im.height / max(im.width, 1)
    try:
        doc = pymupdf.open(stream=pdf, filetype="pdf")
    except (RuntimeError, ValueError) as e:
        raise ValidationFailed(f"PDF illisible : {e}", code="bad_pdf") from None
    with doc:
        if doc.needs_pass:
            raise ValidationFailed("Ce PDF est protégé par un mot de passe.", code="pdf_encrypted")
        targets = range(doc.page_count) if pages is None else pages
        beyond = sorted({n + 1 for n in targets if not 0 <= n < doc.page_count})
        if beyond:  # before drawing anything
            raise BadPages(
                f"Le document a {doc.page_count} page(s) ; pas de page "
                f"{', '.join(map(str, beyond[:10]))}."
            )
        for n in targets:
            page = doc[n]
            r = page.rect
            w = width * r.width
            rect = pymupdf.Rect(r.x0 + x * r.width, r.y0 + y * r.height, 0, 0)
            rect.x1, rect.y1 = rect.x0 + w, rect.y0 + w * ratio
            page.insert_image(rect, stream=signature_png, keep_proportion=True, overlay=True)
        return bytes(doc.tobytes(garbage=3, deflate=True))


def stamp_image(image: bytes, signature_png: bytes, *, x: float, y: float, width: float) -> bytes:
    """A photo with the signature pasted at (x, y, width), as PNG (or JPEG if it was one)."""

    _check_position(x, y, width)
    try:
        return _stamp_image(image, signature_png, x=x, y=y, width=width)
    except (OSError, ValueError) as e:
        raise ValidationFailed(f"Image illisible : {e}", code="bad_image") from None


def _stamp_image(image: bytes, signature_png: bytes, *, x: float, y: float, width: float) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(image)) as base, Image.open(io.BytesIO(signature_png)) as sig:
        fmt = "JPEG" if base.format == "JPEG" else "PNG"
        canvas = base.convert("RGBA")
        w = max(int(width * canvas.width), 1)
        h = max(int(w * sig.height / max(sig.width, 1)), 1)
        mark = sig.convert("RGBA").resize((w, h))
        left, top = int(x * canvas.width), int(y * canvas.height)
        # Keep inside the picture: a signature near the bottom edge is cut, not refused.
        mark = mark.crop((0, 0, min(w, canvas.width - left), min(h, canvas.height - top)))
        canvas.alpha_composite(mark, (left, top))
        buf = io.BytesIO()
        (canvas.convert("RGB") if fmt == "JPEG" else canvas).save(buf, fmt)
        return buf.getvalue()


async def stamp_document(
    db: Database,
    principal: Principal,
    dossier_id: uuid.UUID,
    document_id: uuid.UUID,
    *,
    pages: Literal["all"] | list[int],
    x: float,
    y: float,
    width: float,
) -> Document:
    """Apply the principal's signature picture on a PDF's pages (1-based ``pages``) or on a
    photo: the stamped file is added as the document's next version."""
    async with db.write() as uow:
        session = uow.session
        storage = storage_for(session)
        await access.require_document_write(session, principal, dossier_id)
        doc = await get_document(session, document_id, dossier_id)
        # What is wrong with the document first: a signed report stays refused for what it
        # is, even to someone who has not loaded a signature picture yet.
        if doc.source == "report" and doc.meta.get("signed"):
            raise ValidationFailed(
                "Le compte-rendu est signé électroniquement : il ne se modifie plus.",
                code="report_locked",
            )
        if doc.category not in ("pdf", "image") or doc.content_type not in STAMPABLE:
            raise ValidationFailed(
                "La signature s'appose sur un PDF ou une photo.", code="not_stampable"
            )
        sig = await session.get(UserSignature, principal.subject_id)
        if sig is None:
            raise ValidationFailed(
                "Chargez d'abord votre signature (Paramètres → Charger une signature).",
                code="no_signature",
            )
        original = await storage.blobs.read(doc.blob_key)
        picture = await storage.blobs.read(sig.blob_key)
        if doc.category == "pdf":
            if pages != "all" and (len(pages) > MAX_PAGES or len(set(pages)) != len(pages)):
                raise BadPages("Donnez chaque page une fois, 500 au plus.")
            indexes = None if pages == "all" else [n - 1 for n in pages]
            # In a bounded worker process (core.heavy), never on a server thread.
            out = await run_heavy(
                stamp_pdf, original, picture, x=x, y=y, width=width, pages=indexes
            )
        else:
            out = await run_heavy(stamp_image, original, picture, x=x, y=y, width=width)
        return await add_document(
            uow,
            principal,
            dossier_id,
            doc.filename,
            out,
            "stamp",
            previous=doc,
            meta={
                "stamp": {
                    "pages": pages,
                    "x": x,
                    "y": y,
                    "width": width,
                    "from_document": str(doc.id),
                }
            },
        )
