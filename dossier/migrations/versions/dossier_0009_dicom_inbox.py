"""dossier: the reconciliation list of DICOM exams that matched no dossier

Revision ID: 8e1a6c2f4d70
Revises: 008e29b15bc9
Create Date: 2026-12-07 19:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = "8e1a6c2f4d70"
down_revision: str | Sequence[str] | None = "008e29b15bc9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dicom_inbox_studies",
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("folder", sa.String(length=100), nullable=False),
        sa.Column("patient_name", sa.String(length=200), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("patient_birth_date", sa.String(length=10), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("study_date", sa.String(length=10), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("received_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("dossier_id", sa.Uuid(), nullable=True),
        sa.Column("resolved_by_id", sa.Uuid(), nullable=True),
        sa.Column("resolved_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("comment", sa.String(length=500), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dicom_inbox_studies")),
    )
    op.create_index(op.f("ix_dicom_inbox_studies_study_uid"), "dicom_inbox_studies", ["study_uid"])
    op.create_index(op.f("ix_dicom_inbox_studies_status"), "dicom_inbox_studies", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_dicom_inbox_studies_status"), table_name="dicom_inbox_studies")
    op.drop_index(op.f("ix_dicom_inbox_studies_study_uid"), table_name="dicom_inbox_studies")
    op.drop_table("dicom_inbox_studies")
