"""dialect state: logon sessions (by token digest), their tasks, request outcomes

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "logon_sessions",
        sa.Column("dialect", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.Text(), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("idle_us", sa.BigInteger(), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.Column("seen_time", sa.BigInteger(), nullable=False),
        sa.Column("expire_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("dialect", "session_id"),
    )
    op.create_index("ix_logon_sessions_expiry", "logon_sessions", ["expire_time"], unique=False)
    op.create_table(
        "session_tasks",
        sa.Column("number", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dialect", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("operation_name", sa.Text(), nullable=False),
        sa.Column("finished", sa.Boolean(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dialect", "session_id"],
            ["logon_sessions.dialect", "logon_sessions.session_id"],
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("number"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_session_tasks_session",
        "session_tasks",
        ["dialect", "session_id", "number"],
        unique=False,
    )
    op.create_table(
        "request_outcomes",
        sa.Column("dialect", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=512), nullable=False),
        sa.Column("request_id", sa.String(length=512), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.Text(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("dialect", "scope", "request_id"),
    )
    op.create_index("ix_request_outcomes_time", "request_outcomes", ["create_time"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_request_outcomes_time", table_name="request_outcomes")
    op.drop_table("request_outcomes")
    op.drop_index("ix_session_tasks_session", table_name="session_tasks")
    op.drop_table("session_tasks")
    op.drop_index("ix_logon_sessions_expiry", table_name="logon_sessions")
    op.drop_table("logon_sessions")
