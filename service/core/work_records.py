"""Records of work leased by workers: a work item as the store hands it to the core."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobcontrol.service.core.model import Task


@dataclass(slots=True)
class WorkRow:
    """A work item with the task it runs and the names of its job, read in a write;
    `db_now` is the database's clock at the read (µs)."""

    pk: int
    work_id: str
    kind: str
    job_pk: int
    collection_id: str
    job_key: str
    job_id: str
    attempt: int
    lease_token: str
    lease_expire_time: int
    lease_duration: int
    task: Task | None
    db_now: int
    # when the service ends the running task (µs, database clock; 0: no limit)
    deadline: int = 0

    @property
    def job_name(self) -> str:
        """The job's resource name."""
        return f"collections/{self.collection_id}/jobs/{self.job_id}"


@dataclass(slots=True)
class Lease:
    """One item leased to a worker: what LeaseWork returns for it."""

    work_id: str
    kind: str
    target: str
    attempt: int
    lease_token: str
    lease_expire_time: int
    payload: dict[str, Any]
