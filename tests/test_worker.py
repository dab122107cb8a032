"""WorkerService: batch tasks leased by workers, rules W1..W9 of docs/rules.md."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, struct_pb2

from jobcontrol.v1 import job_service_pb2 as jobs_pb
from jobcontrol.v1 import operator_service_pb2 as operator_pb
from jobcontrol.v1 import resources_pb2 as res
from jobcontrol.v1 import worker_service_pb2 as pb
from tests.helpers import expect_error

pytestmark = pytest.mark.backends

ABORTED = grpc.StatusCode.ABORTED
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def struct(**values: Any) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(values)
    return out


def seconds(value: float) -> duration_pb2.Duration:
    whole = int(value)
    return duration_pb2.Duration(seconds=whole, nanos=int((value - whole) * 1e9))


async def batch_job(make_collection: Any, clients: Any, retries: int | None = None) -> str:
    collection = await make_collection(res.BATCH)
    spec = res.BatchSpec(pool_info=res.PoolInfo(pool_id="p1"))
    if retries is not None:
        spec.constraints.max_task_retry_count = retries
    job = await clients.jobs.CreateJob(
        jobs_pb.CreateJobRequest(parent=collection.name, job_id="j1", job=res.Job(batch=spec))
    )
    name: str = job.name
    return name


async def add_task(clients: Any, job: str, task_id: str, command: str = "echo hi") -> str:
    task = await clients.jobs.CreateTask(
        jobs_pb.CreateTaskRequest(parent=job, task_id=task_id, task=res.Task(command_line=command))
    )
    name: str = task.name
    return name


async def lease(worker: Any, n: int = 1, who: str = "w1", **kw: Any) -> list[pb.WorkItem]:
    kw.setdefault("lease_duration", seconds(30))
    reply = await worker.LeaseWork(pb.LeaseWorkRequest(worker_id=who, max_items=n, **kw))
    return list(reply.items)


async def task_of(clients: Any, name: str) -> res.Task:
    task: res.Task = await clients.jobs.GetTask(jobs_pb.GetTaskRequest(name=name))
    return task


async def test_lease_runs_a_task_and_completion_records_its_exit_code(
    clients: Any, worker: Any, make_collection: Any
) -> None:
    """W1: LeaseWork moves an ACTIVE task to RUNNING and returns it with its work id,
    attempt, lease token, expiry and payload; CompleteWork with exit code 0 completes
    the task with SUCCESS, and the item is not leased again."""
    job = await batch_job(make_collection, clients)
    name = await add_task(clients, job, "t1", "echo hi")
    [item] = await lease(worker)
    assert item.kind == "batch.task" and item.target == name and item.attempt == 1
    assert item.work_id and item.lease_token and item.lease_expires_at.seconds > 0
    assert item.payload["command_line"] == "echo hi"
    assert (await task_of(clients, name)).state == res.Task.RUNNING
    reply = await worker.CompleteWork(pb.CompleteWorkRequest(lease_token=item.lease_token))
    assert reply.done
    task = await task_of(clients, name)
    assert task.state == res.Task.COMPLETED and task.result == res.Task.SUCCESS
    assert task.HasField("exit_code") and task.exit_code == 0
    assert await lease(worker) == []
    counts = await clients.jobs.CountTasks(jobs_pb.CountTasksRequest(parent=job))
    assert (counts.completed, counts.succeeded, counts.running) == (1, 1, 0)


async def test_batched_lease_takes_each_item_once(
    clients: Any, worker: Any, make_collection: Any
) -> None:
    """W2: one LeaseWork takes up to max_items items, oldest first, each leased to one
    worker only."""
    job = await batch_job(make_collection, clients)
    names = [await add_task(clients, job, f"t{i}") for i in range(5)]
    first = await lease(worker, 3, "w1")
    second = await lease(worker, 3, "w2")
    assert [i.target for i in first] == names[:3]
    assert [i.target for i in second] == names[3:]
    assert await lease(worker, 3, "w3") == []


async def test_stale_lease_token_is_aborted_on_every_write(
    clients: Any, worker: Any, make_collection: Any
) -> None:
    """W3: a lease that expired is re-leased with attempt + 1; every write naming the old
    token (Heartbeat, CompleteWork, FailWork, ReleaseWork) is ABORTED LEASE_LOST and
    changes nothing."""
    job = await batch_job(make_collection, clients)
    name = await add_task(clients, job, "t1")
    [old] = await lease(worker, lease_duration=seconds(1))
    await asyncio.sleep(1.2)
    await expect_error(
        worker.Heartbeat(pb.HeartbeatRequest(lease_token=old.lease_token)), ABORTED, "LEASE_LOST"
    )
    [new] = await lease(worker, who="w2")
    assert new.work_id == old.work_id and new.attempt == 2
    before = await task_of(clients, name)
    stale = old.lease_token
    for call in (
        worker.Heartbeat(pb.HeartbeatRequest(lease_token=stale)),
        worker.CompleteWork(pb.CompleteWorkRequest(lease_token=stale)),
        worker.FailWork(pb.FailWorkRequest(lease_token=stale, retryable=True)),
        worker.ReleaseWork(pb.ReleaseWorkRequest(lease_token=stale)),
    ):
        await expect_error(call, ABORTED, "LEASE_LOST")
    assert await task_of(clients, name) == before
    done = await worker.CompleteWork(pb.CompleteWorkRequest(lease_token=new.lease_token))
    assert done.done


async def test_failed_attempts_are_retried_up_to_max_task_retry_count(
    clients: Any, worker: Any, make_collection: Any
) -> None:
    """W4: a non-zero exit code or a retryable failure fails the attempt; the task goes
    back to ACTIVE and is leased again while its retries stay within the job's
    max_task_retry_count, then completes with FAILURE."""
    job = await batch_job(make_collection, clients, retries=1)
    name = await add_task(clients, job, "t1")
    [item] = await lease(worker)
    reply = await worker.CompleteWork(pb.CompleteWorkRequest(lease_token=item.lease_token,
                                                             exit_code=3))  # fmt: skip
    assert not reply.done
    task = await task_of(clients, name)
    assert task.state == res.Task.ACTIVE and task.retry_count == 1 and task.exit_code == 3
    [again] = await lease(worker)
    assert again.attempt == 2 and again.payload["retry_count"] == 1
    failed = await worker.FailWork(pb.FailWorkRequest(lease_token=again.lease_token,
                                                      retryable=True))  # fmt: skip
    assert not failed.will_retry
    task = await task_of(clients, name)
    assert task.state == res.Task.COMPLETED and task.result == res.Task.FAILURE
    assert task.retry_count == 1
    assert await lease(worker) == []


async def test_unlimited_retries_and_non_retryable_failures(
    clients: Any, worker: Any, make_collection: Any
) -> None:
    """W5: max_task_retry_count -1 retries without limit; a failure that is not
    retryable completes the task with FAILURE at once."""
    job = await batch_job(make_collection, clients, retries=-1)
    name = await add_task(clients, job, "t1")
    for attempt in range(1, 5):
        [item] = await lease(worker)
        assert item.attempt == attempt
        reply = await worker.FailWork(pb.FailWorkRequest(lease_token=item.lease_token,
                                                         retryable=True))  # fmt: skip
        assert reply.will_retry
    [item] = await lease(worker)
    reply = await worker.FailWork(pb.FailWorkRequest(lease_token=item.lease_token))
    assert not reply.will_retry
    task = await task_of(clients, name)
    assert task.result == res.Task.FAILURE and task.retry_count == 4


async def test_release_gives_the_item_back_without_an_attempt_counted(
    clients: Any, worker: Any, make_collection: Any
) -> None:
    """W6: ReleaseWork puts the task back to ACTIVE (no retry counted); another worker
    leases it with the next attempt number."""
    job = await batch_job(make_collection, clients)
    name = await add_task(clients, job, "t1")
    [item] = await lease(worker)
    await worker.ReleaseWork(pb.ReleaseWorkRequest(lease_token=item.lease_token))
    task = await task_of(clients, name)
    assert task.state == res.Task.ACTIVE and task.retry_count == 0
    [again] = await lease(worker, who="w2")
    assert again.work_id == item.work_id and again.attempt == 2


async def test_heartbeat_renews_and_tells_of_cancellation(
    clients: Any, worker: Any, make_collection: Any
) -> None:
    """W7: Heartbeat extends the lease and records progress; it returns cancel_requested
    once the job is terminating; a disable with requeue withdraws the work (the old
    lease is LEASE_LOST) and the job's tasks are not leased while it is disabled."""
    job = await batch_job(make_collection, clients)
    await add_task(clients, job, "t1")
    await add_task(clients, job, "t2")
    one, two = await lease(worker, 2)
    beat = await worker.Heartbeat(pb.HeartbeatRequest(lease_token=one.lease_token,
                                                      progress="50%"))  # fmt: skip
    assert not beat.cancel_requested
    assert beat.lease_expires_at.ToMicroseconds() >= one.lease_expires_at.ToMicroseconds()
    await clients.jobs.PauseJob(jobs_pb.PauseJobRequest(name=job, disable_tasks=jobs_pb.REQUEUE))
    await expect_error(
        worker.CompleteWork(pb.CompleteWorkRequest(lease_token=one.lease_token)),
        ABORTED,
        "LEASE_LOST",
    )
    beat = await worker.Heartbeat(pb.HeartbeatRequest(lease_token=two.lease_token))
    assert beat.cancel_requested
    assert await lease(worker) == []
    await clients.jobs.ResumeJob(jobs_pb.ResumeJobRequest(name=job))
    again = await lease(worker, 2)
    assert sorted(i.attempt for i in again) == [2, 2]
    await clients.jobs.TerminateJob(jobs_pb.TerminateJobRequest(name=job))
    beat = await worker.Heartbeat(pb.HeartbeatRequest(lease_token=again[0].lease_token))
    assert beat.cancel_requested
    for item in again:
        await worker.CompleteWork(pb.CompleteWorkRequest(lease_token=item.lease_token))
    got = await clients.jobs.GetJob(jobs_pb.GetJobRequest(name=job))
    assert got.state == res.COMPLETED


