"""The `Tx` methods of scheduled jobs' occurrences (planned runs, leased on their rows), as
a mixin of SqlTx; SQLAlchemy Core statements that run on SQLite and PostgreSQL alike."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, delete, false, func, insert, select, update

from jobcontrol.service.core.model import Occurrence
from jobcontrol.service.storage.schema import DbNow, occurrences

if TYPE_CHECKING:
    from jobcontrol.service.storage.repository import Connection

_O = occurrences.c
_COLUMNS = (
    _O.pk, _O.job_pk, _O.collection_id, _O.job_key, _O.occurrence_id, _O.expected_time,
    _O.due_time, _O.phase, _O.retry_count, _O.lease_attempt,
)  # fmt: skip


def _occurrence(row: Any) -> Occurrence:
    return Occurrence(
        pk=row.pk,
        job_pk=row.job_pk,
        collection_id=row.collection_id,
        job_key=row.job_key,
        occurrence_id=row.occurrence_id,
        expected_time=row.expected_time,
        due_time=row.due_time,
        phase=row.phase,
        retry_count=row.retry_count,
        attempt=row.lease_attempt,
    )


class OccurrencesTx:
    """Occurrences on SqlTx's connection."""

    conn: Connection

    async def plan_occurrence(self, occurrence: Occurrence) -> bool:
        """Insert the occurrence unless its (job, expected time) is planned already (by this
        or another replica, or run before); whether it was inserted."""
        same = and_(_O.job_pk == occurrence.job_pk, _O.expected_time == occurrence.expected_time)
        if (await self.conn.execute(select(_O.pk).where(same))).first() is not None:
            return False
        await self.conn.execute(
            insert(occurrences).values(
                job_pk=occurrence.job_pk,
                collection_id=occurrence.collection_id,
                job_key=occurrence.job_key,
                occurrence_id=occurrence.occurrence_id,
                expected_time=occurrence.expected_time,
                due_time=occurrence.due_time,
                phase=occurrence.phase,
            )
        )
        return True

    async def unplan_occurrences(self, job_pk: int) -> int:
        """Drop the job's planned occurrences that never started an attempt (an attempt
        under way, or one waiting for its retry, keeps going); how many."""
        result = await self.conn.execute(
            delete(occurrences).where(
                _O.job_pk == job_pk, _O.done.is_(False), _O.lease_attempt == 0
            )
        )
        return int(result.rowcount or 0)

    async def claim_occurrences(
        self, owner: str, duration_us: int, limit: int, ahead_us: int = 0
    ) -> list[Occurrence]:
        """Lease up to `limit` occurrences due within `ahead_us` (on the database's clock,
        no live lease) to `owner` for `duration_us`, earliest first; each claim bumps its
        attempt. On
        PostgreSQL rows other replicas are claiming are skipped (`FOR UPDATE SKIP
        LOCKED`), never waited for."""
        due = (
            select(_O.pk)
            .where(
                _O.done.is_(False),
                _O.due_time <= DbNow() + ahead_us,
                _O.lease_expire_time < DbNow(),
            )
            .order_by(_O.due_time)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        result = await self.conn.execute(
            update(occurrences)
            .where(_O.pk.in_(due.scalar_subquery()))
            .values(
                lease_owner=owner,
                lease_expire_time=DbNow() + duration_us,
                lease_attempt=_O.lease_attempt + 1,
            )
            .returning(*_COLUMNS)
        )
        return sorted((_occurrence(row) for row in result), key=lambda o: o.due_time)

    async def finish_attempt(self, occurrence: Occurrence, owner: str, done: bool) -> bool:
        """Record the end of an attempt, fenced on (row, owner, attempt): the occurrence is
        done, or waits for `occurrence.due_time` in `occurrence.phase` with its
        `retry_count`; the lease is released. False (nothing written) when the lease was
        lost to another replica or the occurrence is gone (its job was deleted)."""
        result = await self.conn.execute(
            update(occurrences)
            .where(
                _O.pk == occurrence.pk,
                _O.lease_owner == owner,
                _O.lease_attempt == occurrence.attempt,
                _O.done.is_(False),
            )
            .values(
                done=done,
                due_time=occurrence.due_time,
                phase=occurrence.phase,
                retry_count=occurrence.retry_count,
                lease_owner="",
                lease_expire_time=0,
            )
        )
        return bool(result.rowcount)

    async def next_due_time(self) -> int | None:
        """The earliest time (µs) an occurrence not done may be claimed, if any: its due
        time, or the expiry of its live lease (an attempt under way is not due again
        before then), so that attempts in flight do not make the scheduler poll."""
        claimable = case(
            (_O.lease_expire_time > _O.due_time, _O.lease_expire_time), else_=_O.due_time
        )
        found = await self.conn.execute(select(func.min(claimable)).where(_O.done.is_(False)))
        value = found.scalar()
        return None if value is None else int(value)

    async def occurrences_due(self) -> int:
        """Occurrences not done, due by the database's clock and under no live lease (the
        ones `claim_occurrences` would take now, without its look-ahead): a range of
        ix_occurrences_due (done, due_time)."""
        now = select(DbNow()).scalar_subquery()
        found = await self.conn.execute(
            select(func.count()).where(
                _O.done == false(), _O.due_time <= now, _O.lease_expire_time < now
            )
        )
        return int(found.scalar_one())

    async def expire_occurrences(self, before: int) -> None:
        """Forget done occurrences expected before `before` (µs)."""
        await self.conn.execute(
            delete(occurrences).where(_O.done.is_(True), _O.expected_time < before)
        )

    async def list_occurrences(self, job_pk: int) -> list[Occurrence]:
        """The job's occurrences (planned, running and done), by expected time."""
        rows = await self.conn.execute(
            select(*_COLUMNS).where(_O.job_pk == job_pk).order_by(_O.expected_time)
        )
        return [_occurrence(row) for row in rows]
