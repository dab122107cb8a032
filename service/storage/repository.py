"""The core's `Tx` over one connection inside a transaction, with Core statements only."""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol, TypeVar

import orjson
from sqlalchemy import (
    JSON,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    not_,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Select

from jobcontrol.service.core import filters
from jobcontrol.service.core.engine import new_etag
from jobcontrol.service.core.model import (
    Collection,
    HistoryEntry,
    Job,
    Operation,
    State,
    Task,
    TaskResult,
    TaskState,
)
from jobcontrol.service.core.ports import JobQuery, PurgePage, TaskCounts, TaskStatistics
from jobcontrol.service.storage import rows
from jobcontrol.service.storage.dialect_state import DialectStateTx
from jobcontrol.service.storage.occurrences import OccurrencesTx
from jobcontrol.service.storage.schema import (
    DbNow,
    collections,
    history,
    jobs,
    leases,
    operations,
    replies,
    tasks,
    work_items,
)
from jobcontrol.service.storage.work import PgWorkTx, SqliteWorkTx, WorkTx

_JOB_COLUMNS = {
    "id": jobs.c.job_id,
    "state": jobs.c.state,
    "previous_state": jobs.c.previous_state,
    "type": jobs.c.job_type,
    "display_name": jobs.c.display_name,
    "create_time": jobs.c.create_time,
    "update_time": jobs.c.update_time,
    "state_transition_time": jobs.c.state_time,
}
_HISTORY_COLUMNS = {
    "status": history.c.status,
    "state": history.c.state,
    "timestamp": history.c.timestamp,
}
_TASK_COLUMNS = {
    "id": tasks.c.task_id,
    "state": tasks.c.state,
    "result": tasks.c.result,
    "display_name": tasks.c.display_name,
    "create_time": tasks.c.create_time,
    "update_time": tasks.c.update_time,
    "state_transition_time": tasks.c.state_time,
}
_COLLECTION_COLUMNS = {"id": collections.c.collection_id, "profile": collections.c.profile}
_OPERATION_COLUMNS = {
    "name": operations.c.name,
    "done": operations.c.done,
    "verb": operations.c.verb,
    "target": operations.c.target,
}
_OPS = {
    "=": lambda c, v: c == v,
    "!=": lambda c, v: c != v,
    "<": lambda c, v: c < v,
    "<=": lambda c, v: c <= v,
    ">": lambda c, v: c > v,
    ">=": lambda c, v: c >= v,
    filters.STARTS_WITH: lambda c, v: c.startswith(v, autoescape=True),
}


def compile_filter(
    node: filters.Node, columns: dict[str, Any], table: Table = jobs
) -> ColumnElement[bool]:
    """A filter syntax tree as a SQL boolean expression over `table`: named columns,
    `labels.KEY` and (jobs) spec paths inside the JSON columns."""
    if isinstance(node, filters.And):
        return and_(*(compile_filter(n, columns, table) for n in node.items))
    if isinstance(node, filters.Or):
        return or_(*(compile_filter(n, columns, table) for n in node.items))
    if isinstance(node, filters.Not):
        return not_(compile_filter(node.item, columns, table))
    column: Any = columns.get(node.field)
    if column is None and node.field.startswith("labels."):
        column = table.c.labels[node.field[len("labels.") :]].as_string()
    elif column is None:  # a spec path, e.g. batch.pool_info.pool_id
        column = table.c.spec[tuple(node.field.split(".")[1:])].as_string()
    value = node.value.value if isinstance(node.value, State) else node.value
    return _OPS[node.op](column, value)  # type: ignore[no-any-return]


def _page(stmt: Select[Any], query: JobQuery) -> Select[Any]:
    """`stmt` over jobs limited to the query's page: its collection, filter, sort order and
    resume point."""
    sort = {
        "job_key": jobs.c.job_key,
        "create_time": jobs.c.create_time,
        "update_time": jobs.c.update_time,
    }[query.order]
    keys = [jobs.c.job_key] if query.order == "job_key" else [sort, jobs.c.job_key]
    stmt = stmt.where(jobs.c.collection_id == query.collection_id)
    if query.filter is not None:
        stmt = stmt.where(compile_filter(query.filter, _JOB_COLUMNS))
    if query.after is not None:
        bound = tuple_(*keys)
        after = tuple_(*query.after)
        stmt = stmt.where(bound < after if query.descending else bound > after)
    order = [k.desc() for k in keys] if query.descending else keys
    return stmt.order_by(*order).limit(query.limit).offset(query.skip or None)


R = TypeVar("R")


class Contention(Exception):
    """A write lost a race with another replica's transaction (the row changed or went
    away since it was read, a unique key was taken, a deadlock or serialization failure):
    the store runs the request again in a later transaction, where it reads the winner's
    row and decides afresh."""


class Connection(Protocol):
    """What SqlTx needs of a connection: SQLAlchemy's AsyncConnection, or the
    never-suspending face of a synchronous one (database.SyncConnection)."""

    async def execute(self, statement: Any, parameters: Any = None) -> Any: ...
    async def run_sync(self, fn: Callable[..., R], *args: Any) -> R: ...


class SqlTx(DialectStateTx, OccurrencesTx, WorkTx):
    """Implements `service.core.ports.Tx` on a connection inside a transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        # (table, key) -> the version this transaction read or wrote: an update names it
        # (`WHERE pk = ? AND version = ?`), so a row changed by another writer since is
        # not overwritten (Contention) — settled by the database, not by this process
        self.versions: dict[tuple[str, object], int] = {}

    def _seen(self, table: str, key: object, version: int) -> None:
        self.versions[(table, key)] = version

    def _checked(self, stmt: Any, table: Table, column: Any, key: object) -> Any:
        expected = self.versions.get((table.name, key))
        return stmt if expected is None else stmt.where(column == expected)

    @staticmethod
    def _applied(result: Any) -> None:
        if result.rowcount == 0:
            raise Contention("the row changed or went away since it was read")

    async def _one(self, stmt: Any) -> Any:
        return (await self.conn.execute(stmt)).first()

    async def _all(self, stmt: Any) -> list[Any]:
        return list((await self.conn.execute(stmt)).all())

    # collections -------------------------------------------------------------------

    async def get_collection(self, collection_id: str) -> Collection | None:
        row = await self._one(
            select(collections).where(collections.c.collection_id == collection_id)
        )
        if row is None:
            return None
        self._seen("collections", collection_id, row.version)
        return rows.collection(row)

    async def list_collections(
        self, after: str | None, limit: int, filter: filters.Node | None = None
    ) -> list[Collection]:
        stmt = select(collections).order_by(collections.c.collection_id).limit(limit)
        if after is not None:
            stmt = stmt.where(collections.c.collection_id > after)
        if filter is not None:
            stmt = stmt.where(compile_filter(filter, _COLLECTION_COLUMNS, collections))
        return [rows.collection(r) for r in await self._all(stmt)]

    async def insert_collection(self, collection: Collection) -> None:
        await self.conn.execute(insert(collections).values(rows.collection_values(collection)))

    async def update_collection(self, collection: Collection) -> None:
        key = collection.collection_id
        stmt = update(collections).where(collections.c.collection_id == key)
        stmt = self._checked(stmt, collections, collections.c.version, key)
        self._applied(await self.conn.execute(stmt.values(rows.collection_values(collection))))
        self._seen("collections", key, collection.version)

    async def delete_collection(self, collection_id: str) -> None:
        await self.conn.execute(
            delete(collections).where(collections.c.collection_id == collection_id)
        )

    # jobs --------------------------------------------------------------------------

    async def get_job(self, collection_id: str, key: str) -> Job | None:
        row = await self._one(
            select(jobs).where(jobs.c.collection_id == collection_id, jobs.c.job_key == key)
        )
        return self._job(row) if row else None

    def _job(self, row: Any) -> Job:
        self._seen("jobs", row.pk, row.version)
        return rows.job(row)

    async def list_jobs(self, query: JobQuery) -> list[Job]:
        return [self._job(r) for r in await self._all(_page(select(jobs), query))]

    async def count_jobs(
        self, collection_id: str, excluding: frozenset[State] = frozenset()
    ) -> int:
        stmt = select(func.count()).select_from(jobs).where(jobs.c.collection_id == collection_id)
        if excluding:
            stmt = stmt.where(jobs.c.state.not_in([s.value for s in excluding]))
        return int((await self.conn.execute(stmt)).scalar_one())

    async def insert_job(self, job: Job, key: str, job_type: str | None) -> int:
        values = rows.job_values(job, job_type)
        values["job_key"] = key
        result = await self.conn.execute(insert(jobs).values(values).returning(jobs.c.pk))
        return int(result.scalar_one())

    async def update_job(self, job: Job, job_type: str | None) -> None:
        stmt = self._checked(update(jobs).where(jobs.c.pk == job.pk), jobs, jobs.c.version, job.pk)
        self._applied(await self.conn.execute(stmt.values(rows.job_values(job, job_type))))
        self._seen("jobs", job.pk, job.version)

    async def delete_job(self, job_pk: int) -> None:
        await self.conn.execute(delete(jobs).where(jobs.c.pk == job_pk))

    async def purge_children(self, job_pk: int, limit: int) -> int:
        purged = 0
        for table in (work_items, tasks, history):
            if purged >= limit:
                break
            chunk = select(table.c.pk).where(table.c.job_pk == job_pk).limit(limit - purged)
            result = await self.conn.execute(delete(table).where(table.c.pk.in_(chunk)))
            purged += result.rowcount or 0
        return purged

    async def purge_page(self, page: PurgePage) -> tuple[int, str]:
        """Delete the page's jobs and everything of theirs in five statements, none of
        which brings a row into Python: the page's size and last key, then one DELETE a
        table over the key range (after, last] and the page's conditions. Returns (jobs
        purged, the last one's key; "" when none)."""
        conditions = [jobs.c.collection_id == page.collection_id]
        if page.filter is not None:
            conditions.append(compile_filter(page.filter, _JOB_COLUMNS))
        if page.states is not None:
            conditions.append(jobs.c.state.in_(sorted(s.value for s in page.states)))
        if page.kept_types:
            kept = sorted(page.kept_types)
            conditions.append(or_(jobs.c.job_type.is_(None), jobs.c.job_type.not_in(kept)))
        if page.after is not None:
            conditions.append(jobs.c.job_key > page.after)
        ordered = select(jobs.c.job_key).where(*conditions).order_by(jobs.c.job_key)
        keys = ordered.limit(page.limit).subquery()
        size = select(func.count(), func.max(keys.c.job_key))
        count, last = (await self.conn.execute(size)).one()
        if not count:
            return 0, ""
        conditions.append(jobs.c.job_key <= last)
        doomed = select(jobs.c.pk).where(*conditions)
        for table in (work_items, tasks, history):
            await self.conn.execute(delete(table).where(table.c.job_pk.in_(doomed)))
        await self.conn.execute(delete(jobs).where(*conditions))
        return int(count), str(last)

    async def jobs_of_operation(self, operation: str, limit: int) -> list[Job]:
        stmt = select(jobs).where(jobs.c.delete_operation == operation).order_by(jobs.c.pk)
        return [self._job(r) for r in await self._all(stmt.limit(limit))]

    async def jobs_by_pk(self, pks: list[int]) -> dict[int, Job]:
        """The jobs among `pks` that exist, by pk (one statement)."""
        found = await self._all(select(jobs).where(jobs.c.pk.in_(sorted(set(pks)))))
        return {job.pk: job for job in map(self._job, found) if job.pk is not None}

    # tasks -------------------------------------------------------------------------

    async def get_task(self, job_pk: int, job_name: str, task_id: str) -> Task | None:
        row = await self._one(
            select(tasks).where(tasks.c.job_pk == job_pk, tasks.c.task_id == task_id)
        )
        return self._task(row, job_name) if row else None

    def _task(self, row: Any, job_name: str) -> Task:
        self._seen("tasks", row.pk, row.version)
        return rows.task(row, job_name)

    async def list_tasks(
        self,
        job_pk: int,
        job_name: str,
        after: str | None,
        limit: int,
        filter: filters.Node | None = None,
    ) -> list[Task]:
        stmt = select(tasks).where(tasks.c.job_pk == job_pk)
        if after is not None:
            stmt = stmt.where(tasks.c.task_id > after)
        if filter is not None:
            stmt = stmt.where(compile_filter(filter, _TASK_COLUMNS, tasks))
        stmt = stmt.order_by(tasks.c.task_id).limit(limit)
        return [rows.task(r, job_name) for r in await self._all(stmt)]

    async def insert_task(self, task: Task) -> int:
        result = await self.conn.execute(
            insert(tasks).values(rows.task_values(task)).returning(tasks.c.pk)
        )
        return int(result.scalar_one())

    async def update_task(self, task: Task) -> None:
        stmt = self._checked(update(tasks).where(tasks.c.pk == task.pk), tasks, tasks.c.version,
                             task.pk)  # fmt: skip
        self._applied(await self.conn.execute(stmt.values(rows.task_values(task))))
        self._seen("tasks", task.pk, task.version)

    async def count_tasks(self, job_pk: int) -> TaskCounts:
        stmt = (
            select(tasks.c.state, tasks.c.result, func.count())
            .where(tasks.c.job_pk == job_pk)
            .group_by(tasks.c.state, tasks.c.result)
        )
        counts: dict[str, int] = {}
        for state, result, number in await self._all(stmt):
            counts[state] = counts.get(state, 0) + number
            if state == TaskState.COMPLETED.value and result:
                counts[result] = counts.get(result, 0) + number
        return TaskCounts(
            active=counts.get(TaskState.ACTIVE.value, 0),
            running=counts.get(TaskState.RUNNING.value, 0),
            completed=counts.get(TaskState.COMPLETED.value, 0),
            succeeded=counts.get(TaskResult.SUCCESS.value, 0),
            failed=counts.get(TaskResult.FAILURE.value, 0),
        )

    async def task_statistics(self, job_pks: Sequence[int]) -> dict[int, TaskStatistics]:
        if not job_pks:
            return {}
        completed = tasks.c.state == TaskState.COMPLETED.value

        def ended(result: TaskResult) -> Any:
            return func.sum(case((and_(completed, tasks.c.result == result.value), 1), else_=0))

        stmt = (
            select(
                tasks.c.job_pk,
                ended(TaskResult.SUCCESS),
                ended(TaskResult.FAILURE),
                func.sum(tasks.c.retry_count),
            )
            .where(tasks.c.job_pk.in_(list(job_pks)))
            .group_by(tasks.c.job_pk)
        )
        return {
            pk: TaskStatistics(int(ok or 0), int(failed or 0), int(retries or 0))
            for pk, ok, failed, retries in await self._all(stmt)
        }

    async def running_tasks(self, job_pk: int) -> int:
        stmt = (
            select(func.count())
            .select_from(tasks)
            .where(tasks.c.job_pk == job_pk, tasks.c.state == TaskState.RUNNING.value)
        )
        return int((await self.conn.execute(stmt)).scalar_one())

    async def move_running_tasks(
        self, job_pk: int, state: TaskState, result: TaskResult | None, now: int
    ) -> int:
        stmt = select(tasks).where(
            tasks.c.job_pk == job_pk, tasks.c.state == TaskState.RUNNING.value
        )
        running = [self._task(r, "") for r in await self._all(stmt)]
        for task in running:
            task.state, task.result, task.state_time, task.update_time = state, result, now, now
            task.version += 1
            task.etag = new_etag(task.uid, task.version)
            await self.update_task(task)
        return len(running)

    # history -----------------------------------------------------------------------

    async def insert_history(self, entry: HistoryEntry) -> int:
        result = await self.conn.execute(
            insert(history).values(rows.history_values(entry)).returning(history.c.pk)
        )
        return int(result.scalar_one())

    async def list_history(
        self,
        job_pk: int,
        job_name: str,
        filter: filters.Node | None,
        after: int | None,
        limit: int,
        skip: int = 0,
    ) -> list[HistoryEntry]:
        stmt = select(history).where(history.c.job_pk == job_pk)
        if filter is not None:
            stmt = stmt.where(compile_filter(filter, _HISTORY_COLUMNS))
        if after is not None:
            stmt = stmt.where(history.c.pk < after)
        stmt = stmt.order_by(history.c.pk.desc()).limit(limit).offset(skip or None)
        return [rows.history_entry(r, job_name) for r in await self._all(stmt)]

    # operations --------------------------------------------------------------------

    async def get_operation(self, name: str) -> Operation | None:
        row = await self._one(select(operations).where(operations.c.name == name))
        if row is None:
            return None
        self._seen("operations", name, int(row.done))
        return rows.operation(row)

    async def list_operations(
        self,
        after: str | None,
        limit: int,
        pending_only: bool = False,
        filter: filters.Node | None = None,
    ) -> list[Operation]:
        stmt = select(operations)
        if pending_only:
            stmt = stmt.where(operations.c.done.is_(False))
        if filter is not None:
            stmt = stmt.where(compile_filter(filter, _OPERATION_COLUMNS, operations))
        if after is not None:
            stmt = stmt.where(operations.c.name > after)
        stmt = stmt.order_by(operations.c.name).limit(limit)
        return [rows.operation(r) for r in await self._all(stmt)]

    async def insert_operation(self, op: Operation) -> None:
        await self.conn.execute(insert(operations).values(rows.operation_values(op)))

    async def update_operation(self, op: Operation) -> None:
        # an Operation has no version: one read while pending is not written over after
        # another writer finished it (it completes once)
        stmt = update(operations).where(operations.c.name == op.name)
        if self.versions.get(("operations", op.name)) == 0:
            stmt = stmt.where(operations.c.done.is_(False))
        self._applied(await self.conn.execute(stmt.values(rows.operation_values(op))))
        self._seen("operations", op.name, int(op.done))

    async def delete_operation(self, name: str) -> None:
        await self.conn.execute(delete(operations).where(operations.c.name == name))

    # request-id replay -------------------------------------------------------------

    async def get_reply(self, scope: str, request_id: str, since: int) -> tuple[str, str] | None:
        row = await self._one(
            select(replies.c.reply, replies.c.fingerprint).where(
                replies.c.scope == scope,
                replies.c.request_id == request_id,
                replies.c.create_time >= since,
            )
        )
        return (row[0], row[1]) if row else None

    async def put_reply(
        self, scope: str, request_id: str, fingerprint: str, reply: str, now: int
    ) -> None:
        await self.conn.execute(
            delete(replies).where(replies.c.scope == scope, replies.c.request_id == request_id)
        )
        await self.conn.execute(
            insert(replies).values(
                scope=scope,
                request_id=request_id,
                fingerprint=fingerprint,
                reply=reply,
                create_time=now,
            )
        )

    async def expire_replies(self, before: int) -> int:
        result = await self.conn.execute(delete(replies).where(replies.c.create_time < before))
        return result.rowcount or 0

    # leases ------------------------------------------------------------------------

    async def claim_lease(self, name: str, owner: str, duration_us: int) -> int | None:
        """Take the lease `name` for `owner` (or keep it: the same attempt) unless another
        owner holds it unexpired; the attempt taken, or None. On PostgreSQL the row is read
        `FOR UPDATE SKIP LOCKED`: a row another replica's transaction is claiming or
        renewing right now is skipped, never waited for."""
        found = await self._one(
            select(leases.c.owner, leases.c.expire_time, leases.c.attempt, DbNow())
            .where(leases.c.name == name)
            .with_for_update(skip_locked=True)
        )
        if found is None:
            if await self._one(select(leases.c.name).where(leases.c.name == name)):
                return None  # locked by another replica's transaction
            await self.conn.execute(
                insert(leases).values(
                    name=name, owner=owner, expire_time=DbNow() + duration_us, attempt=1
                )
            )
            return 1
        held_by, expire_time, attempt, now = found
        live = expire_time > now
        if live and held_by != owner:
            return None
        attempt = attempt if live else attempt + 1
        await self.conn.execute(
            update(leases)
            .where(leases.c.name == name)
            .values(owner=owner, expire_time=DbNow() + duration_us, attempt=attempt)
        )
        return int(attempt)

    async def renew_lease(self, name: str, owner: str, attempt: int, duration_us: int) -> bool:
        """Extend a lease still held by this owner and attempt (the fence: False once
        another replica has taken it over, and then nothing may be completed)."""
        result = await self.conn.execute(
            update(leases)
            .where(leases.c.name == name, leases.c.owner == owner, leases.c.attempt == attempt)
            .values(expire_time=DbNow() + duration_us)
        )
        return bool(result.rowcount)

    async def release_lease(self, name: str, owner: str, attempt: int) -> None:
        """The work is finished: the lease row goes (fenced like `renew_lease`)."""
        await self.conn.execute(
            delete(leases).where(
                leases.c.name == name, leases.c.owner == owner, leases.c.attempt == attempt
            )
        )


# --- SQLite: the hot statements as prepared SQL on the DBAPI connection ----------------

_JSON = frozenset(c.name for t in (jobs, collections, operations, tasks) for c in t.c
                  if isinstance(c.type, JSON))  # fmt: skip


def _shape(table: Table) -> tuple[list[str], list[int], Any]:
    """Column names, positions of the JSON columns, a row type with attribute access."""
    names = [c.name for c in table.c]
    return names, [i for i, n in enumerate(names) if n in _JSON], namedtuple(table.name, names)


_JOB_COLUMNS_ALL, _JOB_JSON_AT, JobRow = _shape(jobs)
_JOB_AT = {name: i for i, name in enumerate(_JOB_COLUMNS_ALL)}
_COLL_COLUMNS, _COLL_JSON_AT, CollectionRow = _shape(collections)
_SELECT_JOB = (
    f"SELECT {', '.join(_JOB_COLUMNS_ALL)} FROM jobs WHERE collection_id = ? AND job_key = ?"
)
_SELECT_COLLECTION = f"SELECT {', '.join(_COLL_COLUMNS)} FROM collections WHERE collection_id = ?"


def _decoded(found: tuple[Any, ...], json_at: list[int], row_type: Any) -> Any:
    values = list(found)
    for i in json_at:
        if values[i] is not None:
            values[i] = orjson.loads(values[i])
    return row_type._make(values)


def _params(values: dict[str, Any]) -> list[Any]:
    """Values as SQLAlchemy's types would bind them (JSON as text, None as 'null')."""
    return [orjson.dumps(v).decode() if k in _JSON else v for k, v in values.items()]


class SqliteTx(SqliteWorkTx, SqlTx):
    """`SqlTx` on a synchronous SQLite connection, with the statements every request runs
    (get, update and delete of one job; a worker's lease and completion of a task) as
    fixed SQL on the DBAPI connection: SQLAlchemy's
    per-statement compilation and result processing cost more than the query itself. The
    SQL is derived from schema.py, and JSON columns are encoded as SQLAlchemy's JSON type
    does (text)."""

    _statements: ClassVar[dict[tuple[str, ...], str]] = {}

    def __init__(self, conn: Connection, dbapi: sqlite3.Connection) -> None:
        super().__init__(conn)
        self.dbapi = dbapi
        # the last job row read: (pk, total_changes then, the row as stored)
        self._job_row: tuple[int | None, int, tuple[Any, ...]] | None = None

    def _sql(self, key: tuple[str, ...], build: Callable[[], str]) -> str:
        sql = self._statements.get(key)
        if sql is None:
            sql = self._statements[key] = build()
        return sql

    async def get_collection(self, collection_id: str) -> Collection | None:
        found = self.dbapi.execute(_SELECT_COLLECTION, (collection_id,)).fetchone()
        return (
            None
            if found is None
            else rows.collection(_decoded(found, _COLL_JSON_AT, CollectionRow))
        )

    async def get_job(self, collection_id: str, key: str) -> Job | None:
        read, self.job_read = self.job_read, None
        changes = self.dbapi.total_changes
        if read is not None and read[:3] == (collection_id, key, changes):
            found = read[3]  # read with its work item, and no row has changed since
        else:
            found = self.dbapi.execute(_SELECT_JOB, (collection_id, key)).fetchone()
        if found is None:
            return None
        job = rows.job(_decoded(found, _JOB_JSON_AT, JobRow))
        self._job_row = (job.pk, changes, found)
        return job

    async def update_job(self, job: Job, job_type: str | None) -> None:
        """Sets only the columns whose values differ from the row this transaction read
        (when nothing was written since): SQLite rewrites every index on a column the SET
        names, changed or not, and on a big table each is a page it may have to read (at
        1,000,000 jobs, 124 µs an update setting every column against 69 µs setting the
        changed ones)."""
        values = rows.job_values(job, job_type)
        params = _params(values)
        read, self._job_row = self._job_row, None
        if read is not None and read[:2] == (job.pk, self.dbapi.total_changes):
            old = read[2]
            changed = [i for i, k in enumerate(values) if old[_JOB_AT[k]] != params[i]]
            if not changed:
                return
            names = tuple(list(values)[i] for i in changed)
            params = [params[i] for i in changed]
        else:
            names = tuple(values)
        sql = self._sql(("update jobs", *names), lambda: f"UPDATE jobs SET "
                        f"{', '.join(f'{k} = ?' for k in names)} WHERE pk = ?")  # fmt: skip
        self.dbapi.execute(sql, [*params, job.pk])

    async def update_task(self, task: Task) -> None:
        values = rows.task_values(task)
        expected = self.versions.get(("tasks", task.pk))
        checked = "" if expected is None else " AND version = ?"
        keys = ("update tasks", checked, *values)
        sql = self._sql(keys, lambda: f"UPDATE tasks SET {', '.join(f'{k} = ?' for k in values)} "
                        f"WHERE pk = ?{checked}")  # fmt: skip
        params = [*_params(values), task.pk, *(() if expected is None else (expected,))]
        self._applied(self.dbapi.execute(sql, params))
        self._seen("tasks", task.pk, task.version)

    async def insert_operation(self, op: Operation) -> None:
        values = rows.operation_values(op)
        keys = ("insert operations", *values)
        sql = self._sql(keys, lambda: f"INSERT INTO operations ({', '.join(values)}) "
                        f"VALUES ({', '.join('?' * len(values))})")  # fmt: skip
        self.dbapi.execute(sql, _params(values))

    async def delete_job(self, job_pk: int) -> None:
        self.dbapi.execute("DELETE FROM jobs WHERE pk = ?", (job_pk,))

    async def purge_children(self, job_pk: int, limit: int) -> int:
        purged = 0
        for table in ("work_items", "tasks", "history"):
            if purged >= limit:
                break
            cursor = self.dbapi.execute(
                f"DELETE FROM {table} WHERE pk IN "  # table names are ours, not input
                f"(SELECT pk FROM {table} WHERE job_pk = ? LIMIT ?)",
                (job_pk, limit - purged),
            )
            purged += max(cursor.rowcount, 0)
        return purged


# --- PostgreSQL: the hot statements as fixed SQL on the asyncpg connection -------------

_PG_SELECT_JOB = (
    f"SELECT {', '.join(_JOB_COLUMNS_ALL)} FROM jobs WHERE collection_id = $1 AND job_key = $2"
)
_PG_SELECT_COLLECTION = (
    f"SELECT {', '.join(_COLL_COLUMNS)} FROM collections WHERE collection_id = $1"
)


class PgTx(PgWorkTx, SqlTx):
    """`SqlTx` on PostgreSQL, with the statements every request runs (get a collection,
    get and update a job; a worker's lease and completion of a task) as fixed SQL on the
    asyncpg connection: asyncpg prepares each once per connection and reuses it, and
    SQLAlchemy's compilation and result processing (which cost more than the query) are
    skipped. JSON columns go through the codec SQLAlchemy's dialect installed on the
    connection (text in, decoded values out). In a write, `count_jobs` (a quota check)
    first locks the collection's row, so replicas checking the same quota take turns.
    `announce_work` marks the request; the store turns it into a NOTIFY."""

    _statements: ClassVar[dict[tuple[str, ...], str]] = {}

    def __init__(self, conn: Connection, raw: Any, writer: bool) -> None:
        super().__init__(conn)
        self.raw = raw
        self.writer = writer
        # whether this request made work available: the writer sends one NOTIFY in the
        # COMMIT of a batch where a request that did so was kept (PostgresStore._commit)
        self.announced = False

    async def announce_work(self) -> None:
        self.announced = self.writer

    async def get_collection(self, collection_id: str) -> Collection | None:
        found = await self.raw.fetchrow(_PG_SELECT_COLLECTION, collection_id)
        if found is None:
            return None
        row = CollectionRow._make(found)
        self._seen("collections", collection_id, row.version)
        return rows.collection(row)

    async def get_job(self, collection_id: str, key: str) -> Job | None:
        found = await self.raw.fetchrow(_PG_SELECT_JOB, collection_id, key)
        return None if found is None else self._job(JobRow._make(found))

    async def update_job(self, job: Job, job_type: str | None) -> None:
        values = rows.job_values(job, job_type)
        expected = self.versions.get(("jobs", job.pk))
        checked = "" if expected is None else f" AND version = ${len(values) + 2}"
        key = ("update jobs", checked, *values)
        sql = self._statements.get(key)
        if sql is None:
            sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(values, 1))
            sql = self._statements[key] = (
                f"UPDATE jobs SET {sets} WHERE pk = ${len(values) + 1}{checked}"
            )
        params = [*_params(values), job.pk, *(() if expected is None else (expected,))]
        if await self.raw.execute(sql, *params) == "UPDATE 0":
            raise Contention("the job changed or went away since it was read")
        self._seen("jobs", job.pk, job.version)

    async def update_task(self, task: Task) -> None:
        values = rows.task_values(task)
        expected = self.versions.get(("tasks", task.pk))
        checked = "" if expected is None else f" AND version = ${len(values) + 2}"
        key = ("update tasks", checked, *values)
        sql = self._statements.get(key)
        if sql is None:
            sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(values, 1))
            sql = self._statements[key] = (
                f"UPDATE tasks SET {sets} WHERE pk = ${len(values) + 1}{checked}"
            )
        params = [*_params(values), task.pk, *(() if expected is None else (expected,))]
        if await self.raw.execute(sql, *params) == "UPDATE 0":
            raise Contention("the task changed or went away since it was read")
        self._seen("tasks", task.pk, task.version)

    async def count_jobs(
        self, collection_id: str, excluding: frozenset[State] = frozenset()
    ) -> int:
        if self.writer:
            await self.raw.execute(
                "SELECT 1 FROM collections WHERE collection_id = $1 FOR UPDATE", collection_id
            )
        return await super().count_jobs(collection_id, excluding)
