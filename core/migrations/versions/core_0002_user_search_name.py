"""core: users.search_name for the colleague directory (accent- and case-insensitive)

Revision ID: d8216aa49dc0
Revises: a18be7623cf1
Create Date: 2026-11-22 20:55:37.971847
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d8216aa49dc0"
down_revision: str | Sequence[str] | None = "a18be7623cf1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("search_name", sa.String(length=201), nullable=False, server_default="")
        )
        batch_op.create_index(batch_op.f("ix_users_search_name"), ["search_name"], unique=False)
    # Existing accounts: fold their names the way core.accounts does.
    from core.accounts import search_name_of

    conn = op.get_bind()
    users = sa.table(
        "users",
        sa.column("id", sa.Uuid()),
        sa.column("first_name", sa.String()),
        sa.column("last_name", sa.String()),
        sa.column("search_name", sa.String()),
    )
    for row in conn.execute(sa.select(users.c.id, users.c.first_name, users.c.last_name)).all():
        conn.execute(
            users.update()
            .where(users.c.id == row.id)
            .values(search_name=search_name_of(row.first_name, row.last_name))
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_search_name"))
        batch_op.drop_column("search_name")
