"""Unseen results: what the home page's « Derniers résultats non vus » costs the server.

Fills a database with ``--dossiers`` dossiers of one requester, each holding a report and a
CT study of ``--files`` DICOM files added by the expert (rows written straight into the
tables: the listing reads rows, not blobs), then times ``GET /api/v1/me/unseen-results``
through a real app (session, permission clause, grouping of studies, audit row), before
and after half of the results were marked as seen.

    .venv/bin/python -m loadtest.dicom.bench_unseen --dossiers 200 --files 50
    .venv/bin/python -m loadtest.dicom.bench_unseen --database-url postgresql+asyncpg://…
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path


def _ms(samples: list[float]) -> str:
    s = sorted(samples)
    return (
        f"p50 {statistics.median(s) * 1000:.1f} ms, p95 {s[int(len(s) * 0.95) - 1] * 1000:.1f} ms"
    )


async def bench(tmp: Path, dossiers: int, files: int, url: str | None, rounds: int) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from core.app import create_app
    from core.config import Settings
    from core.context import DB, SESSIONS
    from core.db import utcnow
    from core.migrate import upgrade
    from core.seed import seed_accounts
    from core.sessions import COOKIE
    from dossier.documents import seen
    from dossier.models import Document
    from tests.support.documents import make_dossier

    url = url or f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
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
        db = app[DB]
        users = await seed_accounts(db)
        expert = users["expert"].id
        ids: list[uuid.UUID] = []
        for n in range(dossiers):
            d = await make_dossier(db, users, birth_name=f"PATIENT{n}")
            async with db.write() as uow:
                common = {
                    "dossier_id": d,
                    "size": 1,
                    "sha256": "0" * 64,
                    "blob_key": "none",
                    "author_id": expert,
                    "created_at": utcnow(),
                }
                report = Document(
                    id=uuid.uuid4(),
                    filename=f"cr-{n}.pdf",
                    category="report",
                    content_type="application/pdf",
                    source="report",
                    **common,
                )
                uow.session.add(report)
                ids.append(report.id)
                study = f"1.2.{n}"
                for k in range(files):
                    uow.session.add(
                        Document(
                            id=uuid.uuid4(),
                            filename=f"ct-{n}-{k}.dcm",
                            category="dicom",
                            content_type="application/dicom",
                            meta={
                                "dicom": {
                                    "study_uid": study,
                                    "series_uid": f"{study}.1",
                                    "modality": "CT",
                                    "study_description": "SCANNER",
                                }
                            },
                            **common,
                        )
                    )
        token, _ = await app[SESSIONS].create(
            kind="user", subject_id=users["requester"].id, stage="full"
        )
        client.session.cookie_jar.update_cookies({COOKIE: token})

        async def measure(label: str) -> None:
            lat = []
            total = 0
            for _ in range(rounds):
                t0 = time.perf_counter()
                r = await client.get("/api/v1/me/unseen-results?per_page=20")
                body = await r.json()
                lat.append(time.perf_counter() - t0)
                assert r.status == 200, body
                total = body["total"]
            backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
            print(
                f"GET /me/unseen-results ({backend}, {dossiers} dossiers × (1 report + "
                f"{files} DICOM files), {label}: {total} results): {_ms(lat)}"
            )

        await measure("none seen")
        async with db.write() as uow:
            await seen.mark(uow.session, users["requester"].id, ids[::2], "marked")
        await measure("half the reports seen")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dossiers", type=int, default=200)
    ap.add_argument("--files", type=int, default=50, help="DICOM files per study")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--database-url", default=None, help="an empty database (default: SQLite)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(bench(Path(d), args.dossiers, args.files, args.database_url, args.rounds))


if __name__ == "__main__":
    main()
