"""What the dialects used to improvise, now in the contract and decided by the core in the
write's own transaction (docs/rules.md C25-C31, C33): create-on-first-write, conditional
create, allow_missing on lists and collections, empty updates, required fields and value
rules on every write, type preconditions."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2

from jobcontrol.v1 import job_service_pb2 as js
from jobcontrol.v1 import operator_service_pb2 as ops
from jobcontrol.v1 import resources_pb2 as res
from tests.conftest import Clients, MakeCollection
from tests.helpers import assert_unchanged, expect_error, get_job

pytestmark = pytest.mark.backends

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
ABORTED = grpc.StatusCode.ABORTED
FAILED = grpc.StatusCode.FAILED_PRECONDITION
POOL = res.BatchSpec(pool_info=res.PoolInfo(pool_id="p"))


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def transfer(**fields: Any) -> res.Job:
    spec = res.TransferSpec(type=res.TransferSpec.IMPORT, location="westus", **fields)
    return res.Job(transfer=spec)


async def no_collection(clients: Clients, name: str) -> None:
    await expect_error(
        clients.jobs.GetCollection(js.GetCollectionRequest(name=name)),
        NOT_FOUND,
        "COLLECTION_NOT_FOUND",
    )


# --- C25 create-on-first-write ---------------------------------------------------------


async def test_c25_create_job_creates_its_parent_from_the_template(clients: Clients) -> None:
    """C25: a missing parent is created from collection_template in the create's
    transaction (profile, labels, quota as the template says); later creates use it."""
    template = res.Collection(
        profile=res.BATCH, labels={"dialect": "batch"}, quota=res.Quota(max_job_count=5)
    )
    job = await clients.jobs.CreateJob(
        js.CreateJobRequest(
            parent="collections/first",
            job_id="a",
            job=res.Job(batch=POOL),
            collection_template=template,
        )
    )
    assert job.name == "collections/first/jobs/a" and job.profile == res.BATCH
    collection = await clients.jobs.GetCollection(js.GetCollectionRequest(name="collections/first"))
    assert (collection.profile, dict(collection.labels)) == (res.BATCH, {"dialect": "batch"})
    assert collection.quota.max_job_count == 5
    again = await clients.jobs.CreateJob(
        js.CreateJobRequest(
            parent="collections/first",
            job_id="b",
            job=res.Job(batch=POOL),
            collection_template=res.Collection(profile=res.BATCH, labels={"other": "x"}),
        )
    )
    assert again.name.endswith("/jobs/b")
    unchanged = await clients.jobs.GetCollection(js.GetCollectionRequest(name=collection.name))
    assert unchanged == collection  # an existing parent is not touched by the template


async def test_c25_concurrent_first_writers_make_one_collection(clients: Clients) -> None:
    """C25: 20 concurrent first writes to a missing parent all succeed, in one collection."""
    template = res.Collection(profile=res.BATCH)
    replies = await asyncio.gather(
        *(
            clients.jobs.CreateJob(
                js.CreateJobRequest(
                    parent="collections/race",
                    job_id=f"j{i}",
                    job=res.Job(batch=POOL),
                    collection_template=template,
                )
            )
            for i in range(20)
        )
    )
    assert sorted(r.name for r in replies) == sorted(
        f"collections/race/jobs/j{i}" for i in range(20)
    )
    listed = await clients.jobs.ListCollections(js.ListCollectionsRequest())
    assert [c.name for c in listed.collections].count("collections/race") == 1


async def test_c25_without_a_template_a_missing_parent_is_not_found(clients: Clients) -> None:
    """C25: no template, no parent: NOT_FOUND / COLLECTION_NOT_FOUND, nothing created."""
    await expect_error(
        clients.jobs.CreateJob(
            js.CreateJobRequest(parent="collections/none", job_id="a", job=res.Job(batch=POOL))
        ),
        NOT_FOUND,
        "COLLECTION_NOT_FOUND",
    )
    await no_collection(clients, "collections/none")


@pytest.mark.parametrize(
    ("template", "job", "code", "reason", "field"),
    [
        (
            res.Collection(),
            res.Job(batch=POOL),
            INVALID,
            "INVALID_FIELD",
            "collection_template.profile",
        ),
        (
            res.Collection(profile=res.BATCH, display_name="x" * 1025),
            res.Job(batch=POOL),
            INVALID,
            "INVALID_FIELD",
            "collection_template.display_name",
        ),
        (
            res.Collection(profile=res.BATCH),
            res.Job(batch=res.BatchSpec()),
            INVALID,
            "REQUIRED_FIELD_MISSING",
            "job.batch.pool_info",
        ),
    ],
)
async def test_c25_a_refused_create_creates_no_parent(
    clients: Clients, template: res.Collection, job: res.Job, code: Any, reason: str, field: str
) -> None:
    """C25: a bad template, or a job the new collection's profile refuses, is refused with
    the field named, and the collection is not created either (one transaction)."""
    err = await expect_error(
        clients.jobs.CreateJob(
            js.CreateJobRequest(
                parent="collections/bad", job_id="a", job=job, collection_template=template
            )
        ),
        code,
        reason,
    )
    assert err.bad_request is not None
    assert [v.field for v in err.bad_request.field_violations] == [field]
    await no_collection(clients, "collections/bad")


# --- C26 conditional create -----------------------------------------------------------------


async def test_c26_if_none_match_star_refuses_a_create_over_an_existing_job(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C26: If-None-Match `*` on a create over an existing job (a transfer job in CREATING,
    which a create would otherwise replace) is CONDITION_NOT_MET and replaces nothing;
    on a missing job it creates."""
    col = await make_collection(res.TRANSFER)
    star = js.Preconditions(if_none_match="*")
    created = await clients.jobs.CreateJob(
        js.CreateJobRequest(parent=col.name, job_id="a", job=transfer(), preconditions=star)
    )
    err = await expect_error(
        clients.jobs.CreateJob(
            js.CreateJobRequest(
                parent=col.name, job_id="a", job=transfer(description="new"), preconditions=star
            )
        ),
        ABORTED,
        "CONDITION_NOT_MET",
    )
    assert err.info is not None and err.info.metadata["job"] == created.name
    await assert_unchanged(clients, created)


