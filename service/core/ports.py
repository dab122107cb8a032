"""What the core needs from storage: one transaction interface, implemented in storage/."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from jobcontrol.service.core.dialect_records import LogonSession, RequestOutcome, SessionTask
from jobcontrol.service.core.filters import Node
from jobcontrol.service.core.model import (
    ActionOutcome,
    Collection,
    HistoryEntry,
    Job,
    Occurrence,
    Operation,
    State,
    Task,
    TaskResult,
    TaskState,
)
from jobcontrol.service.core.work_records import WorkRow

T = TypeVar("T")


@dataclass(frozen=True)
class JobQuery:
    """A page of a collection's jobs in a stable order, resuming after a sort key."""

    collection_id: str
    filter: Node | None
    order: str  # "job_key", "create_time" or "update_time"
    descending: bool
    after: list[Any] | None
    limit: int
    skip: int = 0


@dataclass(frozen=True)
class PurgePage:
    """One chunk of a bulk purge: the first `limit` jobs of the collection after sort key
    `after` (job_key order) that match `filter`, are in one of `states` (None: any) and
    whose stored type is not one of `kept_types`. The core derives `states` and
    `kept_types` from the profile's delete rules; the store only evaluates them."""

    collection_id: str
    filter: Node | None
    after: str | None
    limit: int
    states: frozenset[State] | None = None
    kept_types: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TaskCounts:
    """A job's tasks by state, and the completed ones by result."""

    active: int = 0
    running: int = 0
    completed: int = 0
    succeeded: int = 0
    failed: int = 0


@dataclass(frozen=True)
class TaskStatistics:
    """A job's task figures: tasks completed by result, and the failed attempts that were
    retried, summed over all its tasks."""

    succeeded: int = 0
    failed: int = 0
    retries: int = 0


@dataclass(frozen=True)
class WorkDepth:
    """A kind's work items: waiting for a worker (no live lease: none taken, given back,
    or expired on the database's clock) and held under a live lease."""

    queued: int = 0
    leased: int = 0


