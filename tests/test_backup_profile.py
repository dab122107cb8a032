"""The `backup` profile (Veeam Backup Enterprise Manager): rules K1..K9 of docs/rules.md,
and C21 (which deletions CancelOperation refuses)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2
from google.protobuf import field_mask_pb2

from jobcontrol.v1 import job_service_pb2 as jobs_pb
from jobcontrol.v1 import operator_service_pb2 as operator_pb
from jobcontrol.v1 import resources_pb2 as res
from tests.helpers import (
    Call,
    call_of,
    delete,
    expect_error,
    get_job,
    get_operation,
    refused,
    wait_done,
)

pytestmark = pytest.mark.backends

FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
NOT_FOUND = grpc.StatusCode.NOT_FOUND
CANCELLED = 1  # google.rpc.Code.CANCELLED
Backup = res.BackupSpec


# --- helpers ---------------------------------------------------------------------------


@pytest.fixture
async def coll(make_collection: Any) -> res.Collection:
    """A backup collection."""
    collection: res.Collection = await make_collection(res.BACKUP)
    return collection


async def create_job(
    clients: Any,
    collection: res.Collection,
    job_id: str = "b1",
    job_type: res.BackupSpec.JobType.ValueType = Backup.BACKUP,
) -> res.Job:
    job = res.Job(backup=res.BackupSpec(job_type=job_type))
    created: res.Job = await clients.jobs.CreateJob(
        jobs_pb.CreateJobRequest(parent=collection.name, job_id=job_id, job=job)
    )
    return created


async def start(clients: Any, name: str) -> res.Job:
    job: res.Job = await clients.jobs.StartJob(jobs_pb.StartJobRequest(name=name))
    return job


async def stop(clients: Any, name: str) -> res.Job:
    job: res.Job = await clients.jobs.StopJob(jobs_pb.StopJobRequest(name=name))
    return job


async def retry(clients: Any, name: str) -> res.Job:
    job: res.Job = await clients.jobs.RetryJob(jobs_pb.RetryJobRequest(name=name))
    return job


async def record_run(
    clients: Any,
    name: str,
    status: res.HistoryEntry.Status.ValueType = res.HistoryEntry.COMPLETED,
) -> res.HistoryEntry:
    entry: res.HistoryEntry = await clients.operator.RecordRun(
        operator_pb.RecordRunRequest(parent=name, entry=res.HistoryEntry(status=status))
    )
    return entry


async def history(clients: Any, name: str) -> list[res.HistoryEntry]:
    reply = await clients.jobs.ListJobHistory(
        jobs_pb.ListJobHistoryRequest(parent=name, page_size=1000)
    )
    return list(reply.entries)


def cancel(clients: Any, name: str) -> Awaitable[Any]:
    return clients.operations.CancelOperation(operations_pb2.CancelOperationRequest(name=name))


def metadata(op: operations_pb2.Operation) -> res.OperationMetadata:
    meta = res.OperationMetadata()
    assert op.metadata.Unpack(meta), "Operation.metadata is not an OperationMetadata"
    return meta


async def assert_purged(clients: Any, name: str) -> None:
    await expect_error(get_job(clients, name), NOT_FOUND, "JOB_NOT_FOUND")
    await expect_error(
        clients.jobs.ListJobHistory(jobs_pb.ListJobHistoryRequest(parent=name)),
        NOT_FOUND,
        "JOB_NOT_FOUND",
    )


async def running_deletion(
    clients: Any, coll: res.Collection
) -> tuple[res.Job, operations_pb2.Operation]:
    """A backup job held in DELETING by a run in progress, and its deletion Operation."""
    job = await create_job(clients, coll)
    assert (await start(clients, job.name)).state == res.RUNNING
    op = await delete(clients, job.name)
    assert not op.done
    deleting = await get_job(clients, job.name)
    assert deleting.state == res.DELETING
    return deleting, op


# --- K1 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "job_type",
    [Backup.BACKUP, Backup.REPLICA, Backup.BACKUP_COPY, Backup.NAS, Backup.AGENT],
    ids=["BACKUP", "REPLICA", "BACKUP_COPY", "NAS", "AGENT"],
)
async def test_k1_job_types_start_idle(
    clients: Any, coll: Any, job_type: res.BackupSpec.JobType.ValueType
) -> None:
    """K1: every job type (BACKUP, REPLICA, BACKUP_COPY, NAS, AGENT) is created IDLE."""
    job = await create_job(clients, coll, job_type=job_type)
    assert job.state == res.IDLE
    assert job.backup.job_type == job_type
    assert job.profile == res.BACKUP
    assert job.backup.last_result in (Backup.RESULT_UNSPECIFIED, Backup.NONE)
    got = await get_job(clients, job.name)
    assert got.state == res.IDLE
    assert got.backup.job_type == job_type


async def test_k1_job_type_required(clients: Any, coll: Any) -> None:
    """K1: a backup job needs its job_type (INVALID_ARGUMENT / REQUIRED_FIELD_MISSING)."""
    await expect_error(
        clients.jobs.CreateJob(
            jobs_pb.CreateJobRequest(
                parent=coll.name, job_id="b1", job=res.Job(backup=res.BackupSpec())
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "REQUIRED_FIELD_MISSING",
    )
    await expect_error(get_job(clients, f"{coll.name}/jobs/b1"), NOT_FOUND, "JOB_NOT_FOUND")


# --- K2 --------------------------------------------------------------------------------


async def test_k2_start_and_stop(clients: Any, coll: Any) -> None:
    """K2: Start moves IDLE -> RUNNING; Stop moves RUNNING -> IDLE with last_result
    FAILED."""
    job = await create_job(clients, coll)
    running = await start(clients, job.name)
    assert running.state == res.RUNNING
    assert running.etag != job.etag
    assert (await get_job(clients, job.name)).state == res.RUNNING

    idle = await stop(clients, job.name)
    assert idle.state == res.IDLE
    assert idle.backup.last_result == Backup.FAILED
    got = await get_job(clients, job.name)
    assert got.state == res.IDLE
    assert got.backup.last_result == Backup.FAILED


async def test_k2_start_and_stop_in_wrong_state_refused(clients: Any, coll: Any) -> None:
    """K2: Stop of an IDLE job and Start of a RUNNING job are FAILED_PRECONDITION /
    OPERATION_INVALID_FOR_STATE."""
    job = await create_job(clients, coll)
    reason = "OPERATION_INVALID_FOR_STATE"
    stop_call = call_of(clients.jobs.StopJob, jobs_pb.StopJobRequest(name=job.name))
    start_call = call_of(clients.jobs.StartJob, jobs_pb.StartJobRequest(name=job.name))

    await refused(clients, job.name, stop_call, FAILED_PRECONDITION, reason, "stop IDLE")
    await start(clients, job.name)
    await refused(clients, job.name, start_call, FAILED_PRECONDITION, reason, "start RUNNING")
    await record_run(clients, job.name)
    assert (await get_job(clients, job.name)).state == res.IDLE
    await refused(
        clients, job.name, stop_call, FAILED_PRECONDITION, reason, "stop IDLE after a run"
    )


# --- K3 --------------------------------------------------------------------------------


async def test_k3_retry_refused_unless_last_run_failed(clients: Any, coll: Any) -> None:
    """K3: Retry without a failed last run is FAILED_PRECONDITION / RETRY_NOT_ALLOWED."""
    job = await create_job(clients, coll)
    retry_call = call_of(clients.jobs.RetryJob, jobs_pb.RetryJobRequest(name=job.name))
    await refused(
        clients, job.name, retry_call, FAILED_PRECONDITION, "RETRY_NOT_ALLOWED", "no run yet"
    )

    await start(clients, job.name)
    await record_run(clients, job.name, res.HistoryEntry.COMPLETED)
    assert (await get_job(clients, job.name)).backup.last_result == Backup.SUCCESS
    await refused(
        clients, job.name, retry_call, FAILED_PRECONDITION, "RETRY_NOT_ALLOWED", "succeeded"
    )


async def test_k3_retry_after_stopped_run(clients: Any, coll: Any) -> None:
    """K3: Retry after a stopped run (last_result FAILED) starts a run."""
    job = await create_job(clients, coll)
    await start(clients, job.name)
    assert (await stop(clients, job.name)).backup.last_result == Backup.FAILED
    running = await retry(clients, job.name)
    assert running.state == res.RUNNING
    assert (await get_job(clients, job.name)).state == res.RUNNING


async def test_k3_retry_after_failed_run(clients: Any, coll: Any) -> None:
    """K3: Retry after a run recorded FAILED starts a run; after it succeeds, Retry is
    refused again."""
    job = await create_job(clients, coll)
    await start(clients, job.name)
    await record_run(clients, job.name, res.HistoryEntry.FAILED)
    assert (await get_job(clients, job.name)).backup.last_result == Backup.FAILED
    assert (await retry(clients, job.name)).state == res.RUNNING
    await record_run(clients, job.name, res.HistoryEntry.COMPLETED)
    await refused(
        clients,
        job.name,
        call_of(clients.jobs.RetryJob, jobs_pb.RetryJobRequest(name=job.name)),
        FAILED_PRECONDITION,
        "RETRY_NOT_ALLOWED",
        "after a successful retry",
    )


# --- K4 --------------------------------------------------------------------------------


@pytest.mark.parametrize("running", [False, True], ids=["IDLE", "RUNNING"])
async def test_k4_pause_resume_toggle_schedule(clients: Any, coll: Any, running: bool) -> None:
    """K4: Pause sets schedule_enabled false, Resume sets it true; the state is kept."""
    job = await create_job(clients, coll)
    state = res.IDLE
    if running:
        await start(clients, job.name)
        state = res.RUNNING

    paused = await clients.jobs.PauseJob(jobs_pb.PauseJobRequest(name=job.name))
    assert paused.backup.HasField("schedule_enabled")
    assert paused.backup.schedule_enabled is False
    assert paused.state == state
    got = await get_job(clients, job.name)
    assert got.backup.HasField("schedule_enabled")
    assert got.backup.schedule_enabled is False

    resumed = await clients.jobs.ResumeJob(jobs_pb.ResumeJobRequest(name=job.name))
    assert resumed.backup.schedule_enabled is True
    assert resumed.state == state
    got = await get_job(clients, job.name)
    assert got.backup.schedule_enabled is True
    assert got.state == state


# --- K5 --------------------------------------------------------------------------------


async def test_k5_record_run_ends_run(clients: Any, coll: Any) -> None:
    """K5: RecordRun ends a run: RUNNING -> IDLE, last_result from the entry, history
    appended, counters updated."""
    job = await create_job(clients, coll)
    assert await history(clients, job.name) == []

    await start(clients, job.name)
    entry = await record_run(clients, job.name, res.HistoryEntry.COMPLETED)
    assert entry.status == res.HistoryEntry.COMPLETED
    assert entry.name.startswith(f"{job.name}/history/")
    ok = await get_job(clients, job.name)
    assert ok.state == res.IDLE
    assert ok.backup.last_result == Backup.SUCCESS
    assert ok.status.execution_count == job.status.execution_count + 1
    assert ok.status.failure_count == job.status.failure_count
    entries = await history(clients, job.name)
    assert [e.status for e in entries] == [res.HistoryEntry.COMPLETED]

    await start(clients, job.name)
    await record_run(clients, job.name, res.HistoryEntry.FAILED)
    failed = await get_job(clients, job.name)
    assert failed.state == res.IDLE
    assert failed.backup.last_result == Backup.FAILED
    assert failed.status.failure_count == ok.status.failure_count + 1
    entries = await history(clients, job.name)
    assert sorted(e.status for e in entries) == sorted(
        [res.HistoryEntry.COMPLETED, res.HistoryEntry.FAILED]
    )


# --- K6 --------------------------------------------------------------------------------


async def test_k6_delete_is_asynchronous(clients: Any, coll: Any) -> None:
    """K6: delete of an IDLE job returns a cancellable Operation that completes with the
    job purged."""
    job = await create_job(clients, coll)
    op = await delete(clients, job.name)
    meta = metadata(op)
    assert meta.target == job.name
    assert meta.verb == "delete"
    done = await wait_done(clients.operations, op.name)
    assert done.WhichOneof("result") == "response"
    await assert_purged(clients, job.name)


async def test_k6_running_job_stays_deleting_until_run_ends(clients: Any, coll: Any) -> None:
    """K6: a RUNNING job stays DELETING (Operation pending) until its run ends."""
    job, op = await running_deletion(clients, coll)
    meta = metadata(op)
    assert meta.target == job.name
    assert meta.cancellable is True
    assert job.previous_state == res.RUNNING
    assert job.delete_operation == op.name
    listed = await clients.jobs.ListJobs(jobs_pb.ListJobsRequest(parent=coll.name))
    assert [(j.name, j.state) for j in listed.jobs] == [(job.name, res.DELETING)]
    assert not (await get_operation(clients, op.name)).done

    await record_run(clients, job.name, res.HistoryEntry.COMPLETED)
    done = await wait_done(clients.operations, op.name)
    assert done.WhichOneof("result") == "response"
    await assert_purged(clients, job.name)


async def test_k6_force_purges_running_job(clients: Any, coll: Any) -> None:
    """K6: `force` purges a RUNNING job without waiting for its run to end."""
    job = await create_job(clients, coll)
    await start(clients, job.name)
    op = await delete(clients, job.name, force=True)
    done = await wait_done(clients.operations, op.name)
    assert done.WhichOneof("result") == "response"
    await assert_purged(clients, job.name)


# --- K7 --------------------------------------------------------------------------------


async def test_k7_cancel_deletion_restores_previous_state(clients: Any, coll: Any) -> None:
    """K7: cancelling an unfinished deletion restores the previous state; the Operation
    ends CANCELLED."""
    job, op = await running_deletion(clients, coll)
    await cancel(clients, op.name)
    cancelled = await wait_done(clients.operations, op.name)
    assert cancelled.WhichOneof("result") == "error"
    assert cancelled.error.code == CANCELLED

    restored = await get_job(clients, job.name)
    assert restored.state == res.RUNNING
    assert restored.delete_operation == ""
    assert restored.etag != job.etag

    # the job lives on: its run ends, and it can be deleted again
    await record_run(clients, job.name, res.HistoryEntry.COMPLETED)
    idle = await get_job(clients, job.name)
    assert idle.state == res.IDLE
    assert idle.backup.last_result == Backup.SUCCESS
    again = await delete(clients, job.name)
    assert again.name != op.name
    done = await wait_done(clients.operations, again.name)
    assert done.WhichOneof("result") == "response"
    await assert_purged(clients, job.name)
    # the cancelled Operation stays cancelled
    assert (await get_operation(clients, op.name)).error.code == CANCELLED


# --- K8 --------------------------------------------------------------------------------


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
@pytest.mark.parametrize("job_type", [Backup.NAS, Backup.AGENT], ids=["NAS", "AGENT"])
async def test_k8_nas_and_agent_not_deletable(
    clients: Any, coll: Any, job_type: res.BackupSpec.JobType.ValueType, force: bool
) -> None:
    """K8: DeleteJob of a NAS or AGENT job is FAILED_PRECONDITION /
    JOB_TYPE_NOT_DELETABLE."""
    job = await create_job(clients, coll, job_type=job_type)
    await refused(
        clients,
        job.name,
        call_of(clients.jobs.DeleteJob, jobs_pb.DeleteJobRequest(name=job.name, force=force)),
        FAILED_PRECONDITION,
        "JOB_TYPE_NOT_DELETABLE",
        Backup.JobType.Name(job_type),
    )
    assert (await get_job(clients, job.name)).delete_operation == ""


# --- K9 --------------------------------------------------------------------------------


async def test_k9_deleting_job_refuses_updates_and_actions(clients: Any, coll: Any) -> None:
    """K9: every update and action of a DELETING job (start, stop, retry, pause, resume,
    update, replace, delete) is FAILED_PRECONDITION / JOB_BEING_DELETED."""
    job, op = await running_deletion(clients, coll)
    name = job.name
    replacement = res.Job(
        name=name, display_name="replaced", backup=res.BackupSpec(job_type=Backup.BACKUP)
    )
    calls: list[tuple[str, Call]] = [
        ("start", call_of(clients.jobs.StartJob, jobs_pb.StartJobRequest(name=name))),
        ("stop", call_of(clients.jobs.StopJob, jobs_pb.StopJobRequest(name=name))),
        ("retry", call_of(clients.jobs.RetryJob, jobs_pb.RetryJobRequest(name=name))),
        ("pause", call_of(clients.jobs.PauseJob, jobs_pb.PauseJobRequest(name=name))),
        ("resume", call_of(clients.jobs.ResumeJob, jobs_pb.ResumeJobRequest(name=name))),
        (
            "update",
            call_of(
                clients.jobs.UpdateJob,
                jobs_pb.UpdateJobRequest(job=res.Job(name=name, display_name="changed")),
            ),
        ),
        (
            "update with mask",
            call_of(
                clients.jobs.UpdateJob,
                jobs_pb.UpdateJobRequest(
                    job=res.Job(name=name, display_name="changed"),
                    update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
                ),
            ),
        ),
        (
            "replace",
            call_of(
                clients.jobs.UpdateJob,
                jobs_pb.UpdateJobRequest(
                    job=replacement, update_mask=field_mask_pb2.FieldMask(paths=["*"])
                ),
            ),
        ),
        ("delete", call_of(clients.jobs.DeleteJob, jobs_pb.DeleteJobRequest(name=name))),
    ]
    for label, call in calls:
        await refused(clients, name, call, FAILED_PRECONDITION, "JOB_BEING_DELETED", label)
    assert (await get_job(clients, name)).delete_operation == op.name
    assert not (await get_operation(clients, op.name)).done

    await record_run(clients, name, res.HistoryEntry.COMPLETED)
    await wait_done(clients.operations, op.name)
    await assert_purged(clients, name)


# --- C21 -------------------------------------------------------------------------------


async def test_c21_batch_deletion_not_cancellable(clients: Any, make_collection: Any) -> None:
    """C21: CancelOperation of a batch deletion (pending, then done) is
    FAILED_PRECONDITION / OPERATION_NOT_CANCELLABLE."""
    coll = await make_collection(res.BATCH)
    job = await clients.jobs.CreateJob(
        jobs_pb.CreateJobRequest(
            parent=coll.name,
            job_id="j1",
            job=res.Job(batch=res.BatchSpec(pool_info=res.PoolInfo(pool_id="p1"))),
        )
    )
    task = await clients.jobs.CreateTask(
        jobs_pb.CreateTaskRequest(parent=job.name, task_id="t1", task=res.Task())
    )
    await clients.operator.TransitionTask(
        operator_pb.TransitionTaskRequest(name=task.name, state=res.Task.RUNNING)
    )
    op = await delete(clients, job.name)
    assert not op.done
    assert metadata(op).cancellable is False

    # pending: refused, and the deletion carries on untouched
    err = await refused(
        clients,
        job.name,
        lambda: cancel(clients, op.name),
        FAILED_PRECONDITION,
        "OPERATION_NOT_CANCELLABLE",
        "pending batch deletion",
    )
    assert err.precondition is not None
    pending = await get_operation(clients, op.name)
    assert not pending.done
    assert (await get_job(clients, job.name)).state == res.DELETING

    await clients.operator.TransitionTask(
        operator_pb.TransitionTaskRequest(
            name=task.name, state=res.Task.COMPLETED, result=res.Task.SUCCESS
        )
    )
    done = await wait_done(clients.operations, op.name)
    assert done.WhichOneof("result") == "response"

    # done: refused, the Operation is unchanged
    await expect_error(cancel(clients, op.name), FAILED_PRECONDITION, "OPERATION_NOT_CANCELLABLE")
    assert await get_operation(clients, op.name) == done
    await expect_error(get_job(clients, job.name), NOT_FOUND, "JOB_NOT_FOUND")


async def test_c21_cancel_of_done_backup_deletion_refused(clients: Any, coll: Any) -> None:
    """C21: CancelOperation of a backup deletion that is already done (purged, or
    cancelled) is FAILED_PRECONDITION / OPERATION_NOT_CANCELLABLE."""
    purged = await create_job(clients, coll, job_id="purged")
    op = await delete(clients, purged.name)
    done = await wait_done(clients.operations, op.name)
    assert done.WhichOneof("result") == "response"
    await expect_error(cancel(clients, op.name), FAILED_PRECONDITION, "OPERATION_NOT_CANCELLABLE")
    assert await get_operation(clients, op.name) == done
    await assert_purged(clients, purged.name)

    job, pending = await running_deletion(clients, coll)
    await cancel(clients, pending.name)
    cancelled = await wait_done(clients.operations, pending.name)
    assert cancelled.error.code == CANCELLED
    await refused(
        clients,
        job.name,
        lambda: cancel(clients, pending.name),
        FAILED_PRECONDITION,
        "OPERATION_NOT_CANCELLABLE",
        "cancelled backup deletion",
    )
    assert await get_operation(clients, pending.name) == cancelled
    assert (await get_job(clients, job.name)).state == res.RUNNING


# --- K10 the schedule toggle, K11 ids in any case ------------------------------------------


async def test_k10_toggle_flips_schedule_enabled_in_one_write(clients: Any, coll: Any) -> None:
    """K10: ToggleJob flips backup.schedule_enabled (unset counts as off) on the job as it
    is, each call a new etag; a stale etag is ABORTED / ETAG_MISMATCH and flips nothing."""
    job = await create_job(clients, coll)
    on = await clients.jobs.ToggleJob(jobs_pb.ToggleJobRequest(name=job.name))
    assert on.backup.schedule_enabled is True and on.etag != job.etag
    off = await clients.jobs.ToggleJob(jobs_pb.ToggleJobRequest(name=job.name, etag=on.etag))
    assert off.backup.schedule_enabled is False and off.backup.HasField("schedule_enabled")
    await refused(
        clients,
        job.name,
        call_of(clients.jobs.ToggleJob, jobs_pb.ToggleJobRequest(name=job.name, etag=on.etag)),
        grpc.StatusCode.ABORTED,
        "ETAG_MISMATCH",
    )


async def test_k10_toggle_of_other_profiles_is_not_supported(
    clients: Any, make_collection: Any
) -> None:
    """K10: only the backup profile's action table has the toggle: a scheduled job answers
    OPERATION_NOT_SUPPORTED (C22)."""
    col = await make_collection(res.SCHEDULED)
    job = await clients.jobs.CreateJob(
        jobs_pb.CreateJobRequest(parent=col.name, job_id="s", job=res.Job())
    )
    await refused(
        clients,
        job.name,
        call_of(clients.jobs.ToggleJob, jobs_pb.ToggleJobRequest(name=job.name)),
        FAILED_PRECONDITION,
        "OPERATION_NOT_SUPPORTED",
    )


async def test_k11_job_ids_match_in_any_case(clients: Any, coll: Any) -> None:
    """K11: backup job ids (GUIDs) are looked up case-insensitively and keep the case they
    were created with; another id differing only in case is JOB_ALREADY_EXISTS."""
    guid = "5B89DAE5-6F08-45EC-B068-08F0BD08394A"
    job = await create_job(clients, coll, guid)
    found = await get_job(clients, f"{coll.name}/jobs/{guid.lower()}")
    assert found.name == job.name == f"{coll.name}/jobs/{guid}"
    await expect_error(
        create_job(clients, coll, guid.lower()),
        grpc.StatusCode.ALREADY_EXISTS,
        "JOB_ALREADY_EXISTS",
    )
