"""The `batch` profile (Azure Batch): rules B1..B13 of docs/rules.md."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import grpc
import pytest
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
    state_name,
    wait_done,
)
from tests.helpers import operator_to as transition

pytestmark = pytest.mark.backends

FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
NOT_FOUND = grpc.StatusCode.NOT_FOUND


# --- helpers ---------------------------------------------------------------------------


@pytest.fixture
async def coll(make_collection: Any) -> res.Collection:
    """A batch collection."""
    collection: res.Collection = await make_collection(res.BATCH)
    return collection


async def create_job(
    clients: Any, collection: res.Collection, job_id: str = "j1", pool_id: str = "p1"
) -> res.Job:
    job = res.Job(batch=res.BatchSpec(pool_info=res.PoolInfo(pool_id=pool_id)))
    created: res.Job = await clients.jobs.CreateJob(
        jobs_pb.CreateJobRequest(parent=collection.name, job_id=job_id, job=job)
    )
    return created


async def list_jobs(clients: Any, parent: str) -> list[res.Job]:
    reply = await clients.jobs.ListJobs(jobs_pb.ListJobsRequest(parent=parent, page_size=1000))
    return list(reply.jobs)


async def get_task(clients: Any, name: str) -> res.Task:
    task: res.Task = await clients.jobs.GetTask(jobs_pb.GetTaskRequest(name=name))
    return task


async def add_task(clients: Any, job_name: str, task_id: str, *, running: bool = False) -> str:
    """Create a task (ACTIVE); with `running`, move it to RUNNING. Returns its name."""
    task = await clients.jobs.CreateTask(
        jobs_pb.CreateTaskRequest(parent=job_name, task_id=task_id, task=res.Task())
    )
    assert task.state == res.Task.ACTIVE
    if running:
        task = await clients.operator.TransitionTask(
            operator_pb.TransitionTaskRequest(name=task.name, state=res.Task.RUNNING)
        )
        assert task.state == res.Task.RUNNING
    name: str = task.name
    return name


async def complete_task(clients: Any, name: str, result: int = res.Task.SUCCESS) -> None:
    task = await clients.operator.TransitionTask(
        operator_pb.TransitionTaskRequest(name=name, state=res.Task.COMPLETED, result=result)
    )
    assert task.state == res.Task.COMPLETED


async def pause(
    clients: Any, name: str, disposition: jobs_pb.TaskDisposition.ValueType = jobs_pb.REQUEUE
) -> res.Job:
    job: res.Job = await clients.jobs.PauseJob(
        jobs_pb.PauseJobRequest(name=name, disable_tasks=disposition)
    )
    return job


async def resume(clients: Any, name: str) -> res.Job:
    job: res.Job = await clients.jobs.ResumeJob(jobs_pb.ResumeJobRequest(name=name))
    return job


async def terminate(clients: Any, name: str) -> res.Job:
    job: res.Job = await clients.jobs.TerminateJob(jobs_pb.TerminateJobRequest(name=name))
    return job


SETTLE_LIMIT = 10.0  # seconds a settle may take before the test gives up (not a timing claim)


async def wait_state(clients: Any, name: str, state: int) -> res.Job:
    """Poll GetJob until the job is in `state` (bounded; settling may be asynchronous)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_LIMIT
    while True:
        job = await get_job(clients, name)
        if job.state == state:
            return job
        if loop.time() > deadline:
            raise AssertionError(f"{name} is {state_name(job.state)}, expected {state_name(state)}")
        await asyncio.sleep(0.02)


def mutations(clients: Any, name: str, *, with_delete: bool = False) -> list[tuple[str, Call]]:
    """Update (merge and masked), replace, disable, enable, terminate (and delete)."""
    replacement = res.Job(
        name=name,
        display_name="replaced",
        batch=res.BatchSpec(pool_info=res.PoolInfo(pool_id="p1")),
    )
    calls: list[tuple[str, Call]] = [
        (
            "update",
            lambda: clients.jobs.UpdateJob(
                jobs_pb.UpdateJobRequest(job=res.Job(name=name, display_name="changed"))
            ),
        ),
        (
            "update with mask",
            lambda: clients.jobs.UpdateJob(
                jobs_pb.UpdateJobRequest(
                    job=res.Job(name=name, display_name="changed"),
                    update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
                )
            ),
        ),
        (
            "replace",
            lambda: clients.jobs.UpdateJob(
                jobs_pb.UpdateJobRequest(
                    job=replacement, update_mask=field_mask_pb2.FieldMask(paths=["*"])
                )
            ),
        ),
        ("disable", lambda: clients.jobs.PauseJob(jobs_pb.PauseJobRequest(name=name))),
        ("enable", lambda: clients.jobs.ResumeJob(jobs_pb.ResumeJobRequest(name=name))),
        (
            "terminate",
            lambda: clients.jobs.TerminateJob(jobs_pb.TerminateJobRequest(name=name)),
        ),
    ]
    if with_delete:
        calls.append(
            ("delete", lambda: clients.jobs.DeleteJob(jobs_pb.DeleteJobRequest(name=name)))
        )
    return calls


