"""Dossier numbers: what people say on the phone and type, ``TE-2026-000123``.

``TE`` (téléexpertise), the year the dossier was created (Europe/Paris), and a sequence
that starts again at 1 each year. Numbers are unique per installation (unique index on
``dossiers.number``).

Allocation is one statement, in the transaction that creates the dossier::

    INSERT INTO dossier_number_counters (year, last) VALUES (:year, 1)
    ON CONFLICT (year) DO UPDATE SET last = dossier_number_counters.last + 1
    RETURNING last

On PostgreSQL the upsert locks the year's counter row until the creating transaction ends,
so two concurrent creations get two numbers one after the other; two first creations of a
year race on the primary key and ON CONFLICT turns the loser into the update. On SQLite the
statement is a write, so it runs under the database's single writer lock. No ``max() + 1``:
nothing is read then written. A creation that rolls back rolls its increment back too.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import Integer
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, utcnow
from core.paris_time import PARIS

PREFIX = "TE"
WIDTH = 6
# What people type: any case, spaces, dashes, dots or nothing between the three parts,
# leading zeros of the sequence optional.
_SEP = r"[\s\-./_]*"
_TYPED = re.compile(rf"^{PREFIX}{_SEP}(\d{{4}}){_SEP}(\d{{1,9}})$")


class DossierNumberCounter(Base):
    """The last dossier number given in a year (one row per year)."""

    __tablename__ = "dossier_number_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer, default=0)


def format_number(year: int, seq: int) -> str:
    return f"{PREFIX}-{year}-{seq:0{WIDTH}d}"


def year_of(at: datetime) -> int:
    """The year of creation as people in France see it (1 January 00:30 in Paris is the new
    year even though UTC still says 31 December)."""
    return at.astimezone(PARIS).year


def normalize(typed: str) -> str | None:
    """``" te 2026-123 "`` → ``"TE-2026-000123"``; None when it cannot be a dossier number."""
    m = _TYPED.match((typed or "").strip().upper())
    if m is None:
        return None
    seq = int(m.group(2))
    if seq == 0:
        return None
    return format_number(int(m.group(1)), seq)


def _upsert(dialect: str, year: int) -> Any:
    C = DossierNumberCounter
    ins: Any = (postgresql if dialect == "postgresql" else sqlite).insert(C)
    stmt = ins.values(year=year, last=1)
    stmt = stmt.on_conflict_do_update(index_elements=[C.year], set_={"last": C.last + 1})
    return stmt.returning(C.last)


async def allocate(session: AsyncSession, at: datetime) -> str:
    """The next number of ``at``'s year, counted in the caller's transaction."""
    bind = session.get_bind()
    year = year_of(at)
    seq: int = (await session.execute(_upsert(bind.dialect.name, year))).scalar_one()
    return format_number(year, int(seq))


def column_default(context: Any) -> str:
    """``Dossier.number``'s default for rows inserted without one (the creation write path
    allocates explicitly; this keeps any other insert, a test's or a script's, numbered by
    the same counter, in the same transaction)."""
    params = context.get_current_parameters()
    at = params.get("created_at") or utcnow()
    year = year_of(at)
    conn = context.connection
    seq = conn.execute(_upsert(conn.dialect.name, year)).scalar_one()
    return format_number(year, int(seq))
