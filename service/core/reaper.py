"""The background worker that completes asynchronous deletions in bounded chunks and ends
running tasks past their wall-clock limit."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from jobcontrol.service.core import engine
from jobcontrol.service.core.context import Context
from jobcontrol.service.core.model import Operation, now_us
from jobcontrol.service.core.ports import Tx
from jobcontrol.service.core.profiles import rules_for
from jobcontrol.service.core.work import Work

log = logging.getLogger("jobcontrol.reaper")
REPLY_SWEEP_EVERY = 600.0
OCCURRENCES_KEPT_US = 3600 * 1_000_000


class Reaper:
    """Purges DELETING jobs whose work in flight is gone (or that were forced), a chunk
    per transaction, and marks each Operation done when its last job is gone. Pending
    Operations are stored, so a deletion acknowledged before a crash finishes after it.

    Every replica runs a reaper; each Operation is worked on by one at a time, through its
    lease row `reap:<operation>` (owner, expiry on the database's clock, attempt). The
    first chunk claims the lease; every later chunk renews it fenced on (owner, attempt),
    in the same transaction as its work, so a replica that lost the lease (it stalled past
    the expiry and another took over) writes nothing. A replica that dies mid-purge leaves
    its lease to expire; another then finishes the Operation (a purge is idempotent: it
    deletes what is still there, and the Operation completes once)."""

    def __init__(self, ctx: Context, interval: float) -> None:
        self.ctx = ctx
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._last_sweep = 0.0
        # lease name -> the attempt this replica holds
        self._held: dict[str, int] = {}
        self._work = Work(ctx)
        self._last_overdue = 0.0

    def start(self) -> None:
        """Run in the background until `stop`."""
        self._task = asyncio.create_task(self._loop(), name="reaper")

    async def stop(self) -> None:
        """Stop after the current chunk."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                progressed = await self.run_once()
                progressed |= await self._end_overdue()
                await self._sweep_replies()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep reaping after a transient storage error
                log.exception("reaper pass failed")
                progressed = False
            if not progressed:
                self.ctx.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.ctx.wake.wait(), self.interval)

    async def run_once(self) -> bool:
        """One pass over pending operations; True if anything moved."""
        pending = await self.ctx.store.read(
            lambda tx: tx.list_operations(None, 1000, pending_only=True)
        )
        progressed = False
        for op in pending:
            progressed |= await self.ctx.store.write(functools.partial(self._advance, stale=op))
        return progressed

    async def _lease(self, tx: Tx, name: str) -> int | None:
        """The attempt of `name` this replica holds for this transaction: renewed (fenced)
        if it held it, else claimed; None if another replica holds it."""
        duration = int(self.ctx.lease_duration * 1_000_000)
        held = self._held.get(name)
        if held is not None and await tx.renew_lease(name, self.ctx.replica, held, duration):
            return held
        return await tx.claim_lease(name, self.ctx.replica, duration)

    async def _advance(self, tx: Tx, stale: Operation) -> bool:
        lease = f"reap:{stale.name}"
        attempt = await self._lease(tx, lease)
        if attempt is None:
            self._held.pop(lease, None)
            return False
        self._held[lease] = attempt
        op = await tx.get_operation(stale.name)
        if op is None or op.done:
            await tx.release_lease(lease, self.ctx.replica, attempt)
            self._held.pop(lease, None)
            return False
        budget = self.ctx.purge_chunk
        jobs = await tx.jobs_of_operation(op.name, budget)
        progressed = False
        for job in jobs:
            rules = rules_for(job.profile)
            running = await tx.running_tasks(job.pk or 0)
            if not job.force_delete and engine.work_in_flight(rules, job, running):
                continue
            purged = await tx.purge_children(job.pk or 0, budget)
            budget -= purged
            progressed = progressed or purged > 0
            if budget <= 0:
                break
            await tx.delete_job(job.pk or 0)
            op.purged_count += 1
            budget -= 1
            progressed = True
        if not jobs:
            op.done, op.end_time = True, now_us()
            progressed = True
            await tx.release_lease(lease, self.ctx.replica, attempt)
            self._held.pop(lease, None)
        if progressed:
            await tx.update_operation(op)
        return progressed

    async def _end_overdue(self) -> bool:
        """Tasks and jobs past their time limits end, at most once an interval (a row
        lock, not a lease, keeps two replicas from ending one twice); whether any did."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_overdue < self.interval:
            return False
        self._last_overdue = loop.time()
        return await self._work.end_overdue() > 0

    async def _sweep_replies(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_sweep < REPLY_SWEEP_EVERY:
            return
        self._last_sweep = loop.time()
        before = now_us() - int(self.ctx.idempotency_window * 1_000_000)
        await self.ctx.store.write(lambda tx: tx.expire_replies(before))
        # the dialects' state: expired logon sessions (with their tasks), outcomes as replies
        await self.ctx.store.write(lambda tx: tx.expire_dialect_state(now_us(), before))
        # occurrences that ran an hour ago (kept so that a replica replanning at the same
        # moment cannot plan one again)
        await self.ctx.store.write(lambda tx: tx.expire_occurrences(now_us() - OCCURRENCES_KEPT_US))