def assert_transition(new: res.Job, old: res.Job, state: int) -> None:
    """`new` is `old` moved to `state`: previous state and time carried over."""
    assert new.state == state, f"state {state_name(new.state)}, expected {state_name(state)}"
    assert new.previous_state == old.state, (
        f"previous_state {state_name(new.previous_state)}, expected {state_name(old.state)}"
    )
    assert new.HasField("state_transition_time")
    assert new.previous_state_transition_time == old.state_transition_time
    assert new.etag != old.etag


# --- B1 --------------------------------------------------------------------------------


async def test_b1_initial_active_and_previous_state_kept(clients: Any, coll: Any) -> None:
    """B1: initial state ACTIVE; previous_state and both transition times kept on every
    transition."""
    job = await create_job(clients, coll)
    assert job.state == res.ACTIVE
    assert job.previous_state == res.STATE_UNSPECIFIED
    assert job.HasField("state_transition_time")
    assert not job.HasField("previous_state_transition_time")
    assert (await get_job(clients, job.name)).state == res.ACTIVE

    # ACTIVE -> DISABLING (a running task, disable WAIT) -> DISABLED when it completes
    t1 = await add_task(clients, job.name, "t1", running=True)
    disabling = await pause(clients, job.name, jobs_pb.WAIT)
    assert_transition(disabling, job, res.DISABLING)
    await complete_task(clients, t1)
    disabled = await wait_state(clients, job.name, res.DISABLED)
    assert_transition(disabled, disabling, res.DISABLED)

    # a write that is not a transition keeps all three
    renamed = await clients.jobs.UpdateJob(
        jobs_pb.UpdateJobRequest(job=res.Job(name=job.name, display_name="renamed"))
    )
    assert renamed.display_name == "renamed"
    assert renamed.state == res.DISABLED
    assert renamed.previous_state == res.DISABLING
    assert renamed.state_transition_time == disabled.state_transition_time
    assert renamed.previous_state_transition_time == disabled.previous_state_transition_time

    # DISABLED -> ENABLING -> ACTIVE (operator)
    enabling = await transition(clients, job.name, res.ENABLING)
    assert_transition(enabling, renamed, res.ENABLING)
    active = await transition(clients, job.name, res.ACTIVE)
    assert_transition(active, enabling, res.ACTIVE)

    # ACTIVE -> TERMINATING (a running task) -> COMPLETED when it completes
    t2 = await add_task(clients, job.name, "t2", running=True)
    terminating = await terminate(clients, job.name)
    assert_transition(terminating, active, res.TERMINATING)
    await complete_task(clients, t2)
    completed = await wait_state(clients, job.name, res.COMPLETED)
    assert_transition(completed, terminating, res.COMPLETED)

    # Get shows the same record
    got = await get_job(clients, job.name)
    assert got.previous_state == res.TERMINATING
    assert got.state_transition_time == completed.state_transition_time
    assert got.previous_state_transition_time == terminating.state_transition_time


async def test_b1_resume_keeps_previous_state(clients: Any, coll: Any) -> None:
    """B1: a client transition (Enable: DISABLED -> ACTIVE) records previous_state and
    its transition time."""
    job = await create_job(clients, coll)
    disabled = await pause(clients, job.name)
    assert disabled.state == res.DISABLED
    active = await resume(clients, job.name)
    assert_transition(active, disabled, res.ACTIVE)
    got = await get_job(clients, job.name)
    assert got.state == res.ACTIVE
    assert got.previous_state == res.DISABLED
    assert got.previous_state_transition_time == disabled.state_transition_time


# --- B2 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "disposition",
    [jobs_pb.TASK_DISPOSITION_UNSPECIFIED, jobs_pb.REQUEUE, jobs_pb.TERMINATE, jobs_pb.WAIT],
    ids=["default", "REQUEUE", "TERMINATE", "WAIT"],
)
async def test_b2_disable_without_running_tasks_is_immediate(
    clients: Any, coll: Any, disposition: int
) -> None:
    """B2: disable from ACTIVE with no running task is DISABLED at once, whatever the
    disposition; a queued (ACTIVE) task stays queued."""
    job = await create_job(clients, coll)
    queued = await add_task(clients, job.name, "t1")
    disabled = await pause(clients, job.name, disposition)
    assert disabled.state == res.DISABLED
    assert (await get_job(clients, job.name)).state == res.DISABLED
    assert (await get_task(clients, queued)).state == res.Task.ACTIVE


