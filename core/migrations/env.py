"""Alembic environment: async engines (aiosqlite, asyncpg), batch mode for SQLite."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from core.migrate import metadata

config = context.config
target_metadata = metadata()


# ``consilium db-revision PACKAGE`` sets this so a package's revision holds only its tables.
_only_package = config.attributes.get("package")


def _owner(table_name: str) -> str:
    from core.db import Base

    for mapper in Base.registry.mappers:
        if (
            mapper.local_table is not None
            and getattr(mapper.local_table, "name", None) == table_name
        ):
            return mapper.class_.__module__.split(".")[0]
    return "core"


def _include(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    if _only_package is None or type_ != "table" or name is None:
        return True
    return _owner(name) == _only_package


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
