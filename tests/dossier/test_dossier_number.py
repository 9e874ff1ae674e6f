"""Dossier numbers (seed 002 § 2.2): "TE-2026-000123", given at creation, unique even when
many dossiers are created at once, backfilled on existing rows by the migration, and shown
where a dossier is named: the API, the activity search, the report PDF, the e-mails."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pymupdf
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from core.audit import AuditEntry
from core.context import DB
from core.db import UTCDateTime, utcnow
from core.migrate import alembic_config, upgrade
from core.principal import Principal
from dossier.documents.export import zip_name, zip_name_of
from dossier.models import Dossier, DossierNumberCounter
from dossier.workflow import dossiers, numbering
from tests.conftest import make_settings
from tests.dossier.dossier_fixtures import *  # noqa: F403
from tests.dossier.dossier_fixtures import (
    ENDO,
    TX_EXPERT,
    TX_REQUESTER,
    draft_ready_to_sign,
    new_patient,
)
from tests.support.documents import make_dossier
from tests.support.pg import scratch_database

NUMBER = re.compile(r"^TE-(\d{4})-(\d{6})$")


def this_year() -> int:
    return numbering.year_of(utcnow())


# -- the format ----------------------------------------------------------------------------


def test_typed_numbers_are_read_the_way_people_say_them():
    assert numbering.format_number(2026, 123) == "TE-2026-000123"
    for typed in (
        "TE-2026-000123",
        "te-2026-123",
        " TE 2026 000123 ",
        "TE2026000123",
        "te.2026/123",
    ):
        assert numbering.normalize(typed) == "TE-2026-000123", typed
    assert numbering.normalize("TE-2026-1234567") == "TE-2026-1234567"  # past a million
    for wrong in ("", "2026-000123", "TX-2026-000123", "TE-26-000123", "TE-2026-000000", "Dupont"):
        assert numbering.normalize(wrong) is None, wrong


def test_the_year_is_the_year_in_paris():
    # 31 December 23:30 UTC is already 1 January in Paris.
    assert numbering.year_of(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == 2027
    assert numbering.year_of(datetime(2026, 12, 31, 22, 59, tzinfo=UTC)) == 2026


def test_zip_name_carries_the_number():
    assert zip_name("TE-2026-000123") == "dossier-TE-2026-000123.zip"


# -- creation ------------------------------------------------------------------------------


async def test_created_dossiers_are_numbered_in_order_and_shown_in_the_api(app, demo, as_user):
    req = await as_user(demo["users"]["requester"])
    first = await draft_ready_to_sign(req, str(demo["offers"][ENDO].id))
    second = await draft_ready_to_sign(
        req, str(demo["offers"][ENDO].id), birth_name="Lefèvre", first_name="Anne"
    )
    year = this_year()
    # seed_demo created two dossiers before these.
    assert first["number"] == f"TE-{year}-000003"
    assert second["number"] == f"TE-{year}-000004"
    r = await req.get(f"/api/v1/dossiers/{first['id']}")
    assert (await r.json())["number"] == first["number"]
    r = await req.get("/api/v1/dossiers")
    rows = {row["id"]: row["number"] for row in (await r.json())["items"]}
    assert rows[first["id"]] == first["number"] and rows[second["id"]] == second["number"]
    assert all(NUMBER.match(n) for n in rows.values())
    async with app[DB].read() as s:
        counter = await s.get(DossierNumberCounter, year)
        created = (
            await s.execute(
                select(AuditEntry).where(
                    AuditEntry.action == "dossier.create", AuditEntry.object_id == second["id"]
                )
            )
        ).scalar_one()
    assert counter is not None and counter.last == 4
    assert created.details["number"] == second["number"]  # the creation's audit row


async def test_the_activity_search_finds_a_dossier_by_its_number(app, demo, as_user):
    req = await as_user(demo["users"]["requester"])
    a = await draft_ready_to_sign(req, str(demo["offers"][ENDO].id))
    b = await draft_ready_to_sign(
        req, str(demo["offers"][ENDO].id), birth_name="Lefèvre", first_name="Anne"
    )
    seq = a["number"].rsplit("-", 1)[1]
    for q in (a["number"], a["number"].lower(), f"TE {this_year()} {int(seq)}", seq):
        r = await req.get("/api/v1/dossiers", params={"q": q})
        assert r.status == 200
        assert [row["id"] for row in (await r.json())["items"]] == [a["id"]], q
    # Names still work, and "te" is a name's start, not every number's.
    r = await req.get("/api/v1/dossiers", params={"q": "lefe"})
    assert [row["id"] for row in (await r.json())["items"]] == [b["id"]]
    r = await req.get("/api/v1/dossiers", params={"q": "te"})
    assert b["id"] not in [row["id"] for row in (await r.json())["items"]]


async def test_concurrent_creations_get_distinct_numbers(app, demo, as_user, backend):
    """Twenty-four creations at once (asyncio.gather, one transaction each): every number
    is different, and since each increment commits with its dossier, none is skipped."""
    u = demo["users"]["requester"]
    req = await as_user(u)
    patient = await new_patient(req)
    p = Principal(
        kind="user", subject_id=u.id, label=u.display_name, role="practitioner", session_id=""
    )
    n = 24
    ids = await asyncio.gather(
        *(
            dossiers.create_dossier(app[DB], p, patient_id=uuid.UUID(patient["id"]))
            for _ in range(n)
        )
    )
    async with app[DB].read() as s:
        numbers = (
            (await s.execute(select(Dossier.number).where(Dossier.id.in_(ids)))).scalars().all()
        )
        last = (await s.get(DossierNumberCounter, this_year())).last
        total = await s.scalar(select(func.count()).select_from(Dossier))
    assert len(numbers) == n and len(set(numbers)) == n
    seqs = sorted(int(NUMBER.match(x).group(2)) for x in numbers)
    assert seqs == list(range(3, 3 + n))  # after seed_demo's two
    assert last == total == 2 + n


async def test_rows_inserted_outside_the_write_path_are_numbered_too(app, users):
    """tests/support inserts dossiers straight into the table: the column's default takes
    the next number from the same counter, in the same transaction."""
    a = await make_dossier(app[DB], users)
    b = await make_dossier(app[DB], users, birth_name="SIMON")
    async with app[DB].read() as s:
        na = (await s.get(Dossier, a)).number
        nb = (await s.get(Dossier, b)).number
    year = this_year()
    assert (na, nb) == (f"TE-{year}-000001", f"TE-{year}-000002")
    async with app[DB].read() as s:
        assert await zip_name_of(s, a) == f"dossier-TE-{year}-000001.zip"


# -- migration -----------------------------------------------------------------------------

PREVIOUS = "ab72e4fbed04"  # the dossier branch before numbers


async def _old_rows(url: str) -> list[uuid.UUID]:
    """Users, a patient and three dossiers written with the schema before numbers."""
    engine = create_async_engine(url)
    created = [  # not in creation order on purpose; the first is 2026 in Paris
        datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
        datetime(2025, 12, 31, 23, 30, tzinfo=UTC),
        datetime(2025, 6, 1, 9, 0, tzinfo=UTC),
    ]
    ids = [uuid.uuid4() for _ in created]
    try:
        async with engine.begin() as conn:
            from core.accounts import User
            from dossier.models import Patient

            uid, pid = uuid.uuid4(), uuid.uuid4()
            await conn.execute(
                User.__table__.insert(),
                [
                    {
                        "id": uid,
                        "email": "old@example.org",
                        "role": "practitioner",
                        "first_name": "Old",
                        "last_name": "Timer",
                    }
                ],
            )
            # The patients table as it was then (before dossier_0004's INS columns).
            later = {"ins_oid", "identity_document", "insi_checked_at"}
            old_patients = sa.Table(
                "patients",
                sa.MetaData(),
                *(c._copy() for c in Patient.__table__.columns if c.name not in later),
            )
            await conn.execute(
                old_patients.insert(),
                [
                    {
                        "id": pid,
                        "birth_name": "ANCIEN",
                        "first_name": "Paul",
                        "sex": "M",
                        "birth_date": date(1950, 1, 1),
                    }
                ],
            )
            old = sa.table(
                "dossiers",
                *(
                    sa.column(c, sa.Uuid())
                    for c in ("id", "patient_id", "requester_id", "created_by_id")
                ),
                sa.column("state", sa.String()),
                sa.column("consent_comment", sa.String()),
                sa.column("urgent", sa.Boolean()),
                sa.column("created_at", UTCDateTime()),
                sa.column("updated_at", UTCDateTime()),
                sa.column("modified_at", UTCDateTime()),
            )
            await conn.execute(
                old.insert(),
                [
                    {
                        "id": i,
                        "patient_id": pid,
                        "requester_id": uid,
                        "created_by_id": uid,
                        "state": "draft",
                        "consent_comment": "",
                        "urgent": False,
                        "created_at": at,
                        "updated_at": at,
                        "modified_at": at,
                    }
                    for i, at in zip(ids, created, strict=True)
                ],
            )
    finally:
        await engine.dispose()
    return ids


async def _numbers(url: str) -> tuple[dict[uuid.UUID, str], dict[int, int]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(Dossier.id, Dossier.number))).all()
            counters = (
                await conn.execute(select(DossierNumberCounter.year, DossierNumberCounter.last))
            ).all()
    finally:
        await engine.dispose()
    return {r[0]: r[1] for r in rows}, {r[0]: r[1] for r in counters}


def _check_backfill(url: str) -> None:
    # An installation from before numbers: every branch at its head, dossier one step back.
    upgrade(url)
    command.downgrade(alembic_config(url), PREVIOUS)
    march, new_year, june = asyncio.run(_old_rows(url))
    upgrade(url)
    numbers, counters = asyncio.run(_numbers(url))
    assert numbers == {
        june: "TE-2025-000001",
        new_year: "TE-2026-000001",  # 1 January 00:30 in Paris
        march: "TE-2026-000002",
    }
    assert counters == {2025: 1, 2026: 2}
    # Back down and up again: the column goes and comes back with the same numbers.
    command.downgrade(alembic_config(url), PREVIOUS)
    upgrade(url)
    assert asyncio.run(_numbers(url))[0] == numbers


def test_migration_numbers_existing_dossiers_in_creation_order_sqlite(tmp_path: Path):
    _check_backfill(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")


def test_migration_numbers_existing_dossiers_in_creation_order_postgresql():
    with scratch_database("n") as url:
        _check_backfill(url)


# -- where a dossier is named --------------------------------------------------------------


@pytest.fixture
def settings(database_url, tmp_path, smtp):
    return make_settings(database_url, tmp_path / "data", smtp_host=smtp.host, smtp_port=smtp.port)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_report_and_emails_name_the_dossier_by_its_number(app, demo, as_user, smtp):
    u = demo["users"]
    req, exp = await as_user(u["requester"]), await as_user(u["expert"])
    d = await draft_ready_to_sign(req, str(demo["offers"][ENDO].id))
    number, url = d["number"], f"/api/v1/dossiers/{d['id']}"
    r = await req.post(f"{url}/forms/requester/sign", json={"values": TX_REQUESTER})
    assert r.status == 200
    mails = await smtp.wait_for(u["expert"].email, count=2)  # seed_demo's dossier, then this
    mail = mails[-1]
    assert mail["Subject"] == f"Le dossier n° {number} attend votre avis"
    assert f"n° {number}" in smtp.text_of(mail)
    r = await exp.post(f"{url}/forms/expert/sign", json={"values": TX_EXPERT})
    assert r.status == 200
    mail = (await smtp.wait_for(u["requester"].email))[-1]
    assert mail["Subject"] == f"L'avis d'expertise du dossier n° {number} a été signé"

    r = await exp.post(f"{url}/report")
    assert r.status == 201, await r.text()
    report = await r.json()
    r = await req.get(f"{url}/documents/{report['id']}/content")
    with pymupdf.open(stream=await r.read(), filetype="pdf") as pdf:
        first = pdf[0].get_text()
        last = pdf[pdf.page_count - 1].get_text()
        subject = pdf.metadata["subject"]
    assert f"Dossier n° {number}" in first  # header line and sub-title
    # The footer (the base-14 font draws "—" as "·").
    assert re.search(rf"Dossier n° {number} . document confidentiel", last)
    assert number in subject
