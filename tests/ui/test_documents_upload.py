"""Adding large files on the dossier page (issue 6, item 4): the resumable upload in chunks,
with a cut connection healed by itself, a reload resumed from the server's offset, and
refusals explained in French. Files are generated on disk, never held whole in memory."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from core.context import DB
from core.storage import of as storage_of
from dossier.models import Document, Upload
from tests.conftest import make_settings
from tests.support.documents import make_dossier, png_bytes, staging_files
from tests.ui.conftest import call_api, open_session, shot, wait_js

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

MiB = 1024 * 1024
CHUNK = 4 * MiB
MAX = 40 * MiB
MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp: Any) -> Any:
    # Small limits so that a few tens of MB exercise every path: 4 MiB chunks, 40 MiB max.
    return make_settings(
        database_url,
        tmp_path / "data",
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        max_upload_bytes=MAX,
        upload_chunk_bytes=CHUNK,
    )


def video_file(path: Path, size: int) -> str:
    """An MP4-looking file of ``size`` random bytes, written 1 MiB at a time; its SHA-256."""
    h = hashlib.sha256()
    with path.open("wb") as f:
        f.write(MP4_HEAD)
        h.update(MP4_HEAD)
        left = size - len(MP4_HEAD)
        while left > 0:
            block = os.urandom(min(MiB, left))
            f.write(block)
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MiB):
            h.update(block)
    return h.hexdigest()


async def documents(page: Any, dossier_id: Any) -> list[dict[str, Any]]:
    r = await call_api(page, "GET", f"/api/v1/dossiers/{dossier_id}/documents")
    return [d for c in r["categories"] for d in c["documents"]]


async def stored_sha256(app: Any, doc_id: str) -> str:
    """The SHA-256 of the bytes in the blob store (not the column): what was really kept."""
    import uuid

    async with app[DB].read() as s:
        doc = await s.get(Document, uuid.UUID(doc_id))
    assert doc is not None
    path = storage_of(app).blobs.local_path(doc.blob_key)
    assert path is not None
    return await asyncio.to_thread(sha256_of, path)


async def upload_rows(app: Any) -> int:
    """Uploads still in progress (a completed tus upload keeps its row, naming its document,
    until it expires)."""
    async with app[DB].read() as s:
        q = select(func.count()).select_from(Upload).where(Upload.document_id.is_(None))
        return int((await s.execute(q)).scalar_one())


async def upload_names(app: Any) -> str:
    """The file names of the resumable uploads under way (to pick which one to tamper with)."""
    async with app[DB].read() as s:
        return " ".join((await s.execute(select(Upload.filename))).scalars())


def patches(page: Any) -> list[int]:
    """Upload-Offset of every PATCH the page sends (the list grows as it goes)."""
    seen: list[int] = []
    page.on(
        "request",
        lambda r: r.method == "PATCH" and seen.append(int(r.headers["upload-offset"])),
    )
    return seen


async def open_dossier(pages: Any, app: Any, users: Any) -> tuple[Any, Any]:
    dossier_id = await make_dossier(app[DB], users)
    page = await pages.new()
    await open_session(page, app, users["requester"])
    await page.goto(f"/app/dossiers/{dossier_id}")
    await page.get_by_role("heading", name="Documents").wait_for()
    await page.get_by_text("Aucun document dans ce dossier.").wait_for()
    return page, dossier_id


async def test_a_large_file_goes_up_in_chunks_and_a_cut_chunk_is_sent_again(
    pages, app, users, tmp_path, settings
):
    page, dossier_id = await open_dossier(pages, app, users)
    size = 30 * MiB + 12_345
    video = tmp_path / "echographie-cardiaque.mp4"
    sha = video_file(video, size)
    offsets = patches(page)
    created: list[dict[str, Any]] = []

    def creation(r: Any) -> None:  # tus creation: the length and metadata in headers
        if r.method == "POST" and r.url.endswith("/tus"):
            meta = dict(p.split(" ") for p in r.headers["upload-metadata"].split(","))
            created.append(
                {k: base64.b64decode(v).decode() for k, v in meta.items()}
                | {"size": int(r.headers["upload-length"]), "tus": r.headers["tus-resumable"]}
            )

    page.on("request", creation)

    # A slow link (each chunk takes a quarter of a second more), the third chunk cut
    # (connection reset), the fifth held until the screenshot is taken and the user pressed
    # "Pause" (which drops that request) then "Reprendre".
    cut: list[int] = []
    release = asyncio.Event()

    async def network(route: Any) -> None:
        req = route.request
        if req.method == "PATCH":
            offset = int(req.headers["upload-offset"])
            await asyncio.sleep(0.25)
            if offset == 4 * CHUNK:
                await release.wait()
            if offset == 2 * CHUNK and not cut:
                cut.append(offset)
                await route.abort("connectionreset")
                return
        with contextlib.suppress(Exception):  # the page dropped it meanwhile (Pause)
            await route.continue_()

    await page.route("**/api/v1/uploads/*", network)
    # Two files in one pick: the video first, a photo queued behind it (simple upload).
    photo = tmp_path / "photo-plaie.png"
    photo.write_bytes(png_bytes((320, 240)))
    await page.locator("input[type=file][multiple]").set_input_files([str(video), str(photo)])
    item = page.locator(".upload-item", has_text="echographie-cardiaque.mp4")
    await item.get_by_text("Envoi en cours").wait_for()
    await (
        page.locator(".upload-item", has_text="photo-plaie.png")
        .get_by_text("En attente")
        .wait_for()
    )
    # Four chunks are acknowledged: 16 MiB of 30 MiB, 53 %, with the speed and time left.
    now = "() => Number(document.querySelector('.upload-item [role=progressbar]').ariaValueNow)"
    assert 53 <= await wait_js(page, f"() => ({now})() >= 53 && ({now})()") < 100
    await item.get_by_text(re.compile(r"Mo/s · encore \d+ s")).wait_for()
    bar = item.get_by_role("progressbar", name="Envoi de echographie-cardiaque.mp4")
    assert "Mo / 31,5 Mo" in (await bar.get_attribute("aria-valuetext") or "")
    await shot(page, "dossier-upload-progress", full_page=False)
    await item.get_by_role("button", name="Pause").click()
    await item.get_by_text("En pause").wait_for()
    # While the video is paused, the photo queued behind it goes.
    await page.get_by_text("« photo-plaie.png » ajouté au dossier.").wait_for()
    release.set()
    await item.get_by_role("button", name="Reprendre").click()
    await page.get_by_text("« echographie-cardiaque.mp4 » ajouté au dossier.").wait_for(
        timeout=60_000
    )
    for name in ("echographie-cardiaque.mp4", "photo-plaie.png"):
        await (
            page.locator(".upload-item", has_text=name).get_by_text("Ajouté au dossier").wait_for()
        )
    await page.unroute("**/api/v1/uploads/*")

    # The page's SHA-256 (computed in a worker) was announced, so the server checked it.
    assert created == [
        {"filename": "echographie-cardiaque.mp4", "size": size, "sha256": sha, "tus": "1.0.0"}
    ]
    # Chunks of 4 MiB; the cut one and the paused one sent again from where the server stood.
    assert cut == [2 * CHUNK]
    assert offsets.count(2 * CHUNK) == 2 and offsets.count(4 * CHUNK) == 2, offsets
    assert len(offsets) == 8 + 2
    assert sorted(set(offsets)) == list(range(0, size, CHUNK))
    docs = {d["filename"]: d for d in await documents(page, dossier_id)}
    assert set(docs) == {"echographie-cardiaque.mp4", "photo-plaie.png"}
    video_doc = docs["echographie-cardiaque.mp4"]
    assert video_doc["size"] == size and video_doc["sha256"] == sha
    assert await stored_sha256(app, video_doc["id"]) == sha
    assert docs["photo-plaie.png"]["created_at"] < video_doc["created_at"]  # during the pause
    # Nothing left behind: no upload row, no staged bytes, no note in the browser.
    assert await upload_rows(app) == 0
    assert staging_files(settings.data_dir) == []
    assert (
        await page.evaluate(
            "() => Object.keys(localStorage).filter((k) => k.startsWith('consilium.upload'))"
        )
        == []
    )
    assert not pages.errors, pages.errors


async def test_after_a_reload_the_same_file_resumes_from_the_servers_offset(
    pages, app, users, tmp_path
):
    page, dossier_id = await open_dossier(pages, app, users)
    size = 22 * MiB + 777
    scan = tmp_path / "video-consultation.mp4"
    sha = video_file(scan, size)
    before = patches(page)

    # The network fails for good after the first chunk went through.
    async def network(route: Any) -> None:
        if route.request.method == "PATCH" and int(route.request.headers["upload-offset"]) > 0:
            await route.abort("internetdisconnected")
            return
        await route.continue_()

    await page.route("**/api/v1/uploads/*", network)
    await page.locator("input[type=file][multiple]").set_input_files(str(scan))
    item = page.locator(".upload-item", has_text="video-consultation.mp4")
    await item.get_by_text("Connexion interrompue").wait_for(timeout=30_000)
    await item.get_by_role("button", name="Réessayer maintenant").wait_for()
    assert before[:2] == [0, CHUNK]
    await page.unroute("**/api/v1/uploads/*")

    await page.reload()
    banner = page.get_by_role("status").filter(has_text="Envoi interrompu")
    await banner.wait_for()
    await banner.get_by_text(
        "« video-consultation.mp4 » : 4,2 Mo sur 23,1 Mo déjà reçus par le serveur (18 %)."
    ).wait_for()
    await shot(page, "dossier-upload-resume", full_page=False)

    after = patches(page)  # the listener of the reloaded page
    async with page.expect_file_chooser() as chooser:
        await banner.get_by_role("button", name="Reprendre").click()
    await (await chooser.value).set_files(str(scan))
    item = page.locator(".upload-item", has_text="video-consultation.mp4")
    await item.get_by_text("Envoi repris à 18 %").wait_for()
    await page.get_by_text("« video-consultation.mp4 » ajouté au dossier.").wait_for(timeout=60_000)

    # It continued at the server's offset: the first chunk was not sent again.
    assert after[0] == CHUNK, after
    assert size - after[0] < size and sorted(after) == list(range(CHUNK, size, CHUNK))
    [doc] = await documents(page, dossier_id)
    assert (doc["filename"], doc["size"], doc["sha256"]) == ("video-consultation.mp4", size, sha)
    assert await stored_sha256(app, doc["id"]) == sha
    await page.get_by_text("Envoi interrompu").wait_for(state="detached")
    assert not pages.errors, pages.errors


async def test_refused_files_are_explained_in_french_and_leave_nothing(
    pages, app, users, tmp_path, settings
):
    page, dossier_id = await open_dossier(pages, app, users)
    too_big = tmp_path / "scanner-complet.mp4"
    video_file(too_big, MAX + MiB)
    blob = tmp_path / "export-pacs.bin"  # 10 MiB of bytes of no accepted type: resumable
    with blob.open("wb") as f:
        for _ in range(10):
            f.write(os.urandom(MiB))
    small = tmp_path / "programme.exe"
    small.write_bytes(b"MZ" + os.urandom(5000))
    altered = tmp_path / "holter.mp4"  # one byte changed on the way: the checksum catches it
    altered_size = 9 * MiB
    video_file(altered, altered_size)

    async def corrupt(route: Any) -> None:
        req = route.request
        if req.method == "PATCH" and "holter" in (await upload_names(app)):
            start = int(req.headers["upload-offset"])
            with altered.open("rb") as f:
                f.seek(start)
                body = bytearray(f.read(min(CHUNK, altered_size - start)))
            body[len(body) // 2] ^= 0xFF
            await route.continue_(post_data=bytes(body))
            return
        await route.continue_()

    await page.route("**/api/v1/uploads/*", corrupt)
    await page.locator("input[type=file][multiple]").set_input_files(
        [str(too_big), str(blob), str(small), str(altered)]
    )
    big_item = page.locator(".upload-item", has_text="scanner-complet.mp4")
    await (
        big_item.get_by_role("alert")
        .get_by_text(
            "« scanner-complet.mp4 » est trop volumineux (43,0 Mo) : "
            "la taille maximale d'un document est de 41,9 Mo."
        )
        .wait_for(timeout=30_000)
    )
    accepted = (
        " n'est pas d'un type accepté"
        " (PDF, images, vidéos, DICOM, documents bureautiques ou texte)."
    )
    bin_item = page.locator(".upload-item", has_text="export-pacs.bin")
    await (
        bin_item.get_by_role("alert")
        .get_by_text("« export-pacs.bin »" + accepted)
        .wait_for(timeout=30_000)
    )
    exe_item = page.locator(".upload-item", has_text="programme.exe")
    await exe_item.get_by_role("alert").get_by_text("« programme.exe »" + accepted).wait_for()
    holter = page.locator(".upload-item", has_text="holter.mp4")
    await (
        holter.get_by_role("alert")
        .get_by_text(
            "« holter.mp4 » : le fichier reçu par le serveur diffère de l'original "
            "(empreinte SHA-256). Rien n'a été ajouté ; recommencez l'envoi."
        )
        .wait_for(timeout=30_000)
    )
    for it in (big_item, bin_item, exe_item, holter):
        await it.get_by_text("Non ajouté").wait_for()
    await shot(page, "dossier-upload-refused", full_page=False)

    assert await documents(page, dossier_id) == []
    assert await upload_rows(app) == 0
    assert staging_files(settings.data_dir) == []
    assert (
        await page.evaluate(
            "() => Object.keys(localStorage).filter((k) => k.startsWith('consilium.upload'))"
        )
        == []
    )
    assert not pages.errors, pages.errors


async def test_an_interrupted_upload_can_be_given_up_and_a_running_one_cancelled(
    pages, app, users, tmp_path, settings
):
    page, dossier_id = await open_dossier(pages, app, users)
    first = tmp_path / "enregistrement-1.mp4"
    video_file(first, 12 * MiB)
    hold = asyncio.Event()

    async def network(route: Any) -> None:
        if route.request.method == "PATCH" and int(route.request.headers["upload-offset"]) > 0:
            await hold.wait()
        with contextlib.suppress(Exception):  # the page dropped it meanwhile (reload, Annuler)
            await route.continue_()

    await page.route("**/api/v1/uploads/*", network)
    await page.locator("input[type=file][multiple]").set_input_files(str(first))
    item = page.locator(".upload-item", has_text="enregistrement-1.mp4")
    await item.get_by_text("4,2 Mo / 12,6 Mo · 33 %").wait_for(timeout=30_000)
    await page.reload()
    banner = page.get_by_role("status").filter(has_text="Envoi interrompu")
    await banner.get_by_text("« enregistrement-1.mp4 » : 4,2 Mo sur 12,6 Mo").wait_for()
    assert await upload_rows(app) == 1 and len(staging_files(settings.data_dir)) == 1
    await banner.get_by_role("button", name="Abandonner").click()
    await banner.wait_for(state="detached")
    assert await upload_rows(app) == 0 and staging_files(settings.data_dir) == []

    # A running upload, cancelled: its bytes go too.
    second = tmp_path / "enregistrement-2.mp4"
    video_file(second, 12 * MiB)
    await page.locator("input[type=file][multiple]").set_input_files(str(second))
    item = page.locator(".upload-item", has_text="enregistrement-2.mp4")
    await item.get_by_text("4,2 Mo / 12,6 Mo · 33 %").wait_for(timeout=30_000)
    await item.get_by_role("button", name="Annuler").click()
    await item.get_by_text("Annulé").wait_for()
    hold.set()
    for _ in range(100):  # the DELETE is sent after the request was dropped
        if await upload_rows(app) == 0:
            break
        await asyncio.sleep(0.1)
    assert await upload_rows(app) == 0 and staging_files(settings.data_dir) == []
    assert await documents(page, dossier_id) == []
    assert (
        await page.evaluate(
            "() => Object.keys(localStorage).filter((k) => k.startsWith('consilium.upload'))"
        )
        == []
    )
    assert not pages.errors, pages.errors