async def test_b2_disable_requeue_puts_running_tasks_back(clients: Any, coll: Any) -> None:
    """B2: disable with REQUEUE (the default) requeues running tasks; DISABLED at once."""
    job = await create_job(clients, coll)
    task = await add_task(clients, job.name, "t1", running=True)
    disabled = await pause(clients, job.name)
    assert disabled.state == res.DISABLED
    assert (await get_task(clients, task)).state == res.Task.ACTIVE
    assert (await get_job(clients, job.name)).state == res.DISABLED


async def test_b2_disable_terminate_fails_running_tasks(clients: Any, coll: Any) -> None:
    """B2: disable with TERMINATE completes running tasks with FAILURE; DISABLED at once."""
    job = await create_job(clients, coll)
    task_name = await add_task(clients, job.name, "t1", running=True)
    disabled = await pause(clients, job.name, jobs_pb.TERMINATE)
    assert disabled.state == res.DISABLED
    task = await get_task(clients, task_name)
    assert task.state == res.Task.COMPLETED
    assert task.result == res.Task.FAILURE
    assert (await get_job(clients, job.name)).state == res.DISABLED


async def test_b2_disable_wait_stays_disabling_until_last_task(clients: Any, coll: Any) -> None:
    """B2: disable with WAIT and running tasks stays DISABLING until the last completes."""
    job = await create_job(clients, coll)
    t1 = await add_task(clients, job.name, "t1", running=True)
    t2 = await add_task(clients, job.name, "t2", running=True)
    disabling = await pause(clients, job.name, jobs_pb.WAIT)
    assert disabling.state == res.DISABLING
    assert disabling.previous_state == res.ACTIVE
    assert (await get_job(clients, job.name)).state == res.DISABLING
    # running tasks are left alone
    assert (await get_task(clients, t1)).state == res.Task.RUNNING

    await complete_task(clients, t1)
    assert (await get_job(clients, job.name)).state == res.DISABLING

    await complete_task(clients, t2)
    disabled = await wait_state(clients, job.name, res.DISABLED)
    assert disabled.previous_state == res.DISABLING


async def test_b2_disable_from_disabling_and_disabled(clients: Any, coll: Any) -> None:
    """B2: disable is accepted from DISABLING and from DISABLED."""
    job = await create_job(clients, coll)
    task = await add_task(clients, job.name, "t1", running=True)
    assert (await pause(clients, job.name, jobs_pb.WAIT)).state == res.DISABLING

    # from DISABLING: WAIT again keeps waiting; REQUEUE requeues and settles at once
    again = await pause(clients, job.name, jobs_pb.WAIT)
    assert again.state == res.DISABLING
    assert (await get_task(clients, task)).state == res.Task.RUNNING
    disabled = await pause(clients, job.name, jobs_pb.REQUEUE)
    assert disabled.state == res.DISABLED
    assert (await get_task(clients, task)).state == res.Task.ACTIVE

    # from DISABLED
    still = await pause(clients, job.name)
    assert still.state == res.DISABLED
    assert (await get_job(clients, job.name)).state == res.DISABLED


# --- B3 --------------------------------------------------------------------------------


async def test_b3_disable_in_enabling_refused(clients: Any, coll: Any) -> None:
    """B3: disable in ENABLING is FAILED_PRECONDITION / OPERATION_INVALID_FOR_STATE."""
    job = await create_job(clients, coll)
    await pause(clients, job.name)
    assert (await transition(clients, job.name, res.ENABLING)).state == res.ENABLING
    for disposition in (jobs_pb.REQUEUE, jobs_pb.TERMINATE, jobs_pb.WAIT):
        req = jobs_pb.PauseJobRequest(name=job.name, disable_tasks=disposition)
        await refused(
            clients,
            job.name,
            call_of(clients.jobs.PauseJob, req),
            FAILED_PRECONDITION,
            "OPERATION_INVALID_FOR_STATE",
            jobs_pb.TaskDisposition.Name(disposition),
        )


async def test_b3_enable_of_job_not_disabled_refused(clients: Any, coll: Any) -> None:
    """B3: enable of a job that is not DISABLED (ACTIVE, DISABLING, ENABLING) is
    FAILED_PRECONDITION / OPERATION_INVALID_FOR_STATE."""
    job = await create_job(clients, coll)

    def enable() -> Awaitable[Any]:
        return clients.jobs.ResumeJob(jobs_pb.ResumeJobRequest(name=job.name))

    reason = "OPERATION_INVALID_FOR_STATE"
    await refused(clients, job.name, enable, FAILED_PRECONDITION, reason, "ACTIVE")

    task = await add_task(clients, job.name, "t1", running=True)
    assert (await pause(clients, job.name, jobs_pb.WAIT)).state == res.DISABLING
    await refused(clients, job.name, enable, FAILED_PRECONDITION, reason, "DISABLING")

    await complete_task(clients, task)
    await wait_state(clients, job.name, res.DISABLED)
    assert (await transition(clients, job.name, res.ENABLING)).state == res.ENABLING
    await refused(clients, job.name, enable, FAILED_PRECONDITION, reason, "ENABLING")


