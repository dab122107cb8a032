"""The `Tx` methods of work leased by workers (work_items), as a mixin of SqlTx; Core
statements that run on SQLite and PostgreSQL alike, leases timed on the database's clock."""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from sqlalchemy import and_, case, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import Label

from jobcontrol.service.core.model import Job, TaskState
from jobcontrol.service.core.ports import WorkDepth
from jobcontrol.service.core.work_records import WorkRow
from jobcontrol.service.storage import rows
from jobcontrol.service.storage.schema import DbNow, jobs, tasks, work_items

if TYPE_CHECKING:
    from jobcontrol.service.storage.repository import Connection

_W, _J = work_items.c, jobs.c
_COLUMNS = (
    *tasks.c,
    _W.pk.label("w_pk"),
    _W.work_id.label("w_work_id"),
    _W.kind.label("w_kind"),
    _W.job_pk.label("w_job_pk"),
    _W.attempt.label("w_attempt"),
    _W.lease_token.label("w_lease_token"),
    _W.lease_expire_time.label("w_lease_expire_time"),
    _W.lease_duration.label("w_lease_duration"),
    _W.deadline.label("w_deadline"),
    _J.collection_id.label("j_collection_id"),
    _J.job_key.label("j_job_key"),
    _J.job_id.label("j_job_id"),
)
# a run of a job itself has no task (task_pk NULL)
_FROM = work_items.join(jobs, jobs.c.pk == _W.job_pk).outerjoin(tasks, tasks.c.pk == _W.task_pk)


