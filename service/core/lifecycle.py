"""Use-cases that move jobs: client actions, operator transitions, tasks and runs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from jobcontrol.service.core import engine, filters, names, pages
from jobcontrol.service.core.context import Context
from jobcontrol.service.core.engine import Preconditions
from jobcontrol.service.core.errors import DomainError, Reason, bad_field
from jobcontrol.service.core.jobs import load_job
from jobcontrol.service.core.model import (
    Action,
    HistoryEntry,
    Job,
    State,
    Task,
    TaskDisposition,
    TaskResult,
    TaskState,
    now_us,
)
from jobcontrol.service.core.ports import Tx
from jobcontrol.service.core.profiles import TASK_TRANSITIONS, ProfileRules, rules_for

_DISPOSE = {
    TaskDisposition.REQUEUE: (TaskState.ACTIVE, None),
    TaskDisposition.TERMINATE: (TaskState.COMPLETED, TaskResult.FAILURE),
}
_RUN_RESULT = {"COMPLETED": "SUCCESS", "FAILED": "FAILED"}


@dataclass
class TaskPage:
    tasks: list[Task]
    next_page_token: str


@dataclass
class HistoryPage:
    entries: list[HistoryEntry]
    next_page_token: str


async def settle(tx: Tx, rules: ProfileRules, job: Job, now: int) -> bool:
    """Move a job out of a transient state once its work in flight is gone."""
    target = engine.settle_target(rules, job.state)
    if target is None:
        return False
    if engine.work_in_flight(rules, job, await tx.running_tasks(job.pk or 0)):
        return False
    engine.transition(job, target, now)
    return True


class Lifecycle:
    """Client actions (pause, resume, terminate, start, stop, retry) and operator moves."""

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
            job = await load_job(tx, collection_id, job_id)
            rules = rules_for(job.profile)
            engine.check_conditions(job, pre)
            rule = engine.action_rule(rules, job, action)
            now = now_us()
            running = await tx.running_tasks(job.pk or 0)
            if rule.disposes_tasks and running and disposition in _DISPOSE:
                state, result = _DISPOSE[disposition]
                await tx.move_running_tasks(job.pk or 0, state, result, now)
                running = 0
            engine.apply_sets(rules, job, rule.sets)
            if rule.reason_path and reason:
                engine.apply_sets(rules, job, ((rule.reason_path, reason),))
            if rule.to is not None:
                waits = rule.via is not None and engine.work_in_flight(rules, job, running)
                engine.transition(job, rule.via if waits and rule.via else rule.to, now)
            engine.stamp(job, now)
            await tx.update_job(job, engine.job_type_of(rules, job))
            return engine.strip_input_only(rules, job)

        return await self.ctx.write(action.value, request_id, run)

    async def transition(self, name: str, target: State, etag: str = "") -> Job:
        """OperatorService.TransitionJob: a move from the profile's operator table."""
        collection_id, job_id = names.job_name(name)

        async def run(tx: Tx) -> Job:
            job = await load_job(tx, collection_id, job_id)
            rules = rules_for(job.profile)
            if target not in rules.states:
                raise bad_field(
                    "state",
                    f"{target.value} is not a state of {rules.profile.value} jobs",
                    Reason.STATE_NOT_SETTABLE,
                )
            engine.check_conditions(job, Preconditions(etag=etag))
            if job.state is State.DELETING:
                raise engine.refused(Reason.JOB_BEING_DELETED, job, "a transition")
            if target not in rules.operator_transitions.get(job.state, frozenset()):
                raise engine.refused(
                    Reason.INVALID_STATE_TRANSITION, job, f"moving to {target.value}"
                )
            now = now_us()
            engine.transition(job, target, now)
            engine.refresh_schedule(rules, job)
            engine.stamp(job, now)
            await tx.update_job(job, engine.job_type_of(rules, job))
            return engine.strip_input_only(rules, job)

        return await self.ctx.write("TransitionJob", "", run)

    async def record_run(self, parent: str, entry: HistoryEntry) -> HistoryEntry:
        """OperatorService.RecordRun: history, counters, and the end of a run."""
        collection_id, job_id = names.job_name(parent, "parent")

        async def run(tx: Tx) -> HistoryEntry:
            job = await load_job(tx, collection_id, job_id)
            rules = rules_for(job.profile)
            now = now_us()
            entry.job_pk, entry.job_name, entry.state, entry.timestamp = (
                job.pk or 0,
                job.name,
                job.state,
                now,
            )
            entry.pk = await tx.insert_history(entry)
            status = job.status
            status["execution_count"] = int(status.get("execution_count", 0)) + 1
            if entry.status == "FAILED":
                status["failure_count"] = int(status.get("failure_count", 0)) + 1
            status["last_execution_time"] = engine.utc_string(entry.end_time or now)
            if rules.run_result_path and entry.status in _RUN_RESULT:
                engine.apply_sets(rules, job, ((rules.run_result_path, _RUN_RESULT[entry.status]),))
            if job.state in rules.run_end:
                engine.transition(job, rules.run_end[job.state], now)
            elif job.state is State.DELETING and job.previous_state in rules.run_end:
                job.previous_state = rules.run_end[job.previous_state or job.state]
            engine.refresh_schedule(rules, job)
            engine.stamp(job, now)
            await tx.update_job(job, engine.job_type_of(rules, job))
            return entry

        result = await self.ctx.write("RecordRun", "", run)
        self.ctx.poke()
        return result

    async def list_history(
        self, parent: str, page_size: int, page_token: str, filter_text: str, skip: int = 0
    ) -> HistoryPage:
        """ListJobHistory, newest first."""
        collection_id, job_id = names.job_name(parent, "parent")
        size = pages.page_size(page_size)
        tree = filters.parse(filter_text, filters.HISTORY_FIELDS)
        fingerprint = ("history", parent, filter_text)
        after = pages.decode(fingerprint, page_token, (int,))

        async def run(tx: Tx) -> list[HistoryEntry]:
            job = await load_job(tx, collection_id, job_id)
            start = int(after[0]) if after else None
            return await tx.list_history(
                job.pk or 0, job.name, tree, start, size + 1, pages.skip_count(skip)
            )

        rows = await self.ctx.store.read(run)
        token = ""
        if len(rows) > size:
            rows = rows[:size]
            token = pages.encode(fingerprint, [rows[-1].pk])
        return HistoryPage(rows, token)


