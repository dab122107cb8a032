"""The core's public surface: every use-case of one server, built on one store."""

from __future__ import annotations

from dataclasses import dataclass

from service.core.bulk import Bulk
from service.core.collections import Collections
from service.core.context import Context
from service.core.jobs import Jobs
from service.core.lifecycle import Lifecycle, Tasks
from service.core.operations import Operations
from service.core.ports import Store
from service.core.reaper import Reaper


@dataclass
class Core:
    """Use-case objects sharing one context."""

    ctx: Context
    collections: Collections
    jobs: Jobs
    bulk: Bulk
    lifecycle: Lifecycle
    tasks: Tasks
    operations: Operations
    reaper: Reaper


def build_core(
    store: Store,
    *,
    idempotency_window: float,
    purge_chunk: int,
    reaper_interval: float,
) -> Core:
    """Wire the use-cases to a store."""
    ctx = Context(store, idempotency_window=idempotency_window, purge_chunk=purge_chunk)
    return Core(
        ctx=ctx,
        collections=Collections(ctx),
        jobs=Jobs(ctx),
        bulk=Bulk(ctx),
        lifecycle=Lifecycle(ctx),
        tasks=Tasks(ctx),
        operations=Operations(ctx),
        reaper=Reaper(ctx, reaper_interval),
    )