class Tx(Protocol):
    """Reads and writes inside one transaction. Write methods are only called from
    `Store.write`, which serialises them on one writer."""

    # collections
    async def get_collection(self, collection_id: str) -> Collection | None: ...
    async def list_collections(
        self, after: str | None, limit: int, filter: Node | None = None
    ) -> list[Collection]: ...
    async def insert_collection(self, collection: Collection) -> None: ...
    async def update_collection(self, collection: Collection) -> None: ...
    async def delete_collection(self, collection_id: str) -> None: ...

    # jobs
    async def get_job(self, collection_id: str, key: str) -> Job | None: ...
    async def list_jobs(self, query: JobQuery) -> list[Job]: ...
    async def count_jobs(
        self, collection_id: str, excluding: frozenset[State] = frozenset()
    ) -> int: ...
    async def insert_job(self, job: Job, key: str, job_type: str | None) -> int: ...
    async def update_job(self, job: Job, job_type: str | None) -> None: ...
    async def delete_job(self, job_pk: int) -> None: ...
    async def purge_children(self, job_pk: int, limit: int) -> int: ...
    async def purge_page(self, page: PurgePage) -> tuple[int, str]: ...
    async def jobs_of_operation(self, operation: str, limit: int) -> list[Job]: ...
    async def jobs_by_pk(self, pks: list[int]) -> dict[int, Job]: ...

    # tasks
    async def get_task(self, job_pk: int, job_name: str, task_id: str) -> Task | None: ...
    async def list_tasks(
        self, job_pk: int, job_name: str, after: str | None, limit: int, filter: Node | None = None
    ) -> list[Task]: ...
    async def count_tasks(self, job_pk: int) -> TaskCounts: ...
    # one aggregate query over the tasks of all the jobs; a job without tasks is absent
    async def task_statistics(self, job_pks: Sequence[int]) -> dict[int, TaskStatistics]: ...
    async def insert_task(self, task: Task) -> int: ...
    async def update_task(self, task: Task) -> None: ...
    async def running_tasks(self, job_pk: int) -> int: ...
    async def move_running_tasks(
        self, job_pk: int, state: TaskState, result: TaskResult | None, now: int
    ) -> int: ...

    # history
    async def insert_history(self, entry: HistoryEntry) -> int: ...
    async def list_history(
        self,
        job_pk: int,
        job_name: str,
        filter: Node | None,
        after: int | None,
        limit: int,
        skip: int = 0,
    ) -> list[HistoryEntry]: ...

    # operations
    async def get_operation(self, name: str) -> Operation | None: ...
    async def list_operations(
        self, after: str | None, limit: int, pending_only: bool = False, filter: Node | None = None
    ) -> list[Operation]: ...
    async def insert_operation(self, op: Operation) -> None: ...
    async def update_operation(self, op: Operation) -> None: ...
    async def delete_operation(self, name: str) -> None: ...

    # request-id replay
    async def get_reply(
        self, scope: str, request_id: str, since: int
    ) -> tuple[str, str] | None: ...
    async def put_reply(
        self, scope: str, request_id: str, fingerprint: str, reply: str, now: int
    ) -> None: ...
    async def expire_replies(self, before: int) -> int: ...

    # leases: a unit of background work held by one replica at a time, timed on the
    # database's clock
    async def claim_lease(self, name: str, owner: str, duration_us: int) -> int | None: ...
    async def renew_lease(self, name: str, owner: str, attempt: int, duration_us: int) -> bool: ...
    async def release_lease(self, name: str, owner: str, attempt: int) -> None: ...

    # occurrences of scheduled jobs: planned once per (job, expected time), each attempt
    # under a lease on the row, completions fenced on (owner, attempt)
    async def plan_occurrence(self, occurrence: Occurrence) -> bool: ...
    async def unplan_occurrences(self, job_pk: int) -> int: ...
    async def claim_occurrences(
        self, owner: str, duration_us: int, limit: int, ahead_us: int = 0
    ) -> list[Occurrence]: ...
    async def finish_attempt(self, occurrence: Occurrence, owner: str, done: bool) -> bool: ...
    async def next_due_time(self) -> int | None: ...
    async def expire_occurrences(self, before: int) -> None: ...
    async def list_occurrences(self, job_pk: int) -> list[Occurrence]: ...
    # occurrences due now (on the database's clock) and under no live lease
    async def occurrences_due(self) -> int: ...
    # work leased by workers (WorkerService), timed on the database's clock
    async def db_now(self) -> int: ...
    async def insert_work_item(
        self, work_id: str, kind: str, job_pk: int, task_pk: int | None, now: int
    ) -> None: ...
    async def work_candidates(
        self, kind: str, job_states: frozenset[str], limit: int, now: int
    ) -> list[WorkRow]: ...
    async def delete_work_of_job(self, job_pk: int, kind: str) -> None: ...
    async def get_work(self, work_id: str) -> WorkRow | None: ...
    async def take_work(
        self,
        pk: int,
        token: str,
        owner: str,
        attempt: int,
        expire: int,
        duration: int,
        deadline: int,
    ) -> None: ...
    async def overdue_work(self, limit: int) -> list[WorkRow]: ...
    async def drop_work(self, pk: int) -> None: ...
    async def overdue_jobs(self, states: frozenset[str], limit: int) -> list[Job]: ...
    async def renew_work(self, pk: int, token: str, expire: int, progress: str) -> bool: ...
    async def end_work(self, pk: int, token: str, done: bool) -> bool: ...
    # every work item by kind, queued or leased: one grouped count (a kind without items
    # is absent)
    async def work_depth(self) -> dict[str, WorkDepth]: ...
    # this write made work available: on PostgreSQL its commit notifies every replica's
    # store (`Store.on_work`); rolled back, nothing is sent. SQLite: nothing to do
    async def announce_work(self) -> None: ...

    # dialect state: logon sessions, their tasks (numbered by the database), outcomes
    async def insert_logon_session(self, session: LogonSession) -> bool: ...
    async def get_logon_session(self, dialect: str, session_id: str) -> LogonSession | None: ...
    async def touch_logon_session(
        self, dialect: str, session_id: str, seen: int, expire: int
    ) -> bool: ...
    async def delete_logon_session(self, dialect: str, session_id: str) -> bool: ...
    async def insert_session_task(self, task: SessionTask, keep: int) -> int: ...
    async def get_session_task(
        self, dialect: str, session_id: str, number: int
    ) -> SessionTask | None: ...
    async def list_session_tasks(
        self, dialect: str, session_id: str, after: int, limit: int
    ) -> list[SessionTask]: ...
    async def finish_session_task(
        self, dialect: str, session_id: str, number: int, result: tuple[bool, str]
    ) -> None: ...
    async def delete_session_task(self, dialect: str, session_id: str, number: int) -> bool: ...
    async def put_outcome(self, outcome: RequestOutcome) -> None: ...
    async def get_outcome(
        self, dialect: str, scope: str, request_id: str, since: int
    ) -> RequestOutcome | None: ...
    async def expire_dialect_state(self, now: int, outcomes_before: int) -> int: ...


