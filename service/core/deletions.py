"""Deletions of many jobs: DeleteJobs (delete-all and filtered) and DeleteCollection, in
bounded chunks, each chunk its own transaction."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from jobcontrol.service.core import engine, filters, names
from jobcontrol.service.core.collections import load_collection
from jobcontrol.service.core.context import Context
from jobcontrol.service.core.engine import Preconditions
from jobcontrol.service.core.errors import DomainError
from jobcontrol.service.core.jobs import new_operation
from jobcontrol.service.core.model import Job, Operation, State, now_us
from jobcontrol.service.core.ports import JobQuery, PurgePage, Tx
from jobcontrol.service.core.profiles import DeleteMode, rules_for


class Deletions:
    """DeleteJobs and DeleteCollection."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def delete_jobs(
        self,
        parent: str,
        filter_text: str,
        force: bool,
        request_id: str = "",
        structured: filters.Node | None = None,
    ) -> Operation:
        """Immediate profiles purge before replying (a done Operation); asynchronous ones
        mark every match DELETING and the reaper completes the Operation. Jobs the profile
        does not let be deleted (its delete rules) are left alone."""
        collection_id = names.collection_name(parent, "parent")
        tree = filters.both(filters.parse(filter_text), structured)
        if request_id:
            prior = await self.ctx.replayed("DeleteJobs", request_id)
            if prior is not None:
                return prior  # type: ignore[no-any-return]
        collection = await self.ctx.store.read(lambda tx: load_collection(tx, collection_id))
        rules = rules_for(collection.profile)
        op = new_operation("deleteJobs", parent, collection_id, now_us())
        op.result_kind = "delete_jobs"
        asynchronous = rules.delete_mode is DeleteMode.ASYNC
        if not asynchronous:  # purged in the database, no job read into Python
            states = engine.deletable_states(rules)  # None: every state (no condition)
            page = PurgePage(collection_id, tree, None, self.ctx.purge_chunk,
                             None if states == rules.states else states,
                             rules.not_deletable_types)  # fmt: skip
            while True:
                count, last = await self.ctx.store.write(partial(_purge, page=page))
                op.total_count += count
                if count < page.limit:
                    break
                page = replace(page, after=last)
        after: list[object] | None = None
        while asynchronous:
            query = JobQuery(collection_id, tree, "job_key", False, after, self.ctx.purge_chunk)

            async def mark(tx: Tx, query: JobQuery = query) -> tuple[int, list[Job]]:
                jobs = await tx.list_jobs(query)
                doomed = [job for job in jobs if _deletable(job)]
                for job in doomed:
                    await _mark(tx, job, op, force, now_us())
                return len(doomed), jobs

            count, jobs = await self.ctx.store.write(mark)
            op.total_count += count
            if len(jobs) < self.ctx.purge_chunk:
                break
            last_id = jobs[-1].job_id
            after = [last_id.lower() if rules.case_insensitive_ids else last_id]
        if not asynchronous or op.total_count == 0:
            op.done, op.end_time, op.purged_count = True, now_us(), op.total_count
        result = await self.ctx.write("DeleteJobs", request_id, lambda tx: _insert(tx, op))
        if not result.done:
            self.ctx.poke()
        return result

    async def delete_collection(
        self, name: str, pre: Preconditions, allow_missing: bool, request_id: str = ""
    ) -> Operation:
        """Delete the collection and every job in it (no lifecycle checks: it all goes).
        The conditions are checked in the transaction of the first chunk, before anything
        is purged."""
        collection_id = names.collection_name(name)
        if request_id:
            prior = await self.ctx.replayed("DeleteCollection", request_id)
            if prior is not None:
                return prior  # type: ignore[no-any-return]
        op = new_operation("deleteCollection", name, collection_id, now_us())
        page = PurgePage(collection_id, None, None, self.ctx.purge_chunk)  # everything goes

        async def first(tx: Tx) -> tuple[int, str] | None:
            collection = await tx.get_collection(collection_id)
            if collection is None and allow_missing:
                return None
            engine.check_conditions(await load_collection(tx, collection_id), pre)
            return await tx.purge_page(page)

        purged = await self.ctx.store.write(first)
        if purged is None:
            op.done, op.end_time = True, now_us()
            return await self.ctx.write("DeleteCollection", request_id, lambda tx: _insert(tx, op))
        while purged[0]:
            op.purged_count += purged[0]
            page = replace(page, after=purged[1])
            purged = await self.ctx.store.write(partial(_purge, page=page))

        async def finish(tx: Tx) -> Operation:
            for pending in await tx.list_operations(None, 10_000, pending_only=True):
                if pending.collection_id == collection_id:
                    pending.done, pending.end_time = True, now_us()
                    await tx.update_operation(pending)
            await tx.delete_collection(collection_id)
            op.done, op.end_time = True, now_us()
            await tx.insert_operation(op)
            return op

        return await self.ctx.write("DeleteCollection", request_id, finish)


def _deletable(job: Job) -> bool:
    try:
        engine.check_delete(rules_for(job.profile), job)
    except DomainError:
        return False
    return True


async def _mark(tx: Tx, job: Job, op: Operation, force: bool, now: int) -> None:
    rules = rules_for(job.profile)
    engine.transition(job, State.DELETING, now)
    job.delete_time, job.delete_operation, job.force_delete = now, op.name, force
    engine.stamp(job, now)
    await tx.update_job(job, engine.job_type_of(rules, job))


async def _purge(tx: Tx, page: PurgePage) -> tuple[int, str]:
    return await tx.purge_page(page)


async def _insert(tx: Tx, op: Operation) -> Operation:
    await tx.insert_operation(op)
    return op
