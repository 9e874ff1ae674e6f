"""Migration dossier_0004 on a database that already holds identities: those with an INS get
the NIR's OID, and every identity gets a first status-history row."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select, text

from dossier.models import IdentityStatusChange, InsStatus, Patient

BEFORE = "099ee71e6c11"  # dossier_0003


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_existing_identities_get_their_oid_and_a_first_history_row(tmp_path, backend):
    from core.db import Database
    from core.events import EventBus
    from core.migrate import upgrade
    from tests.support.pg import pg_admin, scratch_name, url_of

    if backend == "sqlite":
        url, name = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}", ""
    else:
        from tests.conftest import PG_URL, need

        need("database", PG_URL)
        name = scratch_name("ins_history")
        await pg_admin(f'CREATE DATABASE "{name}"')
        url = url_of(name)
    try:
        await asyncio.to_thread(upgrade, url, BEFORE)
        db = Database(url, EventBus())
        try:
            ids = [uuid.uuid4(), uuid.uuid4()]
            async with db.engine.begin() as conn:
                for pid, ins, status in (
                    (ids[0], "286026938104237", "qualified"),
                    (ids[1], None, "provisional"),
                ):
                    key = pid.hex if db.dialect == "sqlite" else str(pid)
                    await conn.execute(
                        text(
                            "INSERT INTO patients (id, birth_name, used_name, first_name,"
                            " first_names, used_first_name, sex, birth_date, birth_country,"
                            " birth_commune, birth_postcode, birth_insee_code, addresses,"
                            " contacts, ipp, ins, ins_status, search_text, establishment,"
                            " created_at, updated_at) VALUES (:id, 'X', '', 'Y', 'Y', '', 'F',"
                            " '1986-02-07', 'FRANCE', '', '', '', '[]', '[]', NULL, :ins,"
                            " :status, '', '', '2026-11-01 08:00:00', '2026-11-01 08:00:00')"
                        ),
                        {"id": key, "ins": ins, "status": status},
                    )
            await asyncio.to_thread(upgrade, url)
            async with db.read() as s:
                oids = dict((await s.execute(select(Patient.id, Patient.ins_oid))).all())
                rows = (await s.execute(select(IdentityStatusChange))).scalars().all()
            assert oids == {ids[0]: "1.2.250.1.213.1.4.8", ids[1]: None}
            assert sorted((r.patient_id, r.from_status, r.to_status) for r in rows) == sorted(
                [(ids[0], None, InsStatus.qualified), (ids[1], None, InsStatus.provisional)]
            )
            assert {r.reason for r in rows} == {"Statut enregistré avant l'historique des statuts"}
        finally:
            await db.close()
    finally:
        if name:
            await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