class ActionRunner(Protocol):
    """Runs a scheduled job's action (an HTTP request, or a queue message where an adapter
    is configured) with the scheduler's headers, for at most `seconds`."""

    async def run(
        self, action: dict[str, Any], headers: dict[str, str], seconds: float
    ) -> ActionOutcome: ...


class Store(Protocol):
    """A database: concurrent read transactions and one serialised writer."""

    async def read(self, fn: Callable[[Tx], Awaitable[T]]) -> T: ...
    async def write(self, fn: Callable[[Tx], Awaitable[T]]) -> T: ...
    def on_work(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the event loop) whenever a committed write anywhere on the
        database announced work (`Tx.announce_work`), and after any gap in which such a
        notice may have been missed."""
        ...

    async def check(self, within: float) -> str:
        """Why this store cannot serve ("" when it can): its writer has stopped, a read
        or a no-op write through the writer fails or takes longer than `within`
        seconds, or the database's schema revision is not this code's."""
        ...

    async def close(self) -> None: ...


class Metrics(Protocol):
    """What the core and the storage report to the server's metrics (service/metrics.py
    implements it with prometheus_client; the core never imports it). Each call is one
    counter increment or one histogram observation: cheap on the hot paths."""

    def write_batch(self, size: int, seconds: float) -> None:
        """The writer committed (or failed to commit) `size` requests in `seconds`."""
        ...

    def attempt(self, phase: str, outcome: str) -> None:
        """A scheduled action's attempt was recorded: its phase (MAIN, ERROR) and outcome
        (succeeded, failed, skipped: the job was no longer enabled, lease_lost)."""
        ...

    def occurrence(self, outcome: str) -> None:
        """An occurrence ended: completed or faulted."""
        ...

    def lateness(self, seconds: float) -> None:
        """An attempt started this long after it was due."""
        ...

    def lease_expired(self, kind: str) -> None:
        """A work item of `kind` was leased again after its last lease expired (a worker
        died, stalled or lost touch)."""
        ...

    def overdue_ended(self, count: int) -> None:
        """The reaper ended `count` tasks and jobs past their wall-clock limits."""
        ...


class NoMetrics:
    """Metrics off: nothing is measured."""

    def write_batch(self, size: int, seconds: float) -> None:
        pass

    def attempt(self, phase: str, outcome: str) -> None:
        pass

    def occurrence(self, outcome: str) -> None:
        pass

    def lateness(self, seconds: float) -> None:
        pass

    def lease_expired(self, kind: str) -> None:
        pass

    def overdue_ended(self, count: int) -> None:
        pass


NO_METRICS: Metrics = NoMetrics()


class Tracing(Protocol):
    """Traces of the scheduler's attempts (service/tracing.py; None when traces are off:
    nothing is called)."""

    def attempt(self, attributes: dict[str, str]) -> AbstractContextManager[None]:
        """An attempt's span: the root of its own trace."""
        ...

    def action(self, headers: dict[str, str]) -> AbstractContextManager[None]:
        """The HTTP action's client span; its `traceparent` is added to `headers`."""
        ...
