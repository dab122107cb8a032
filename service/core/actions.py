"""Use-cases that move jobs by the profile's action and operator tables: client actions
(pause, resume, toggle, terminate, start, stop, retry) and operator transitions."""

from __future__ import annotations

import uuid

from jobcontrol.service.core import engine, jobs, names, scheduling
from jobcontrol.service.core.context import Context
from jobcontrol.service.core.engine import Preconditions
from jobcontrol.service.core.errors import Reason, bad_field
from jobcontrol.service.core.model import (
    Action,
    Job,
    State,
    TaskDisposition,
    TaskResult,
    TaskState,
    now_us,
)
from jobcontrol.service.core.ports import Tx
from jobcontrol.service.core.profiles import WORK_KINDS, rules_for

# what a disable does to running tasks (WAIT leaves them running)
_DISPOSE = {
    TaskDisposition.REQUEUE: (TaskState.ACTIVE, None),
    TaskDisposition.TERMINATE: (TaskState.COMPLETED, TaskResult.FAILURE),
}


async def _start_run(tx: Tx, job: Job, action: Action, now: int) -> None:
    """An action that starts a run of the job itself (backup start, retry) makes the run
    a work item for workers, replacing the job's last one."""
    for kind, rule in WORK_KINDS.items():
        if rule.profile is job.profile and action in rule.started_by:
            await tx.delete_work_of_job(job.pk or 0, kind)
            await tx.insert_work_item(uuid.uuid4().hex, kind, job.pk or 0, None, now)


async def apply_action(
    ctx: Context,
    tx: Tx,
    job: Job,
    action: Action,
    now: int,
    disposition: TaskDisposition = TaskDisposition.REQUEUE,
    reason: str = "",
) -> None:
    """Apply a client action from the profile's action table to a loaded job and write
    it (a client's request, or the service's own reaction to the job's tasks)."""
    rules = rules_for(job.profile)
    rule = engine.action_rule(rules, job, action)
    running = await tx.running_tasks(job.pk or 0)
    if rule.disposes_tasks and running and disposition in _DISPOSE:
        state, result = _DISPOSE[disposition]
        await tx.move_running_tasks(job.pk or 0, state, result, now)
        running = 0
    engine.apply_sets(rules, job, rule.sets)
    if rule.flips is not None:
        engine.flip(rules, job, rule.flips)
    if rule.reason_path and reason:
        engine.apply_sets(rules, job, ((rule.reason_path, reason),))
    if rule.to is not None:
        waits = rule.via is not None and engine.work_in_flight(rules, job, running)
        engine.transition(job, rule.via if waits and rule.via else rule.to, now)
    engine.refresh_schedule(rules, job)
    engine.stamp(job, now)
    await tx.update_job(job, engine.job_type_of(rules, job))
    await scheduling.replan(ctx, tx, rules, job)
    await _start_run(tx, job, action, now)
    await tx.announce_work()


class Actions:
    """Client actions from the profile's action table, and operator moves from its
    operator table."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def act(
        self,
        action: Action,
        name: str,
        pre: Preconditions,
        request_id: str = "",
        disposition: TaskDisposition = TaskDisposition.REQUEUE,
        reason: str = "",
    ) -> Job:
        """Apply a client action from the profile's action table."""
        collection_id, job_id = names.job_name(name)

        async def run(tx: Tx) -> Job:
            job = await jobs.load_job(tx, collection_id, job_id)
            rules = rules_for(job.profile)
            engine.check_job_conditions(rules, job, pre)
            await apply_action(self.ctx, tx, job, action, now_us(), disposition, reason)
            return engine.strip_input_only(rules, job)

        job = await self.ctx.write(action.value, request_id, run)
        # a resumed job's (or a requeued) task may be leased again
        self.ctx.work_signal.notify()
        return job

    async def transition(self, name: str, target: State, etag: str = "") -> Job:
        """OperatorService.TransitionJob: a move from the profile's operator table."""
        collection_id, job_id = names.job_name(name)

        async def run(tx: Tx) -> Job:
            job = await jobs.load_job(tx, collection_id, job_id)
            rules = rules_for(job.profile)
            if target not in rules.states:
                raise bad_field(
                    "state",
                    f"{target.value} is not a state of {rules.profile.value} jobs",
                    Reason.STATE_NOT_SETTABLE,
                )
            engine.check_conditions(job, Preconditions(etag=etag))
            refusal = rules.operator_refused.get(job.state)
            if refusal is not None:
                raise engine.refused(refusal, job, "a transition")
            if target not in rules.operator_transitions.get(job.state, frozenset()):
                raise engine.refused(
                    Reason.INVALID_STATE_TRANSITION, job, f"moving to {target.value}"
                )
            now = now_us()
            engine.transition(job, target, now)
            engine.refresh_schedule(rules, job)
            engine.stamp(job, now)
            await tx.update_job(job, engine.job_type_of(rules, job))
            await scheduling.replan(self.ctx, tx, rules, job)
            await tx.announce_work()  # e.g. ENABLING -> ACTIVE: its tasks may be leased
            return engine.strip_input_only(rules, job)

        job = await self.ctx.write("TransitionJob", "", run)
        self.ctx.work_signal.notify()
        return job
