"""Scratch PostgreSQL databases for the tests that need a whole database of their own
(migrations from empty, several server processes)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from tests.conftest import PG_URL, need


async def pg_admin(sql: str) -> None:
    """Run one statement on the test server's admin database (CREATE/DROP DATABASE)."""
    import asyncpg

    conn = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def scratch_name(label: str) -> str:
    return f"consilium_{label}_{uuid.uuid4().hex[:10]}"


def url_of(name: str) -> str:
    return f"{PG_URL.rpartition('/')[0]}/{name}"


@contextmanager
def scratch_database(label: str) -> Iterator[str]:
    """A new empty database for a synchronous test; its URL; dropped afterwards."""
    need("database", PG_URL)
    name = scratch_name(label)
    asyncio.run(pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield url_of(name)
    finally:
        asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