# --- B4 --------------------------------------------------------------------------------


async def test_b4_terminate_without_running_tasks_completes_at_once(
    clients: Any, coll: Any
) -> None:
    """B4: terminate with no running task is COMPLETED at once."""
    job = await create_job(clients, coll)
    await add_task(clients, job.name, "queued")
    completed = await terminate(clients, job.name)
    assert completed.state == res.COMPLETED
    assert (await get_job(clients, job.name)).state == res.COMPLETED


async def test_b4_terminate_from_disabled(clients: Any, coll: Any) -> None:
    """B4: terminate is accepted from DISABLED too (COMPLETED at once without tasks)."""
    job = await create_job(clients, coll)
    await pause(clients, job.name)
    completed = await terminate(clients, job.name)
    assert completed.state == res.COMPLETED


async def test_b4_terminate_waits_for_running_tasks(clients: Any, coll: Any) -> None:
    """B4: terminate -> TERMINATING while tasks run, then COMPLETED after the last one."""
    job = await create_job(clients, coll)
    t1 = await add_task(clients, job.name, "t1", running=True)
    t2 = await add_task(clients, job.name, "t2", running=True)
    terminating = await terminate(clients, job.name)
    assert terminating.state == res.TERMINATING
    assert terminating.previous_state == res.ACTIVE
    assert (await get_job(clients, job.name)).state == res.TERMINATING

    await complete_task(clients, t1)
    assert (await get_job(clients, job.name)).state == res.TERMINATING

    await complete_task(clients, t2, res.Task.FAILURE)
    completed = await wait_state(clients, job.name, res.COMPLETED)
    assert completed.previous_state == res.TERMINATING


# --- B5 / B6 / B7 ----------------------------------------------------------------------


async def test_b5_completed_job_refuses_changes(clients: Any, coll: Any) -> None:
    """B5: update, replace, disable, enable, terminate in COMPLETED are
    FAILED_PRECONDITION / JOB_COMPLETED."""
    job = await create_job(clients, coll)
    assert (await terminate(clients, job.name)).state == res.COMPLETED
    for label, call in mutations(clients, job.name):
        await refused(clients, job.name, call, FAILED_PRECONDITION, "JOB_COMPLETED", label)


async def test_b6_terminating_job_refuses_changes(clients: Any, coll: Any) -> None:
    """B6: update, replace, disable, enable, terminate in TERMINATING are
    FAILED_PRECONDITION / JOB_BEING_TERMINATED."""
    job = await create_job(clients, coll)
    task = await add_task(clients, job.name, "t1", running=True)
    assert (await terminate(clients, job.name)).state == res.TERMINATING
    for label, call in mutations(clients, job.name):
        await refused(clients, job.name, call, FAILED_PRECONDITION, "JOB_BEING_TERMINATED", label)
    await complete_task(clients, task)
    await wait_state(clients, job.name, res.COMPLETED)


async def test_b7_deleting_job_refuses_changes_and_delete(clients: Any, coll: Any) -> None:
    """B7: every update of a DELETING job (update, replace, disable, enable, terminate and
    a second delete) is FAILED_PRECONDITION / JOB_BEING_DELETED."""
    job = await create_job(clients, coll)
    task = await add_task(clients, job.name, "t1", running=True)
    op = await delete(clients, job.name)
    assert not op.done
    assert (await get_job(clients, job.name)).state == res.DELETING
    for label, call in mutations(clients, job.name, with_delete=True):
        await refused(clients, job.name, call, FAILED_PRECONDITION, "JOB_BEING_DELETED", label)
    # the refused delete did not start a second deletion
    assert (await get_job(clients, job.name)).delete_operation == op.name
    assert not (await get_operation(clients, op.name)).done

    await complete_task(clients, task)
    done = await wait_done(clients.operations, op.name)
    assert done.WhichOneof("result") == "response"
    await expect_error(get_job(clients, job.name), NOT_FOUND, "JOB_NOT_FOUND")


# --- B8 / B9 ---------------------------------------------------------------------------


