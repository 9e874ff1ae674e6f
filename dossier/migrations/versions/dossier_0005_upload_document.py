"""dossier: a resumable upload completed by a tus client remembers its document

Revision ID: 5d3c1f0a9b21
Revises: df7b9f387481
Create Date: 2026-12-07 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5d3c1f0a9b21"
down_revision: str | Sequence[str] | None = "df7b9f387481"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # No foreign key: the row only answers a client that lost the last answer (24 h at most);
    # a document removed meanwhile is simply not found.
    op.add_column("document_uploads", sa.Column("document_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("document_uploads") as batch:
        batch.drop_column("document_id")
