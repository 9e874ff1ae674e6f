"""ops: single-use tokens (launch from the hospital record) recorded once

Revision ID: 3f1e6a2b8c40
Revises: a5ab7b184c24
Create Date: 2026-12-07 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = "3f1e6a2b8c40"
down_revision: str | Sequence[str] | None = "a5ab7b184c24"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ops_used_tokens",
        sa.Column("token_id", sa.String(length=32), nullable=False),
        sa.Column("used_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_id", name=op.f("pk_ops_used_tokens")),
    )
    op.create_index(
        op.f("ix_ops_used_tokens_expires_at"), "ops_used_tokens", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_ops_used_tokens_expires_at"), table_name="ops_used_tokens")
    op.drop_table("ops_used_tokens")