async def test_b8_delete_is_asynchronous_then_not_found(clients: Any, coll: Any) -> None:
    """B8: delete enters DELETING at once (Get and List show it); the Operation completes
    when the job, its tasks and history are purged; then NOT_FOUND."""
    job = await create_job(clients, coll)
    running = await add_task(clients, job.name, "running", running=True)
    queued = await add_task(clients, job.name, "queued")
    finished = await add_task(clients, job.name, "finished", running=True)
    await complete_task(clients, finished)

    op = await delete(clients, job.name)
    assert not op.done
    meta = res.OperationMetadata()
    assert op.metadata.Unpack(meta)
    assert meta.target == job.name
    assert meta.verb == "delete"

    deleting = await get_job(clients, job.name)
    assert deleting.state == res.DELETING
    assert deleting.previous_state == res.ACTIVE
    assert deleting.delete_operation == op.name
    assert deleting.HasField("delete_time")
    listed = {j.name: j for j in await list_jobs(clients, coll.name)}
    assert job.name in listed
    assert listed[job.name].state == res.DELETING
    assert listed[job.name].delete_operation == op.name
    assert not (await get_operation(clients, op.name)).done

    await complete_task(clients, running)
    done = await wait_done(clients.operations, op.name)
    assert done.done
    assert done.WhichOneof("result") == "response"

    await expect_error(get_job(clients, job.name), NOT_FOUND, "JOB_NOT_FOUND")
    assert job.name not in {j.name for j in await list_jobs(clients, coll.name)}
    for task_name in (running, queued, finished):
        err = await expect_error(get_task(clients, task_name), NOT_FOUND)
        assert err.reason in ("JOB_NOT_FOUND", "TASK_NOT_FOUND"), task_name
    await expect_error(
        clients.jobs.ListTasks(jobs_pb.ListTasksRequest(parent=job.name)),
        NOT_FOUND,
        "JOB_NOT_FOUND",
    )
    await expect_error(
        clients.jobs.ListJobHistory(jobs_pb.ListJobHistoryRequest(parent=job.name)),
        NOT_FOUND,
        "JOB_NOT_FOUND",
    )
    # a later delete is NOT_FOUND too
    await expect_error(
        clients.jobs.DeleteJob(jobs_pb.DeleteJobRequest(name=job.name)),
        NOT_FOUND,
        "JOB_NOT_FOUND",
    )


async def test_b8_delete_without_tasks_completes(clients: Any, coll: Any) -> None:
    """B8: a job with no work in flight is purged; its Operation ends without error."""
    job = await create_job(clients, coll)
    op = await delete(clients, job.name)
    done = await wait_done(clients.operations, op.name)
    assert done.WhichOneof("result") == "response"
    await expect_error(get_job(clients, job.name), NOT_FOUND, "JOB_NOT_FOUND")
    assert await list_jobs(clients, coll.name) == []


async def test_b9_deleting_waits_for_last_running_task(clients: Any, coll: Any) -> None:
    """B9: a DELETING job with running tasks stays DELETING until they all complete."""
    job = await create_job(clients, coll)
    t1 = await add_task(clients, job.name, "t1", running=True)
    t2 = await add_task(clients, job.name, "t2", running=True)
    op = await delete(clients, job.name)
    assert not op.done
    assert (await get_job(clients, job.name)).state == res.DELETING

    await complete_task(clients, t1)
    assert (await get_job(clients, job.name)).state == res.DELETING
    assert not (await get_operation(clients, op.name)).done

    await complete_task(clients, t2, res.Task.FAILURE)
    done = await wait_done(clients.operations, op.name)
    assert done.WhichOneof("result") == "response"
    await expect_error(get_job(clients, job.name), NOT_FOUND, "JOB_NOT_FOUND")
    for task_name in (t1, t2):
        err = await expect_error(get_task(clients, task_name), NOT_FOUND)
        assert err.reason in ("JOB_NOT_FOUND", "TASK_NOT_FOUND"), task_name


async def test_b9_force_purges_without_waiting(clients: Any, coll: Any) -> None:
    """B9: `force` purges a job with running tasks without waiting for them."""
    job = await create_job(clients, coll)
    task = await add_task(clients, job.name, "t1", running=True)
    op = await delete(clients, job.name, force=True)
    done = await wait_done(clients.operations, op.name)
    assert done.WhichOneof("result") == "response"
    await expect_error(get_job(clients, job.name), NOT_FOUND, "JOB_NOT_FOUND")
    err = await expect_error(get_task(clients, task), NOT_FOUND)
    assert err.reason in ("JOB_NOT_FOUND", "TASK_NOT_FOUND")


# --- B10 -------------------------------------------------------------------------------


def pool_changes(clients: Any, name: str) -> list[tuple[str, Call]]:
    """Ways of changing pool_info to p2: merge, explicit mask, replace."""
    changed = res.Job(name=name, batch=res.BatchSpec(pool_info=res.PoolInfo(pool_id="p2")))
    return [
        ("merge", lambda: clients.jobs.UpdateJob(jobs_pb.UpdateJobRequest(job=changed))),
        (
            "mask batch.pool_info",
            lambda: clients.jobs.UpdateJob(
                jobs_pb.UpdateJobRequest(
                    job=changed, update_mask=field_mask_pb2.FieldMask(paths=["batch.pool_info"])
                )
            ),
        ),
        (
            "replace",
            lambda: clients.jobs.UpdateJob(
                jobs_pb.UpdateJobRequest(
                    job=changed, update_mask=field_mask_pb2.FieldMask(paths=["*"])
                )
            ),
        ),
    ]


