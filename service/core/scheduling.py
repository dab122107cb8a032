"""Scheduled jobs that run: each enabled job has its next occurrence planned as a row in
the job's own transaction (`replan`), and the `Scheduler` of every replica claims due
occurrences under leases on their rows, runs the action and records the attempt.

An occurrence runs in attempts: the main action, its retries (`retry_policy`), then the
error action and its retries. Each attempt is leased for the action's timeout plus the
lease duration, so no occurrence fires twice unless a replica dies mid-attempt; then the
attempt runs again once the lease has expired (at least once: targets de-duplicate on
`x-ms-client-request-id`, the occurrence id). Every completion is fenced on (row, owner,
attempt) and written in one transaction with its history entry and the job's counters."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import uuid
from datetime import datetime
from typing import Any

from jobcontrol.service.core import engine
from jobcontrol.service.core.context import Context
from jobcontrol.service.core.model import (
    ActionOutcome,
    HistoryEntry,
    Job,
    Occurrence,
    State,
    now_us,
)
from jobcontrol.service.core.ports import ActionRunner, Tx
from jobcontrol.service.core.profiles import ProfileRules, rules_for

log = logging.getLogger("jobcontrol.scheduler")
MAIN, ERROR = "MAIN", "ERROR"
ACTION_NAMES = {MAIN: "MainAction", ERROR: "ErrorAction"}
# what the metrics are told of an attempt and of an occurrence that ended
SUCCEEDED, FAILED, SKIPPED, LEASE_LOST = "succeeded", "failed", "skipped", "lease_lost"
COMPLETED, FAULTED = "completed", "faulted"
# Decision (issue 15): a job without a retry policy retries every minute, 4 times
DEFAULT_RETRY_INTERVAL = 60.0
DEFAULT_RETRY_COUNT = 4
# occurrences are claimed this far ahead of their due time and fired on time, so that the
# claim's transaction is not part of their lateness (µs)
LOOKAHEAD_US = 1_000_000


async def replan(ctx: Context, tx: Tx, rules: ProfileRules, job: Job) -> None:
    """After a write of a scheduled job: its planned occurrence follows the job (enabled:
    at `status.next_execution_time`; otherwise none). An attempt under way or waiting for
    its retry keeps going; the new definition applies from the next occurrence."""
    if not rules.schedules_runs or job.pk is None:
        return
    await tx.unplan_occurrences(job.pk)
    nxt = job.status.get("next_execution_time")
    if job.state is not State.ENABLED or not nxt or not job.spec.get("action"):
        return  # a job without an action has nothing to run
    expected = _micros(nxt)
    occurrence = Occurrence(
        job_pk=job.pk,
        collection_id=job.collection_id,
        job_key=engine.job_key(rules, job.job_id),
        occurrence_id=uuid.uuid4().hex,
        expected_time=expected,
        due_time=expected,
    )
    if await tx.plan_occurrence(occurrence):
        ctx.schedule_wake.set()


def _micros(rfc3339: str) -> int:
    when = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    return int(when.timestamp()) * 1_000_000 + when.microsecond


def retry_policy(action: dict[str, Any]) -> tuple[int, float]:
    """(retries, interval in seconds) of an action: none for type NONE, else the given
    count and interval with the defaults."""
    policy = action.get("retry_policy") or {}
    if policy.get("retry_type") == "NONE":
        return 0, 0.0
    count = policy.get("retry_count")
    interval = policy.get("retry_interval")
    return (
        DEFAULT_RETRY_COUNT if count is None else int(count),
        DEFAULT_RETRY_INTERVAL if interval is None else engine.duration_seconds(interval),
    )


def _action_of(job: Job, phase: str) -> dict[str, Any]:
    action: dict[str, Any] = job.spec.get("action") or {}
    return action if phase == MAIN else action.get("error_action") or {}


class Scheduler:
    """Claims due occurrences (at most `concurrency` attempts in flight) and runs them."""

    def __init__(
        self, ctx: Context, runner: ActionRunner, concurrency: int = 1024, tick: float = 1.0
    ) -> None:
        self.ctx = ctx
        self.runner = runner
        self.concurrency = concurrency
        self.tick = tick
        self._task: asyncio.Task[None] | None = None
        # attempts in flight, with the occurrence each holds a lease on
        self._running: dict[asyncio.Task[None], Occurrence] = {}

    def start(self) -> None:
        """Run in the background until `stop`."""
        self._task = asyncio.create_task(self._loop(), name="scheduler")

    def in_flight(self) -> int:
        """Attempts running (or claimed ahead of their due time) now."""
        return len(self._running)

    async def stop(self) -> None:
        """Stop claiming and cancel the attempts in flight, releasing their leases so that
        another replica (or this one after a restart) runs them again at once; a lease
        that cannot be released expires."""
        held = list(self._running.values())
        tasks = [t for t in (self._task, *self._running) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for occurrence in held:
            with contextlib.suppress(Exception):
                await self.ctx.store.write(functools.partial(self._release, occurrence=occurrence))

    async def _release(self, tx: Tx, occurrence: Occurrence) -> bool:
        """Give an attempt's lease back (fenced), due as it was."""
        return await tx.finish_attempt(occurrence, self.ctx.replica, done=False)

    async def _loop(self) -> None:
        while True:
            try:
                wait = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep scheduling after a transient storage error
                log.exception("scheduler pass failed")
                wait = self.tick
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.ctx.schedule_wake.wait(), wait)

    async def run_once(self) -> float:
        """Claim what is due and start its attempts; the seconds until the next look."""
        self.ctx.schedule_wake.clear()
        free = self.concurrency - len(self._running)
        if free <= 0:
            return self.tick  # an attempt ending wakes the loop
        due = await self.ctx.store.read(lambda tx: tx.next_due_time())
        now = now_us()
        if due is None:
            return self.tick
        if due > now + LOOKAHEAD_US:
            return min(self.tick, (due - now - LOOKAHEAD_US) / 1_000_000)
        lease_us = int((self.ctx.action_timeout + self.ctx.lease_duration) * 1_000_000)
        lease_us += LOOKAHEAD_US
        claimed = await self.ctx.store.write(
            lambda tx: tx.claim_occurrences(self.ctx.replica, lease_us, free, LOOKAHEAD_US)
        )
        # their jobs in one read, at the claim (up to LOOKAHEAD_US before they are due): a
        # change in that last second applies from the next occurrence; the attempt's
        # record re-reads the job in its write (a job disabled or gone meanwhile ends the
        # occurrence there)
        pks = [o.job_pk for o in claimed]
        found = await self.ctx.store.read(lambda tx: tx.jobs_by_pk(pks)) if claimed else {}
        for occurrence in claimed:
            job = found.get(occurrence.job_pk)
            task = asyncio.create_task(self._attempt(occurrence, job))
            self._running[task] = dataclasses.replace(occurrence)  # as claimed
            task.add_done_callback(self._ended)
        return 0.0 if claimed else min(self.tick, 0.05)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        self.ctx.schedule_wake.set()

    async def _attempt(self, occurrence: Occurrence, job: Job | None) -> None:
        early = (occurrence.due_time - now_us()) / 1_000_000
        if early > 0:  # claimed ahead: fire on time
            await asyncio.sleep(early)
        if self.ctx.tracing is None:
            await self._run_attempt(occurrence, job)
            return
        attributes = {
            "jobcontrol.occurrence_id": occurrence.occurrence_id,
            "jobcontrol.phase": occurrence.phase,
        }
        if job is not None:
            attributes["jobcontrol.job"] = f"{job.collection_id}/{job.job_id}"
        with self.ctx.tracing.attempt(attributes):
            await self._run_attempt(occurrence, job)

    async def _run_attempt(self, occurrence: Occurrence, job: Job | None) -> None:
        try:
            outcome: ActionOutcome | None = None
            start = end = now_us()
            phase = occurrence.phase
            if job is not None and job.pk == occurrence.job_pk and job.state is State.ENABLED:
                headers = {
                    "x-ms-scheduler-jobid": job.job_id,
                    "x-ms-scheduler-jobcollectionid": job.collection_id,
                    "x-ms-scheduler-expected-execution-time": engine.utc_string(
                        occurrence.expected_time
                    ),
                    "x-ms-client-request-id": occurrence.occurrence_id,
                }
                self.ctx.metrics.lateness((start - occurrence.due_time) / 1_000_000)
                if self.ctx.tracing is None:
                    outcome = await self.runner.run(
                        _action_of(job, occurrence.phase), headers, self.ctx.action_timeout
                    )
                else:
                    with self.ctx.tracing.action(headers):
                        outcome = await self.runner.run(
                            _action_of(job, occurrence.phase), headers, self.ctx.action_timeout
                        )
                end = now_us()
            finish = functools.partial(
                self._finish, occurrence=occurrence, outcome=outcome, start=start, end=end
            )
            recorded, ended = await self.ctx.store.write(finish)
            self.ctx.metrics.attempt(phase, recorded)
            if ended:
                self.ctx.metrics.occurrence(ended)
        except asyncio.CancelledError:
            raise
        except Exception:  # the lease expires and the attempt runs again
            log.exception("attempt of occurrence %s failed", occurrence.occurrence_id)

    async def _finish(
        self,
        tx: Tx,
        occurrence: Occurrence,
        outcome: ActionOutcome | None,
        start: int,
        end: int,
    ) -> tuple[str, str]:
        """Record one attempt (None: the job was disabled, ended or deleted meanwhile, so
        the occurrence ends without running), fenced on the lease; what happened (for the
        metrics): the attempt's outcome, and the occurrence's if it ended. The next step is
        worked out on a copy: a transaction run again (PostgreSQL contention) starts from
        the occurrence as claimed, not from the last run's step."""
        occurrence = dataclasses.replace(occurrence)
        job = await tx.get_job(occurrence.collection_id, occurrence.job_key)
        if job is None or job.pk != occurrence.job_pk or job.state is not State.ENABLED:
            await tx.finish_attempt(occurrence, self.ctx.replica, done=True)
            return SKIPPED, SKIPPED
        if outcome is None:  # enabled again between the read and now: run it again
            occurrence.due_time = now_us()
            await tx.finish_attempt(occurrence, self.ctx.replica, done=False)
            return SKIPPED, ""
        attempt = (occurrence.phase, occurrence.retry_count)
        done, faulted = self._next_step(job, occurrence, outcome, end)
        if not await tx.finish_attempt(occurrence, self.ctx.replica, done):
            return LEASE_LOST, ""  # another replica owns this attempt now
        rules = rules_for(job.profile)
        status = job.status
        entry = HistoryEntry(
            job_pk=job.pk or 0,
            job_name=job.name,
            status="COMPLETED" if outcome.ok else "FAILED",
            state=job.state,
            timestamp=end,
            start_time=start,
            end_time=end,
            message=outcome.message,
            retry_count=attempt[1],
            repeat_count=int(status.get("occurrence_count") or 0),
            action_name=ACTION_NAMES[attempt[0]],
            expected_time=occurrence.expected_time,
        )
        entry.pk = await tx.insert_history(entry)
        engine.count_run(rules, job, entry, end)
        if attempt == (MAIN, 0):  # the occurrence's actual start
            status["last_start_time"] = engine.utc_string(start)
        if done:
            status["occurrence_count"] = int(status.get("occurrence_count") or 0) + 1
            engine.refresh_schedule(rules, job)
            if "next_execution_time" not in status:  # nothing left: the job ends
                engine.transition(job, State.FAULTED if faulted else State.COMPLETED, end)
            elif faulted:  # a recurring job keeps running and counts the fault
                status["faulted_count"] = int(status.get("faulted_count") or 0) + 1
        engine.stamp(job, end)
        await tx.update_job(job, engine.job_type_of(rules, job))
        if done:
            await replan(self.ctx, tx, rules, job)
        recorded = SUCCEEDED if outcome.ok else FAILED
        return recorded, (FAULTED if faulted else COMPLETED) if done else ""

    @staticmethod
    def _next_step(
        job: Job, occurrence: Occurrence, outcome: ActionOutcome, end: int
    ) -> tuple[bool, bool]:
        """(done, faulted) after this attempt; a retry or the error action moves the
        occurrence's phase, retry count and due time."""
        if outcome.ok:
            return True, False
        retries, interval = retry_policy(_action_of(job, occurrence.phase))
        if occurrence.retry_count < retries:
            occurrence.retry_count += 1
            occurrence.due_time = end + int(interval * 1_000_000)
            return False, False
        if occurrence.phase == MAIN and _action_of(job, ERROR):
            occurrence.phase, occurrence.retry_count, occurrence.due_time = ERROR, 0, end
            return False, False
        return True, True