async def test_c26_job_etag_on_create_must_match_the_job_it_replaces(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C26: job.etag on a create is If-Match on the job it replaces: stale is ETAG_MISMATCH
    (nothing replaced), current replaces; on a missing job it is CONDITION_NOT_MET."""
    col = await make_collection(res.TRANSFER)
    first = await clients.jobs.CreateJob(
        js.CreateJobRequest(parent=col.name, job_id="a", job=transfer())
    )
    stale = transfer(description="stale")
    stale.etag = "0000"
    await expect_error(
        clients.jobs.CreateJob(js.CreateJobRequest(parent=col.name, job_id="a", job=stale)),
        ABORTED,
        "ETAG_MISMATCH",
    )
    await assert_unchanged(clients, first)
    current = transfer(description="replaced")
    current.etag = first.etag
    replaced = await clients.jobs.CreateJob(
        js.CreateJobRequest(parent=col.name, job_id="a", job=current)
    )
    assert replaced.transfer.description == "replaced" and replaced.etag != first.etag
    missing = transfer()
    missing.etag = first.etag
    await expect_error(
        clients.jobs.CreateJob(js.CreateJobRequest(parent=col.name, job_id="b", job=missing)),
        ABORTED,
        "CONDITION_NOT_MET",
    )
    await expect_error(get_job(clients, f"{col.name}/jobs/b"), NOT_FOUND, "JOB_NOT_FOUND")


async def test_c26_if_unmodified_since_on_a_missing_job_fails(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C26: If-Unmodified-Since on a create of a missing job is unmet (RFC 9110: the
    condition needs a current representation); If-Modified-Since does not stop a create."""
    col = await make_collection(res.TRANSFER)
    when = timestamp_pb2.Timestamp(seconds=2_000_000_000)
    await expect_error(
        clients.jobs.CreateJob(
            js.CreateJobRequest(
                parent=col.name,
                job_id="a",
                job=transfer(),
                preconditions=js.Preconditions(if_unmodified_since=when),
            )
        ),
        ABORTED,
        "CONDITION_NOT_MET",
    )
    created = await clients.jobs.CreateJob(
        js.CreateJobRequest(
            parent=col.name,
            job_id="a",
            job=transfer(),
            preconditions=js.Preconditions(if_modified_since=when),
        )
    )
    assert created.name == f"{col.name}/jobs/a"


# --- C27 lists of missing collections ------------------------------------------------------


async def test_c27_allow_missing_lists_a_missing_collection_as_empty(clients: Clients) -> None:
    """C27: ListJobs with allow_missing on a missing collection is an empty page; without
    it NOT_FOUND / COLLECTION_NOT_FOUND."""
    page = await clients.jobs.ListJobs(
        js.ListJobsRequest(parent="collections/ghost", allow_missing=True)
    )
    assert page == js.ListJobsResponse()
    await expect_error(
        clients.jobs.ListJobs(js.ListJobsRequest(parent="collections/ghost")),
        NOT_FOUND,
        "COLLECTION_NOT_FOUND",
    )


# --- C28 collections: upsert and conditions ----------------------------------------------


async def test_c28_update_collection_allow_missing_creates_then_updates(
    clients: Clients,
) -> None:
    """C28: UpdateCollection with allow_missing creates a missing collection with the given
    profile, then updates it (the masked fields); the profile stays fixed."""
    wanted = res.Collection(
        name="collections/up",
        profile=res.SCHEDULED,
        plan="Free",
        quota=res.Quota(max_job_count=3),
    )
    request = js.UpdateCollectionRequest(
        collection=wanted, update_mask=mask("plan", "quota"), allow_missing=True
    )
    created = await clients.jobs.UpdateCollection(request)
    assert (created.profile, created.plan, created.quota.max_job_count) == (
        res.SCHEDULED,
        "Free",
        3,
    )
    request.collection.plan = "Standard"
    updated = await clients.jobs.UpdateCollection(request)
    assert (updated.plan, updated.uid) == ("Standard", created.uid)
    assert updated.etag != created.etag
    request.collection.profile = res.BATCH
    await expect_error(clients.jobs.UpdateCollection(request), INVALID, "FIELD_IMMUTABLE")
    after = await clients.jobs.GetCollection(js.GetCollectionRequest(name="collections/up"))
    assert after == updated


async def test_c28_stale_collection_etag_deletes_nothing(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C28: DeleteCollection with a stale etag is ETAG_MISMATCH, decided in the write's
    transaction before anything is purged: the collection and its jobs stay."""
    col = await make_collection(res.SCHEDULED)
    job = await clients.jobs.CreateJob(
        js.CreateJobRequest(parent=col.name, job_id="j", job=res.Job(display_name="x"))
    )
    changed = await clients.jobs.UpdateCollection(
        js.UpdateCollectionRequest(
            collection=res.Collection(name=col.name, plan="Free"), update_mask=mask("plan")
        )
    )
    await expect_error(
        clients.jobs.DeleteCollection(js.DeleteCollectionRequest(name=col.name, etag=col.etag)),
        ABORTED,
        "ETAG_MISMATCH",
    )
    await assert_unchanged(clients, job)
    again = await clients.jobs.GetCollection(js.GetCollectionRequest(name=col.name))
    assert again == changed
    await expect_error(
        clients.jobs.UpdateCollection(
            js.UpdateCollectionRequest(
                collection=res.Collection(name=col.name, plan="X", etag=col.etag),
                update_mask=mask("plan"),
            )
        ),
        ABORTED,
        "ETAG_MISMATCH",
    )


# --- C29 updates that change nothing ------------------------------------------------------


async def test_c29_an_update_that_changes_nothing_writes_nothing(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C29: an update with no fields, or with the values already stored, returns the job as
    it is: the same etag and update_time (nothing is written)."""
    col = await make_collection(res.SCHEDULED)
    job = await clients.jobs.CreateJob(
        js.CreateJobRequest(parent=col.name, job_id="j", job=res.Job(display_name="same"))
    )
    for request in (
        js.UpdateJobRequest(job=res.Job(name=job.name)),
        js.UpdateJobRequest(job=res.Job(name=job.name, display_name="same")),
        js.UpdateJobRequest(job=res.Job(name=job.name, etag=job.etag), update_mask=mask()),
    ):
        assert await clients.jobs.UpdateJob(request) == job
    await assert_unchanged(clients, job)


async def test_c29_an_empty_update_still_meets_conditions_and_refusing_states(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C29: an empty update with a stale etag is ETAG_MISMATCH; on a DELETING batch job it
    is JOB_BEING_DELETED, on a COMPLETED scheduled job JOB_COMPLETED."""
    col = await make_collection(res.SCHEDULED)
    job = await clients.jobs.CreateJob(
        js.CreateJobRequest(parent=col.name, job_id="j", job=res.Job(display_name="a"))
    )
    await clients.jobs.UpdateJob(js.UpdateJobRequest(job=res.Job(name=job.name, display_name="b")))
    await expect_error(
        clients.jobs.UpdateJob(js.UpdateJobRequest(job=res.Job(name=job.name, etag=job.etag))),
        ABORTED,
        "ETAG_MISMATCH",
    )
    batch = await make_collection(res.BATCH)
    running = await clients.jobs.CreateJob(
        js.CreateJobRequest(parent=batch.name, job_id="b", job=res.Job(batch=POOL))
    )
    await clients.jobs.CreateTask(
        js.CreateTaskRequest(parent=running.name, task_id="t", task=res.Task(command_line="x"))
    )
    await clients.operator.TransitionTask(
        ops.TransitionTaskRequest(name=f"{running.name}/tasks/t", state=res.Task.RUNNING)
    )
    await clients.jobs.DeleteJob(js.DeleteJobRequest(name=running.name))
    deleting = await get_job(clients, running.name)
    assert deleting.state == res.DELETING
    err = await expect_error(
        clients.jobs.UpdateJob(js.UpdateJobRequest(job=res.Job(name=running.name))),
        FAILED,
        "JOB_BEING_DELETED",
    )
    assert err.precondition is not None
    await assert_unchanged(clients, deleting)


# --- C30 required fields on every write ------------------------------------------------------


@pytest.mark.parametrize(
    "request_of",
    [
        lambda name: js.UpdateJobRequest(
            job=res.Job(name=name, batch=res.BatchSpec()), update_mask=mask("batch.pool_info")
        ),
        lambda name: js.UpdateJobRequest(
            job=res.Job(name=name, batch=res.BatchSpec(priority=3)), update_mask=mask("*")
        ),
    ],
    ids=["masked clear", "replace without it"],
)
async def test_c30_required_fields_hold_after_every_update(
    clients: Clients, make_collection: MakeCollection, request_of: Any
) -> None:
    """C30: clearing batch.pool_info (masked, or a replace without it, over gRPC as through
    Batch's PUT) is REQUIRED_FIELD_MISSING and changes nothing."""
    col = await make_collection(res.BATCH)
    job = await clients.jobs.CreateJob(
        js.CreateJobRequest(parent=col.name, job_id="j", job=res.Job(batch=POOL))
    )
    await clients.jobs.PauseJob(js.PauseJobRequest(name=job.name))  # pool_info: DISABLED only
    before = await get_job(clients, job.name)
    err = await expect_error(
        clients.jobs.UpdateJob(request_of(job.name)), INVALID, "REQUIRED_FIELD_MISSING"
    )
    assert err.info is not None and err.info.metadata["fields"] == "batch.pool_info"
    await assert_unchanged(clients, before)


# --- C31 value rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (res.BatchSpec(pool_info=POOL.pool_info, priority=5000), "job.batch.priority"),
        (res.BatchSpec(pool_info=POOL.pool_info, priority=-1001), "job.batch.priority"),
        (
            res.BatchSpec(pool_info=POOL.pool_info, max_parallel_tasks=0),
            "job.batch.max_parallel_tasks",
        ),
        (
            res.BatchSpec(pool_info=POOL.pool_info, max_parallel_tasks=-2),
            "job.batch.max_parallel_tasks",
        ),
        (
            res.BatchSpec(
                pool_info=POOL.pool_info, constraints=res.JobConstraints(max_task_retry_count=-2)
            ),
            "job.batch.constraints.max_task_retry_count",
        ),
    ],
)
async def test_c31_batch_values_outside_their_ranges_are_refused(
    clients: Clients, make_collection: MakeCollection, spec: res.BatchSpec, field: str
) -> None:
    """C31: priority -1000..1000, maxParallelTasks -1 or >= 1, maxTaskRetryCount >= -1, on
    create and on update: FIELD_VALUE_NOT_ALLOWED naming the field, nothing written."""
    col = await make_collection(res.BATCH)
    err = await expect_error(
        clients.jobs.CreateJob(
            js.CreateJobRequest(parent=col.name, job_id="j", job=res.Job(batch=spec))
        ),
        INVALID,
        "FIELD_VALUE_NOT_ALLOWED",
    )
    assert err.bad_request is not None
    assert [v.field for v in err.bad_request.field_violations] == [field]
    job = await clients.jobs.CreateJob(
        js.CreateJobRequest(parent=col.name, job_id="j", job=res.Job(batch=POOL))
    )
    await expect_error(
        clients.jobs.UpdateJob(js.UpdateJobRequest(job=res.Job(name=job.name, batch=spec))),
        INVALID,
        "FIELD_VALUE_NOT_ALLOWED",
    )
    await assert_unchanged(clients, job)


async def test_c31_the_limits_themselves_are_accepted(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C31: priority -1000 and 1000, maxParallelTasks -1 and 1, maxTaskRetryCount -1."""
    col = await make_collection(res.BATCH)
    for i, (priority, parallel) in enumerate(((-1000, -1), (1000, 1))):
        spec = res.BatchSpec(
            pool_info=POOL.pool_info,
            priority=priority,
            max_parallel_tasks=parallel,
            constraints=res.JobConstraints(max_task_retry_count=-1),
        )
        job = await clients.jobs.CreateJob(
            js.CreateJobRequest(parent=col.name, job_id=f"j{i}", job=res.Job(batch=spec))
        )
        assert (job.batch.priority, job.batch.max_parallel_tasks) == (priority, parallel)


async def test_c31_second_is_a_quota_unit_not_a_job_frequency(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C31: a collection quota may say MaxRecurrence every second (Azure's documented
    sample); a job recurring every second is FIELD_VALUE_NOT_ALLOWED."""
    col = await make_collection(
        res.SCHEDULED, max_recurrence_frequency=res.Recurrence.SECOND, max_recurrence_interval=1
    )
    assert col.quota.max_recurrence_frequency == res.Recurrence.SECOND
    minute = res.ScheduledSpec(recurrence=res.Recurrence(frequency=res.Recurrence.MINUTE))
    job = await clients.jobs.CreateJob(
        js.CreateJobRequest(parent=col.name, job_id="m", job=res.Job(scheduled=minute))
    )
    assert job.scheduled.recurrence.frequency == res.Recurrence.MINUTE
    second = res.ScheduledSpec(recurrence=res.Recurrence(frequency=res.Recurrence.SECOND))
    err = await expect_error(
        clients.jobs.CreateJob(
            js.CreateJobRequest(parent=col.name, job_id="s", job=res.Job(scheduled=second))
        ),
        INVALID,
        "FIELD_VALUE_NOT_ALLOWED",
    )
    assert err.bad_request is not None
    assert err.bad_request.field_violations[0].field == "job.scheduled.recurrence.frequency"


# --- C33 type preconditions ------------------------------------------------------------------


async def test_c33_a_job_of_another_type_is_job_type_mismatch(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C33: preconditions.types names the job types a write may act on; a job of another
    type is FAILED_PRECONDITION / JOB_TYPE_MISMATCH and stays as it was."""
    col = await make_collection(res.BACKUP)
    nas = await clients.jobs.CreateJob(
        js.CreateJobRequest(
            parent=col.name,
            job_id="n",
            job=res.Job(backup=res.BackupSpec(job_type=res.BackupSpec.NAS)),
        )
    )
    generic = js.Preconditions(types=["BACKUP", "REPLICA", "BACKUP_COPY"])
    err = await expect_error(
        clients.jobs.StartJob(js.StartJobRequest(name=nas.name, preconditions=generic)),
        FAILED,
        "JOB_TYPE_MISMATCH",
    )
    assert err.info is not None and err.info.metadata["type"] == "NAS"
    await assert_unchanged(clients, nas)
    started = await clients.jobs.StartJob(
        js.StartJobRequest(name=nas.name, preconditions=js.Preconditions(types=["NAS"]))
    )
    assert started.state == res.RUNNING


async def test_c26_etag_star_means_the_job_must_exist(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C26: `*` as the etag (If-Match: *) is met by any existing job and by no missing one:
    a create with it replaces an existing CREATING job, and on a missing job it is
    CONDITION_NOT_MET and creates nothing; an update with it is an ordinary update."""
    col = await make_collection(res.TRANSFER)
    missing = transfer()
    missing.etag = "*"
    await expect_error(
        clients.jobs.CreateJob(js.CreateJobRequest(parent=col.name, job_id="a", job=missing)),
        ABORTED,
        "CONDITION_NOT_MET",
    )
    await expect_error(get_job(clients, f"{col.name}/jobs/a"), NOT_FOUND, "JOB_NOT_FOUND")
    first = await clients.jobs.CreateJob(
        js.CreateJobRequest(parent=col.name, job_id="a", job=transfer())
    )
    again = transfer(description="replaced")
    again.etag = "*"
    replaced = await clients.jobs.CreateJob(
        js.CreateJobRequest(parent=col.name, job_id="a", job=again)
    )
    assert replaced.transfer.description == "replaced" and replaced.etag != first.etag
    updated = await clients.jobs.UpdateJob(
        js.UpdateJobRequest(job=res.Job(name=first.name, display_name="n", etag="*"))
    )
    assert updated.display_name == "n"