@pytest.mark.parametrize("state", ["ACTIVE", "DISABLING", "ENABLING"])
async def test_b10_pool_info_immutable_unless_disabled(clients: Any, coll: Any, state: str) -> None:
    """B10: changing pool_info outside DISABLED is FAILED_PRECONDITION /
    FIELD_NOT_MUTABLE_IN_STATE."""
    job = await create_job(clients, coll)
    if state == "DISABLING":
        await add_task(clients, job.name, "t1", running=True)
        assert (await pause(clients, job.name, jobs_pb.WAIT)).state == res.DISABLING
    elif state == "ENABLING":
        await pause(clients, job.name)
        assert (await transition(clients, job.name, res.ENABLING)).state == res.ENABLING
    for label, call in pool_changes(clients, job.name):
        await refused(
            clients, job.name, call, FAILED_PRECONDITION, "FIELD_NOT_MUTABLE_IN_STATE", label
        )
    assert (await get_job(clients, job.name)).batch.pool_info.pool_id == "p1"


async def test_b10_pool_info_mutable_while_disabled(clients: Any, coll: Any) -> None:
    """B10: pool_info may change while the job is DISABLED."""
    job = await create_job(clients, coll)
    await pause(clients, job.name)
    changed = res.Job(name=job.name, batch=res.BatchSpec(pool_info=res.PoolInfo(pool_id="p2")))
    updated = await clients.jobs.UpdateJob(jobs_pb.UpdateJobRequest(job=changed))
    assert updated.batch.pool_info.pool_id == "p2"
    assert updated.state == res.DISABLED
    assert (await get_job(clients, job.name)).batch.pool_info.pool_id == "p2"

    masked = res.Job(name=job.name, batch=res.BatchSpec(pool_info=res.PoolInfo(pool_id="p3")))
    updated = await clients.jobs.UpdateJob(
        jobs_pb.UpdateJobRequest(
            job=masked, update_mask=field_mask_pb2.FieldMask(paths=["batch.pool_info"])
        )
    )
    assert updated.batch.pool_info.pool_id == "p3"

    active = await resume(clients, job.name)
    assert active.state == res.ACTIVE
    assert active.batch.pool_info.pool_id == "p3"


# --- B11 -------------------------------------------------------------------------------


async def test_b11_ids_unique_case_insensitively(clients: Any, coll: Any) -> None:
    """B11: job ids are unique case-insensitively (ALREADY_EXISTS / JOB_ALREADY_EXISTS)
    and looked up case-insensitively."""
    job = await create_job(clients, coll, job_id="Job-A")
    for other in ("job-a", "JOB-A", "Job-A"):
        before = await get_job(clients, job.name)
        await expect_error(
            create_job(clients, coll, job_id=other, pool_id="p9"),
            grpc.StatusCode.ALREADY_EXISTS,
            "JOB_ALREADY_EXISTS",
        )
        after = await get_job(clients, job.name)
        assert after == before, other
    assert [j.uid for j in await list_jobs(clients, coll.name)] == [job.uid]

    lower = f"{coll.name}/jobs/job-a"
    got = await get_job(clients, lower)
    assert got.uid == job.uid
    assert got.batch.pool_info.pool_id == "p1"
    updated = await clients.jobs.UpdateJob(
        jobs_pb.UpdateJobRequest(job=res.Job(name=f"{coll.name}/jobs/JOB-A", display_name="x"))
    )
    assert updated.uid == job.uid
    assert (await get_job(clients, job.name)).display_name == "x"


# --- B12 -------------------------------------------------------------------------------


