"""Use-cases on the child tasks of jobs (profiles with client tasks: batch)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from jobcontrol.service.core import engine, filters, names, pages, task_end
from jobcontrol.service.core.context import Context
from jobcontrol.service.core.errors import DomainError, Reason
from jobcontrol.service.core.jobs import load_job
from jobcontrol.service.core.model import Job, Task, TaskResult, TaskState, now_us
from jobcontrol.service.core.ports import TaskCounts, Tx
from jobcontrol.service.core.profiles import (
    TASK_TRANSITIONS,
    WORK_KINDS,
    ProfileRules,
    rules_for,
)
from jobcontrol.service.core.validation import check_properties


def work_kind_of(job: Job) -> str | None:
    """The kind of worker work a job's tasks are (None: its profile has none)."""
    return next((k for k, rule in WORK_KINDS.items() if rule.profile is job.profile), None)


@dataclass
class TaskPage:
    tasks: list[Task]
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


class Tasks:
    """Child tasks of jobs, and their operator transitions."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def create(self, parent: str, task_id: str, task: Task, request_id: str = "") -> Task:
        """CreateTask: only where the profile has client tasks, not on locked jobs."""
        collection_id, job_id = names.job_name(parent, "parent")
        if task_id:
            names.check_id(task_id, "task_id")
        check_properties(task.properties, "task.properties")

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
            kind = work_kind_of(job)
            if kind is not None:
                task_end.check_task_limits(WORK_KINDS[kind], task.properties)
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
            if kind is not None:
                await tx.insert_work_item(uuid.uuid4().hex, kind, task.job_pk, task.pk, now)
                await tx.announce_work()
            return task

        created = await self.ctx.write("CreateTask", request_id, run)
        self.ctx.work_signal.notify()
        return created

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

    async def list_page(
        self,
        parent: str,
        page_size: int,
        page_token: str,
        filter_text: str = "",
        structured: filters.Node | None = None,
    ) -> TaskPage:
        """ListTasks in id order."""
        collection_id, job_id = names.job_name(parent, "parent")
        size = pages.page_size(page_size)
        tree = filters.both(filters.parse(filter_text, filters.TASK_FIELDS), structured)
        fingerprint = ("tasks", parent, repr(tree))
        after = pages.decode(fingerprint, page_token)

        async def run(tx: Tx) -> list[Task]:
            job = await load_job(tx, collection_id, job_id)
            start = after[0] if after else None
            return await tx.list_tasks(job.pk or 0, job.name, start, size + 1, tree)

        rows = await self.ctx.store.read(run)
        found, token = pages.cut(rows, size, fingerprint, lambda t: [t.task_id])
        return TaskPage(found, token)

    async def count(self, parent: str) -> TaskCounts:
        """CountTasks: the job's tasks by state and result."""
        collection_id, job_id = names.job_name(parent, "parent")

        async def run(tx: Tx) -> TaskCounts:
            job = await load_job(tx, collection_id, job_id)
            return await tx.count_tasks(job.pk or 0)

        return await self.ctx.store.read(run)

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
            if target is TaskState.COMPLETED:
                await task_end.react(self.ctx, tx, job, task, now)
            await tx.announce_work()
            return task

        task = await self.ctx.write("TransitionTask", "", run)
        self.ctx.poke()
        self.ctx.work_signal.notify()
        return task