async def test_long_poll_is_woken_by_new_work(
    clients: Any, worker: Any, make_collection: Any
) -> None:
    """W8: LeaseWork with a wait_timeout waits for work and returns it once a task is
    created; with no work it returns no items when the wait ends."""
    job = await batch_job(make_collection, clients)
    assert await lease(worker, wait_timeout=seconds(0.2)) == []
    waiting = asyncio.ensure_future(lease(worker, wait_timeout=seconds(20)))
    await asyncio.sleep(0.1)
    name = await add_task(clients, job, "t1")
    [item] = await asyncio.wait_for(waiting, 20)
    assert item.target == name


async def test_operator_moves_fence_the_lease(
    clients: Any, worker: Any, make_collection: Any
) -> None:
    """W3: an operator completing a leased task withdraws the lease (LEASE_LOST); tasks
    moved to RUNNING by an operator are not leased."""
    job = await batch_job(make_collection, clients)
    leased = await add_task(clients, job, "t1")
    [item] = await lease(worker)
    await clients.operator.TransitionTask(
        operator_pb.TransitionTaskRequest(
            name=leased, state=res.Task.COMPLETED, result=res.Task.SUCCESS
        )
    )
    await expect_error(
        worker.CompleteWork(pb.CompleteWorkRequest(lease_token=item.lease_token)),
        ABORTED,
        "LEASE_LOST",
    )
    other = await add_task(clients, job, "t2")
    await clients.operator.TransitionTask(
        operator_pb.TransitionTaskRequest(name=other, state=res.Task.RUNNING)
    )
    assert await lease(worker) == []


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.LeaseWorkRequest(), "worker_id"),
        (pb.LeaseWorkRequest(worker_id="w" * 65), "worker_id"),
        (pb.LeaseWorkRequest(worker_id="w", max_items=1001), "max_items"),
        (pb.LeaseWorkRequest(worker_id="w", max_items=-1), "max_items"),
        (pb.LeaseWorkRequest(worker_id="w", kinds=["nope"]), "kinds[0]"),
        (pb.LeaseWorkRequest(worker_id="w", lease_duration=seconds(0.5)), "lease_duration"),
        (pb.LeaseWorkRequest(worker_id="w", wait_timeout=seconds(61)), "wait_timeout"),
        (
            pb.LeaseWorkRequest(worker_id="w", wait_timeout=duration_pb2.Duration(seconds=-1)),
            "wait_timeout",
        ),
        (pb.HeartbeatRequest(), "lease_token"),
        (pb.HeartbeatRequest(lease_token="garbage"), "lease_token"),
        (pb.HeartbeatRequest(lease_token="a.1.x", progress="p" * 1025), "progress"),
        (pb.CompleteWorkRequest(lease_token="x" * 65), "lease_token"),
        (pb.FailWorkRequest(), "lease_token"),
        (pb.FailWorkRequest(lease_token="a.1.x", error="e" * 4097), "error"),
        (pb.CompleteWorkRequest(lease_token="a.1.x", message="m" * 4097), "message"),
        (
            pb.CompleteWorkRequest(lease_token="a.1.x", result=struct(result="MAYBE")),
            "result.result",
        ),
        (pb.CompleteWorkRequest(lease_token="a.1.x", result=struct(result=1)), "result.result"),
        (pb.ReleaseWorkRequest(lease_token="nodots"), "lease_token"),
    ],
)
async def test_bad_worker_input_is_invalid_argument(worker: Any, request_: Any, field: str) -> None:
    """W9: bad input to WorkerService is INVALID_ARGUMENT with a field violation."""
    method = {
        pb.LeaseWorkRequest: worker.LeaseWork,
        pb.HeartbeatRequest: worker.Heartbeat,
        pb.CompleteWorkRequest: worker.CompleteWork,
        pb.FailWorkRequest: worker.FailWork,
        pb.ReleaseWorkRequest: worker.ReleaseWork,
    }[type(request_)]
    err = await expect_error(method(request_), INVALID)
    assert err.bad_request is not None
    assert [v.field for v in err.bad_request.field_violations] == [field]


async def test_unknown_lease_token_is_aborted(worker: Any) -> None:
    """W3: a well-formed token that names no held lease is ABORTED LEASE_LOST."""
    await expect_error(
        worker.CompleteWork(pb.CompleteWorkRequest(lease_token="abc.1.xyz")),
        ABORTED,
        "LEASE_LOST",
    )
