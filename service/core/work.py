"""Use-cases of work done outside the service (WorkerService): workers lease items (batch
tasks), renew their leases, and complete, fail or release them; every write after the
lease is fenced by its token."""

from __future__ import annotations

import asyncio
import functools
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from jobcontrol.service.core import engine
from jobcontrol.service.core.actions import apply_action
from jobcontrol.service.core.context import Context
from jobcontrol.service.core.errors import DomainError, Reason, bad_field
from jobcontrol.service.core.history import end_run
from jobcontrol.service.core.model import (
    HistoryEntry,
    Job,
    State,
    Task,
    TaskResult,
    TaskState,
    now_us,
)
from jobcontrol.service.core.ports import Tx
from jobcontrol.service.core.profiles import (
    PROFILES,
    RUN_RESULTS,
    WORK_KINDS,
    WorkRule,
    rules_for,
)
from jobcontrol.service.core.task_end import react, task_retry_limit, wall_clock_us
from jobcontrol.service.core.tasks import settle
from jobcontrol.service.core.work_records import Lease, WorkRow

MAX_ITEMS = 1000
MAX_WORKER_ID = 64
MAX_PROGRESS = 1024
MAX_MESSAGE = 4096
LEASE_RANGE = (1.0, 3600.0)
DEFAULT_LEASE = 30.0
MAX_WAIT = 60.0
_MAX_ROUNDS = 10_000
# the states in which some profile's jobs have a time limit
_LIMITED_STATES = frozenset(
    s.value for p in PROFILES.values() if p.time_limit is not None for s in p.time_limit.live
)


@dataclass(frozen=True)
class LeaseRequest:
    """LeaseWork's arguments (durations in seconds; None: unset)."""

    worker_id: str
    kinds: tuple[str, ...]
    max_items: int
    lease_duration: float | None
    wait_timeout: float | None


def _checked(req: LeaseRequest) -> tuple[tuple[str, ...], int, int, float]:
    """The kinds, item count, lease duration (µs) and wait (s) of a valid request."""
    if not req.worker_id:
        raise bad_field("worker_id", "required", Reason.REQUIRED_FIELD_MISSING)
    if len(req.worker_id) > MAX_WORKER_ID:
        raise bad_field("worker_id", f"longer than {MAX_WORKER_ID} characters")
    for i, kind in enumerate(req.kinds):
        if kind not in WORK_KINDS:
            raise bad_field(f"kinds[{i}]", f"unknown kind {kind!r}; one of {sorted(WORK_KINDS)}")
    if not 0 <= req.max_items <= MAX_ITEMS:
        raise bad_field("max_items", f"must be 0..{MAX_ITEMS}")
    duration = DEFAULT_LEASE if req.lease_duration is None else req.lease_duration
    if not LEASE_RANGE[0] <= duration <= LEASE_RANGE[1]:
        raise bad_field("lease_duration", "must be 1 s .. 1 h")
    wait = req.wait_timeout or 0.0
    if not 0 <= wait <= MAX_WAIT:
        raise bad_field("wait_timeout", f"must be 0 .. {MAX_WAIT:.0f} s")
    kinds = tuple(dict.fromkeys(req.kinds)) or tuple(WORK_KINDS)
    return kinds, req.max_items or 1, int(duration * 1_000_000), wait


def lost(what: str) -> DomainError:
    """ABORTED: the lease expired, another worker holds it, or its work was withdrawn."""
    return DomainError(Reason.LEASE_LOST, f"the lease is no longer held: {what}", {"lease": what})


def _bump(task: Task, state: TaskState, now: int) -> None:
    task.state, task.state_time, task.update_time = state, now, now
    task.version += 1
    task.etag = engine.new_etag(task.uid, task.version)


def _payload(task: Task) -> dict[str, Any]:
    return {
        "command_line": task.command_line,
        "display_name": task.display_name,
        "properties": task.properties,
        "retry_count": task.retry_count,
    }


@dataclass(frozen=True)
class Outcome:
    """How a worker ended an attempt."""

    ok: bool
    retryable: bool
    exit_code: int | None
    # a run's result (RUN_RESULTS) and message
    result: str
    message: str


def _stands(rule: WorkRule, row: WorkRow, job: Job) -> bool:
    """Whether leased work is still wanted: its task running, or its job's run going on
    (a DELETING job waits for it)."""
    if row.task is not None:
        return row.task.state is TaskState.RUNNING
    own = job.previous_state if job.state is State.DELETING else job.state
    return own in rule.lease_job_states


async def _end_run(tx: Tx, job: Job, outcome: Outcome) -> None:
    """A run's end, recorded as RecordRun records one."""
    result = outcome.result or ("SUCCESS" if outcome.ok else "FAILED")
    now = now_us()
    entry = HistoryEntry(
        job_pk=0,
        job_name="",
        status="FAILED" if result == "FAILED" else "COMPLETED",
        state=job.state,
        end_time=now,
        message=outcome.message,
    )
    await end_run(tx, job, entry, now, result)


