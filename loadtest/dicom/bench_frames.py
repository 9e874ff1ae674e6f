"""DICOM viewer: what scrolling a series costs the server.

Prints the time to render one frame as the viewer asks for it (``render_frame``: read the
header, decode only that frame, modality LUT, window, PNG) for a 512×512 CT slice and for a
frame in the middle of a large multi-frame file, then the latency of
``GET …/preview?frame=n`` through a real app (session, permission check, audit row,
rendering) on the embedded SQLite database, with the viewer's 4 parallel requests.

    .venv/bin/python -m loadtest.dicom.bench_frames --frames 300
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path


def _ms(samples: list[float]) -> str:
    s = sorted(samples)
    return (
        f"p50 {statistics.median(s) * 1000:.1f} ms, p95 {s[int(len(s) * 0.95) - 1] * 1000:.1f} ms"
    )


def bench_render(tmp: Path, frames: int) -> None:
    from dossier.documents.dicom import render_frame
    from tests.support.dicom_series import Study, multiframe, series_slice

    one = tmp / "slice.dcm"
    one.write_bytes(series_slice(Study(), "1.2.3", instance=1, level_hu=40, size=512))
    for window in (None, (-600.0, 1500.0)):
        t = []
        for _ in range(30):
            t0 = time.perf_counter()
            render_frame(one, 0, window=window)
            t.append(time.perf_counter() - t0)
        print(f"512×512 slice, window {window or 'of the file'}: {_ms(t)}")
    big = tmp / "multiframe.dcm"
    big.write_bytes(
        multiframe(Study(), levels_hu=[(k % 50) * 10.0 for k in range(frames)], size=512)
    )
    size = big.stat().st_size / 1e6
    t = []
    for k in range(0, frames, max(1, frames // 30)):
        t0 = time.perf_counter()
        render_frame(big, k)
        t.append(time.perf_counter() - t0)
    print(f"{frames}-frame file ({size:.0f} MB), one frame: {_ms(t)}")


async def bench_http(tmp: Path, images: int) -> None:
    from aiohttp.test_utils import TestClient, TestServer
    from pydicom.uid import generate_uid

    from core.app import create_app
    from core.config import Settings
    from core.context import DB, SESSIONS
    from core.migrate import upgrade
    from core.seed import seed_accounts
    from core.sessions import COOKIE
    from tests.support.dicom_series import Study, series_slice
    from tests.support.documents import make_dossier

    url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    await asyncio.to_thread(upgrade, url)
    app = create_app(
        Settings(
            database_url=url,
            data_dir=tmp / "data",
            secret_key="bench-secret-key-0123456789-abcdefghijklmnop",
            dev=True,
        )
    )
    async with TestClient(TestServer(app)) as client:
        users = await seed_accounts(app[DB])
        dossier = await make_dossier(app[DB], users)
        token, s = await app[SESSIONS].create(
            kind="user", subject_id=users["requester"].id, stage="full"
        )
        client.session.cookie_jar.update_cookies({COOKIE: token})
        study, uid, ids = Study(), generate_uid(), []
        for n in range(1, images + 1):
            data = series_slice(study, uid, instance=n, level_hu=n % 200, z=n, size=512)
            r = await client.post(
                f"/api/v1/dossiers/{dossier}/documents?filename=CT{n}.dcm",
                data=data,
                headers={"X-CSRF-Token": s.csrf_token},
            )
            assert r.status == 201, await r.text()
            ids.append((await r.json())["id"])
        sem = asyncio.Semaphore(4)  # the viewer's parallel fetches
        lat: list[float] = []

        async def one(doc: str) -> None:
            async with sem:
                t0 = time.perf_counter()
                r = await client.get(f"/api/v1/dossiers/{dossier}/documents/{doc}/preview?frame=1")
                await r.read()
                assert r.status == 200
                lat.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(d) for d in ids))
        wall = time.perf_counter() - t0
        print(
            f"GET preview?frame=1, {images} slices 512×512, 4 in parallel (SQLite, audit row each):"
            f" {_ms(lat)}; {images / wall:.0f} images/s"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300, help="frames of the multi-frame file")
    ap.add_argument("--images", type=int, default=60, help="slices fetched through HTTP")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        bench_render(Path(d), args.frames)
        asyncio.run(bench_http(Path(d), args.images))


if __name__ == "__main__":
    main()
