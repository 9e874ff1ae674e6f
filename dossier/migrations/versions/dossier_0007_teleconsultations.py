"""dossier: téléconsultations planned on a dossier and their reminders

Revision ID: 7e1c0a2b4d06
Revises: 7e2b9c4d1f06
Create Date: 2026-12-07 19:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = "7e1c0a2b4d06"
down_revision: str | Sequence[str] | None = "7e2b9c4d1f06"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STEP = sa.Enum(
    "planned", "done", "report_signed", "cancelled",
    name="teleconsultationstep", native_enum=False, length=20,
)  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "teleconsultations",
        sa.Column("dossier_id", sa.Uuid(), nullable=False),
        sa.Column("room_id", sa.Uuid(), nullable=False),
        sa.Column("scheduled_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("step", STEP, nullable=False),
        sa.Column("planned_by_id", sa.Uuid(), nullable=True),
        sa.Column("practitioner_ids", sa.JSON(), nullable=False),
        sa.Column("nurse_id", sa.Uuid(), nullable=True),
        sa.Column("guests", sa.JSON(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("done_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancel_reason", sa.String(length=500), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dossier_id"], ["dossiers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["nurse_id"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["planned_by_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_teleconsultations_dossier_id", "teleconsultations", ["dossier_id"])
    op.create_index("ix_teleconsultations_room_id", "teleconsultations", ["room_id"])
    op.create_index("ix_teleconsultations_scheduled_at", "teleconsultations", ["scheduled_at"])
    op.create_index("ix_teleconsultations_step", "teleconsultations", ["step"])
    op.create_table(
        "teleconsultation_reminders",
        sa.Column("teleconsultation_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("due_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["teleconsultation_id"], ["teleconsultations.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("teleconsultation_id", "kind"),
    )
    op.create_index(
        "ix_teleconsultation_reminders_due_at", "teleconsultation_reminders", ["due_at"]
    )


def downgrade() -> None:
    op.drop_table("teleconsultation_reminders")
    op.drop_table("teleconsultations")
