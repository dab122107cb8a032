"""collection owners; request ids scoped to (principal, method, resource) with a fingerprint

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 16:00:00.000000

Stored replies are kept for the idempotency window only (a day by default): the table is
recreated with its new key, and requests replayed across this upgrade run again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("owner", sa.Text(), nullable=False, server_default=sa.text("''"))
        )
    op.drop_index("ix_replies_time", table_name="replies")
    op.drop_table("replies")
    op.create_table(
        "replies",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "request_id"),
    )
    op.create_index("ix_replies_time", "replies", ["create_time"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_replies_time", table_name="replies")
    op.drop_table("replies")
    op.create_table(
        "replies",
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("method", "request_id"),
    )
    op.create_index("ix_replies_time", "replies", ["create_time"], unique=False)
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.drop_column("owner")