class Tasks:
    """Child tasks of jobs (batch), and their operator transitions."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def create(self, parent: str, task_id: str, task: Task, request_id: str = "") -> Task:
        """CreateTask: only where the profile has client tasks, not on locked jobs."""
        collection_id, job_id = names.job_name(parent, "parent")
        if task_id:
            names.check_id(task_id, "task_id")

        async def run(tx: Tx) -> Task:
            job = await load_job(tx, collection_id, job_id)
            rules = rules_for(job.profile)
            if not rules.client_tasks:
                raise DomainError(
                    Reason.OPERATION_NOT_SUPPORTED,
                    f"{rules.profile.value} jobs have no tasks",
                    {"profile": rules.profile.value, "operation": "CREATE_TASK"},
                    resource=job.name,
                )
            engine.check_not_locked(rules, job, "adding a task")
            tid = task_id or uuid.uuid4().hex
            if await tx.get_task(job.pk or 0, job.name, tid) is not None:
                name = f"{job.name}/tasks/{tid}"
                raise DomainError(
                    Reason.TASK_ALREADY_EXISTS,
                    f"{name} already exists",
                    {"task": name},
                    resource=name,
                )
            now = now_us()
            task.job_pk, task.job_name, task.task_id = job.pk or 0, job.name, tid
            task.uid, task.state, task.result = uuid.uuid4().hex, TaskState.ACTIVE, None
            task.create_time = task.update_time = task.state_time = now
            task.version = 1
            task.etag = engine.new_etag(task.uid, 1)
            task.pk = await tx.insert_task(task)
            return task

        return await self.ctx.write("CreateTask", request_id, run)

    async def _load(self, tx: Tx, name: str) -> tuple[Job, Task]:
        collection_id, job_id, task_id = names.task_name(name)
        job = await load_job(tx, collection_id, job_id)
        task = await tx.get_task(job.pk or 0, job.name, task_id)
        if task is None:
            raise DomainError(
                Reason.TASK_NOT_FOUND, f"{name} not found", {"task": name}, resource=name
            )
        return job, task

    async def get(self, name: str) -> Task:
        """GetTask."""
        _, task = await self.ctx.store.read(lambda tx: self._load(tx, name))
        return task

    async def list_page(self, parent: str, page_size: int, page_token: str) -> TaskPage:
        """ListTasks in id order."""
        collection_id, job_id = names.job_name(parent, "parent")
        size = pages.page_size(page_size)
        fingerprint = ("tasks", parent)
        after = pages.decode(fingerprint, page_token)

        async def run(tx: Tx) -> list[Task]:
            job = await load_job(tx, collection_id, job_id)
            return await tx.list_tasks(job.pk or 0, job.name, after[0] if after else None, size + 1)

        rows = await self.ctx.store.read(run)
        token = ""
        if len(rows) > size:
            rows = rows[:size]
            token = pages.encode(fingerprint, [rows[-1].task_id])
        return TaskPage(rows, token)

    async def transition(self, name: str, target: TaskState, result: TaskResult | None) -> Task:
        """OperatorService.TransitionTask; the last running task lets its job settle."""

        async def run(tx: Tx) -> Task:
            job, task = await self._load(tx, name)
            if target not in TASK_TRANSITIONS.get(task.state, frozenset()):
                raise DomainError(
                    Reason.INVALID_STATE_TRANSITION,
                    f"task {name} cannot move from {task.state.value} to {target.value}",
                    {"task": name, "state": task.state.value},
                    resource=name,
                )
            now = now_us()
            task.state, task.state_time, task.update_time = target, now, now
            task.result = (result or TaskResult.SUCCESS) if target is TaskState.COMPLETED else None
            task.version += 1
            task.etag = engine.new_etag(task.uid, task.version)
            await tx.update_task(task)
            rules = rules_for(job.profile)
            if await settle(tx, rules, job, now):
                engine.stamp(job, now)
                await tx.update_job(job, engine.job_type_of(rules, job))
            return task

        task = await self.ctx.write("TransitionTask", "", run)
        self.ctx.poke()
        return task