async def test_b12_tasks_create_get_list(clients: Any, coll: Any) -> None:
    """B12: tasks are created (ACTIVE), read and listed under their job."""
    job = await create_job(clients, coll)
    created = await clients.jobs.CreateTask(
        jobs_pb.CreateTaskRequest(
            parent=job.name, task_id="t1", task=res.Task(display_name="one", command_line="x")
        )
    )
    assert created.name == f"{job.name}/tasks/t1"
    assert created.state == res.Task.ACTIVE
    assert created.display_name == "one"
    assert created.command_line == "x"
    t2 = await add_task(clients, job.name, "t2")

    got = await get_task(clients, created.name)
    assert got.name == created.name
    assert got.uid == created.uid
    assert got.state == res.Task.ACTIVE
    assert got.display_name == "one"

    listed = await clients.jobs.ListTasks(jobs_pb.ListTasksRequest(parent=job.name))
    assert sorted(t.name for t in listed.tasks) == sorted([created.name, t2])

    await expect_error(
        clients.jobs.CreateTask(
            jobs_pb.CreateTaskRequest(parent=job.name, task_id="t1", task=res.Task())
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        "TASK_ALREADY_EXISTS",
    )
    await expect_error(get_task(clients, f"{job.name}/tasks/missing"), NOT_FOUND, "TASK_NOT_FOUND")


async def test_b12_tasks_deleted_with_job(clients: Any, coll: Any) -> None:
    """B12: deleting the job deletes its tasks."""
    job = await create_job(clients, coll)
    names = [await add_task(clients, job.name, f"t{i}") for i in range(3)]
    op = await delete(clients, job.name)
    await wait_done(clients.operations, op.name)
    for name in names:
        err = await expect_error(get_task(clients, name), NOT_FOUND)
        assert err.reason in ("JOB_NOT_FOUND", "TASK_NOT_FOUND"), name
    # a new job with the same id starts with no tasks
    again = await create_job(clients, coll)
    listed = await clients.jobs.ListTasks(jobs_pb.ListTasksRequest(parent=again.name))
    assert list(listed.tasks) == []


async def test_b12_create_task_in_refused_state(clients: Any, coll: Any) -> None:
    """B12: creating a task on a COMPLETED / TERMINATING / DELETING job is refused with
    that state's reason."""

    def new_task(job_name: str) -> Call:
        return lambda: clients.jobs.CreateTask(
            jobs_pb.CreateTaskRequest(parent=job_name, task_id="late", task=res.Task())
        )

    completed = await create_job(clients, coll, job_id="completed")
    await terminate(clients, completed.name)
    terminating = await create_job(clients, coll, job_id="terminating")
    await add_task(clients, terminating.name, "t1", running=True)
    assert (await terminate(clients, terminating.name)).state == res.TERMINATING
    deleting = await create_job(clients, coll, job_id="deleting")
    await add_task(clients, deleting.name, "t1", running=True)
    await delete(clients, deleting.name)
    assert (await get_job(clients, deleting.name)).state == res.DELETING

    for job, reason in (
        (completed, "JOB_COMPLETED"),
        (terminating, "JOB_BEING_TERMINATED"),
        (deleting, "JOB_BEING_DELETED"),
    ):
        await refused(clients, job.name, new_task(job.name), FAILED_PRECONDITION, reason, reason)
        await expect_error(get_task(clients, f"{job.name}/tasks/late"), NOT_FOUND, "TASK_NOT_FOUND")


# --- B13 -------------------------------------------------------------------------------


async def test_b13_operator_disabling_to_disabled(clients: Any, coll: Any) -> None:
    """B13: the operator moves DISABLING -> DISABLED."""
    job = await create_job(clients, coll)
    await add_task(clients, job.name, "t1", running=True)
    disabling = await pause(clients, job.name, jobs_pb.WAIT)
    assert disabling.state == res.DISABLING
    disabled = await transition(clients, job.name, res.DISABLED)
    assert_transition(disabled, disabling, res.DISABLED)
    assert (await get_job(clients, job.name)).state == res.DISABLED


async def test_b13_operator_disabled_to_enabling_to_active(clients: Any, coll: Any) -> None:
    """B13: the operator moves DISABLED -> ENABLING -> ACTIVE."""
    job = await create_job(clients, coll)
    disabled = await pause(clients, job.name)
    enabling = await transition(clients, job.name, res.ENABLING)
    assert_transition(enabling, disabled, res.ENABLING)
    active = await transition(clients, job.name, res.ACTIVE)
    assert_transition(active, enabling, res.ACTIVE)
    assert (await get_job(clients, job.name)).state == res.ACTIVE


async def test_b13_operator_terminating_to_completed(clients: Any, coll: Any) -> None:
    """B13: the operator moves TERMINATING -> COMPLETED."""
    job = await create_job(clients, coll)
    await add_task(clients, job.name, "t1", running=True)
    terminating = await terminate(clients, job.name)
    assert terminating.state == res.TERMINATING
    completed = await transition(clients, job.name, res.COMPLETED)
    assert_transition(completed, terminating, res.COMPLETED)
    assert (await get_job(clients, job.name)).state == res.COMPLETED


async def test_b13_operator_active_to_completed(clients: Any, coll: Any) -> None:
    """B13: the operator moves ACTIVE -> COMPLETED."""
    job = await create_job(clients, coll)
    completed = await transition(clients, job.name, res.COMPLETED)
    assert_transition(completed, job, res.COMPLETED)
    assert (await get_job(clients, job.name)).state == res.COMPLETED


async def test_b13_operator_transitions_outside_table_refused(clients: Any, coll: Any) -> None:
    """B13: only the listed operator transitions exist (others: FAILED_PRECONDITION /
    INVALID_STATE_TRANSITION; a state outside the profile: INVALID_ARGUMENT /
    STATE_NOT_SETTABLE)."""
    job = await create_job(clients, coll)
    for target in (res.DISABLED, res.ENABLING, res.TERMINATING):
        req = operator_pb.TransitionJobRequest(name=job.name, state=target)
        await refused(
            clients,
            job.name,
            call_of(clients.operator.TransitionJob, req),
            FAILED_PRECONDITION,
            "INVALID_STATE_TRANSITION",
            f"ACTIVE -> {state_name(target)}",
        )
    for target in (res.IDLE, res.ENABLED):
        req = operator_pb.TransitionJobRequest(name=job.name, state=target)
        await refused(
            clients,
            job.name,
            call_of(clients.operator.TransitionJob, req),
            grpc.StatusCode.INVALID_ARGUMENT,
            "STATE_NOT_SETTABLE",
            f"ACTIVE -> {state_name(target)}",
        )


# --- B14 task definitions and counts, job definitions kept whole -----------------------------


async def test_b14_tasks_keep_their_definition_and_are_counted(clients: Any, coll: Any) -> None:
    """B14: a task's properties (the definition beyond id, display name and command line)
    are stored and returned as given; CountTasks counts tasks by state and result."""
    job = await create_job(clients, coll, "job1")
    properties = {"constraints": {"maxTaskRetryCount": 3}, "resourceFiles": [{"httpUrl": "u"}]}
    task = res.Task(command_line="run")
    task.properties.update(properties)
    created = await clients.jobs.CreateTask(
        jobs_pb.CreateTaskRequest(parent=job.name, task_id="t1", task=task)
    )
    assert dict(created.properties) == task.properties  # as given
    got = await clients.jobs.GetTask(jobs_pb.GetTaskRequest(name=created.name))
    assert got == created
    for tid in ("t2", "t3"):
        await clients.jobs.CreateTask(
            jobs_pb.CreateTaskRequest(parent=job.name, task_id=tid, task=res.Task())
        )
    await clients.operator.TransitionTask(
        operator_pb.TransitionTaskRequest(name=f"{job.name}/tasks/t2", state=res.Task.RUNNING)
    )
    await clients.operator.TransitionTask(
        operator_pb.TransitionTaskRequest(
            name=f"{job.name}/tasks/t3", state=res.Task.COMPLETED, result=res.Task.FAILURE
        )
    )
    counts = await clients.jobs.CountTasks(jobs_pb.CountTasksRequest(parent=job.name))
    assert counts == res.TaskCounts(active=1, running=1, completed=1, failed=1)


async def test_b14_job_definitions_are_kept_whole(clients: Any, coll: Any) -> None:
    """B14: job manager / preparation / release tasks, common environment settings, task
    dependencies and network configuration are stored as given; all but the network
    configuration are fixed at creation (FIELD_IMMUTABLE)."""
    spec = res.BatchSpec(
        pool_info=res.PoolInfo(pool_id="p"),
        uses_task_dependencies=True,
        common_environment_settings=[res.EnvironmentSetting(name="A", value="1")],
    )
    spec.job_manager_task.update({"id": "jm", "commandLine": "manage"})
    spec.job_preparation_task.update({"commandLine": "prep"})
    spec.job_release_task.update({"commandLine": "release"})
    spec.network_configuration.update({"subnetId": "s1"})
    created = await clients.jobs.CreateJob(
        jobs_pb.CreateJobRequest(parent=coll.name, job_id="whole", job=res.Job(batch=spec))
    )
    assert created.batch == spec
    net = res.BatchSpec()
    net.network_configuration.update({"subnetId": "s2"})
    updated = await clients.jobs.UpdateJob(
        jobs_pb.UpdateJobRequest(job=res.Job(name=created.name, batch=net))
    )
    assert dict(updated.batch.network_configuration) == {"subnetId": "s2"}
    fixed = res.BatchSpec()
    fixed.job_manager_task.update({"id": "other"})
    await refused(
        clients,
        created.name,
        call_of(
            clients.jobs.UpdateJob,
            jobs_pb.UpdateJobRequest(job=res.Job(name=created.name, batch=fixed)),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "FIELD_IMMUTABLE",
    )


async def test_b7_operators_may_not_move_a_deleting_job(clients: Any, coll: Any) -> None:
    """B7: the profile's operator_refused table: an operator transition of a DELETING job
    is FAILED_PRECONDITION / JOB_BEING_DELETED and changes nothing."""
    job = await create_job(clients, coll)
    await add_task(clients, job.name, "t1", running=True)
    await delete(clients, job.name)
    assert (await get_job(clients, job.name)).state == res.DELETING
    req = operator_pb.TransitionJobRequest(name=job.name, state=res.COMPLETED)
    await refused(
        clients,
        job.name,
        call_of(clients.operator.TransitionJob, req),
        FAILED_PRECONDITION,
        "JOB_BEING_DELETED",
        "DELETING -> COMPLETED",
    )