class WorkTx:
    """Work items on SqlTx's connection."""

    conn: Connection
    _seen: Callable[[str, object, int], None]

    def _row(self, row: Any, now: int) -> WorkRow:
        job_name = f"collections/{row.j_collection_id}/jobs/{row.j_job_id}"
        task = None if row.pk is None else rows.task(row, job_name)
        if task is not None:
            self._seen("tasks", task.pk, task.version)
        return WorkRow(
            pk=row.w_pk,
            work_id=row.w_work_id,
            kind=row.w_kind,
            job_pk=row.w_job_pk,
            collection_id=row.j_collection_id,
            job_key=row.j_job_key,
            job_id=row.j_job_id,
            attempt=row.w_attempt,
            lease_token=row.w_lease_token,
            lease_expire_time=row.w_lease_expire_time,
            lease_duration=row.w_lease_duration,
            task=task,
            db_now=now,
            deadline=row.w_deadline,
        )

    async def db_now(self) -> int:
        """The database's clock (µs): the one every replica's leases are timed on."""
        return int((await self.conn.execute(select(DbNow()))).scalar_one())

    async def insert_work_item(
        self, work_id: str, kind: str, job_pk: int, task_pk: int | None, now: int
    ) -> None:
        await self.conn.execute(
            insert(work_items).values(
                work_id=work_id, kind=kind, job_pk=job_pk, task_pk=task_pk, create_time=now
            )
        )

    async def work_candidates(
        self, kind: str, job_states: frozenset[str], limit: int, now: int
    ) -> list[WorkRow]:
        """Items of `kind` a worker may lease now, oldest first: their task is waiting
        (ACTIVE) or running on a lease that expired; a run (no task) whose lease is free
        or expired. On PostgreSQL the rows are locked `FOR UPDATE SKIP LOCKED`: items
        another replica is leasing right now are skipped."""
        expired = and_(_W.lease_token != "", _W.lease_expire_time <= now)
        free = or_(
            tasks.c.state == TaskState.ACTIVE.value,
            and_(tasks.c.state == TaskState.RUNNING.value, expired),
            and_(_W.task_pk.is_(None), or_(_W.lease_token == "", expired)),
        )
        stmt = (
            select(*_COLUMNS)
            .select_from(_FROM)
            .where(_W.kind == kind, _J.state.in_(sorted(job_states)), free)
            .order_by(_W.pk)
            .limit(limit)
            .with_for_update(skip_locked=True, of=work_items)
        )
        return [self._row(r, now) for r in (await self.conn.execute(stmt)).all()]

    async def delete_work_of_job(self, job_pk: int, kind: str) -> None:
        """Drop a job's items of `kind` (a run started afresh replaces the last one)."""
        await self.conn.execute(delete(work_items).where(_W.job_pk == job_pk, _W.kind == kind))

    async def get_work(self, work_id: str) -> WorkRow | None:
        """An item with its task and job names, and the database's clock."""
        stmt = select(*_COLUMNS, DbNow().label("db_now")).select_from(_FROM)
        row = (await self.conn.execute(stmt.where(_W.work_id == work_id))).first()
        return None if row is None else self._row(row, int(row.db_now))

    async def take_work(
        self,
        pk: int,
        token: str,
        owner: str,
        attempt: int,
        expire: int,
        duration: int,
        deadline: int,
    ) -> None:
        await self.conn.execute(
            update(work_items)
            .where(_W.pk == pk)
            .values(
                lease_token=token,
                lease_owner=owner,
                attempt=attempt,
                lease_expire_time=expire,
                lease_duration=duration,
                deadline=deadline,
            )
        )

    async def overdue_work(self, limit: int) -> list[WorkRow]:
        """Leased items whose running task is past its deadline on the database's clock,
        oldest deadline first (on PostgreSQL locked, skipping rows another replica holds)."""
        stmt = (
            select(*_COLUMNS, DbNow().label("db_now"))
            .select_from(_FROM)
            .where(
                _W.deadline > 0,
                _W.deadline <= DbNow(),
                tasks.c.state == TaskState.RUNNING.value,
            )
            .order_by(_W.deadline)
            .limit(limit)
            .with_for_update(skip_locked=True, of=work_items)
        )
        return [self._row(r, int(r.db_now)) for r in (await self.conn.execute(stmt)).all()]

    async def renew_work(self, pk: int, token: str, expire: int, progress: str) -> bool:
        """Extend a live lease named by its token (the fence: False once it was lost)."""
        result = await self.conn.execute(
            update(work_items)
            .where(_W.pk == pk, _W.lease_token == token, _W.lease_expire_time > DbNow())
            .values(lease_expire_time=expire, progress=progress)
        )
        return bool(result.rowcount)

    async def overdue_jobs(self, states: frozenset[str], limit: int) -> list[Job]:
        """Jobs in `states` past their deadline on the database's clock, oldest deadline
        first (on PostgreSQL locked, skipping rows another replica holds)."""
        stmt = (
            select(jobs)
            .where(_J.deadline > 0, _J.deadline <= DbNow(), _J.state.in_(sorted(states)))
            .order_by(_J.deadline)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        found = []
        for row in (await self.conn.execute(stmt)).all():
            job = rows.job(row)
            self._seen("jobs", job.pk, job.version)
            found.append(job)
        return found

    async def drop_work(self, pk: int) -> None:
        """Remove an item whatever its lease (the service ended its work)."""
        await self.conn.execute(delete(work_items).where(_W.pk == pk))

    async def end_work(self, pk: int, token: str, done: bool) -> bool:
        """End a live lease named by its token: the item goes (`done`) or waits for
        another lease. False when the lease was lost (fenced like `renew_work`)."""
        fence = and_(_W.pk == pk, _W.lease_token == token, _W.lease_expire_time > DbNow())
        if done:
            result = await self.conn.execute(delete(work_items).where(fence))
        else:
            result = await self.conn.execute(
                update(work_items)
                .where(fence)
                .values(lease_token="", lease_owner="", lease_expire_time=0)
            )
        return bool(result.rowcount)

    async def work_depth(self) -> dict[str, WorkDepth]:
        """Every item by kind: how many, and how many under a live lease (a token, and an
        expiry past the database's clock, read once for the statement), whatever its job's
        state. One pass grouped by kind: along ix_work_items_kind (kind, pk) on SQLite, in
        kind order without a sort; a sequential scan and a hash aggregate on PostgreSQL.
        work_items holds the outstanding work only (an item goes when its work is done), so
        the pass is as long as the backlog. No index covers the lease columns on purpose:
        every lease and heartbeat rewrites lease_expire_time, and would update it too."""
        now = select(DbNow()).scalar_subquery()
        live = and_(_W.lease_token != "", _W.lease_expire_time > now)
        stmt = select(_W.kind, func.count(), func.sum(case((live, 1), else_=0))).group_by(_W.kind)
        return {
            kind: WorkDepth(queued=int(total) - int(leased), leased=int(leased))
            for kind, total, leased in (await self.conn.execute(stmt)).all()
        }

    async def announce_work(self) -> None:
        """Nothing here: one server per SQLite file, whose in-process signal wakes its
        waiters (PgTx notifies the other replicas)."""


# --- SQLite: the statements of every lease and completion as fixed SQL on the DBAPI
# connection (see SqliteTx); the same statements as above, written out once

_SQLITE_NOW = str(DbNow().compile(dialect=sqlite.dialect()))
_NAMES = [c.name for c in _COLUMNS]
_SELECT = ", ".join(
    f"{c.element.table.name}.{c.element.name} AS {c.name}"
    if isinstance(c, Label)
    else f"{c.table.name}.{c.name}"
    for c in _COLUMNS
)
_FROM_SQL = (
    "work_items JOIN jobs ON jobs.pk = work_items.job_pk "
    "LEFT OUTER JOIN tasks ON tasks.pk = work_items.task_pk"
)
_EXPIRED = "work_items.lease_token != '' AND work_items.lease_expire_time <= ?"
_LIVE = f"work_items.lease_token = ? AND work_items.lease_expire_time > {_SQLITE_NOW}"
_PROPERTIES_AT = _NAMES.index(tasks.c.properties.name)
WorkSqlRow = namedtuple("WorkSqlRow", _NAMES)  # type: ignore[misc]
WorkSqlRowNow = namedtuple("WorkSqlRowNow", [*_NAMES, "db_now"])  # type: ignore[misc]


def _candidates_sql(states: int) -> str:
    return (
        f"SELECT {_SELECT} FROM {_FROM_SQL} WHERE work_items.kind = ? "
        f"AND jobs.state IN ({', '.join('?' * states)}) "
        f"AND (tasks.state = ? OR tasks.state = ? AND {_EXPIRED} "
        f"OR work_items.task_pk IS NULL AND (work_items.lease_token = '' OR {_EXPIRED})) "
        "ORDER BY work_items.pk LIMIT ?"
    )


# an item's row with its job's (every caller reads the job next: see SqliteTx.get_job)
_GET_WORK = (
    f"SELECT {_SELECT}, {_SQLITE_NOW} AS db_now, {', '.join(f'jobs.{c.name}' for c in jobs.c)} "
    f"FROM {_FROM_SQL} WHERE work_items.work_id = ?"
)
_JOB_AT = len(_NAMES) + 1
_TAKE_WORK = (
    "UPDATE work_items SET lease_token = ?, lease_owner = ?, attempt = ?, "
    "lease_expire_time = ?, lease_duration = ?, deadline = ? WHERE pk = ?"
)
_RENEW_WORK = f"UPDATE work_items SET lease_expire_time = ?, progress = ? WHERE pk = ? AND {_LIVE}"
_DELETE_WORK = f"DELETE FROM work_items WHERE pk = ? AND {_LIVE}"
_FREE_WORK = (
    "UPDATE work_items SET lease_token = '', lease_owner = '', lease_expire_time = 0 "
    f"WHERE pk = ? AND {_LIVE}"
)


def _decoded(found: tuple[Any, ...], row_type: Any) -> Any:
    values = list(found)
    if values[_PROPERTIES_AT] is not None:  # JSON, as SQLAlchemy's type reads it
        values[_PROPERTIES_AT] = orjson.loads(values[_PROPERTIES_AT])
    return row_type._make(values)


class SqliteWorkTx(WorkTx):
    """`WorkTx` on SQLite's DBAPI connection: SQLAlchemy's per-statement compilation and
    result processing cost more than these queries (a lease runs two statements an item,
    a completion four)."""

    dbapi: sqlite3.Connection
    # the job row `get_work` read with its item: (collection id, job key, the connection's
    # total_changes then, the row); `get_job` uses it while no row has changed since
    job_read: tuple[str, str, int, tuple[Any, ...]] | None = None
    _candidates: ClassVar[dict[int, str]] = {}

    async def db_now(self) -> int:
        return int(self.dbapi.execute(f"SELECT {_SQLITE_NOW}").fetchone()[0])

    async def work_candidates(
        self, kind: str, job_states: frozenset[str], limit: int, now: int
    ) -> list[WorkRow]:
        states = sorted(job_states)
        sql = self._candidates.get(len(states))
        if sql is None:
            sql = self._candidates[len(states)] = _candidates_sql(len(states))
        params = (kind, *states, TaskState.ACTIVE.value, TaskState.RUNNING.value, now, now, limit)
        found = self.dbapi.execute(sql, params).fetchall()
        return [self._row(_decoded(r, WorkSqlRow), now) for r in found]

    async def get_work(self, work_id: str) -> WorkRow | None:
        found = self.dbapi.execute(_GET_WORK, (work_id,)).fetchone()
        if found is None:
            return None
        row = _decoded(found[:_JOB_AT], WorkSqlRowNow)
        self.job_read = (row.j_collection_id, row.j_job_key, self.dbapi.total_changes,
                         found[_JOB_AT:])  # fmt: skip
        return self._row(row, int(row.db_now))

    async def take_work(
        self,
        pk: int,
        token: str,
        owner: str,
        attempt: int,
        expire: int,
        duration: int,
        deadline: int,
    ) -> None:
        self.dbapi.execute(_TAKE_WORK, (token, owner, attempt, expire, duration, deadline, pk))

    async def renew_work(self, pk: int, token: str, expire: int, progress: str) -> bool:
        return self.dbapi.execute(_RENEW_WORK, (expire, progress, pk, token)).rowcount > 0

    async def end_work(self, pk: int, token: str, done: bool) -> bool:
        return self.dbapi.execute(_DELETE_WORK if done else _FREE_WORK, (pk, token)).rowcount > 0


# --- PostgreSQL: the same statements as fixed SQL on the asyncpg connection (see PgTx)

_PG_NOW = str(DbNow().compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]
_PG_LIVE = f"work_items.lease_token = $2 AND work_items.lease_expire_time > {_PG_NOW}"


def _pg_candidates_sql(states: int) -> str:
    marks = ", ".join(f"${i}" for i in range(2, states + 2))
    n = states + 2  # $n: ACTIVE, $n+1: RUNNING, $n+2: now, $n+3: the limit
    expired = f"work_items.lease_token != '' AND work_items.lease_expire_time <= ${n + 2}"
    return (
        f"SELECT {_SELECT} FROM {_FROM_SQL} WHERE work_items.kind = $1 "
        f"AND jobs.state IN ({marks}) "
        f"AND (tasks.state = ${n} OR tasks.state = ${n + 1} AND {expired} "
        f"OR work_items.task_pk IS NULL AND (work_items.lease_token = '' OR {expired})) "
        f"ORDER BY work_items.pk LIMIT ${n + 3} FOR UPDATE OF work_items SKIP LOCKED"
    )


_PG_GET_WORK = (
    f"SELECT {_SELECT}, {_PG_NOW} AS db_now FROM {_FROM_SQL} WHERE work_items.work_id = $1"
)
_PG_TAKE_WORK = (
    "UPDATE work_items SET lease_token = $1, lease_owner = $2, attempt = $3, "
    "lease_expire_time = $4, lease_duration = $5, deadline = $6 WHERE pk = $7"
)
_PG_RENEW_WORK = (
    "UPDATE work_items SET lease_expire_time = $3, progress = $4 "
    f"WHERE work_items.pk = $1 AND {_PG_LIVE}"
)
_PG_DELETE_WORK = f"DELETE FROM work_items WHERE work_items.pk = $1 AND {_PG_LIVE}"
_PG_FREE_WORK = (
    "UPDATE work_items SET lease_token = '', lease_owner = '', lease_expire_time = 0 "
    f"WHERE work_items.pk = $1 AND {_PG_LIVE}"
)


def _changed(status: str) -> bool:
    """Whether an asyncpg command status ("UPDATE 1", "DELETE 0") counts a row."""
    return not status.endswith(" 0")


class PgWorkTx(WorkTx):
    """`WorkTx` on the asyncpg connection: asyncpg prepares each statement once per
    connection, and SQLAlchemy's compilation and result processing are skipped. JSON
    (a task's properties) goes through the codec SQLAlchemy's dialect installed."""

    raw: Any
    _pg_candidates: ClassVar[dict[int, str]] = {}

    async def db_now(self) -> int:
        return int(await self.raw.fetchval(f"SELECT {_PG_NOW}"))

    async def work_candidates(
        self, kind: str, job_states: frozenset[str], limit: int, now: int
    ) -> list[WorkRow]:
        states = sorted(job_states)
        sql = self._pg_candidates.get(len(states))
        if sql is None:
            sql = self._pg_candidates[len(states)] = _pg_candidates_sql(len(states))
        found = await self.raw.fetch(
            sql, kind, *states, TaskState.ACTIVE.value, TaskState.RUNNING.value, now, limit
        )
        return [self._row(WorkSqlRow._make(r), now) for r in found]

    async def get_work(self, work_id: str) -> WorkRow | None:
        found = await self.raw.fetchrow(_PG_GET_WORK, work_id)
        if found is None:
            return None
        return self._row(WorkSqlRowNow._make(found), int(found["db_now"]))

    async def take_work(
        self,
        pk: int,
        token: str,
        owner: str,
        attempt: int,
        expire: int,
        duration: int,
        deadline: int,
    ) -> None:
        await self.raw.execute(_PG_TAKE_WORK, token, owner, attempt, expire, duration, deadline, pk)

    async def renew_work(self, pk: int, token: str, expire: int, progress: str) -> bool:
        return _changed(await self.raw.execute(_PG_RENEW_WORK, pk, token, expire, progress))

    async def end_work(self, pk: int, token: str, done: bool) -> bool:
        return _changed(
            await self.raw.execute(_PG_DELETE_WORK if done else _PG_FREE_WORK, pk, token)
        )
