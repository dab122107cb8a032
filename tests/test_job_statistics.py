"""Job statistics computed by the core from a batch job's tasks (JobView FULL), rules
B15 and B16 of docs/rules.md."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from jobcontrol.v1 import job_service_pb2 as jobs_pb
from jobcontrol.v1 import resources_pb2 as res
from jobcontrol.v1 import worker_service_pb2 as pb
from tests.helpers import expect_error
from tests.test_worker import add_task, batch_job, lease

pytestmark = pytest.mark.backends


async def finish_two_tasks(clients: Any, worker: Any, job: str) -> None:
    """t1 exits 0; t2 exits 3, is retried once (the job allows one retry) and exits 3
    again, so it completes with FAILURE after one retry."""
    await add_task(clients, job, "t1")
    await add_task(clients, job, "t2")
    first = await lease(worker, 2)
    by_target = {i.target.rsplit("/", 1)[-1]: i for i in first}
    done = pb.CompleteWorkRequest(lease_token=by_target["t1"].lease_token, exit_code=0)
    assert (await worker.CompleteWork(done)).done
    failed = pb.CompleteWorkRequest(lease_token=by_target["t2"].lease_token, exit_code=3)
    assert not (await worker.CompleteWork(failed)).done
    [again] = await lease(worker)
    failed = pb.CompleteWorkRequest(lease_token=again.lease_token, exit_code=3)
    assert (await worker.CompleteWork(failed)).done


async def test_full_view_counts_succeeded_failed_tasks_and_retries(
    clients: Any, worker: Any, make_collection: Any
) -> None:
    """B15: GetJob and ListJobs with view FULL fill `batch.statistics` from the job's
    tasks (completed with SUCCESS, with FAILURE, retried attempts summed); BASIC and
    UNSPECIFIED return none; a batch job without tasks has zeros."""
    job = await batch_job(make_collection, clients, retries=1)
    await finish_two_tasks(clients, worker, job)
    await add_task(clients, job, "t3")  # waiting: counted by none of the figures
    full = await clients.jobs.GetJob(jobs_pb.GetJobRequest(name=job, view=jobs_pb.JOB_VIEW_FULL))
    figures = full.batch.statistics
    assert (figures.num_succeeded_tasks, figures.num_failed_tasks) == (1, 1)
    assert figures.num_task_retries == 1
    for view in (jobs_pb.JOB_VIEW_BASIC, jobs_pb.JOB_VIEW_UNSPECIFIED):
        basic = await clients.jobs.GetJob(jobs_pb.GetJobRequest(name=job, view=view))
        assert not basic.batch.HasField("statistics")
        assert basic.etag == full.etag  # a read: nothing was written
    parent = job.rsplit("/jobs/", 1)[0]
    empty = await clients.jobs.CreateJob(
        jobs_pb.CreateJobRequest(
            parent=parent,
            job_id="j2",
            job=res.Job(batch=res.BatchSpec(pool_info=res.PoolInfo(pool_id="p1"))),
        )
    )
    listed = await clients.jobs.ListJobs(
        jobs_pb.ListJobsRequest(parent=parent, view=jobs_pb.JOB_VIEW_FULL)
    )
    assert [j.name for j in listed.jobs] == [job, empty.name]
    assert listed.jobs[0].batch.statistics == figures
    assert listed.jobs[1].batch.HasField("statistics")
    assert listed.jobs[1].batch.statistics == res.BatchStatistics()
    basic_list = await clients.jobs.ListJobs(jobs_pb.ListJobsRequest(parent=parent))
    assert not any(j.batch.HasField("statistics") for j in basic_list.jobs)


async def test_statistics_are_output_only_and_other_profiles_have_none(
    clients: Any, make_collection: Any
) -> None:
    """B15: `batch.statistics` is output only (one given to CreateJob is not stored, an
    update mask naming it is FORBIDDEN_FIELD); a profile without tasks has no statistics
    in the FULL view."""
    job = await batch_job(make_collection, clients)
    parent = job.rsplit("/jobs/", 1)[0]
    spec = res.BatchSpec(pool_info=res.PoolInfo(pool_id="p1"),
                         statistics=res.BatchStatistics(num_failed_tasks=4))  # fmt: skip
    given = await clients.jobs.CreateJob(
        jobs_pb.CreateJobRequest(parent=parent, job_id="given", job=res.Job(batch=spec))
    )
    assert not given.batch.HasField("statistics")
    full = await clients.jobs.GetJob(
        jobs_pb.GetJobRequest(name=given.name, view=jobs_pb.JOB_VIEW_FULL)
    )
    assert full.batch.statistics == res.BatchStatistics()
    update = jobs_pb.UpdateJobRequest(
        job=res.Job(
            name=job, batch=res.BatchSpec(statistics=res.BatchStatistics(num_succeeded_tasks=5))
        ),
        update_mask={"paths": ["batch.statistics"]},
    )
    await expect_error(
        clients.jobs.UpdateJob(update), grpc.StatusCode.INVALID_ARGUMENT, "FORBIDDEN_FIELD"
    )
    collection = await make_collection(res.SCHEDULED)
    scheduled = await clients.jobs.CreateJob(
        jobs_pb.CreateJobRequest(
            parent=collection.name,
            job_id="s1",
            job=res.Job(
                scheduled=res.ScheduledSpec(
                    recurrence=res.Recurrence(frequency=res.Recurrence.HOUR, interval=1)
                )
            ),
        )
    )
    got = await clients.jobs.GetJob(
        jobs_pb.GetJobRequest(name=scheduled.name, view=jobs_pb.JOB_VIEW_FULL)
    )
    assert got == scheduled


async def test_native_rest_view_query_parameter_asks_for_statistics(
    clients: Any, worker: Any, make_collection: Any, http: Any
) -> None:
    """B15: the native mapping carries `view` as a query parameter (GetJob, ListJobs):
    `view=JOB_VIEW_FULL` returns `batch.statistics`, no view returns none."""
    job = await batch_job(make_collection, clients, retries=1)
    await finish_two_tasks(clients, worker, job)
    expected = {"numSucceededTasks": 1, "numFailedTasks": 1, "numTaskRetries": 1}
    got = await http.get(f"/v1/{job}", params={"view": "JOB_VIEW_FULL"})
    assert got.status_code == 200, got.text
    assert got.json()["batch"]["statistics"] == expected
    parent = job.rsplit("/jobs/", 1)[0]
    listed = await http.get(f"/v1/{parent}/jobs", params={"view": "JOB_VIEW_FULL"})
    assert listed.status_code == 200, listed.text
    assert listed.json()["jobs"][0]["batch"]["statistics"] == expected
    plain = await http.get(f"/v1/{job}")
    assert "statistics" not in plain.json()["batch"]
