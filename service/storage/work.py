"""The `Tx` methods of work leased by workers (work_items), as a mixin of SqlTx; Core
statements that run on SQLite and PostgreSQL alike, leases timed on the database's clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, insert, or_, select, update

from jobcontrol.service.core.model import Job, TaskState
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

    async def announce_work(self) -> None:
        """Nothing here: one server per SQLite file, whose in-process signal wakes its
        waiters (PgTx notifies the other replicas)."""
