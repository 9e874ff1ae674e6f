"""The audit log: written for sign-in events, readable by administrators only, and
append-only in the database itself."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy.exc
from sqlalchemy import text

from core import audit
from core.context import DB
from core.seed import DEMO_PASSWORD


async def test_admins_read_the_audit_log_and_practitioners_may_not(client, users):
    await client.post(
        "/api/v1/auth/login",
        json={"email": "requerant@demo.consilium.fr", "password": "wrong-password-1"},
    )
    await client.post(
        "/api/v1/auth/login",
        json={"email": "requerant@demo.consilium.fr", "password": DEMO_PASSWORD},
    )
    client.sign_out()  # drop the pending sign-in's cookie
    await client.sign_in_as(users["requester"].id)
    r = await client.get("/api/v1/audit")
    assert r.status == 403
    assert (await r.json())["code"] == "admin_required"
    await client.sign_in_as(users["admin"].id)
    r = await client.get("/api/v1/audit", params={"action": "auth.login"})
    assert r.status == 200
    rows = await r.json()
    assert [row["outcome"] for row in rows] == ["failure"]  # the password step alone is no login
    row = rows[0]
    assert row["object_id"] == str(users["requester"].id)
    assert row["actor_label"] == "requerant@demo.consilium.fr"
    assert row["ip"] == "127.0.0.1"
    r = await client.get("/api/v1/audit", params={"limit": 1})
    assert len(await r.json()) == 1


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_log SET outcome = 'x'", "DELETE FROM audit_log"]
)
async def test_audit_rows_cannot_be_changed_or_deleted(app, users, statement):
    db = app[DB]
    await audit.record_now(db, "test.event", object_type="thing", object_id="1")
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="append-only"):
        async with db.write() as uow:
            await uow.session.execute(text(statement))
    async with db.read() as session:
        count = (await session.execute(text("SELECT count(*) FROM audit_log"))).scalar_one()
        outcome = (
            await session.execute(text("SELECT outcome FROM audit_log WHERE action='test.event'"))
        ).scalar_one()
    assert count >= 1 and outcome == "success"


# -- tamper evidence: the HMAC chain -------------------------------------------------------


async def _raw(db, *statements: str) -> None:
    """Statements run as the database owner: what someone with database access could do."""
    async with db.engine.begin() as conn:
        for st in statements:
            await conn.execute(text(st))


def _lift_guard(db) -> list[str]:
    if db.dialect == "postgresql":
        return ["ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"]
    return ["DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete"]


async def _write_rows(db, n: int) -> None:
    # Concurrent writers: the chain must not fork (each locks its head in turn).
    await asyncio.gather(
        *(
            audit.record_now(db, "test.event", object_type="thing", object_id=str(i))
            for i in range(n)
        )
    )


async def _cli_verify(settings) -> tuple[int, str]:
    env = {
        **os.environ,
        "CONSILIUM_DEV": "1",
        "CONSILIUM_DATABASE_URL": settings.database_url,
        "CONSILIUM_SECRET_KEY": settings.secret_key,
        "CONSILIUM_DATA_DIR": str(settings.data_dir),
    }
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "consilium"),
        "audit",
        "verify",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_an_intact_chain_verifies_and_concurrent_writers_do_not_fork_it(app, settings):
    db = app[DB]
    await _write_rows(db, 12)
    verdict = await audit.verify(db)
    assert verdict.intact and verdict.rows >= 12, verdict
    async with db.read() as s:
        seqs = (await s.execute(text("SELECT seq FROM audit_log ORDER BY seq"))).scalars().all()
    assert seqs == list(range(1, len(seqs) + 1))
    code, out = await _cli_verify(settings)
    assert code == 0 and "intact" in out, out


async def test_a_forged_insert_breaks_the_chain_at_that_row(app, settings):
    db = app[DB]
    await _write_rows(db, 3)
    async with db.read() as s:
        head_seq, head_mac = (await s.execute(text("SELECT seq, mac FROM audit_chain"))).one()
    forged = uuid.uuid4()
    await _raw(
        db,
        "INSERT INTO audit_log (id, at, actor_kind, actor_label, action, object_type, object_id,"
        " ip, outcome, details, seq, prev_mac, mac) VALUES "
        f"('{forged.hex if db.dialect == 'sqlite' else forged}', '2026-12-01 10:00:00', 'user',"
        f" 'x', 'auth.login', '', '', '', 'success', '{{}}', {head_seq + 1}, '{head_mac}',"
        f" '{'ab' * 32}')",
    )
    verdict = await audit.verify(db)
    assert not verdict.intact and verdict.first_break is not None
    assert verdict.first_break.seq == head_seq + 1, verdict
    assert "HMAC" in verdict.first_break.reason
    code, out = await _cli_verify(settings)
    assert code == 1 and f"row {head_seq + 1}" in out, out


async def test_a_row_without_a_link_is_named_as_forged(app):
    db = app[DB]
    await _write_rows(db, 2)
    forged = uuid.uuid4()
    await _raw(
        db,
        "INSERT INTO audit_log (id, at, actor_kind, actor_label, action, object_type, object_id,"
        " ip, outcome, details) VALUES "
        f"('{forged.hex if db.dialect == 'sqlite' else forged}', '2026-12-01 10:00:00', 'user',"
        " 'x', 'auth.login', '', '', '', 'success', '{}')",
    )
    verdict = await audit.verify(db)
    assert verdict.first_break is not None and "forged" in verdict.first_break.reason
    assert verdict.first_break.row_id.replace("-", "") == forged.hex


async def test_an_altered_row_breaks_the_chain_at_that_row(app, settings):
    db = app[DB]
    await _write_rows(db, 5)
    await _raw(db, *_lift_guard(db), "UPDATE audit_log SET outcome = 'failure' WHERE seq = 3")
    verdict = await audit.verify(db)
    assert verdict.first_break is not None and verdict.first_break.seq == 3, verdict
    code, out = await _cli_verify(settings)
    assert code == 1 and "row 3" in out, out


async def test_deleted_rows_break_the_chain(app):
    db = app[DB]
    await _write_rows(db, 5)
    await _raw(db, *_lift_guard(db), "DELETE FROM audit_log WHERE seq IN (2, 3)")
    verdict = await audit.verify(db)
    assert verdict.first_break is not None and verdict.first_break.seq == 4, verdict
    assert "2..3 are missing" in verdict.first_break.reason


async def test_a_truncated_log_breaks_the_chain(app, settings):
    db = app[DB]
    await _write_rows(db, 4)
    if db.dialect == "postgresql":
        await _raw(db, "TRUNCATE audit_log")  # as the owner; the application role may not
    else:
        await _raw(db, *_lift_guard(db), "DELETE FROM audit_log")
    verdict = await audit.verify(db)
    assert verdict.first_break is not None and "missing" in verdict.first_break.reason, verdict
    code, out = await _cli_verify(settings)
    assert code == 1 and "missing" in out, out


async def test_dropping_the_last_rows_is_seen_by_the_chain_head(app):
    db = app[DB]
    await _write_rows(db, 4)
    await _raw(db, *_lift_guard(db), "DELETE FROM audit_log WHERE seq = 4")
    verdict = await audit.verify(db)
    assert verdict.first_break is not None and verdict.first_break.seq == 4, verdict


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_the_application_role_cannot_truncate_or_rewrite_the_audit_log(app, settings):
    import asyncpg
    from sqlalchemy.engine import make_url

    from core.cli import db_roles_sql

    db = app[DB]
    await audit.record_now(db, "test.event")
    url = make_url(settings.database_url)
    role = f"consilium_app_{uuid.uuid4().hex[:8]}"
    owner_dsn = settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(owner_dsn)
    try:
        for st in db_roles_sql(role, "app-password", url.username or "postgres", url.database):
            await admin.execute(st)
        app_conn = await asyncpg.connect(
            host=url.host, port=url.port, database=url.database, user=role, password="app-password"
        )
        try:
            # What the application does: read and append (the chain's head included).
            assert await app_conn.fetchval("SELECT count(*) FROM audit_log") >= 1
            await app_conn.execute("UPDATE audit_chain SET seq = seq")
            for attack in (
                "TRUNCATE audit_log",
                "TRUNCATE audit_chain",
                "DELETE FROM audit_log",
                "UPDATE audit_log SET outcome = 'x'",
                "DROP TRIGGER audit_log_append_only ON audit_log",
                "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
                "DELETE FROM audit_chain",
            ):
                with pytest.raises(asyncpg.PostgresError):
                    await app_conn.execute(attack)
        finally:
            await app_conn.close()
        assert await admin.fetchval("SELECT count(*) FROM audit_log") >= 1
    finally:
        await admin.execute(f"DROP OWNED BY {role}")
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()
    assert (await audit.verify(db)).intact


async def test_the_migration_chains_the_rows_written_before_it(tmp_path, backend):
    """Rows of a database older than the chain are chained, in order, when it migrates."""
    from core.db import Database
    from core.events import EventBus
    from core.migrate import upgrade
    from tests.conftest import SECRET
    from tests.support.pg import pg_admin, scratch_name, url_of

    if backend == "sqlite":
        url, name = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}", ""
    else:
        from tests.conftest import PG_URL, need

        need("database", PG_URL)
        name = scratch_name("audit_chain")
        await pg_admin(f'CREATE DATABASE "{name}"')
        url = url_of(name)
    try:
        await asyncio.to_thread(upgrade, url, "d8216aa49dc0")  # core before the chain
        db = Database(url, EventBus())
        try:
            for i, when in enumerate(("2026-11-01 08:00:00", "2026-11-02 09:30:00.123456")):
                rid = uuid.uuid4()
                await _raw(
                    db,
                    "INSERT INTO audit_log (id, at, actor_kind, actor_label, action, object_type,"
                    " object_id, ip, outcome, details) VALUES "
                    f"('{rid.hex if db.dialect == 'sqlite' else rid}', '{when}', 'user', 'a',"
                    f" 'auth.login', 'user', '{i}', '127.0.0.1', 'success', '{{\"n\": {i}}}')",
                )
            audit.configure_chain(SECRET)
            await asyncio.to_thread(upgrade, url)
            await audit.record_now(db, "test.after_migration")
            verdict = await audit.verify(db)
            assert verdict.intact and verdict.rows == 3, verdict
            await _raw(db, *_lift_guard(db), "UPDATE audit_log SET ip = '10.0.0.1' WHERE seq = 1")
            assert (await audit.verify(db)).first_break.seq == 1
        finally:
            await db.close()
    finally:
        if name:
            await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
