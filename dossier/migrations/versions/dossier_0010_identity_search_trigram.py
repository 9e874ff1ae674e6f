"""dossier: identity search filters in the database (pg_trgm GIN index on search_text)

Revision ID: 7a41c2e9d0b3
Revises: 8e1a6c2f4d70
Create Date: 2026-12-07 19:40:00

On PostgreSQL the ``pg_trgm`` extension and a GIN trigram index on ``patients.search_text``
(the accent- and case-free names the write path keeps) let the search pick its candidates
in the database. Creating the extension needs a superuser, or the database owner with
``pg_trgm`` trusted (PostgreSQL 13+: it is); without that right, an administrator runs
``CREATE EXTENSION pg_trgm`` once in the database before ``consilium migrate``.

On SQLite the same index is a plain one (SQLite has no trigram index; the search's prefilter
there is a scan of ``search_text`` without loading the rows into Python).

Identities whose ``search_text`` is empty (none should be: every write path fills it) get
it computed here.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7a41c2e9d0b3"
down_revision: str | Sequence[str] | None = "8e1a6c2f4d70"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_patients_search_text_trgm"


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    # Backfill before indexing: fold the names the way dossier.identity.patients does.
    from dossier.identity.patients import fold_for_matching

    patients = sa.table(
        "patients",
        sa.column("id", sa.Uuid()),
        sa.column("birth_name", sa.String()),
        sa.column("used_name", sa.String()),
        sa.column("first_name", sa.String()),
        sa.column("first_names", sa.String()),
        sa.column("used_first_name", sa.String()),
        sa.column("search_text", sa.String()),
    )
    empty = conn.execute(
        sa.select(
            patients.c.id,
            patients.c.birth_name,
            patients.c.used_name,
            patients.c.first_name,
            patients.c.first_names,
            patients.c.used_first_name,
        ).where(patients.c.search_text == "")
    ).all()
    for row in empty:
        names = [row.birth_name, row.used_name, row.first_name, row.first_names]
        names.append(row.used_first_name)
        folded = fold_for_matching(" ".join(n or "" for n in names))
        conn.execute(
            patients.update()
            .where(patients.c.id == row.id)
            .values(search_text=" ".join(dict.fromkeys(folded.split())))
        )
    if conn.dialect.name == "postgresql":
        op.create_index(
            INDEX,
            "patients",
            ["search_text"],
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        )
    else:
        op.create_index(INDEX, "patients", ["search_text"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="patients")
    # The extension stays: other objects of the database may use it.
