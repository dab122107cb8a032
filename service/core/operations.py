"""google.longrunning.Operations use-cases: get, list, cancel, delete, wait."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from jobcontrol.service.core import access, engine, filters, pages
from jobcontrol.service.core.authorizer import Authorizer
from jobcontrol.service.core.context import Context
from jobcontrol.service.core.errors import DomainError, Reason, bad_field
from jobcontrol.service.core.model import Operation, OperationError, now_us
from jobcontrol.service.core.ports import Tx
from jobcontrol.service.core.profiles import rules_for

_NAME_PREFIX = "operations/"


@dataclass
class OperationPage:
    operations: list[Operation]
    next_page_token: str


def _check_name(name: str) -> None:
    if not name.startswith(_NAME_PREFIX) or len(name) > 200 or "/" in name[len(_NAME_PREFIX) :]:
        raise bad_field("name", f"must look like operations/{{id}}, got {name[:200]!r}")


async def load_operation(tx: Tx, name: str) -> Operation:
    """The operation, or OPERATION_NOT_FOUND."""
    op = await tx.get_operation(name)
    if op is None:
        raise DomainError(
            Reason.OPERATION_NOT_FOUND, f"{name} not found", {"operation": name}, resource=name
        )
    return op


class Operations:
    """Long-running operations of deletions."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.authorizer = Authorizer(ctx)

    async def _permitted(self, name: str, permission: str) -> Operation:
        """The operation, once the caller may use `permission` on its collection (an
        operation's name does not say its collection, so this is decided after reading)."""
        _check_name(name)
        op = await self.ctx.store.read(lambda tx: load_operation(tx, name))
        await self.authorizer.check_operation(access.call().principal, permission, op)
        return op

    async def get(self, name: str) -> Operation:
        """GetOperation."""
        return await self._permitted(name, access.OPERATIONS_GET)

    async def list_page(self, page_size: int, page_token: str, filter_text: str) -> OperationPage:
        """ListOperations, by name; AIP-160 filters over `name`, `done`, `verb` and
        `target` (e.g. `done = false`, `name = "operations/…" OR name = "…"`)."""
        size = pages.page_size(page_size)
        tree = filters.parse(filter_text, filters.OPERATION_FIELDS)
        fingerprint = ("operations", repr(tree))
        after = pages.decode(fingerprint, page_token)
        start = after[0] if after else None
        rows = await self.ctx.store.read(
            lambda tx: tx.list_operations(start, size + 1, filter=tree)
        )
        found, token = pages.cut(rows, size, fingerprint, lambda op: [op.name])
        principal = access.call().principal
        seen: dict[str, bool] = {}
        shown = []
        for op in found:  # only the operations of collections the caller may see
            if op.collection_id not in seen:
                seen[op.collection_id] = await self.authorizer.allows(
                    principal, access.OPERATIONS_GET, op.collection_id
                )
            if seen[op.collection_id]:
                shown.append(op)
        return OperationPage(shown, token)

    async def cancel(self, name: str) -> None:
        """CancelOperation: a cancellable, unfinished deletion restores the job's previous
        state and ends CANCELLED; anything else is OPERATION_NOT_CANCELLABLE."""
        await self._permitted(name, access.OPERATIONS_CANCEL)

        async def run(tx: Tx) -> None:
            op = await load_operation(tx, name)
            if op.done or not op.cancellable:
                why = "it is done" if op.done else "this deletion cannot be cancelled"
                raise DomainError(
                    Reason.OPERATION_NOT_CANCELLABLE,
                    f"{name}: {why}",
                    {"operation": name},
                    resource=name,
                )
            now = now_us()
            for job in await tx.jobs_of_operation(name, 100_000):
                rules = rules_for(job.profile)
                engine.transition(job, job.previous_state or rules.initial, now)
                job.delete_time, job.delete_operation, job.force_delete = None, None, False
                engine.stamp(job, now)
                await tx.update_job(job, engine.job_type_of(rules, job))
            op.done, op.end_time = True, now
            op.error = OperationError("CANCELLED", "the deletion was cancelled", "CANCELLED")
            await tx.update_operation(op)

        await self.ctx.write("CancelOperation", "", run)

    async def delete(self, name: str) -> None:
        """DeleteOperation: forget the record (a pending deletion still completes)."""
        await self._permitted(name, access.OPERATIONS_DELETE)

        async def run(tx: Tx) -> None:
            op = await load_operation(tx, name)
            if not op.done:
                raise DomainError(
                    Reason.OPERATION_NOT_DONE,
                    f"{name} is not done; cancel it or wait for it first",
                    {"operation": name},
                    resource=name,
                )
            await tx.delete_operation(name)

        await self.ctx.write("DeleteOperation", "", run)

    async def wait(self, name: str, seconds: float | None) -> Operation:
        """WaitOperation: the operation once done, or as it is after `seconds`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(seconds if seconds and seconds > 0 else 60.0, 300.0)
        while True:
            op = await self.get(name)
            if op.done or loop.time() >= deadline:
                return op
            await asyncio.sleep(min(0.02, max(deadline - loop.time(), 0)))
