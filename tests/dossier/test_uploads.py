from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from core.context import DB
from core.db import Database
from core.events import EventBus
from core.sessions import COOKIE, CSRF_HEADER, DbSessionStore, Sessions
from dossier.models import Document, Upload
from tests.conftest import SECRET, free_port
from tests.support.documents import blob_files, make_dossier, pdf_bytes, staging_files

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
async def dossier_id(app, users):
    return await make_dossier(app[DB], users)


async def start(client, dossier_id, filename, size, sha256=""):
    r = await client.post(
        f"/api/v1/dossiers/{dossier_id}/uploads",
        json={"filename": filename, "size": size, "sha256": sha256},
    )
    assert r.status == 201, await r.text()
    return await r.json()


async def patch(client, upload_id, offset, data):
    return await client.patch(
        f"/api/v1/uploads/{upload_id}",
        data=data,
        headers={"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
    )


async def test_resumable_upload_resumes_after_an_interrupted_chunk(app, client, users, dossier_id):
    await client.sign_in_as(users["requester"].id)
    data = pdf_bytes(40) + b"\n%" + os.urandom(600_000) + b"\n%%EOF\n"
    sha = hashlib.sha256(data).hexdigest()
    up = await start(client, dossier_id, "IRM genou.pdf", len(data), sha)
    assert up["offset"] == 0

    r = await patch(client, up["id"], 0, data[:200_000])
    assert r.status == 204 and r.headers["Upload-Offset"] == "200000"

    # The next chunk is cut by a network failure after 150 000 bytes.
    async def cut():
        yield data[200_000:350_000]
        await asyncio.sleep(0.05)
        raise ConnectionResetError("link down")

    with pytest.raises(aiohttp.ClientError):
        await patch(client, up["id"], 200_000, cut())

    # The server kept what arrived; the client asks where to resume.
    for _ in range(100):
        r = await client.request("HEAD", f"/api/v1/uploads/{up['id']}")
        assert r.status == 200
        offset = int(r.headers["Upload-Offset"])
        if offset == 350_000:
            break
        await asyncio.sleep(0.05)
    assert offset == 350_000

    # A chunk sent at the wrong offset is refused with the right one.
    r = await patch(client, up["id"], 200_000, data[200_000:300_000])
    assert r.status == 409
    assert (await r.json())["offset"] == 350_000

    r = await client.post(f"/api/v1/uploads/{up['id']}/complete")
    assert r.status == 409  # not complete yet
    r = await patch(client, up["id"], offset, data[offset:])
    assert r.status == 204 and int(r.headers["Upload-Offset"]) == len(data)
    r = await client.get(f"/api/v1/uploads/{up['id']}")
    assert (await r.json())["offset"] == len(data)
    r = await client.post(f"/api/v1/uploads/{up['id']}/complete")
    assert r.status == 201, await r.text()
    doc = await r.json()
    assert doc["sha256"] == sha and doc["size"] == len(data) and doc["category"] == "pdf"
    r = await client.get(f"/api/v1/dossiers/{dossier_id}/documents/{doc['id']}/content")
    assert hashlib.sha256(await r.read()).hexdigest() == sha
    async with app[DB].read() as s:
        assert (await s.execute(select(func.count()).select_from(Upload))).scalar_one() == 0


@sqlite_only
async def test_a_wrong_checksum_or_forged_content_at_completion_leaves_nothing(
    app, client, users, dossier_id, settings
):
    await client.sign_in_as(users["requester"].id)
    data = pdf_bytes(2)
    up = await start(client, dossier_id, "cr.pdf", len(data), "0" * 64)
    assert (await patch(client, up["id"], 0, data)).status == 204
    r = await client.post(f"/api/v1/uploads/{up['id']}/complete")
    assert r.status == 422 and (await r.json())["code"] == "checksum_mismatch"

    fake = b"MZ this is no pdf at all" * 100
    up = await start(client, dossier_id, "cr.pdf", len(fake))
    assert (await patch(client, up["id"], 0, fake)).status == 204
    r = await client.post(f"/api/v1/uploads/{up['id']}/complete")
    assert r.status == 422 and (await r.json())["code"] == "content_mismatch"

    assert blob_files(settings.data_dir) == [] and staging_files(settings.data_dir) == []
    async with app[DB].read() as s:
        assert (await s.execute(select(func.count()).select_from(Upload))).scalar_one() == 0
        assert (await s.execute(select(func.count()).select_from(Document))).scalar_one() == 0


@sqlite_only
async def test_upload_refuses_more_bytes_than_announced_and_sizes_over_the_limit(
    client, users, dossier_id, settings
):
    await client.sign_in_as(users["requester"].id)
    r = await client.post(
        f"/api/v1/dossiers/{dossier_id}/uploads",
        json={"filename": "big.mp4", "size": settings.max_upload_bytes + 1},
    )
    assert r.status == 413
    up = await start(client, dossier_id, "petit.pdf", 10)
    r = await patch(client, up["id"], 0, b"%PDF-" + b"x" * 20)
    assert r.status == 413 and (await r.json())["code"] == "upload_overflow"
    # Somebody else's upload does not exist for me.
    await client.sign_in_as(users["expert"].id)
    r = await client.request("HEAD", f"/api/v1/uploads/{up['id']}")
    assert r.status == 404


# -- 1.5 GB through a real server process ---------------------------------------------

GB15 = 1536 * 1024 * 1024
CHUNK = 512 * 1024 * 1024


def _vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _vm_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
@sqlite_only
async def test_a_1_5_gb_upload_completes_with_bounded_server_memory(
    tmp_path, database_url, users, app
):
    """Runs the real server in its own process and reads its peak RSS (VmHWM)."""
    db = app[DB]
    dossier_id = await make_dossier(db, users)
    sessions = Sessions(
        DbSessionStore(Database(database_url, EventBus())),
        idle=timedelta(hours=1),
        absolute=timedelta(hours=2),
    )
    token, sess = await sessions.create(kind="user", subject_id=users["requester"].id, stage="full")
    port = free_port()
    env = dict(
        os.environ,
        CONSILIUM_DEV="1",
        CONSILIUM_SECRET_KEY=SECRET,
        CONSILIUM_DATABASE_URL=database_url,
        CONSILIUM_DATA_DIR=str(tmp_path / "server-data"),
        CONSILIUM_PORT=str(port),
        CONSILIUM_LOG_LEVEL="WARNING",
    )
    env.pop("CONSILIUM_REDIS_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "serve"],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    headers = {CSRF_HEADER: sess.csrf_token, "Cookie": f"{COOKIE}={token}"}
    try:
        async with aiohttp.ClientSession(headers=headers) as http:
            for _ in range(200):
                try:
                    async with http.get(base + "/healthz") as r:
                        if r.status < 500:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
            baseline = _vm_rss_kb(proc.pid)
            # An MP4-looking stream generated on the fly: nothing of it is ever on disk here.
            block = os.urandom(1024 * 1024)
            head = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
            client_hash = hashlib.sha256()

            def piece(i: int) -> bytes:
                b = (head + block[len(head) :]) if i == 0 else block
                return b

            t0 = time.monotonic()
            async with http.post(
                f"{base}/api/v1/dossiers/{dossier_id}/uploads",
                json={"filename": "examen.mp4", "size": GB15},
            ) as r:
                assert r.status == 201, await r.text()
                up = await r.json()
            offset = 0
            while offset < GB15:
                n_blocks = CHUNK // len(block)
                first = offset // len(block)

                async def body(first: int = first, n_blocks: int = n_blocks):
                    for i in range(first, first + n_blocks):
                        b = piece(i)
                        client_hash.update(b)
                        yield b

                async with http.patch(
                    f"{base}/api/v1/uploads/{up['id']}",
                    data=body(),
                    headers={
                        "Upload-Offset": str(offset),
                        "Content-Type": "application/offset+octet-stream",
                        "Content-Length": str(CHUNK),
                    },
                ) as r:
                    assert r.status == 204, await r.text()
                    offset = int(r.headers["Upload-Offset"])
            async with http.post(f"{base}/api/v1/uploads/{up['id']}/complete") as r:
                assert r.status == 201, await r.text()
                doc = await r.json()
            elapsed = time.monotonic() - t0
            peak_mb = _vm_hwm_kb(proc.pid) / 1024
        assert doc["size"] == GB15 and doc["sha256"] == client_hash.hexdigest()
        assert doc["category"] == "video"
        print(
            f"\n1.5 GB upload: {elapsed:.1f} s, server peak RSS (VmHWM) {peak_mb:.0f} MB "
            f"(RSS before upload {baseline / 1024:.0f} MB)"
        )
        assert peak_mb < 200, f"server peak RSS {peak_mb:.0f} MB"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
