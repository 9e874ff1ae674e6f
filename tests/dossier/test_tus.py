"""The resumable upload resource speaks tus 1.0 (core, creation, checksum, termination).

The client is tuspy, the tus project's own Python client, so the protocol is checked by an
implementation that is not ours; the raw requests check what it does not exercise (discovery,
a wrong version, a corrupted chunk, termination, two processes writing one upload).
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import hashlib
import io
import os

import pytest
import yarl
from sqlalchemy import select
from tusclient import client as tus_client

from core.app import create_app
from core.context import DB
from core.sessions import COOKIE, CSRF_HEADER
from dossier.models import Document, Upload
from tests.conftest import ApiClient, make_settings
from tests.support.documents import make_dossier, pdf_bytes, staging_files, staging_locks

TUS = {"Tus-Resumable": "1.0.0"}


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@pytest.fixture
async def dossier_id(app, users):
    return await make_dossier(app[DB], users)


def big_pdf() -> bytes:
    return pdf_bytes(30) + b"\n%" + os.urandom(700_000) + b"\n%%EOF\n"


async def create(client, dossier_id, size, name="IRM.pdf", **extra):
    headers = {**TUS, "Upload-Length": str(size), "Upload-Metadata": f"filename {b64(name)}"}
    headers.update(extra)
    return await client.post(f"/api/v1/dossiers/{dossier_id}/tus", headers=headers)


async def test_the_tus_projects_client_uploads_a_file_in_chunks_with_checksums(
    app, client, users, dossier_id, settings
):
    await client.sign_in_as(users["requester"].id)
    data = big_pdf()
    sha = hashlib.sha256(data).hexdigest()
    cookie = next(c.value for c in client.client.session.cookie_jar if c.key == COOKIE)
    tus = tus_client.TusClient(
        str(client.client.make_url(f"/api/v1/dossiers/{dossier_id}/tus")),
        headers={"Cookie": f"{COOKIE}={cookie}", CSRF_HEADER: client.csrf},
    )
    uploader = tus.async_uploader(
        file_stream=io.BytesIO(data),
        chunk_size=256 * 1024,
        metadata={"filename": "IRM genou.pdf", "sha256": sha},
        upload_checksum=True,  # sha1 of each chunk in Upload-Checksum
        retries=0,
    )
    await uploader.upload()
    assert uploader.offset == len(data)

    async with app[DB].read() as s:
        doc = (
            await s.execute(select(Document).where(Document.dossier_id == dossier_id))
        ).scalar_one()
        assert doc.filename == "IRM genou.pdf" and doc.sha256 == sha and doc.size == len(data)
    assert staging_files(settings.data_dir) == [] and staging_locks(settings.data_dir) == []

    # The last answer lost: the client resumes the same URL, learns it is done, and the file
    # is not added twice.
    r = await client.request("HEAD", yarl.URL(uploader.url).path, headers=TUS)
    assert r.status == 200 and r.headers["Upload-Offset"] == str(len(data))
    assert r.headers["Consilium-Document-Id"] == str(doc.id)
    # (tuspy asks the offset of a known URL with a blocking request: off the event loop)
    again = await asyncio.to_thread(
        tus.async_uploader,
        file_stream=io.BytesIO(data),
        url=uploader.url,
        chunk_size=256 * 1024,
        retries=0,
    )
    await again.upload()
    async with app[DB].read() as s:
        assert len((await s.execute(select(Document))).all()) == 1
        up = (await s.execute(select(Upload))).scalar_one()
        assert up.document_id == doc.id


async def test_discovery_version_and_creation_errors_are_clear(client, users, dossier_id):
    await client.sign_in_as(users["requester"].id)
    r = await client.request("OPTIONS", f"/api/v1/dossiers/{dossier_id}/tus")
    assert r.status == 204
    assert r.headers["Tus-Version"] == "1.0.0"
    assert set(r.headers["Tus-Extension"].split(",")) == {"creation", "checksum", "termination"}
    assert "sha1" in r.headers["Tus-Checksum-Algorithm"].split(",")
    assert int(r.headers["Tus-Max-Size"]) > 0 and int(r.headers["Consilium-Chunk-Size"]) > 0

    r = await create(client, dossier_id, 10, **{"Tus-Resumable": "0.2.2"})
    assert r.status == 412 and (await r.json())["code"] == "tus_version"
    r = await client.post(f"/api/v1/dossiers/{dossier_id}/tus", headers=TUS)
    assert r.status == 400 and (await r.json())["code"] == "tus_length_missing"
    r = await create(client, dossier_id, 10, **{"Upload-Metadata": "filename ***"})
    assert r.status == 400 and (await r.json())["code"] == "tus_metadata_malformed"
    r = await create(client, dossier_id, 10, **{"Upload-Defer-Length": "1"})
    assert r.status == 400
    r = await create(client, dossier_id, 10**15)
    assert r.status == 413
    client.sign_out()
    assert (await create(client, dossier_id, 10)).status == 401


async def test_a_corrupted_chunk_is_refused_and_the_upload_resumes_then_terminates(
    app, client, users, dossier_id, settings
):
    await client.sign_in_as(users["requester"].id)
    data = big_pdf()
    r = await create(client, dossier_id, len(data))
    assert r.status == 201 and r.headers["Tus-Resumable"] == "1.0.0"
    url = r.headers["Location"]
    first = data[:300_000]
    good = base64.b64encode(hashlib.sha1(first).digest()).decode()
    bad = base64.b64encode(hashlib.sha1(b"something else").digest()).decode()

    headers = {**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    r = await client.patch(url, data=first, headers={**headers, "Upload-Checksum": f"sha1 {bad}"})
    assert r.status == 460 and (await r.json())["code"] == "checksum_mismatch"
    r = await client.request("HEAD", url, headers=TUS)
    assert r.status == 200 and r.headers["Upload-Offset"] == "0"
    assert r.headers["Upload-Length"] == str(len(data)) and r.headers["Cache-Control"] == "no-store"

    r = await client.patch(url, data=first, headers={**headers, "Upload-Checksum": "crc99 AAAA"})
    assert r.status == 400 and (await r.json())["code"] == "tus_checksum_algorithm"
    r = await client.patch(url, data=first, headers={**headers, "Content-Type": "text/plain"})
    assert r.status == 415
    r = await client.patch(url, data=first, headers={**headers, "Upload-Checksum": f"sha1 {good}"})
    assert r.status == 204 and r.headers["Upload-Offset"] == "300000"

    r = await client.delete(url, headers=TUS)
    assert r.status == 204 and r.headers["Tus-Resumable"] == "1.0.0"
    assert (await client.request("HEAD", url, headers=TUS)).status == 404
    assert staging_files(settings.data_dir) == [] and staging_locks(settings.data_dir) == []
    async with app[DB].read() as s:
        assert (await s.execute(select(Document))).first() is None


async def wait_until_locked(data_dir, timeout: float = 60.0) -> None:
    """Until some open file description holds the flock of the only staged upload."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        for lock in staging_locks(data_dir):
            with open(lock, "rb") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return
                fcntl.flock(f, fcntl.LOCK_UN)
        assert asyncio.get_running_loop().time() < deadline, "the first node never took the lock"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_two_processes_never_interleave_the_chunks_of_one_upload(
    app, client, users, dossier_id, settings, aiohttp_client
):
    """Two nodes sharing the data directory: a chunk arriving at the second node while the
    first still writes waits for it, then finds the offset moved (409), never a torn file."""
    other_app = create_app(make_settings(settings.database_url, settings.data_dir))
    other = ApiClient(await aiohttp_client(other_app))
    await client.sign_in_as(users["requester"].id)
    data = big_pdf()
    r = await create(client, dossier_id, len(data))
    url = r.headers["Location"]
    other.client.session.cookie_jar.update_cookies(
        {c.key: c.value for c in client.client.session.cookie_jar}
    )
    other.csrf = client.csrf
    headers = {"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}

    writing = asyncio.Event()
    release = asyncio.Event()

    async def slow():
        yield data[:100_000]
        writing.set()
        await release.wait()
        yield data[100_000:200_000]

    first = asyncio.create_task(client.patch(url, data=slow(), headers=headers))
    await writing.wait()
    # The first bytes left the client; wait until the first node holds the upload's lock (on a
    # busy machine its handler may not have started yet), so the second node arrives mid-write.
    await wait_until_locked(settings.data_dir)
    second = asyncio.create_task(other.patch(url, data=data[:200_000], headers=headers))
    head = asyncio.create_task(other.request("HEAD", url))
    await asyncio.sleep(0.3)  # give the second node time to (wrongly) write, if it could
    assert not second.done() and not head.done()
    release.set()
    assert (await first).status == 204
    r = await second
    assert r.status == 409 and (await r.json())["offset"] == 200_000
    assert (await head).headers["Upload-Offset"] == "200000"

    r = await other.patch(
        url, data=data[200_000:], headers={**headers, **TUS, "Upload-Offset": "200000"}
    )
    assert r.status == 204, await r.text()
    doc_id = r.headers["Consilium-Document-Id"]
    async with app[DB].read() as s:
        doc = await s.get(Document, __import__("uuid").UUID(doc_id))
        assert doc is not None and doc.sha256 == hashlib.sha256(data).hexdigest()
