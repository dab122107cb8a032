"""Tables (SQLAlchemy Core). Times are integer microseconds since the epoch (UTC)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

metadata = MetaData()


class DbNow(FunctionElement[int]):
    """The database server's clock in µs since the epoch: leases are timed on the one
    clock every replica shares, not on each process's own."""

    type = BigInteger()
    inherit_cache = True


@compiles(DbNow)
def _db_now_sqlite(element: DbNow, compiler: Any, **kw: Any) -> str:
    return "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)"


@compiles(DbNow, "postgresql")
def _db_now_postgresql(element: DbNow, compiler: Any, **kw: Any) -> str:
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)"


collections = Table(
    "collections",
    metadata,
    Column("collection_id", String(128), primary_key=True),
    Column("uid", String(32), nullable=False),
    Column("profile", String(16), nullable=False),
    Column("display_name", Text, nullable=False, default=""),
    Column("plan", String(64), nullable=False, default=""),
    Column("quota", JSON, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("create_time", BigInteger, nullable=False),
    Column("update_time", BigInteger, nullable=False),
    Column("etag", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    # the principal that created it ("" when created anonymously)
    Column("owner", Text, nullable=False, server_default=text("''")),
)

jobs = Table(
    "jobs",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column(
        "collection_id",
        String(128),
        ForeignKey("collections.collection_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("job_key", String(128), nullable=False),
    Column("job_id", String(128), nullable=False),
    Column("uid", String(32), nullable=False),
    Column("profile", String(16), nullable=False),
    Column("display_name", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("previous_state", String(16)),
    Column("state_time", BigInteger, nullable=False),
    Column("previous_state_time", BigInteger),
    Column("create_time", BigInteger, nullable=False),
    Column("update_time", BigInteger, nullable=False),
    Column("delete_time", BigInteger),
    Column("etag", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("spec", JSON, nullable=False),
    Column("status", JSON, nullable=False),
    Column("job_type", String(32)),
    Column("delete_operation", String(64)),
    Column("force_delete", Boolean, nullable=False, default=False),
    # when the service ends the job by its profile's time limit (µs; 0: none)
    Column("deadline", BigInteger, nullable=False, server_default=text("0")),
    Index("ix_jobs_key", "collection_id", "job_key", unique=True),
    Index("ix_jobs_state", "collection_id", "state", "job_key"),
    Index("ix_jobs_create", "collection_id", "create_time", "job_key"),
    Index("ix_jobs_update", "collection_id", "update_time", "job_key"),
    Index("ix_jobs_delete_op", "delete_operation"),
    Index("ix_jobs_deadline", "deadline"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("job_pk", Integer, ForeignKey("jobs.pk", ondelete="CASCADE"), nullable=False),
    Column("task_id", String(128), nullable=False),
    Column("uid", String(32), nullable=False),
    Column("display_name", Text, nullable=False),
    Column("command_line", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("result", String(16)),
    Column("create_time", BigInteger, nullable=False),
    Column("update_time", BigInteger, nullable=False),
    Column("state_time", BigInteger, nullable=False),
    Column("etag", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("properties", JSON, nullable=False, server_default=text("'{}'")),
    # the last attempt's exit code (a worker's CompleteWork) and the attempts that failed
    # and were retried
    Column("exit_code", Integer),
    Column("retry_count", Integer, nullable=False, server_default=text("0")),
    Index("ix_tasks_key", "job_pk", "task_id", unique=True),
    Index("ix_tasks_state", "job_pk", "state"),
)

history = Table(
    "history",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("job_pk", Integer, ForeignKey("jobs.pk", ondelete="CASCADE"), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("start_time", BigInteger),
    Column("end_time", BigInteger),
    Column("state", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("retry_count", Integer, nullable=False),
    Column("repeat_count", Integer, nullable=False),
    Column("action_name", Text, nullable=False),
    # the occurrence's expected start (runs of scheduled jobs), µs
    Column("expected_time", BigInteger),
    Index("ix_history_job", "job_pk", "pk"),
)

operations = Table(
    "operations",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("verb", String(32), nullable=False),
    Column("target", Text, nullable=False),
    Column("collection_id", String(128), nullable=False),
    Column("done", Boolean, nullable=False),
    Column("cancellable", Boolean, nullable=False),
    Column("create_time", BigInteger, nullable=False),
    Column("end_time", BigInteger),
    Column("purged_count", Integer, nullable=False),
    Column("total_count", Integer, nullable=False),
    Column("error", JSON),
    Column("result_kind", String(16), nullable=False),
    Index("ix_operations_pending", "done", "name"),
)

replies = Table(
    "replies",
    metadata,
    # principal, method and resource of the request (a request id is theirs alone)
    Column("scope", Text, primary_key=True),
    Column("request_id", String(128), primary_key=True),
    # digest of the request without its request id
    Column("fingerprint", String(64), nullable=False),
    Column("reply", Text, nullable=False),
    Column("create_time", BigInteger, nullable=False),
    Index("ix_replies_time", "create_time"),
)

leases = Table(
    "leases",
    metadata,
    # a unit of background work, e.g. "reap:<operation name>"
    Column("name", String(128), primary_key=True),
    # the replica holding it ("" when free) and until when (the database's clock, µs)
    Column("owner", String(64), nullable=False, server_default=text("''")),
    Column("expire_time", BigInteger, nullable=False, server_default=text("0")),
    # bumped on every claim: a completion names the attempt it belongs to (fencing)
    Column("attempt", Integer, nullable=False, server_default=text("0")),
    Index("ix_leases_expiry", "expire_time"),
)

logon_sessions = Table(
    "logon_sessions",
    metadata,
    # the dialect (e.g. "veeam") and the SHA-256 digest (hex) of the token, never the token
    Column("dialect", String(32), primary_key=True),
    Column("session_id", String(64), primary_key=True),
    Column("user_name", Text, nullable=False),
    Column("roles", JSON, nullable=False),
    Column("idle_us", BigInteger, nullable=False),
    Column("create_time", BigInteger, nullable=False),
    # when the expiry was last moved, and the expiry (seen_time + idle_us)
    Column("seen_time", BigInteger, nullable=False),
    Column("expire_time", BigInteger, nullable=False),
    Index("ix_logon_sessions_expiry", "expire_time"),
)

session_tasks = Table(
    "session_tasks",
    metadata,
    # task-<number>: numbered by the database (never reused), safe across servers
    Column("number", Integer, primary_key=True, autoincrement=True),
    Column("dialect", String(32), nullable=False),
    Column("session_id", String(64), nullable=False),
    Column("operation", String(64), nullable=False),
    Column("operation_name", Text, nullable=False),
    Column("finished", Boolean, nullable=False),
    Column("success", Boolean, nullable=False),
    Column("message", Text, nullable=False),
    Column("create_time", BigInteger, nullable=False),
    ForeignKeyConstraint(
        ["dialect", "session_id"],
        ["logon_sessions.dialect", "logon_sessions.session_id"],
        ondelete="CASCADE",
    ),
    Index("ix_session_tasks_session", "dialect", "session_id", "number"),
    sqlite_autoincrement=True,
)

request_outcomes = Table(
    "request_outcomes",
    metadata,
    # the dialect, whose requests it was (an Azure subscription) and the request id
    Column("dialect", String(32), primary_key=True),
    Column("scope", String(512), primary_key=True),
    Column("request_id", String(512), primary_key=True),
    Column("http_status", Integer, nullable=False),
    Column("error_code", Text, nullable=False),
    Column("error_message", Text, nullable=False),
    Column("create_time", BigInteger, nullable=False),
    Index("ix_request_outcomes_time", "create_time"),
)

occurrences = Table(
    "occurrences",
    metadata,
    # one planned run of a scheduled job: (job, expected time) is unique, so two replicas
    # planning the same occurrence make one row
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("job_pk", Integer, ForeignKey("jobs.pk", ondelete="CASCADE"), nullable=False),
    Column("collection_id", String(128), nullable=False),
    Column("job_key", String(128), nullable=False),
    # the id targets see (x-ms-client-request-id) to de-duplicate at-least-once attempts
    Column("occurrence_id", String(32), nullable=False),
    Column("expected_time", BigInteger, nullable=False),
    # when its next attempt is due (the expected time, then each retry's); µs
    Column("due_time", BigInteger, nullable=False),
    # MAIN or ERROR (the error action, once the main action's retries are spent)
    Column("phase", String(8), nullable=False),
    # attempts made in this phase so far (the history's RetryCount)
    Column("retry_count", Integer, nullable=False, server_default=text("0")),
    Column("done", Boolean, nullable=False, server_default=text("false")),
    # the replica running an attempt, until when (the database's clock, µs), and the
    # attempt's number: a completion names it (fencing)
    Column("lease_owner", String(64), nullable=False, server_default=text("''")),
    Column("lease_expire_time", BigInteger, nullable=False, server_default=text("0")),
    Column("lease_attempt", Integer, nullable=False, server_default=text("0")),
    Index("ix_occurrences_job_time", "job_pk", "expected_time", unique=True),
    Index("ix_occurrences_due", "done", "due_time"),
    sqlite_autoincrement=True,
)

work_items = Table(
    "work_items",
    metadata,
    # a unit of work done outside the service by a worker (WorkerService): a batch task
    # to run; leased on its own row, timed on the database's clock
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("work_id", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("job_pk", Integer, ForeignKey("jobs.pk", ondelete="CASCADE"), nullable=False),
    Column("task_pk", Integer, ForeignKey("tasks.pk", ondelete="CASCADE")),
    # leases taken so far; the current lease's token ("" when none), holder, expiry (µs,
    # the database's clock) and duration (a heartbeat renews by it)
    Column("attempt", Integer, nullable=False, server_default=text("0")),
    Column("lease_token", String(64), nullable=False, server_default=text("''")),
    Column("lease_owner", String(64), nullable=False, server_default=text("''")),
    Column("lease_expire_time", BigInteger, nullable=False, server_default=text("0")),
    Column("lease_duration", BigInteger, nullable=False, server_default=text("0")),
    Column("progress", Text, nullable=False, server_default=text("''")),
    Column("create_time", BigInteger, nullable=False),
    # when the service ends the running task (µs, the database's clock; 0: no limit)
    Column("deadline", BigInteger, nullable=False, server_default=text("0")),
    Index("ix_work_items_work_id", "work_id", unique=True),
    Index("ix_work_items_kind", "kind", "pk"),
    Index("ix_work_items_task", "task_pk"),
    Index("ix_work_items_deadline", "deadline"),
    sqlite_autoincrement=True,
)
