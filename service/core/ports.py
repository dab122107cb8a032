"""What the core needs from storage: one transaction interface, implemented in storage/."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from jobcontrol.service.core.filters import Node
from jobcontrol.service.core.model import (
    Collection,
    HistoryEntry,
    Job,
    Operation,
    State,
    Task,
    TaskResult,
    TaskState,
)

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
class TaskCounts:
    """A job's tasks by state, and the completed ones by result."""

    active: int = 0
    running: int = 0
    completed: int = 0
    succeeded: int = 0
    failed: int = 0


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
    async def jobs_of_operation(self, operation: str, limit: int) -> list[Job]: ...

    # tasks
    async def get_task(self, job_pk: int, job_name: str, task_id: str) -> Task | None: ...
    async def list_tasks(
        self, job_pk: int, job_name: str, after: str | None, limit: int, filter: Node | None = None
    ) -> list[Task]: ...
    async def count_tasks(self, job_pk: int) -> TaskCounts: ...
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


class Store(Protocol):
    """A database: concurrent read transactions and one serialised writer."""

    async def read(self, fn: Callable[[Tx], Awaitable[T]]) -> T: ...
    async def write(self, fn: Callable[[Tx], Awaitable[T]]) -> T: ...
    async def close(self) -> None: ...
