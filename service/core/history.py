"""Use-cases on job history: runs recorded by operators and workers, and their listing."""

from __future__ import annotations

from dataclasses import dataclass

from jobcontrol.service.core import engine, filters, names, pages, scheduling
from jobcontrol.service.core.context import Context
from jobcontrol.service.core.jobs import load_job
from jobcontrol.service.core.model import HistoryEntry, Job, now_us
from jobcontrol.service.core.ports import Tx
from jobcontrol.service.core.profiles import rules_for


async def end_run(
    tx: Tx, job: Job, entry: HistoryEntry, now: int, result: str | None = None
) -> HistoryEntry:
    """Record one run of `job` (RecordRun, or a worker's end of a run): the history entry,
    the counters, the profile's last result (`result`, else by the entry's status) and
    the end of a running run (a DELETING job keeps waiting no more)."""
    rules = rules_for(job.profile)
    entry.job_pk, entry.job_name, entry.state, entry.timestamp = (
        job.pk or 0,
        job.name,
        job.state,
        now,
    )
    entry.pk = await tx.insert_history(entry)
    engine.count_run(rules, job, entry, now, result)
    engine.refresh_schedule(rules, job)
    engine.stamp(job, now)
    await tx.update_job(job, engine.job_type_of(rules, job))
    return entry


@dataclass
class HistoryPage:
    entries: list[HistoryEntry]
    next_page_token: str


class History:
    """RecordRun and ListJobHistory."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def record_run(self, parent: str, entry: HistoryEntry) -> HistoryEntry:
        """OperatorService.RecordRun: history, counters, and the end of a run."""
        collection_id, job_id = names.job_name(parent, "parent")

        async def run(tx: Tx) -> HistoryEntry:
            job = await load_job(tx, collection_id, job_id)
            recorded = await end_run(tx, job, entry, now_us())
            await scheduling.replan(self.ctx, tx, rules_for(job.profile), job)
            return recorded

        result = await self.ctx.write("RecordRun", "", run)
        self.ctx.poke()
        return result

    async def list_page(
        self,
        parent: str,
        page_size: int,
        page_token: str,
        filter_text: str,
        skip: int = 0,
        structured: filters.Node | None = None,
    ) -> HistoryPage:
        """ListJobHistory, newest first."""
        collection_id, job_id = names.job_name(parent, "parent")
        size = pages.page_size(page_size)
        tree = filters.both(filters.parse(filter_text, filters.HISTORY_FIELDS), structured)
        fingerprint = ("history", parent, repr(tree))
        after = pages.decode(fingerprint, page_token, (int,))

        async def run(tx: Tx) -> list[HistoryEntry]:
            job = await load_job(tx, collection_id, job_id)
            start = int(after[0]) if after else None
            return await tx.list_history(
                job.pk or 0, job.name, tree, start, size + 1, pages.skip_count(skip)
            )

        rows = await self.ctx.store.read(run)
        rows, token = pages.cut(rows, size, fingerprint, lambda e: [e.pk])
        return HistoryPage(rows, token)
