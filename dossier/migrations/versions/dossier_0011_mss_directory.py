"""dossier: the MSSanté directory (import of the Annuaire Santé's extract)

Revision ID: 3b7d2e9a5c10
Revises: 7a41c2e9d0b3
Create Date: 2026-12-07 20:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = "3b7d2e9a5c10"
down_revision: str | Sequence[str] | None = "7a41c2e9d0b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mss_directory",
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("box_type", sa.String(length=8), nullable=False),
        sa.Column("rpps", sa.String(length=11), nullable=False),
        sa.Column("national_id", sa.String(length=20), nullable=False),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("profession", sa.String(length=100), nullable=False),
        sa.Column("specialty", sa.String(length=150), nullable=False),
        sa.Column("organization", sa.String(length=200), nullable=False),
        sa.Column("commune", sa.String(length=100), nullable=False),
        sa.Column("postcode", sa.String(length=10), nullable=False),
        sa.Column("name_folded", sa.String(length=210), nullable=False),
        sa.Column("specialty_folded", sa.String(length=260), nullable=False),
        sa.Column("commune_folded", sa.String(length=100), nullable=False),
        sa.Column("search_folded", sa.String(length=800), nullable=False),
        sa.Column("import_id", sa.Uuid(), nullable=False),
        sa.Column("imported_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mss_directory")),
        sa.UniqueConstraint("address", name=op.f("uq_mss_directory_address")),
    )
    op.create_index(op.f("ix_mss_directory_rpps"), "mss_directory", ["rpps"])
    op.create_index(op.f("ix_mss_directory_import_id"), "mss_directory", ["import_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_mss_directory_import_id"), table_name="mss_directory")
    op.drop_index(op.f("ix_mss_directory_rpps"), table_name="mss_directory")
    op.drop_table("mss_directory")
