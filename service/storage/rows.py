"""Row <-> domain record conversion for the tables of schema.py."""

from __future__ import annotations

from typing import Any

from jobcontrol.service.core.model import (
    Collection,
    HistoryEntry,
    Job,
    Operation,
    OperationError,
    Profile,
    Quota,
    State,
    Task,
    TaskResult,
    TaskState,
)


def collection(row: Any) -> Collection:
    return Collection(
        collection_id=row.collection_id,
        profile=Profile(row.profile),
        uid=row.uid,
        display_name=row.display_name,
        plan=row.plan,
        quota=Quota(**row.quota),
        labels=row.labels,
        create_time=row.create_time,
        update_time=row.update_time,
        etag=row.etag,
        version=row.version,
        owner=row.owner or "",
    )


def collection_values(c: Collection) -> dict[str, Any]:
    q = c.quota
    return {
        "collection_id": c.collection_id,
        "uid": c.uid,
        "profile": c.profile.value,
        "display_name": c.display_name,
        "plan": c.plan,
        "quota": {
            "max_job_count": q.max_job_count,
            "max_active_jobs": q.max_active_jobs,
            "max_recurrence_frequency": q.max_recurrence_frequency,
            "max_recurrence_interval": q.max_recurrence_interval,
        },
        "labels": c.labels,
        "create_time": c.create_time,
        "update_time": c.update_time,
        "etag": c.etag,
        "version": c.version,
        "owner": c.owner,
    }


def job(row: Any) -> Job:
    return Job(
        collection_id=row.collection_id,
        job_id=row.job_id,
        profile=Profile(row.profile),
        state=State(row.state),
        uid=row.uid,
        display_name=row.display_name,
        previous_state=State(row.previous_state) if row.previous_state else None,
        state_time=row.state_time,
        previous_state_time=row.previous_state_time,
        create_time=row.create_time,
        update_time=row.update_time,
        delete_time=row.delete_time,
        etag=row.etag,
        version=row.version,
        labels=row.labels,
        spec=row.spec,
        status=row.status,
        delete_operation=row.delete_operation,
        force_delete=bool(row.force_delete),
        deadline=row.deadline or 0,
        pk=row.pk,
    )


def job_values(j: Job, job_type: str | None) -> dict[str, Any]:
    return {
        "collection_id": j.collection_id,
        "job_id": j.job_id,
        "uid": j.uid,
        "profile": j.profile.value,
        "display_name": j.display_name,
        "state": j.state.value,
        "previous_state": j.previous_state.value if j.previous_state else None,
        "state_time": j.state_time,
        "previous_state_time": j.previous_state_time,
        "create_time": j.create_time,
        "update_time": j.update_time,
        "delete_time": j.delete_time,
        "etag": j.etag,
        "version": j.version,
        "labels": j.labels,
        "spec": j.spec,
        "status": j.status,
        "job_type": job_type,
        "delete_operation": j.delete_operation,
        "force_delete": j.force_delete,
        "deadline": j.deadline,
    }


def task(row: Any, job_name: str) -> Task:
    return Task(
        job_pk=row.job_pk,
        job_name=job_name,
        task_id=row.task_id,
        state=TaskState(row.state),
        result=TaskResult(row.result) if row.result else None,
        uid=row.uid,
        display_name=row.display_name,
        command_line=row.command_line,
        create_time=row.create_time,
        update_time=row.update_time,
        state_time=row.state_time,
        etag=row.etag,
        version=row.version,
        properties=row.properties or {},
        pk=row.pk,
        exit_code=row.exit_code,
        retry_count=row.retry_count,
    )


def task_values(t: Task) -> dict[str, Any]:
    return {
        "job_pk": t.job_pk,
        "task_id": t.task_id,
        "uid": t.uid,
        "display_name": t.display_name,
        "command_line": t.command_line,
        "state": t.state.value,
        "result": t.result.value if t.result else None,
        "create_time": t.create_time,
        "update_time": t.update_time,
        "state_time": t.state_time,
        "etag": t.etag,
        "version": t.version,
        "properties": t.properties,
        "exit_code": t.exit_code,
        "retry_count": t.retry_count,
    }


def history_entry(row: Any, job_name: str) -> HistoryEntry:
    return HistoryEntry(
        job_pk=row.job_pk,
        job_name=job_name,
        status=row.status,
        state=State(row.state),
        timestamp=row.timestamp,
        start_time=row.start_time,
        end_time=row.end_time,
        message=row.message,
        retry_count=row.retry_count,
        repeat_count=row.repeat_count,
        action_name=row.action_name,
        pk=row.pk,
        expected_time=row.expected_time,
    )


def history_values(e: HistoryEntry) -> dict[str, Any]:
    return {
        "job_pk": e.job_pk,
        "timestamp": e.timestamp,
        "start_time": e.start_time,
        "end_time": e.end_time,
        "state": e.state.value,
        "status": e.status,
        "message": e.message,
        "retry_count": e.retry_count,
        "repeat_count": e.repeat_count,
        "action_name": e.action_name,
        "expected_time": e.expected_time,
    }


def operation(row: Any) -> Operation:
    return Operation(
        name=row.name,
        verb=row.verb,
        target=row.target,
        collection_id=row.collection_id,
        done=bool(row.done),
        cancellable=bool(row.cancellable),
        create_time=row.create_time,
        end_time=row.end_time,
        purged_count=row.purged_count,
        total_count=row.total_count,
        error=OperationError(**row.error) if row.error else None,
        result_kind=row.result_kind,
    )


def operation_values(op: Operation) -> dict[str, Any]:
    err = op.error
    return {
        "name": op.name,
        "verb": op.verb,
        "target": op.target,
        "collection_id": op.collection_id,
        "done": op.done,
        "cancellable": op.cancellable,
        "create_time": op.create_time,
        "end_time": op.end_time,
        "purged_count": op.purged_count,
        "total_count": op.total_count,
        "error": {"code": err.code, "message": err.message, "reason": err.reason} if err else None,
        "result_kind": op.result_kind,
    }
