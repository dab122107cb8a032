"""What the service does with leased batch tasks on its own: the job's reactions to its
tasks ending (onAllTasksComplete, onTaskFailure and exit options), a task's own limits
(maxWallClockTime, maxTaskRetryCount), and disable / delete acting on leased tasks;
rules W15..W21 of docs/rules.md."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from jobcontrol.v1 import job_service_pb2 as jobs_pb
from jobcontrol.v1 import resources_pb2 as res
from jobcontrol.v1 import worker_service_pb2 as pb
from tests.helpers import expect_error
from tests.test_worker import lease, seconds, struct, task_of

pytestmark = pytest.mark.backends

ABORTED = grpc.StatusCode.ABORTED
SETTLE_LIMIT = 10.0  # seconds a background step may take before the test gives up


async def job_with(make_collection: Any, clients: Any, job_id: str = "j1", **spec: Any) -> str:
    """A batch job whose BatchSpec has `spec` besides its pool."""
    collection = await make_collection(res.BATCH)
    batch = res.BatchSpec(pool_info=res.PoolInfo(pool_id="p1"), **spec)
    job = await clients.jobs.CreateJob(
        jobs_pb.CreateJobRequest(parent=collection.name, job_id=job_id, job=res.Job(batch=batch))
    )
    name: str = job.name
    return name


async def task_with(clients: Any, job: str, task_id: str, **properties: Any) -> str:
    task = res.Task(command_line="run", properties=struct(**properties))
    created = await clients.jobs.CreateTask(
        jobs_pb.CreateTaskRequest(parent=job, task_id=task_id, task=task)
    )
    name: str = created.name
    return name


async def get_job(clients: Any, name: str) -> res.Job:
    job: res.Job = await clients.jobs.GetJob(jobs_pb.GetJobRequest(name=name))
    return job


async def complete(worker: Any, item: pb.WorkItem, exit_code: int = 0) -> None:
    await worker.CompleteWork(pb.CompleteWorkRequest(lease_token=item.lease_token,
                                                     exit_code=exit_code))  # fmt: skip


async def test_all_tasks_complete_terminates_the_job(
    clients: Any, worker: Any, make_collection: Any
) -> None:
    """W15: with onAllTasksComplete terminatejob the job ends (COMPLETED, terminate reason
    AllTasksComplete) when its last task completes, not before; a job created with it and
    no task waits for its tasks; an update turning it on ends a job whose tasks are all
    done at once."""
    job = await job_with(
        make_collection, clients, on_all_tasks_complete=res.BatchSpec.TERMINATE_JOB
    )
    assert (await get_job(clients, job)).state == res.ACTIVE
    await task_with(clients, job, "t1")
    await task_with(clients, job, "t2")
    first, second = await lease(worker, 2)
    await complete(worker, first)
    assert (await get_job(clients, job)).state == res.ACTIVE
    await complete(worker, second, exit_code=1)
    ended = await get_job(clients, job)
    assert ended.state == res.COMPLETED
    assert ended.batch.execution_info.terminate_reason == "AllTasksComplete"

    other = await job_with(make_collection, clients, job_id="j2")
    await task_with(clients, other, "t1")
    [item] = await lease(worker)
    await complete(worker, item)
    assert (await get_job(clients, other)).state == res.ACTIVE
    update = res.Job(
        name=other, batch=res.BatchSpec(on_all_tasks_complete=res.BatchSpec.TERMINATE_JOB)
    )
    updated = await clients.jobs.UpdateJob(jobs_pb.UpdateJobRequest(
        job=update, update_mask={"paths": ["batch.on_all_tasks_complete"]}))  # fmt: skip
    assert updated.state == res.COMPLETED
    assert updated.batch.execution_info.terminate_reason == "AllTasksComplete"


async def test_task_failure_takes_the_exit_options_job_action(
    clients: Any, worker: Any, make_collection: Any
) -> None:
    """W16: with onTaskFailure performexitoptionsjobaction a task's final end takes the job
    action of its exit options (its exit code, then its ranges, then default for a
    failure); without one a failure terminates the job (reason TaskFailed, running tasks
    asked to stop, the job TERMINATING until they end) and a success does nothing;
    `none` keeps the job active, `disable` disables it with its tasks requeued. With
    noaction a failure does nothing."""
    exits = res.BatchSpec.PERFORM_EXIT_OPTIONS_JOB_ACTION
    job = await job_with(make_collection, clients, on_task_failure=exits)
    await task_with(clients, job, "ok")
    await task_with(clients, job, "tolerated", exitConditions={
        "exitCodes": [{"code": 3, "exitOptions": {"jobAction": "none"}}]})  # fmt: skip
    await task_with(clients, job, "fails")
    await task_with(clients, job, "running")
    ok, tolerated, fails, running = await lease(worker, 4)
    await complete(worker, ok)
    await complete(worker, tolerated, exit_code=3)
    assert (await get_job(clients, job)).state == res.ACTIVE
    await complete(worker, fails, exit_code=1)
    ending = await get_job(clients, job)
    assert ending.state == res.TERMINATING
    assert ending.batch.execution_info.terminate_reason == "TaskFailed"
    beat = await worker.Heartbeat(pb.HeartbeatRequest(lease_token=running.lease_token))
    assert beat.cancel_requested
    await complete(worker, running)
    assert (await get_job(clients, job)).state == res.COMPLETED

    disabling = await job_with(make_collection, clients, job_id="j2", on_task_failure=exits)
    await task_with(clients, disabling, "ranged", exitConditions={
        "exitCodeRanges": [{"start": 10, "end": 20, "exitOptions": {"jobAction": "disable"}}],
        "default": {"jobAction": "terminate"}})  # fmt: skip
    await task_with(clients, disabling, "other")
    ranged, other = await lease(worker, 2)
    await complete(worker, ranged, exit_code=12)
    assert (await get_job(clients, disabling)).state == res.DISABLED
    assert (await task_of(clients, f"{disabling}/tasks/other")).state == res.Task.ACTIVE
    await expect_error(worker.CompleteWork(pb.CompleteWorkRequest(
        lease_token=other.lease_token)), ABORTED, "LEASE_LOST")  # fmt: skip

    ignoring = await job_with(make_collection, clients, job_id="j3")
    await task_with(clients, ignoring, "fails")
    [item] = await lease(worker)
    await complete(worker, item, exit_code=1)
    assert (await get_job(clients, ignoring)).state == res.ACTIVE


async def test_task_over_max_wall_clock_time_is_ended_by_the_service(
    clients: Any, worker: Any, make_collection: Any
) -> None:
    """W17: a running task past its constraints.maxWallClockTime (from its start) is ended
    by the service: COMPLETED with FAILURE and no exit code, not retried (the limit is
    the task's), its lease gone (late writes LEASE_LOST); its job's reactions follow."""
    job = await job_with(make_collection, clients, constraints=res.JobConstraints(
        max_task_retry_count=3), on_all_tasks_complete=res.BatchSpec.TERMINATE_JOB)  # fmt: skip
    name = await task_with(clients, job, "slow", constraints={"maxWallClockTime": "PT1S"})
    [item] = await lease(worker, lease_duration=seconds(60))
    beat = await worker.Heartbeat(pb.HeartbeatRequest(lease_token=item.lease_token))
    assert not beat.cancel_requested  # within its second
    task = await task_of(clients, name)
    for _ in range(int(SETTLE_LIMIT / 0.05)):
        if task.state == res.Task.COMPLETED:
            break
        await asyncio.sleep(0.05)
        task = await task_of(clients, name)
    assert (task.state, task.result, task.retry_count) == (res.Task.COMPLETED, res.Task.FAILURE, 0)
    assert not task.HasField("exit_code")
    await expect_error(worker.CompleteWork(pb.CompleteWorkRequest(
        lease_token=item.lease_token)), ABORTED, "LEASE_LOST")  # fmt: skip
    assert await lease(worker) == []
    ended = await get_job(clients, job)
    assert (ended.state, ended.batch.execution_info.terminate_reason) == (
        res.COMPLETED, "AllTasksComplete")  # fmt: skip


async def test_task_retry_count_overrides_the_job_default(
    clients: Any, worker: Any, make_collection: Any
) -> None:
    """W18: a task's own constraints.maxTaskRetryCount bounds its retries over the job's
    default (here 0)."""
    job = await job_with(make_collection, clients)
    name = await task_with(clients, job, "t1", constraints={"maxTaskRetryCount": 1})
    [item] = await lease(worker)
    await complete(worker, item, exit_code=2)
    task = await task_of(clients, name)
    assert (task.state, task.retry_count) == (res.Task.ACTIVE, 1)
    [again] = await lease(worker)
    await complete(worker, again, exit_code=2)
    task = await task_of(clients, name)
    assert (task.state, task.result, task.retry_count) == (res.Task.COMPLETED, res.Task.FAILURE, 1)


@pytest.mark.parametrize(
    ("constraints", "field"),
    [
        ({"maxWallClockTime": "soon"}, "task.properties.constraints.maxWallClockTime"),
        ({"maxWallClockTime": "P1M"}, "task.properties.constraints.maxWallClockTime"),
        ({"maxWallClockTime": 60}, "task.properties.constraints.maxWallClockTime"),
        ({"maxTaskRetryCount": -2}, "task.properties.constraints.maxTaskRetryCount"),
        ({"maxTaskRetryCount": 1.5}, "task.properties.constraints.maxTaskRetryCount"),
    ],
)
async def test_bad_task_limits_are_invalid_argument(
    clients: Any, make_collection: Any, constraints: dict[str, Any], field: str
) -> None:
    """W19: a task whose own limits are malformed is INVALID_ARGUMENT INVALID_FIELD naming
    the property, and is not created."""
    job = await job_with(make_collection, clients)
    err = await expect_error(task_with(clients, job, "t1", constraints=constraints),
                             grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")  # fmt: skip
    assert err.info is not None and err.info.metadata["field"] == field
    counts = await clients.jobs.CountTasks(jobs_pb.CountTasksRequest(parent=job))
    assert counts.active == 0


async def test_disable_dispositions_act_on_leased_tasks(
    clients: Any, worker: Any, make_collection: Any
) -> None:
    """W20: a disable with terminate ends a leased task (COMPLETED, FAILURE; the lease
    LEASE_LOST) and the job is DISABLED at once; with wait the task keeps running and its
    lease stays good, the job DISABLING until the task completes, then DISABLED."""
    terminated = await job_with(make_collection, clients)
    name = await task_with(clients, terminated, "t1")
    [item] = await lease(worker)
    pause = jobs_pb.PauseJobRequest(name=terminated, disable_tasks=jobs_pb.TERMINATE)
    await clients.jobs.PauseJob(pause)
    assert (await get_job(clients, terminated)).state == res.DISABLED
    task = await task_of(clients, name)
    assert (task.state, task.result) == (res.Task.COMPLETED, res.Task.FAILURE)
    await expect_error(worker.CompleteWork(pb.CompleteWorkRequest(
        lease_token=item.lease_token)), ABORTED, "LEASE_LOST")  # fmt: skip

    waiting = await job_with(make_collection, clients, job_id="j2")
    name = await task_with(clients, waiting, "t1")
    [item] = await lease(worker)
    await clients.jobs.PauseJob(jobs_pb.PauseJobRequest(name=waiting,
                                                        disable_tasks=jobs_pb.WAIT))  # fmt: skip
    assert (await get_job(clients, waiting)).state == res.DISABLING
    beat = await worker.Heartbeat(pb.HeartbeatRequest(lease_token=item.lease_token))
    assert not beat.cancel_requested
    await complete(worker, item)
    assert (await task_of(clients, name)).result == res.Task.SUCCESS
    assert (await get_job(clients, waiting)).state == res.DISABLED


async def test_delete_waits_for_leased_tasks_and_asks_them_to_stop(
    clients: Any, worker: Any, make_collection: Any
) -> None:
    """W21: a non-force delete of a job with a leased task leaves it DELETING, the task's
    heartbeat asks the worker to stop, and the job is purged once the worker ends it."""
    job = await job_with(make_collection, clients)
    await task_with(clients, job, "t1")
    [item] = await lease(worker)
    await clients.jobs.DeleteJob(jobs_pb.DeleteJobRequest(name=job))
    assert (await get_job(clients, job)).state == res.DELETING
    beat = await worker.Heartbeat(pb.HeartbeatRequest(lease_token=item.lease_token))
    assert beat.cancel_requested
    await asyncio.sleep(0.2)  # reaper passes run meanwhile: the job must wait
    assert (await get_job(clients, job)).state == res.DELETING
    await complete(worker, item, exit_code=137)
    for _ in range(int(SETTLE_LIMIT / 0.05)):
        try:
            await get_job(clients, job)
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{job} was not purged within {SETTLE_LIMIT} s")


async def wait_state(clients: Any, name: str, state: int) -> res.Job:
    """The job once it reached `state` (bounded by SETTLE_LIMIT)."""
    job = await get_job(clients, name)
    for _ in range(int(SETTLE_LIMIT / 0.05)):
        if job.state == state:
            return job
        await asyncio.sleep(0.05)
        job = await get_job(clients, name)
    raise AssertionError(f"{name} is {res.State.Name(job.state)}, not {res.State.Name(state)}")


async def test_job_past_max_wall_clock_time_is_terminated_by_the_service(
    clients: Any, worker: Any, make_collection: Any
) -> None:
    """W22: a job past its constraints.max_wall_clock_time (from its creation) is
    terminated by the service with reason MaxWallClockTimeExpiry: its running tasks are
    asked to stop and the job is TERMINATING until they end, then COMPLETED; a job with
    nothing running is COMPLETED at once; a job whose limit was removed in time runs on."""
    limit = res.JobConstraints(max_wall_clock_time=seconds(1))
    busy = await job_with(make_collection, clients, constraints=limit)
    await task_with(clients, busy, "t1")
    [item] = await lease(worker, lease_duration=seconds(60))
    idle = await job_with(make_collection, clients, job_id="j2", constraints=limit)
    kept = await job_with(make_collection, clients, job_id="j3", constraints=limit)
    await clients.jobs.UpdateJob(jobs_pb.UpdateJobRequest(
        job=res.Job(name=kept), update_mask={"paths": ["batch.constraints"]}))  # fmt: skip
    ending = await wait_state(clients, busy, res.TERMINATING)
    assert ending.batch.execution_info.terminate_reason == "MaxWallClockTimeExpiry"
    beat = await worker.Heartbeat(pb.HeartbeatRequest(lease_token=item.lease_token))
    assert beat.cancel_requested
    await complete(worker, item, exit_code=143)
    assert (await get_job(clients, busy)).state == res.COMPLETED
    ended = await wait_state(clients, idle, res.COMPLETED)
    assert ended.batch.execution_info.terminate_reason == "MaxWallClockTimeExpiry"
    assert (await get_job(clients, kept)).state == res.ACTIVE


async def test_malformed_exit_conditions_match_nothing(
    clients: Any, worker: Any, make_collection: Any
) -> None:
    """W16: exit conditions a client stored malformed (a range bound that is not a number,
    an entry that is not an object) match nothing: the completion is taken (done), and the
    failure falls to the default action (terminate, TaskFailed)."""
    exits = res.BatchSpec.PERFORM_EXIT_OPTIONS_JOB_ACTION
    job = await job_with(make_collection, clients, on_task_failure=exits)
    await task_with(clients, job, "odd", exitConditions={
        "exitCodeRanges": [{"start": "a", "end": 9, "exitOptions": {"jobAction": "none"}}, 7],
        "exitCodes": ["x"]})  # fmt: skip
    [item] = await lease(worker)
    reply = await worker.CompleteWork(pb.CompleteWorkRequest(lease_token=item.lease_token,
                                                             exit_code=3))  # fmt: skip
    assert reply.done
    ended = await get_job(clients, job)
    assert (ended.state, ended.batch.execution_info.terminate_reason) == (
        res.COMPLETED, "TaskFailed")  # fmt: skip
