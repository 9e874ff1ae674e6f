"""dossier: RCP (e-Staff) meetings, their agenda and « fiches RCP »

Revision ID: 5c8e1f2a7b31
Revises: 5c2e8f1a9b47
Create Date: 2026-12-07 22:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db

revision: str = "5c8e1f2a7b31"
down_revision: str | Sequence[str] | None = "5c2e8f1a9b47"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS = sa.Enum("planned", "cancelled", name="rcpstatus", native_enum=False, length=20)
ITEM_STATUS = sa.Enum("pending", "signed", name="rcpitemstatus", native_enum=False, length=20)


def upgrade() -> None:
    op.create_table(
        "rcp_meetings",
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("scheduled_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("planned_by_id", sa.Uuid(), nullable=True),
        sa.Column("room_id", sa.Uuid(), nullable=False),
        sa.Column("invitee_ids", sa.JSON(), nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("current_item_id", sa.Uuid(), nullable=True),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("cancelled_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancel_reason", sa.String(length=500), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["users.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["planned_by_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rcp_meetings_room_id", "rcp_meetings", ["room_id"], unique=True)
    op.create_index("ix_rcp_meetings_scheduled_at", "rcp_meetings", ["scheduled_at"])
    op.create_table(
        "rcp_items",
        sa.Column("meeting_id", sa.Uuid(), nullable=False),
        sa.Column("dossier_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("proposal", sa.Text(), nullable=False),
        sa.Column("present", sa.JSON(), nullable=False),
        sa.Column("status", ITEM_STATUS, nullable=False),
        sa.Column("signed_at", core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("signed_by_id", sa.Uuid(), nullable=True),
        sa.Column("document_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["meeting_id"], ["rcp_meetings.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["dossier_id"], ["dossiers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["signed_by_id"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("meeting_id", "dossier_id"),
    )
    op.create_index("ix_rcp_items_meeting_id", "rcp_items", ["meeting_id"])
    op.create_index("ix_rcp_items_dossier_id", "rcp_items", ["dossier_id"])


def downgrade() -> None:
    op.drop_table("rcp_items")
    op.drop_table("rcp_meetings")
