"""occurrences: planned runs of scheduled jobs, claimed through leases on their rows;
history.expected_time

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 19:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "occurrences",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_pk", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.String(length=128), nullable=False),
        sa.Column("job_key", sa.String(length=128), nullable=False),
        sa.Column("occurrence_id", sa.String(length=32), nullable=False),
        sa.Column("expected_time", sa.BigInteger(), nullable=False),
        sa.Column("due_time", sa.BigInteger(), nullable=False),
        sa.Column("phase", sa.String(length=8), nullable=False),
        sa.Column("retry_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("done", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "lease_owner", sa.String(length=64), server_default=sa.text("''"), nullable=False
        ),
        sa.Column(
            "lease_expire_time", sa.BigInteger(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("lease_attempt", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(["job_pk"], ["jobs.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("pk"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_occurrences_job_time", "occurrences", ["job_pk", "expected_time"], unique=True
    )
    op.create_index("ix_occurrences_due", "occurrences", ["done", "due_time"], unique=False)
    op.add_column("history", sa.Column("expected_time", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("history", "expected_time")
    op.drop_index("ix_occurrences_due", table_name="occurrences")
    op.drop_index("ix_occurrences_job_time", table_name="occurrences")
    op.drop_table("occurrences")
