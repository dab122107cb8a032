"""work_items: work leased by workers (WorkerService); tasks' exit code and retry count

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 20:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("exit_code", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("retry_count", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
    op.create_table(
        "work_items",
        sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("work_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("job_pk", sa.Integer(), nullable=False),
        sa.Column("task_pk", sa.Integer(), nullable=True),
        sa.Column("attempt", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "lease_token", sa.String(length=64), server_default=sa.text("''"), nullable=False
        ),
        sa.Column(
            "lease_owner", sa.String(length=64), server_default=sa.text("''"), nullable=False
        ),
        sa.Column(
            "lease_expire_time", sa.BigInteger(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("lease_duration", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("progress", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["job_pk"], ["jobs.pk"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["task_pk"], ["tasks.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("pk"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_work_items_work_id", "work_items", ["work_id"], unique=True)
    op.create_index("ix_work_items_kind", "work_items", ["kind", "pk"], unique=False)
    op.create_index("ix_work_items_task", "work_items", ["task_pk"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_work_items_task", table_name="work_items")
    op.drop_index("ix_work_items_kind", table_name="work_items")
    op.drop_index("ix_work_items_work_id", table_name="work_items")
    op.drop_table("work_items")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("retry_count")
        batch.drop_column("exit_code")
