"""deadlines: when the service ends a running task (work_items) or a job (jobs) by its
maxWallClockTime

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("work_items") as batch:
        batch.add_column(
            sa.Column("deadline", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
        )
    op.create_index("ix_work_items_deadline", "work_items", ["deadline"], unique=False)
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("deadline", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
        )
    op.create_index("ix_jobs_deadline", "jobs", ["deadline"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_jobs_deadline", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("deadline")
    op.drop_index("ix_work_items_deadline", table_name="work_items")
    with op.batch_alter_table("work_items") as batch:
        batch.drop_column("deadline")
