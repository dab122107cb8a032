"""Use-cases on jobs: create, read, list, update and delete, under the profile rules."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

from jobcontrol.service.core import documents, engine, filters, names, pages, scheduling, task_end
from jobcontrol.service.core.collections import check_collection, insert_collection, load_collection
from jobcontrol.service.core.context import Context
from jobcontrol.service.core.engine import Preconditions
from jobcontrol.service.core.errors import DomainError, Reason, bad_field
from jobcontrol.service.core.model import Collection, Job, Operation, State, now_us
from jobcontrol.service.core.ports import JobQuery, TaskStatistics, Tx
from jobcontrol.service.core.profiles import DeleteMode, ProfileRules, rules_for
from jobcontrol.service.core.validation import check_document

_ORDERS = {"name": "job_key", "create_time": "create_time", "update_time": "update_time"}


@dataclass
class JobPage:
    """One page of ListJobs."""

    jobs: list[Job]
    next_page_token: str


job_key = engine.job_key


async def load_job(tx: Tx, collection_id: str, job_id: str) -> Job:
    """The job (by its profile's key), or COLLECTION_NOT_FOUND / JOB_NOT_FOUND."""
    job = await tx.get_job(collection_id, job_id)
    if job is None:
        job = await tx.get_job(collection_id, job_id.lower())
        if job is not None and not rules_for(job.profile).case_insensitive_ids:
            job = None
    if job is None:
        await load_collection(tx, collection_id)
        name = f"collections/{collection_id}/jobs/{job_id}"
        raise DomainError(Reason.JOB_NOT_FOUND, f"{name} not found", {"job": name}, resource=name)
    return job


async def with_statistics(tx: Tx, jobs: list[Job]) -> list[Job]:
    """The jobs with their task statistics in their profile's statistics field (copies;
    nothing stored), from one aggregate query over their tasks."""
    kept = [j for j in jobs if rules_for(j.profile).statistics_path]
    if not kept:
        return jobs
    found = await tx.task_statistics([j.pk or 0 for j in kept])
    out: list[Job] = []
    for job in jobs:
        path = rules_for(job.profile).statistics_path
        if path is None:
            out.append(job)
            continue
        figures = found.get(job.pk or 0, TaskStatistics())
        statistics = {
            "num_succeeded_tasks": figures.succeeded,
            "num_failed_tasks": figures.failed,
            "num_task_retries": figures.retries,
        }
        out.append(dataclasses.replace(job, spec={**job.spec, path: statistics}))
    return out


def parse_order(order_by: str) -> tuple[str, bool]:
    """`name`, `create_time` or `update_time`, optionally followed by `desc`."""
    words = order_by.replace(",", " ").split()
    if not words:
        return "job_key", False
    descending = len(words) == 2 and words[1].lower() == "desc"
    ascending = len(words) == 2 and words[1].lower() == "asc"
    if (
        words[0] not in _ORDERS
        or len(words) > 2
        or (len(words) == 2 and not descending | ascending)
    ):
        raise bad_field("order_by", f"unsupported order {order_by!r}")
    return _ORDERS[words[0]], descending


class Jobs:
    """Job use-cases."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def create(
        self,
        parent: str,
        job_id: str,
        doc: dict[str, Any],
        request_id: str = "",
        pre: Preconditions = Preconditions(),  # noqa: B008 - frozen, shared safely
        template: Collection | None = None,
    ) -> Job:
        """CreateJob: the parent (created from `template` if missing), the conditions on
        the job it would replace, the profile's rules and quotas, then the insert; all in
        one transaction."""
        collection_id = names.collection_name(parent, "parent")
        if template is not None:
            check_collection(template, "collection_template")
        owner = self.ctx.owner()

        async def run(tx: Tx) -> Job:
            if template is not None and await tx.get_collection(collection_id) is None:
                await insert_collection(tx, collection_id, template, owner)
            return await self.insert(tx, collection_id, job_id, doc, pre)

        return await self.ctx.write("CreateJob", request_id, run)

    async def insert(
        self,
        tx: Tx,
        collection_id: str,
        job_id: str,
        doc: dict[str, Any],
        pre: Preconditions = Preconditions(),  # noqa: B008 - frozen, shared safely
    ) -> Job:
        """The body of CreateJob (also used by UpdateJob with allow_missing)."""
        collection = await load_collection(tx, collection_id)
        rules = rules_for(collection.profile)
        job_id = names.check_id(job_id, "job_id", rules.id_pattern) if job_id else uuid.uuid4().hex
        engine.check_spec_key(rules, doc, "job")
        check_document(doc, rules.spec_key)
        engine.check_required(rules, doc)
        engine.check_values(rules, doc)
        now = now_us()
        key = job_key(rules, job_id)
        existing = await tx.get_job(collection_id, key)
        if existing is not None:
            engine.check_job_conditions(rules, existing, pre)
        else:
            engine.check_conditions(None, pre, f"collections/{collection_id}/jobs/{job_id}")
        if existing is not None and existing.state not in rules.replace_existing_in:
            raise DomainError(
                Reason.JOB_ALREADY_EXISTS,
                f"{existing.name} already exists",
                {"job": existing.name},
                resource=existing.name,
            )
        job = Job(
            collection_id=collection_id,
            job_id=existing.job_id if existing else job_id,
            profile=rules.profile,
            state=rules.initial,
            uid=existing.uid if existing else uuid.uuid4().hex,
            state_time=now,
            create_time=existing.create_time if existing else now,
            version=existing.version if existing else 0,
            pk=existing.pk if existing else None,
        )
        self._fill(rules, job, doc)
        requested = doc.get("state")
        if requested and State[requested] is not rules.initial:
            engine.check_client_state(rules, job, State[requested], doc)
            job.state = State[requested]
        if existing is None:
            await self._check_quota(tx, rules, collection)
        engine.check_recurrence_quota(
            engine.effective_quota(rules, collection), job.spec, collection
        )
        if rules.schedules_runs:
            engine.check_min_intervals(job.spec, self.ctx.scheduler_min_interval, collection)
        engine.refresh_schedule(rules, job)
        engine.stamp(job, now)
        if existing is None:
            job.pk = await tx.insert_job(job, key, engine.job_type_of(rules, job))
        else:
            await tx.purge_children(existing.pk or 0, 1_000_000)
            await tx.update_job(job, engine.job_type_of(rules, job))
        await scheduling.replan(self.ctx, tx, rules, job)
        return engine.strip_input_only(rules, job)

    @staticmethod
    def _fill(rules: ProfileRules, job: Job, doc: dict[str, Any]) -> None:
        job.display_name = doc.get("display_name") or ""
        job.labels = dict(doc.get("labels") or {})
        job.spec = dict(doc.get(rules.spec_key) or {})
        if rules.statistics_path:
            # computed when read (FULL), never stored: a client's is ignored (AIP-203)
            job.spec.pop(rules.statistics_path, None)

    @staticmethod
    async def _check_quota(tx: Tx, rules: ProfileRules, collection: Collection) -> None:
        quota = engine.effective_quota(rules, collection)
        limit = quota.max_job_count
        if limit is not None and await tx.count_jobs(collection.collection_id) >= limit:
            raise engine.quota_error(collection, "max_job_count", limit)
        if quota.max_active_jobs is not None:
            active = await tx.count_jobs(collection.collection_id, excluding=rules.final)
            if active >= quota.max_active_jobs:
                raise engine.quota_error(collection, "max_active_jobs", quota.max_active_jobs)

    async def get(self, name: str, full: bool = False) -> Job:
        """GetJob; `full` (JOB_VIEW_FULL) adds the task statistics its profile keeps."""
        collection_id, job_id = names.job_name(name)

        async def run(tx: Tx) -> Job:
            job = await load_job(tx, collection_id, job_id)
            if full:
                (job,) = await with_statistics(tx, [job])
            return engine.strip_input_only(rules_for(job.profile), job)

        return await self.ctx.store.read(run)

    async def list_page(
        self,
        parent: str,
        page_size: int,
        page_token: str,
        filter_text: str,
        order_by: str,
        skip: int = 0,
        structured: filters.Node | None = None,
        allow_missing: bool = False,
        full: bool = False,
    ) -> JobPage:
        """ListJobs: keyset pagination with opaque tokens bound to the query; with
        `allow_missing` a missing collection lists as empty; `full` as in `get`, one
        query for the page."""
        collection_id = names.collection_name(parent, "parent")
        size = pages.page_size(page_size)
        tree = filters.both(filters.parse(filter_text), structured)
        order, descending = parse_order(order_by)
        fingerprint = ("jobs", collection_id, repr(tree), order, descending)
        kinds: tuple[type, ...] = (str,) if order == "job_key" else (int, str)
        after = pages.decode(fingerprint, page_token, kinds)
        query = JobQuery(
            collection_id, tree, order, descending, after, size + 1, pages.skip_count(skip)
        )

        async def run(tx: Tx) -> list[Job]:
            if allow_missing and await tx.get_collection(collection_id) is None:
                return []
            await load_collection(tx, collection_id)
            found = await tx.list_jobs(query)
            return await with_statistics(tx, found) if full else found

        def sort_key(last: Job) -> list[Any]:
            key = job_key(rules_for(last.profile), last.job_id)
            return [key] if order == "job_key" else [getattr(last, order), key]

        rows, token = pages.cut(await self.ctx.store.read(run), size, fingerprint, sort_key)
        return JobPage([engine.strip_input_only(rules_for(j.profile), j) for j in rows], token)

    async def update(
        self,
        name: str,
        patch: dict[str, Any],
        paths: list[str],
        pre: Preconditions,
        allow_missing: bool = False,
        request_id: str = "",
    ) -> Job:
        """UpdateJob: merge, masked or replace, under the profile's field and state rules."""
        collection_id, job_id = names.job_name(name, "job.name")

        async def run(tx: Tx) -> Job:
            try:
                job = await load_job(tx, collection_id, job_id)
            except DomainError as exc:
                if allow_missing and exc.reason is Reason.JOB_NOT_FOUND:
                    return await self.insert(tx, collection_id, job_id, patch, pre)
                raise
            return await self._update(tx, job, patch, paths, pre)

        return await self.ctx.write("UpdateJob", request_id, run)

    async def _update(
        self, tx: Tx, job: Job, patch: dict[str, Any], paths: list[str], pre: Preconditions
    ) -> Job:
        rules = rules_for(job.profile)
        engine.check_spec_key(rules, patch, "job")
        resolved = documents.resolve_mask(rules, paths)
        engine.check_job_conditions(rules, job, pre)
        engine.check_not_locked(rules, job, "update")
        old = engine.document(rules, job)
        new = documents.apply_paths(old, patch, [p for p in resolved if p != "state"])
        # what the job would be is judged first (bad input), then who may change what when
        check_document(new, rules.spec_key)
        engine.check_required(rules, new)
        engine.check_values(rules, new, old)
        engine.check_field_changes(rules, job, old, new, resolved)
        requested = patch.get("state") if "state" in resolved else None
        target = State[requested] if requested else job.state
        if requested:  # a state the client names is checked even when it is the current one
            engine.check_client_state(rules, job, target, new)
        if new == old and target is job.state:
            return engine.strip_input_only(rules, job)  # nothing changes: nothing is written
        new_spec = new.get(rules.spec_key) or {}
        if new_spec.get("recurrence") != job.spec.get("recurrence"):
            collection = await load_collection(tx, job.collection_id)
            quota = engine.effective_quota(rules, collection)
            engine.check_recurrence_quota(quota, new_spec, collection)
        if rules.schedules_runs and any(
            new_spec.get(key) != job.spec.get(key) for key in ("recurrence", "action")
        ):
            collection = await load_collection(tx, job.collection_id)
            engine.check_min_intervals(new_spec, self.ctx.scheduler_min_interval, collection)
        now = now_us()
        # what the job runs changes only with its spec or state (not with labels or name)
        runs_change = target is not job.state or new_spec != job.spec
        ends_when_done = task_end.ends_when_done(job)
        self._fill(rules, job, new)
        engine.transition(job, target, now)
        engine.refresh_schedule(rules, job)
        engine.stamp(job, now)
        await tx.update_job(job, engine.job_type_of(rules, job))
        if runs_change:
            await scheduling.replan(self.ctx, tx, rules, job)
        if not ends_when_done and task_end.ends_when_done(job):
            # told to end once its tasks are done: it may be so already
            await task_end.react(self.ctx, tx, job, None, now)
        return engine.strip_input_only(rules, job)

    async def delete(
        self,
        name: str,
        pre: Preconditions,
        force: bool = False,
        allow_missing: bool = False,
        request_id: str = "",
    ) -> Operation:
        """DeleteJob: immediate (a done Operation) or DELETING plus a pending Operation."""
        collection_id, job_id = names.job_name(name)

        async def run(tx: Tx) -> Operation:
            now = now_us()
            try:
                job = await load_job(tx, collection_id, job_id)
            except DomainError as exc:
                if allow_missing and exc.reason is Reason.JOB_NOT_FOUND:
                    op = new_operation("delete", name, collection_id, now, done=True)
                    await tx.insert_operation(op)
                    return op
                raise
            rules = rules_for(job.profile)
            engine.check_job_conditions(rules, job, pre)
            engine.check_delete(rules, job)
            asynchronous = rules.delete_mode is DeleteMode.ASYNC
            op = new_operation("delete", job.name, collection_id, now, done=not asynchronous)
            op.cancellable = asynchronous and rules.delete_cancellable
            op.total_count = 1
            if asynchronous:
                engine.transition(job, State.DELETING, now)
                job.delete_time, job.delete_operation, job.force_delete = now, op.name, force
                engine.stamp(job, now)
                await tx.update_job(job, engine.job_type_of(rules, job))
            else:
                await tx.purge_children(job.pk or 0, 1_000_000_000)
                await tx.delete_job(job.pk or 0)
                op.purged_count = 1
            await tx.insert_operation(op)
            return op

        op = await self.ctx.write("DeleteJob", request_id, run)
        if not op.done:
            self.ctx.poke()
        return op


def new_operation(
    verb: str, target: str, collection_id: str, now: int, done: bool = False
) -> Operation:
    """A new Operation record."""
    return Operation(
        name=f"operations/{uuid.uuid4().hex}",
        verb=verb,
        target=target,
        collection_id=collection_id,
        done=done,
        create_time=now,
        end_time=now if done else None,
    )
