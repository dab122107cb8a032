"""WorkerService for backup runs (Veeam): rules W11..W13 of docs/rules.md."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from jobcontrol.v1 import job_service_pb2 as jobs_pb
from jobcontrol.v1 import resources_pb2 as res
from jobcontrol.v1 import worker_service_pb2 as pb
from tests.helpers import delete, expect_error, get_job, get_operation, wait_done
from tests.test_worker import lease

pytestmark = pytest.mark.backends


async def backup_job(clients: Any, make_collection: Any) -> str:
    collection = await make_collection(res.BACKUP)
    job = await clients.jobs.CreateJob(
        jobs_pb.CreateJobRequest(
            parent=collection.name,
            job_id="b1",
            job=res.Job(backup=res.BackupSpec(job_type=res.BackupSpec.BACKUP)),
        )
    )
    name: str = job.name
    return name


def outcome(result: str) -> struct_pb2.Struct:
    value = struct_pb2.Struct()
    value.update({"result": result})
    return value


async def history(clients: Any, name: str) -> list[res.HistoryEntry]:
    reply = await clients.jobs.ListJobHistory(jobs_pb.ListJobHistoryRequest(parent=name))
    return list(reply.entries)


async def test_start_makes_a_run_whose_result_is_the_last_result(
    clients: Any, worker: Any, make_collection: Any
) -> None:
    """W11: StartJob makes a run a worker leases (kind backup.run, the job as target);
    its CompleteWork result (SUCCESS / WARNING / FAILED, else by exit code) ends the run
    like RecordRun: IDLE, the job's last result, a history entry. RetryJob only after
    FAILED, and it makes a new run."""
    name = await backup_job(clients, make_collection)
    assert await lease(worker, kinds=["backup.run"]) == []
    await clients.jobs.StartJob(jobs_pb.StartJobRequest(name=name))
    [run] = await lease(worker, kinds=["backup.run"])
    assert run.kind == "backup.run" and run.target == name and run.attempt == 1
    assert run.payload["job"] == name
    reply = await worker.CompleteWork(
        pb.CompleteWorkRequest(lease_token=run.lease_token, result=outcome("WARNING"),
                               message="one VM skipped")
    )  # fmt: skip
    assert reply.done
    job = await get_job(clients, name)
    assert job.state == res.IDLE and job.backup.last_result == res.BackupSpec.WARNING
    [entry] = await history(clients, name)
    assert entry.status == res.HistoryEntry.COMPLETED and entry.message == "one VM skipped"
    await expect_error(
        clients.jobs.RetryJob(jobs_pb.RetryJobRequest(name=name)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "RETRY_NOT_ALLOWED",
    )
    await clients.jobs.StartJob(jobs_pb.StartJobRequest(name=name))
    [second] = await lease(worker, kinds=["backup.run"])
    assert second.work_id != run.work_id
    await worker.CompleteWork(pb.CompleteWorkRequest(lease_token=second.lease_token, exit_code=1))
    job = await get_job(clients, name)
    assert job.backup.last_result == res.BackupSpec.FAILED
    await clients.jobs.RetryJob(jobs_pb.RetryJobRequest(name=name))
    [third] = await lease(worker, kinds=["backup.run"])
    await worker.FailWork(pb.FailWorkRequest(lease_token=third.lease_token, error="disk full"))
    job = await get_job(clients, name)
    assert job.state == res.IDLE and job.backup.last_result == res.BackupSpec.FAILED
    assert [e.status for e in await history(clients, name)].count(res.HistoryEntry.FAILED) == 2


async def test_stop_asks_the_worker_to_cancel(
    clients: Any, worker: Any, make_collection: Any
) -> None:
    """W12: StopJob (RUNNING -> IDLE, last result FAILED, as K2) withdraws the run: the
    worker's heartbeat returns cancel_requested, and its late CompleteWork is ABORTED
    LEASE_LOST and changes nothing."""
    name = await backup_job(clients, make_collection)
    await clients.jobs.StartJob(jobs_pb.StartJobRequest(name=name))
    [run] = await lease(worker, kinds=["backup.run"])
    beat = await worker.Heartbeat(pb.HeartbeatRequest(lease_token=run.lease_token))
    assert not beat.cancel_requested
    await clients.jobs.StopJob(jobs_pb.StopJobRequest(name=name))
    beat = await worker.Heartbeat(pb.HeartbeatRequest(lease_token=run.lease_token))
    assert beat.cancel_requested
    before = await get_job(clients, name)
    await expect_error(
        worker.CompleteWork(pb.CompleteWorkRequest(lease_token=run.lease_token)),
        grpc.StatusCode.ABORTED,
        "LEASE_LOST",
    )
    assert await get_job(clients, name) == before
    assert await lease(worker, kinds=["backup.run"]) == []


async def test_delete_waits_for_the_run_in_flight(
    clients: Any, worker: Any, make_collection: Any
) -> None:
    """W13: deleting a backup job whose run a worker holds waits for the run (K6): the
    job stays DELETING and the worker is not asked to cancel; the run's end lets the
    deletion finish."""
    name = await backup_job(clients, make_collection)
    await clients.jobs.StartJob(jobs_pb.StartJobRequest(name=name))
    [run] = await lease(worker, kinds=["backup.run"])
    op = await delete(clients, name)
    await asyncio.sleep(0.2)  # the reaper runs every 0.02 s in tests
    assert not (await get_operation(clients, op.name)).done
    assert (await get_job(clients, name)).state == res.DELETING
    beat = await worker.Heartbeat(pb.HeartbeatRequest(lease_token=run.lease_token))
    assert not beat.cancel_requested
    await worker.CompleteWork(pb.CompleteWorkRequest(lease_token=run.lease_token))
    done = await wait_done(clients.operations, op.name)
    assert not done.HasField("error")
    await expect_error(
        clients.jobs.GetJob(jobs_pb.GetJobRequest(name=name)), grpc.StatusCode.NOT_FOUND
    )
