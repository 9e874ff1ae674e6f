"""Migrations: an empty database upgrades on SQLite and PostgreSQL, the result matches the
models of every package exactly (no drift), and SQLite downgrades back to empty."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from core.migrate import alembic_config, metadata, upgrade
from tests.support.pg import scratch_database


def _diff(url: str) -> tuple[list, set[str]]:
    async def run() -> tuple[list, set[str]]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:

                def compare(sync_conn):
                    ctx = MigrationContext.configure(
                        sync_conn, opts={"compare_type": True, "target_metadata": metadata()}
                    )
                    return compare_metadata(ctx, metadata()), set(
                        inspect(sync_conn).get_table_names()
                    )

                return await conn.run_sync(compare)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _assert_no_drift(url: str) -> None:
    upgrade(url)
    diff, tables = _diff(url)
    assert diff == [], f"models and migrations differ: {diff}"
    assert {t.name for t in metadata().sorted_tables} <= tables


def test_sqlite_migrates_from_empty_without_drift(tmp_path: Path):
    _assert_no_drift(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")


def test_postgresql_migrates_from_empty_without_drift():
    with scratch_database("m") as url:
        _assert_no_drift(url)


def test_sqlite_downgrades_to_empty_and_upgrades_again(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'down.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    _, tables = _diff(url)
    assert tables <= {"alembic_version"}
    _assert_no_drift(url)


@pytest.mark.parametrize("package", ["core"])
def test_every_package_branch_has_a_head(package):
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite://"))
    labels = {label for rev in script.walk_revisions() for label in (rev.branch_labels or ())}
    assert package in labels
