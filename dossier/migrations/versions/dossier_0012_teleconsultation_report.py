"""dossier: the consultation report of a téléconsultation (issue 16 item 4)

Revision ID: 5c2e8f1a9b47
Revises: 3b7d2e9a5c10
Create Date: 2026-12-07 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = "5c2e8f1a9b47"
down_revision: str | Sequence[str] | None = "3b7d2e9a5c10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("teleconsultations") as b:
        b.add_column(sa.Column("report", sa.JSON(), nullable=True))
        b.add_column(sa.Column("report_document_id", sa.Uuid(), nullable=True))
        b.add_column(sa.Column("report_signed_by_id", sa.Uuid(), nullable=True))
        b.add_column(
            sa.Column("report_signed_at", core.db.UTCDateTime(timezone=True), nullable=True)
        )
        b.add_column(sa.Column("report_sent", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("teleconsultations") as b:
        for c in (
            "report_sent",
            "report_signed_at",
            "report_signed_by_id",
            "report_document_id",
            "report",
        ):
            b.drop_column(c)
