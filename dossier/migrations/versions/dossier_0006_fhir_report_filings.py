"""dossier: report filings, the outbox of signed reports pushed to the establishment's FHIR
endpoint (issue 13, report filed back into the DPI)

Revision ID: 7e2b9c4d1f06
Revises: 5d3c1f0a9b21
Create Date: 2026-12-07 19:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = "7e2b9c4d1f06"
down_revision: str | Sequence[str] | None = "5d3c1f0a9b21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "report_filings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("dossier_id", sa.Uuid(), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("target", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=False),
        sa.Column("filed_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("remote_id", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["dossier_id"],
            ["dossiers.id"],
            name=op.f("fk_report_filings_dossier_id_dossiers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_report_filings_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_filings")),
        sa.UniqueConstraint("document_id", name=op.f("uq_report_filings_document_id")),
    )
    op.create_index(op.f("ix_report_filings_dossier_id"), "report_filings", ["dossier_id"])
    op.create_index(op.f("ix_report_filings_status"), "report_filings", ["status"])
    op.create_index(
        op.f("ix_report_filings_next_attempt_at"), "report_filings", ["next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_table("report_filings")
