"""Content types from the bytes, names that lie, safe names, and the blob store's guarantees
(no database: these are fast)."""

from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image

from core.errors import TooLarge
from core.storage import local_storage
from dossier.documents import filetypes as ft
from tests.support.documents import dicom_bytes, docx_bytes, mp4_bytes, pdf_bytes


def _image(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, fmt)
    return buf.getvalue()


def _odt() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        z.writestr("content.xml", "<office:document-content/>")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "mime"),
    [
        ("a.pdf", pdf_bytes(1), "application/pdf"),
        ("a.png", _image("PNG"), "image/png"),
        ("a.jpg", _image("JPEG"), "image/jpeg"),
        ("a.gif", _image("GIF"), "image/gif"),
        ("a.webp", _image("WEBP"), "image/webp"),
        ("a.mp4", mp4_bytes(1000), "video/mp4"),
        (
            "IMG_0042.HEIC",
            b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64),
            "image/heic",
        ),
        ("a.mov", b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00" + bytes(100), "video/quicktime"),
        ("a.webm", b"\x1a\x45\xdf\xa3" + bytes(100), "video/webm"),
        ("a.dcm", dicom_bytes(), "application/dicom"),
        ("a.docx", docx_bytes(), ft.DOCX.mime),
        ("a.odt", _odt(), ft.ODT.mime),
        ("a.txt", "Compte-rendu : tout va bien, à revoir.\n".encode(), "text/plain"),
        ("sans-extension", pdf_bytes(1), "application/pdf"),
    ],
)
def test_type_comes_from_the_bytes(tmp_path, name, data, mime):
    path = tmp_path / "f"
    path.write_bytes(data)
    assert ft.check(name, data[:65536], path).mime == mime


def test_a_name_that_lies_is_refused(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(docx_bytes())
    with pytest.raises(ft.ContentMismatch):
        ft.check("lettre.pdf", docx_bytes(), path)
    with pytest.raises(ft.ContentMismatch):
        ft.check("photo.jpg", _image("PNG"), None)
    with pytest.raises(ft.UnsupportedType):
        ft.check("x", b"\x00\x01\x02\x03" * 50, None)


def test_names_are_normalised_and_long_ones_cut_keeping_the_extension():
    assert ft.sanitize_filename("  Écho cœur.pdf ") == "Écho cœur.pdf"
    long = ft.sanitize_filename("x" * 300 + ".pdf")
    assert len(long) == 180 and long.endswith(".pdf")


async def test_blob_store_streams_hashes_limits_and_reads_ranges(tmp_path):
    import hashlib

    st = local_storage(tmp_path, max_bytes=10_000)
    w = st.staging.writer()
    async with w:
        for _ in range(3):
            await w.write(b"abc" * 1000)
        staged = await w.finish()
    assert staged.sha256 == hashlib.sha256(b"abc" * 3000).hexdigest()
    blob = await st.blobs.put(staged)
    assert not staged.path.exists()  # moved, not copied
    assert b"".join([c async for c in st.blobs.open(blob.key, 10, 16)]) == b"bcabca"
    assert await st.blobs.size(blob.key) == 9000

    w = st.staging.writer()
    with pytest.raises(TooLarge):
        async with w:
            for _ in range(20):
                await w.write(b"x" * 1000)
    assert list((tmp_path / "staging" / "once").iterdir()) == []  # aborted, removed
    await st.blobs.delete(blob.key)
    await st.blobs.delete(blob.key)  # twice is fine
    assert st.blobs.list_keys() == []
