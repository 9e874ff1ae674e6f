"""Alembic migrations, one branch per package (``core``, ``rooms``, ``chat``, ``rtc``,
``dossier``, ``ops``), so that each package owns its tables' history. ``consilium migrate`` upgrades
every branch to its head; the same scripts run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData

# Packages that own tables, in dependency order (names only: core imports none of them).
MODEL_PACKAGES = ("core", "rooms", "chat", "rtc", "dossier", "ops")
CORE_MODELS = ("core.accounts", "core.sessions", "core.audit", "core.notify")


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def version_locations() -> list[str]:
    locs = []
    for name in MODEL_PACKAGES:
        d = _package_dir(name)
        if d is not None and (d / "migrations" / "versions").is_dir():
            locs.append(str(d / "migrations" / "versions"))
    return locs


def metadata() -> MetaData:
    """The metadata of every table of every package (imports their ``models`` modules)."""
    for mod in CORE_MODELS:
        importlib.import_module(mod)
    for name in MODEL_PACKAGES[1:]:
        if importlib.util.find_spec(f"{name}.models") is not None:
            importlib.import_module(f"{name}.models")
    from core.db import Base

    return Base.metadata


def alembic_config(database_url: str) -> Config:
    here = Path(__file__).parent
    cfg = Config()
    cfg.set_main_option("script_location", str(here / "migrations"))
    cfg.set_main_option("version_locations", " ".join(version_locations()))
    cfg.set_main_option("path_separator", "space")
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, target: str = "heads") -> None:
    """Bring the database to the newest schema (blocking; run it outside the event loop)."""
    if database_url.startswith("sqlite"):
        path = database_url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), target)


async def upgrade_async(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url)
