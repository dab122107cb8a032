"""leases: background work claimed by one replica at a time (owner, expiry, attempt)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 14:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False, server_default=sa.text("''")),
        sa.Column("expire_time", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("attempt", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index("ix_leases_expiry", "leases", ["expire_time"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_leases_expiry", table_name="leases")
    op.drop_table("leases")
