"""The core's public surface: every use-case of one server, built on one store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobcontrol.service.core.access import Policy
from jobcontrol.service.core.actions import Actions
from jobcontrol.service.core.authorizer import Authorizer
from jobcontrol.service.core.collections import Collections
from jobcontrol.service.core.context import Context
from jobcontrol.service.core.deletions import Deletions
from jobcontrol.service.core.dialect_state import DialectState
from jobcontrol.service.core.history import History
from jobcontrol.service.core.jobs import Jobs
from jobcontrol.service.core.model import ActionOutcome
from jobcontrol.service.core.operations import Operations
from jobcontrol.service.core.ports import ActionRunner, Store
from jobcontrol.service.core.reaper import Reaper
from jobcontrol.service.core.scheduling import Scheduler
from jobcontrol.service.core.tasks import Tasks
from jobcontrol.service.core.work import Work


@dataclass
class Core:
    """Use-case objects sharing one context."""

    ctx: Context
    authorizer: Authorizer
    collections: Collections
    jobs: Jobs
    deletions: Deletions
    actions: Actions
    history: History
    tasks: Tasks
    operations: Operations
    reaper: Reaper
    dialect_state: DialectState
    scheduler: Scheduler
    work: Work


def build_core(
    store: Store,
    *,
    idempotency_window: float,
    purge_chunk: int,
    reaper_interval: float,
    policy: Policy | None = None,
    lease_duration: float = 30.0,
    replica: str = "",
    runner: ActionRunner | None = None,
    scheduler_min_interval: float = 60.0,
    action_timeout: float = 60.0,
    scheduler_concurrency: int = 1024,
    work_poll_interval: float = 0.5,
) -> Core:
    """Wire the use-cases to a store, under `policy` (None: the open development mode)."""
    ctx = Context(
        store,
        idempotency_window=idempotency_window,
        purge_chunk=purge_chunk,
        policy=policy or Policy(open=True),
        lease_duration=lease_duration,
        scheduler_min_interval=scheduler_min_interval,
        action_timeout=action_timeout,
        work_poll_interval=work_poll_interval,
    )
    if replica:
        ctx.replica = replica
    return Core(
        ctx=ctx,
        authorizer=Authorizer(ctx),
        collections=Collections(ctx),
        jobs=Jobs(ctx),
        deletions=Deletions(ctx),
        actions=Actions(ctx),
        history=History(ctx),
        tasks=Tasks(ctx),
        operations=Operations(ctx),
        reaper=Reaper(ctx, reaper_interval),
        dialect_state=DialectState(ctx),
        scheduler=Scheduler(ctx, runner or NoActions(), scheduler_concurrency),
        work=Work(ctx),
    )


class NoActions:
    """The runner of a core built without one (tools, tests of the core alone): every
    attempt fails and says so."""

    async def run(
        self, action: dict[str, Any], headers: dict[str, str], seconds: float
    ) -> ActionOutcome:
        return ActionOutcome(False, "no action runner is configured in this process")
