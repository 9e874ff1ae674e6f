"""core: audit rows chained by HMAC (seq, prev_mac, mac) and the chain head (audit_chain)

Existing rows are chained in the order they were written (time, then id), with the key
derived from the server secret of the command that migrates (``consilium migrate``).

Revision ID: 5c0a7d1e9b31
Revises: d8216aa49dc0
Create Date: 2026-12-07 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c0a7d1e9b31"
down_revision: str | Sequence[str] | None = "d8216aa49dc0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy on SQLite): the append-only triggers stay in place.
    op.add_column("audit_log", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.add_column(
        "audit_log", sa.Column("prev_mac", sa.String(length=64), nullable=False, server_default="")
    )
    op.add_column(
        "audit_log", sa.Column("mac", sa.String(length=64), nullable=False, server_default="")
    )
    op.create_index("ix_audit_log_seq", "audit_log", ["seq"], unique=True)
    op.create_table(
        "audit_chain",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_audit_chain")),
    )
    _backfill()
    _head_not_deletable()


def _backfill() -> None:
    from core.audit import CHAIN, GENESIS, row_mac
    from core.db import UTCDateTime

    conn = op.get_bind()
    pg = conn.dialect.name == "postgresql"
    log = sa.table(
        "audit_log",
        sa.column("id", sa.Uuid()),
        sa.column("at", UTCDateTime()),
        sa.column("actor_id", sa.Uuid()),
        sa.column("actor_kind", sa.String()),
        sa.column("actor_label", sa.String()),
        sa.column("action", sa.String()),
        sa.column("object_type", sa.String()),
        sa.column("object_id", sa.String()),
        sa.column("ip", sa.String()),
        sa.column("outcome", sa.String()),
        sa.column("details", sa.JSON()),
        sa.column("seq", sa.BigInteger()),
        sa.column("prev_mac", sa.String()),
        sa.column("mac", sa.String()),
    )
    rows = conn.execute(sa.select(log).order_by(log.c.at, log.c.id)).all()
    seq, prev = 0, GENESIS
    if rows:
        # The one sanctioned rewrite of existing rows: lift the append-only guard meanwhile.
        if pg:
            op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        else:
            op.execute("DROP TRIGGER audit_log_no_update")
        for r in rows:
            seq += 1
            mac = row_mac(r, seq, prev)
            conn.execute(
                log.update().where(log.c.id == r.id).values(seq=seq, prev_mac=prev, mac=mac)
            )
            prev = mac
        if pg:
            op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
        else:
            op.execute(
                "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            )
    conn.execute(
        sa.text("INSERT INTO audit_chain (name, seq, mac) VALUES (:n, :s, :m)"),
        {"n": CHAIN, "s": seq, "m": prev},
    )


def _head_not_deletable() -> None:
    """The chain head is updated by every writer, but never deleted."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_chain_keep() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'audit_chain rows are never deleted'; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER audit_chain_keep BEFORE DELETE ON audit_chain "
            "FOR EACH ROW EXECUTE FUNCTION audit_chain_keep()"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_chain_keep BEFORE DELETE ON audit_chain "
            "BEGIN SELECT RAISE(ABORT, 'audit_chain rows are never deleted'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_chain_keep ON audit_chain")
        op.execute("DROP FUNCTION IF EXISTS audit_chain_keep()")
    op.drop_table("audit_chain")
    op.drop_index("ix_audit_log_seq", table_name="audit_log")
    with op.batch_alter_table("audit_log") as batch_op:
        batch_op.drop_column("mac")
        batch_op.drop_column("prev_mac")
        batch_op.drop_column("seq")
    if op.get_bind().dialect.name == "sqlite":  # the batch copy dropped the table's triggers
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER IF NOT EXISTS audit_log_no_{verb.lower()} BEFORE {verb} "
                "ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            )