def _may_retry(rule: WorkRule, job: Job, task: Task) -> bool:
    limit = task_retry_limit(rule, job, task)
    return limit < 0 or task.retry_count < limit


def _overdue(row: WorkRow) -> bool:
    """Whether the running task is past its wall-clock limit (database clock)."""
    return 0 < row.deadline <= row.db_now


class Work:
    """WorkerService's use-cases."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def lease(self, req: LeaseRequest, time_left: float | None = None) -> list[Lease]:
        """LeaseWork: up to `max_items` items, waiting up to `wait_timeout` (and never past
        the call's own deadline, `time_left`) for the first."""
        kinds, count, duration, wait = _checked(req)
        loop = asyncio.get_running_loop()
        if time_left is not None:
            wait = min(wait, max(time_left - 0.05, 0.0))
        deadline = loop.time() + wait
        for _ in range(_MAX_ROUNDS):
            expired: list[str] = []  # the kinds of items taken over from expired leases
            take = functools.partial(
                self._take,
                kinds=kinds,
                count=count,
                owner=req.worker_id,
                duration=duration,
                expired=expired,
            )
            taken = await self.ctx.store.write(take)
            for kind in expired:
                self.ctx.metrics.lease_expired(kind)
            left = deadline - loop.time()
            if taken or left <= 0:
                return taken
            await self.ctx.work_signal.wait(min(left, self.ctx.work_poll_interval))
        return []

    async def _take(
        self,
        tx: Tx,
        kinds: tuple[str, ...],
        count: int,
        owner: str,
        duration: int,
        expired: list[str],
    ) -> list[Lease]:
        now = await tx.db_now()
        taken: list[Lease] = []
        expired.clear()  # a transaction run again (contention) counts afresh
        for kind in kinds:
            states = frozenset(s.value for s in WORK_KINDS[kind].lease_job_states)
            for row in await tx.work_candidates(kind, states, count - len(taken), now):
                if row.lease_token:  # a candidate still holding a token: its lease expired
                    expired.append(kind)
                taken.append(await self._grant(tx, row, owner, now, duration))
            if len(taken) >= count:
                break
        return taken

    async def _grant(self, tx: Tx, row: WorkRow, owner: str, now: int, duration: int) -> Lease:
        attempt = row.attempt + 1
        token = f"{row.work_id}.{attempt}.{secrets.token_urlsafe(12)}"
        task = row.task
        deadline = row.deadline
        if task is not None and task.state is TaskState.ACTIVE:  # the attempt starts now
            limit = wall_clock_us(WORK_KINDS[row.kind], task)
            deadline = now + limit if limit else 0
        await tx.take_work(row.pk, token, owner, attempt, now + duration, duration, deadline)
        if task is None:
            job = await tx.get_job(row.collection_id, row.job_key)
            payload = {"job": row.job_name, "spec": job.spec if job else {}}
            return Lease(row.work_id, row.kind, row.job_name, attempt, token, now + duration,
                         payload)  # fmt: skip
        if task.state is TaskState.ACTIVE:
            _bump(task, TaskState.RUNNING, now_us())
            await tx.update_task(task)
        return Lease(row.work_id, row.kind, task.name, attempt, token, now + duration,
                     _payload(task))  # fmt: skip

    async def _held(self, tx: Tx, token: str) -> WorkRow:
        """The item a live lease token names, or LEASE_LOST."""
        work_id, dot, _ = token.partition(".")
        if not token:
            raise bad_field("lease_token", "required", Reason.REQUIRED_FIELD_MISSING)
        if not dot or not work_id or len(token) > 64:
            raise bad_field("lease_token", "not a lease token")
        row = await tx.get_work(work_id)
        if row is None or not hmac.compare_digest(row.lease_token, token):
            raise lost("another lease replaced it, or its work is gone")
        if row.lease_expire_time <= row.db_now:
            raise lost("it expired")
        return row

    async def _live(self, tx: Tx, token: str) -> tuple[WorkRow, Job]:
        """A held lease whose work still stands (its task running, not requeued,
        terminated or moved by an operator; its run not stopped), with its job."""
        row = await self._held(tx, token)
        job = await tx.get_job(row.collection_id, row.job_key)
        if job is None or not _stands(WORK_KINDS[row.kind], row, job):
            raise lost("its work was withdrawn")
        if _overdue(row):
            raise lost("the task ran past its maxWallClockTime; the service ends it")
        return row, job

    async def heartbeat(self, token: str, progress: str) -> tuple[int, bool]:
        """Heartbeat: the new expiry (µs, database clock) and whether to stop."""
        if len(progress) > MAX_PROGRESS:
            raise bad_field("progress", f"longer than {MAX_PROGRESS} characters")

        async def run(tx: Tx) -> tuple[int, bool]:
            row = await self._held(tx, token)
            expire = row.db_now + row.lease_duration
            if not await tx.renew_work(row.pk, token, expire, progress):
                raise lost("it expired")
            job = await tx.get_job(row.collection_id, row.job_key)
            rule = WORK_KINDS[row.kind]
            stands = job is not None and _stands(rule, row, job) and not _overdue(row)
            return expire, not stands or job is None or job.state in rule.cancel_job_states

        return await self.ctx.store.write(run)

    async def complete(
        self, token: str, exit_code: int, result: str = "", message: str = ""
    ) -> bool:
        """CompleteWork: exit code 0 succeeds; any other fails the attempt (a task is
        retried while its job allows). A run ends with `result` (SUCCESS, WARNING,
        FAILED; else by the exit code). Whether the item is done."""
        if result and result not in RUN_RESULTS:
            raise bad_field("result.result", f"one of {', '.join(RUN_RESULTS)}")
        if len(message) > MAX_MESSAGE:
            raise bad_field("message", f"longer than {MAX_MESSAGE} characters")
        outcome = Outcome(exit_code == 0, True, exit_code, result, message)
        return not await self._end(token, outcome)

    async def fail(self, token: str, retryable: bool, error: str = "") -> bool:
        """FailWork: whether the item will be leased again."""
        if len(error) > MAX_MESSAGE:
            raise bad_field("error", f"longer than {MAX_MESSAGE} characters")
        return await self._end(token, Outcome(False, retryable, None, "FAILED", error))

    async def _end(self, token: str, outcome: Outcome) -> bool:
        async def run(tx: Tx) -> tuple[bool, bool]:
            row, job = await self._live(tx, token)
            if row.task is None:
                if not await tx.end_work(row.pk, token, done=True):
                    raise lost("it expired")
                await _end_run(tx, job, outcome)
                return False, job.state is State.DELETING
            retried = await self._end_task(tx, row, row.task, job, outcome)
            return retried, job.state is State.DELETING

        retried, deleting = await self.ctx.store.write(run)
        self._woken(retried, deleting)
        return retried

    async def _end_task(self, tx: Tx, row: WorkRow, task: Task, job: Job, outcome: Outcome) -> bool:
        ok = outcome.ok
        retry = not ok and outcome.retryable and _may_retry(WORK_KINDS[row.kind], job, task)
        if not await tx.end_work(row.pk, row.lease_token, done=not retry):
            raise lost("it expired")
        now = now_us()
        task.exit_code = outcome.exit_code
        if retry:
            task.retry_count += 1
            await tx.announce_work()
            task.result = None
            _bump(task, TaskState.ACTIVE, now)
        else:
            task.result = TaskResult.SUCCESS if ok else TaskResult.FAILURE
            _bump(task, TaskState.COMPLETED, now)
        await tx.update_task(task)
        await self._settle(tx, job, now)
        if not retry:
            await react(self.ctx, tx, job, task, now)
        return retry

    async def end_overdue(self, limit: int = 100) -> int:
        """End the running tasks past their wall-clock limit (failed, not retried: the
        limit is the task's), with their jobs' reactions, and the jobs past their own time
        limit (their profile's action, e.g. terminate with MaxWallClockTimeExpiry); how
        many ended."""

        async def run(tx: Tx) -> int:
            ended = 0
            for row in await tx.overdue_work(limit):
                job = await tx.get_job(row.collection_id, row.job_key)
                if row.task is None or job is None:
                    continue
                await tx.drop_work(row.pk)  # locked by overdue_work: held or expired
                now = now_us()
                row.task.result, row.task.exit_code = TaskResult.FAILURE, None
                _bump(row.task, TaskState.COMPLETED, now)
                await tx.update_task(row.task)
                await self._settle(tx, job, now)
                await react(self.ctx, tx, job, row.task, now)
                ended += 1
            for job in await tx.overdue_jobs(_LIMITED_STATES, limit):
                limit_rule = rules_for(job.profile).time_limit
                if limit_rule is not None and job.state in limit_rule.live:
                    reason = limit_rule.reason
                    await apply_action(
                        self.ctx, tx, job, limit_rule.action, now_us(), reason=reason
                    )
                    ended += 1
            return ended

        ended = await self.ctx.store.write(run)
        if ended:
            self.ctx.metrics.overdue_ended(ended)
            self._woken(True, True)
        return ended

    async def release(self, token: str) -> None:
        """ReleaseWork: the item waits for another lease; no attempt is counted."""

        async def run(tx: Tx) -> bool:
            row, job = await self._live(tx, token)
            if not await tx.end_work(row.pk, token, done=False):
                raise lost("it expired")
            await tx.announce_work()
            if row.task is not None:
                now = now_us()
                _bump(row.task, TaskState.ACTIVE, now)
                await tx.update_task(row.task)
                await self._settle(tx, job, now)
            return job.state is State.DELETING

        self._woken(True, await self.ctx.store.write(run))

    async def _settle(self, tx: Tx, job: Job, now: int) -> None:
        rules = rules_for(job.profile)
        if await settle(tx, rules, job, now):
            engine.stamp(job, now)
            await tx.update_job(job, engine.job_type_of(rules, job))

    def _woken(self, available: bool, deleting: bool) -> None:
        """Wake the waiting leases if work is available again, and the reaper if a
        deletion waited for this work (not on every completion: a pass costs reads)."""
        if deleting:
            self.ctx.poke()
        if available:
            self.ctx.work_signal.notify()
