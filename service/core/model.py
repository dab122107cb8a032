"""Domain records: collections, jobs, tasks, history entries and operations."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

# Enum member names equal the proto enum value names; the rpc layer converts by name.


class Profile(enum.Enum):
    """A collection's lifecycle profile."""

    SCHEDULED = "SCHEDULED"
    BATCH = "BATCH"
    TRANSFER = "TRANSFER"
    BACKUP = "BACKUP"


class State(enum.Enum):
    """The union of every profile's job states."""

    ENABLED = "ENABLED"
    DISABLED = "DISABLED"
    COMPLETED = "COMPLETED"
    FAULTED = "FAULTED"
    ACTIVE = "ACTIVE"
    DISABLING = "DISABLING"
    ENABLING = "ENABLING"
    TERMINATING = "TERMINATING"
    DELETING = "DELETING"
    CREATING = "CREATING"
    SHIPPING = "SHIPPING"
    RECEIVED = "RECEIVED"
    TRANSFERRING = "TRANSFERRING"
    PACKAGING = "PACKAGING"
    CLOSED = "CLOSED"
    IDLE = "IDLE"
    RUNNING = "RUNNING"


class TaskState(enum.Enum):
    """A task's state; RUNNING tasks are work in flight."""

    ACTIVE = "ACTIVE"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"


class TaskResult(enum.Enum):
    """How a completed task ended."""

    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"


class TaskDisposition(enum.Enum):
    """What disabling a batch job does to its running tasks."""

    REQUEUE = "REQUEUE"
    TERMINATE = "TERMINATE"
    WAIT = "WAIT"


class Action(enum.Enum):
    """Client lifecycle actions besides update and delete."""

    PAUSE = "PAUSE"
    RESUME = "RESUME"
    TERMINATE = "TERMINATE"
    START = "START"
    STOP = "STOP"
    RETRY = "RETRY"
    TOGGLE = "TOGGLE"


def now_us() -> int:
    """Wall-clock time in microseconds since the epoch (the stored time unit)."""
    return time.time_ns() // 1000


@dataclass(slots=True)
class Quota:
    """Per-collection limits; None means unlimited."""

    max_job_count: int | None = None
    max_active_jobs: int | None = None
    max_recurrence_frequency: str | None = None
    max_recurrence_interval: int | None = None


@dataclass(slots=True)
class Collection:
    """A set of jobs sharing one profile and its quotas."""

    collection_id: str
    profile: Profile
    uid: str = ""
    display_name: str = ""
    plan: str = ""
    quota: Quota = field(default_factory=Quota)
    labels: dict[str, str] = field(default_factory=dict)
    create_time: int = 0
    update_time: int = 0
    etag: str = ""
    version: int = 0
    # the principal that created it ("": anonymous), which owns it
    owner: str = ""

    @property
    def name(self) -> str:
        """Resource name."""
        return f"collections/{self.collection_id}"


@dataclass(slots=True)
class Job:
    """A job. `spec` is the profile-specific definition as a proto3-JSON-like dict with
    snake_case keys; `status` holds the execution counters."""

    collection_id: str
    job_id: str
    profile: Profile
    state: State
    uid: str = ""
    display_name: str = ""
    previous_state: State | None = None
    state_time: int = 0
    previous_state_time: int | None = None
    create_time: int = 0
    update_time: int = 0
    delete_time: int | None = None
    etag: str = ""
    version: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    delete_operation: str | None = None
    # when the service ends the job by its profile's time limit (µs; 0: none)
    deadline: int = 0
    force_delete: bool = False
    pk: int | None = None

    @property
    def name(self) -> str:
        """Resource name."""
        return f"collections/{self.collection_id}/jobs/{self.job_id}"


@dataclass(slots=True)
class Task:
    """A unit of work of a job."""

    job_pk: int
    job_name: str
    task_id: str
    state: TaskState = TaskState.ACTIVE
    result: TaskResult | None = None
    uid: str = ""
    display_name: str = ""
    command_line: str = ""
    create_time: int = 0
    update_time: int = 0
    state_time: int = 0
    etag: str = ""
    version: int = 0
    # the rest of the definition in the profile's own terms, stored as given
    properties: dict[str, Any] = field(default_factory=dict)
    pk: int | None = None
    # the last attempt's exit code (reported by a worker) and the failed attempts retried
    exit_code: int | None = None
    retry_count: int = 0

    @property
    def name(self) -> str:
        """Resource name."""
        return f"{self.job_name}/tasks/{self.task_id}"


@dataclass(slots=True)
class HistoryEntry:
    """One recorded execution of a job."""

    job_pk: int
    job_name: str
    status: str
    state: State
    timestamp: int = 0
    start_time: int | None = None
    end_time: int | None = None
    message: str = ""
    retry_count: int = 0
    repeat_count: int = 0
    action_name: str = ""
    pk: int | None = None
    # the occurrence's expected start (scheduled jobs run by the service), µs
    expected_time: int | None = None

    @property
    def name(self) -> str:
        """Resource name."""
        return f"{self.job_name}/history/{self.pk}"


@dataclass(slots=True)
class OperationError:
    """Why an operation failed (becomes a google.rpc.Status)."""

    code: str
    message: str
    reason: str = ""


@dataclass(slots=True)
class Operation:
    """A long-running operation (deletions)."""

    name: str
    verb: str
    target: str
    collection_id: str
    done: bool = False
    cancellable: bool = False
    create_time: int = 0
    end_time: int | None = None
    purged_count: int = 0
    total_count: int = 0
    error: OperationError | None = None
    result_kind: str = "empty"  # "empty" or "delete_jobs" (DeleteJobsResponse)


@dataclass(slots=True)
class Occurrence:
    """One planned run of a scheduled job: unique per (job, expected time), run in
    attempts (the main action and its retries, then the error action and its retries),
    each attempt under a lease on the occurrence's row."""

    job_pk: int
    collection_id: str
    job_key: str
    occurrence_id: str
    expected_time: int
    due_time: int
    phase: str = "MAIN"  # MAIN | ERROR
    retry_count: int = 0
    # the lease attempt that claimed it (a completion names it)
    attempt: int = 0
    pk: int | None = None


@dataclass(slots=True, frozen=True)
class ActionOutcome:
    """What one attempt of a scheduled job's action came to: success (a 2xx reply), and
    the history message (the response's status and at most 2,048 bytes of it)."""

    ok: bool
    message: str
