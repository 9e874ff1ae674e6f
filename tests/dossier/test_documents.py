from __future__ import annotations

from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from core.audit import AuditEntry
from core.context import DB
from dossier.documents.store import add_document
from dossier.models import Document
from tests.conftest import make_settings
from tests.support.documents import (
    blob_files,
    docx_bytes,
    make_dossier,
    mp4_bytes,
    pdf_bytes,
    png_bytes,
    staging_files,
)

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
async def dossier_id(app, users):
    return await make_dossier(app[DB], users)


async def upload(client, dossier_id, filename, data, *, multipart=False):
    url = f"/api/v1/dossiers/{dossier_id}/documents"
    if multipart:
        import aiohttp

        form = aiohttp.FormData()
        form.add_field("file", data, filename=filename, content_type="application/octet-stream")
        return await client.post(url, data=form)
    return await client.post(
        url + f"?filename={quote(filename)}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )


async def count_documents(app) -> int:
    async with app[DB].read() as s:
        return (await s.execute(select(func.count()).select_from(Document))).scalar_one()


async def test_uploaded_files_are_listed_by_type_downloadable_and_previewed(
    app, client, users, dossier_id, settings
):
    await client.sign_in_as(users["requester"].id)
    pdf = pdf_bytes(3)
    r = await upload(client, dossier_id, "ECG.pdf", pdf)
    assert r.status == 201, await r.text()
    doc = await r.json()
    assert doc["category"] == "pdf" and doc["content_type"] == "application/pdf"
    assert doc["author_label"] == "Dr Claire Martin" and doc["has_preview"]
    r = await upload(client, dossier_id, "Photo plaie.png", png_bytes(), multipart=True)
    assert r.status == 201, await r.text()
    r = await upload(client, dossier_id, "courrier.docx", docx_bytes())
    assert r.status == 201, await r.text()
    assert (await r.json())["category_label"] == "Documents bureautiques"

    r = await client.get(f"/api/v1/dossiers/{dossier_id}/documents")
    listing = await r.json()
    assert [(c["code"], c["count"]) for c in listing["categories"]] == [
        ("pdf", 1),
        ("image", 1),
        ("office", 1),
    ]
    assert listing["categories"][1]["label"] == "Images"

    r = await client.get(f"/api/v1/dossiers/{dossier_id}/documents/{doc['id']}/content")
    assert r.status == 200
    assert await r.read() == pdf
    assert r.headers["Content-Disposition"].startswith('attachment; filename="ECG.pdf"')
    r = await client.get(f"/api/v1/dossiers/{dossier_id}/documents/{doc['id']}/preview")
    assert r.status == 200 and r.content_type == "image/png"
    assert (await r.read()).startswith(b"\x89PNG")

    # The expert (a participant) reads it too; every read and write left an audit row.
    await client.sign_in_as(users["expert"].id)
    r = await client.get(f"/api/v1/dossiers/{dossier_id}/documents/{doc['id']}")
    assert r.status == 200
    async with app[DB].read() as s:
        rows = (
            (await s.execute(select(AuditEntry).where(AuditEntry.object_type == "document")))
            .scalars()
            .all()
        )
    actions = [(a.action, a.details.get("dossier_id")) for a in rows]
    assert ("document.add", str(dossier_id)) in actions
    assert ("document.read", str(dossier_id)) in actions
    assert {a.actor_id for a in rows if a.action == "document.read"} == {
        users["requester"].id,
        users["expert"].id,
    }


@sqlite_only
async def test_video_download_answers_range_requests(client, users, dossier_id):
    await client.sign_in_as(users["requester"].id)
    video = mp4_bytes()
    r = await upload(client, dossier_id, "echo.mp4", video)
    assert r.status == 201, await r.text()
    doc = await r.json()
    assert doc["category"] == "video"
    r = await client.get(
        f"/api/v1/dossiers/{dossier_id}/documents/{doc['id']}/content?inline=1",
        headers={"Range": "bytes=1000-1999"},
    )
    assert r.status == 206
    assert r.headers["Content-Range"] == f"bytes 1000-1999/{len(video)}"
    assert await r.read() == video[1000:2000]
    assert r.headers["Content-Disposition"].startswith("inline")


FORGED = [
    ("compte-rendu.pdf", b"Ceci n'est pas un PDF, juste du texte.\n" * 20, "content_mismatch"),
    ("radio.pdf", "png", "content_mismatch"),  # a PNG named .pdf
    ("scan.png", "truncated png", "corrupt_file"),
    ("ordonnance.pdf", b"%PDF-1.7\n1 0 obj\n<<", "corrupt_file"),  # truncated PDF
    ("binaire.bin", bytes(range(256)) * 10, "unsupported_type"),
    ("vide.pdf", b"", "empty_file"),
]
PATH_TRICKS = [
    "../../etc/passwd.pdf",
    "/etc/cr.pdf",
    "C:\\Users\\cr.pdf",
    "a\x00b.pdf",
    "..",
    ".htaccess",
    "cr\n.pdf",
    "dir/cr.pdf",
    "cr\u202epdf.exe",
]


@sqlite_only
async def test_forged_or_truncated_files_are_refused_and_leave_nothing(
    app, client, users, dossier_id, settings
):
    await client.sign_in_as(users["requester"].id)
    for filename, data, code in FORGED:
        if data == "png":
            data = png_bytes()
        elif data == "truncated png":
            data = png_bytes((400, 400))[:300]
        r = await upload(client, dossier_id, filename, data)
        assert r.status in (415, 422), (filename, await r.text())
        assert (await r.json())["code"] == code, filename
    assert await count_documents(app) == 0
    assert blob_files(settings.data_dir) == []
    assert staging_files(settings.data_dir) == []


@sqlite_only
async def test_path_tricks_in_names_are_refused(app, client, users, dossier_id, settings):
    await client.sign_in_as(users["requester"].id)
    for filename in PATH_TRICKS:
        # Both ways of naming a file: multipart (what a form sends) and ?filename= (raw body).
        for multipart in (False, True) if filename.isprintable() else (False,):
            r = await upload(client, dossier_id, filename, pdf_bytes(1), multipart=multipart)
            assert r.status == 422, (filename, await r.text())
            assert (await r.json())["code"] == "bad_filename"
    assert await count_documents(app) == 0
    assert blob_files(settings.data_dir) == [] and staging_files(settings.data_dir) == []


class TestSizeLimit:
    @pytest.fixture
    def settings(self, database_url, tmp_path):
        return make_settings(database_url, tmp_path / "data", max_upload_bytes=4096)

    @sqlite_only
    async def test_a_file_over_the_size_limit_is_refused_while_streaming(
        self, app, client, users, dossier_id, settings
    ):
        await client.sign_in_as(users["requester"].id)

        async def body():
            for _ in range(10):
                yield b"x" * 1024

        r = await client.post(
            f"/api/v1/dossiers/{dossier_id}/documents?filename=long.txt", data=body()
        )
        assert r.status == 413, await r.text()
        assert await count_documents(app) == 0
        assert blob_files(settings.data_dir) == [] and staging_files(settings.data_dir) == []


async def test_a_stranger_can_neither_list_nor_add_documents_and_is_audited(
    app, client, users, dossier_id
):
    from core import accounts

    async with app[DB].write() as uow:
        other = await accounts.create_user(
            uow.session,
            email="autre@exemple.fr",
            password=None,
            role=accounts.Role.practitioner,
            first_name="Paul",
            last_name="Autre",
        )
    await client.sign_in_as(other.id)
    # Its existence is not even revealed.
    r = await client.get(f"/api/v1/dossiers/{dossier_id}/documents")
    assert r.status == 404
    r = await upload(client, dossier_id, "x.pdf", pdf_bytes(1))
    assert r.status == 404
    assert (await r.json())["code"] == "dossier_not_found"
    assert await count_documents(app) == 0
    async with app[DB].read() as s:
        denied = (
            (await s.execute(select(AuditEntry).where(AuditEntry.outcome == "denied")))
            .scalars()
            .all()
        )
    assert {d.actor_id for d in denied} == {other.id} and len(denied) == 2


@sqlite_only
async def test_a_snapshot_taken_during_a_call_lands_with_author_time_and_source(
    app, users, dossier_id
):
    from core.principal import Principal

    expert = Principal(
        kind="user",
        subject_id=users["expert"].id,
        label="Dr Expert",
        role="practitioner",
        session_id="s",
    )
    async with app[DB].write() as uow:
        doc = await add_document(uow, expert, dossier_id, "capture.png", png_bytes(), "snapshot")
    async with app[DB].read() as s:
        row = await s.get(Document, doc.id)
    assert row.source == "snapshot" and row.author_label == "Dr Expert"
    assert row.author_id == users["expert"].id and row.created_at is not None


@sqlite_only
async def test_a_rolled_back_transaction_leaves_no_blob(app, users, dossier_id, settings):
    from core.principal import Principal

    p = Principal(
        kind="user", subject_id=users["expert"].id, label="X", role="practitioner", session_id="s"
    )
    with pytest.raises(RuntimeError):
        async with app[DB].write() as uow:
            await add_document(uow, p, dossier_id, "a.pdf", pdf_bytes(1))
            assert len(blob_files(settings.data_dir)) == 2  # file + preview
            raise RuntimeError("later step failed")
    assert blob_files(settings.data_dir) == []
    assert await count_documents(app) == 0


@sqlite_only
async def test_document_permissions_by_role(app, client, users, dossier_id):
    """Requester, expert and the requester's secretary read and add; the admin reads only."""
    expected = {
        "requester": (200, 201),
        "expert": (200, 201),
        "secretary": (200, 201),
        "admin": (200, 403),
    }
    for role, (read, write) in expected.items():
        await client.sign_in_as(users[role].id)
        r = await client.get(f"/api/v1/dossiers/{dossier_id}/documents")
        assert r.status == read, role
        r = await upload(client, dossier_id, f"{role}.pdf", pdf_bytes(1))
        assert r.status == write, (role, await r.text())
    # A draft is not sent yet: the expert does not see it.
    draft = await make_dossier(app[DB], users, state="draft")
    await client.sign_in_as(users["expert"].id)
    r = await client.get(f"/api/v1/dossiers/{draft}/documents")
    assert r.status == 404
