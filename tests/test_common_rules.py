"""Rules common to every profile (docs/rules.md C1-C19, C22-C24), over real gRPC."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2
from google.protobuf import field_mask_pb2, timestamp_pb2

from jobcontrol.v1 import job_service_pb2 as js
from jobcontrol.v1 import operator_service_pb2 as ops
from jobcontrol.v1 import resources_pb2 as res
from tests.conftest import Clients, MakeCollection
from tests.helpers import RichError, decode, expect_error, get_job, wait_done

pytestmark = pytest.mark.backends

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
ABORTED = grpc.StatusCode.ABORTED
FAILED = grpc.StatusCode.FAILED_PRECONDITION


# --- helpers ------------------------------------------------------------------------------


def sched_spec(**overrides: Any) -> res.ScheduledSpec:
    """A complete scheduled definition: start time, HTTP action, hourly recurrence."""
    fields: dict[str, Any] = {
        "start_time": timestamp_pb2.Timestamp(seconds=1_900_000_000),
        "action": res.JobAction(
            type=res.JobAction.HTTP,
            request=res.HttpRequest(uri="http://example.com/hook", method="GET"),
        ),
        "recurrence": res.Recurrence(frequency=res.Recurrence.HOUR, interval=1),
    }
    fields.update(overrides)
    return res.ScheduledSpec(**fields)


def batch_spec(**overrides: Any) -> res.BatchSpec:
    """A minimal batch definition (pool_info is required at creation)."""
    fields: dict[str, Any] = {"pool_info": res.PoolInfo(pool_id="p")}
    fields.update(overrides)
    return res.BatchSpec(**fields)


async def new_job(
    clients: Clients,
    parent: str,
    job_id: str,
    *,
    spec: str = "scheduled",
    **job_fields: Any,
) -> res.Job:
    """Create a job with a default spec of the given kind unless one is passed."""
    if spec == "scheduled" and "scheduled" not in job_fields:
        job_fields["scheduled"] = sched_spec()
    if spec == "batch" and "batch" not in job_fields:
        job_fields["batch"] = batch_spec()
    return await clients.jobs.CreateJob(
        js.CreateJobRequest(parent=parent, job_id=job_id, job=res.Job(**job_fields))
    )


async def list_all(clients: Clients, parent: str, filter: str = "") -> list[res.Job]:
    """Every job of `parent` matching `filter`, following page tokens."""
    jobs: list[res.Job] = []
    token = ""
    while True:
        page = await clients.jobs.ListJobs(
            js.ListJobsRequest(parent=parent, filter=filter, page_size=1000, page_token=token)
        )
        jobs.extend(page.jobs)
        token = page.next_page_token
        if not token:
            return jobs


def job_ids(jobs: list[res.Job]) -> set[str]:
    return {j.name.rsplit("/", 1)[1] for j in jobs}


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def assert_violation(err: RichError, *fields: str) -> None:
    """A BadRequest field violation names one of `fields` (or a path below it)."""
    assert err.bad_request is not None, f"no BadRequest detail in {err.status}"
    named = [v.field for v in err.bad_request.field_violations]
    assert any(
        f == want or f.startswith(want + ".") or f.startswith(want + "[")
        for f in named
        for want in fields
    ), f"expected a violation on {fields}, got {named}"


def assert_has_violation(err: RichError) -> None:
    assert err.bad_request is not None, f"no BadRequest detail in {err.status}"
    assert err.bad_request.field_violations, "BadRequest has no field violation"
    assert all(v.field for v in err.bad_request.field_violations)


def ts_seconds(seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds)


# --- C1 names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["collections//jobs/x", "foo/bar", "collections/{c}/jobs/"])
async def test_c1_malformed_job_name_is_invalid_field(
    clients: Clients, make_collection: MakeCollection, bad: str
) -> None:
    """C1: a malformed job name is INVALID_ARGUMENT INVALID_FIELD naming the field."""
    col = await make_collection(res.SCHEDULED)
    existing = await new_job(clients, col.name, "keep")
    name = bad.replace("{c}", col.name.split("/")[1])

    err = await expect_error(
        clients.jobs.GetJob(js.GetJobRequest(name=name)), INVALID, "INVALID_FIELD"
    )
    assert_violation(err, "name")
    err = await expect_error(
        clients.jobs.DeleteJob(js.DeleteJobRequest(name=name, allow_missing=True)),
        INVALID,
        "INVALID_FIELD",
    )
    assert_violation(err, "name")
    err = await expect_error(
        clients.jobs.UpdateJob(
            js.UpdateJobRequest(job=res.Job(name=name, scheduled=sched_spec()), allow_missing=True)
        ),
        INVALID,
        "INVALID_FIELD",
    )
    assert_violation(err, "job.name")

    assert [j.name for j in await list_all(clients, col.name)] == [existing.name]
    assert (await get_job(clients, existing.name)).etag == existing.etag


@pytest.mark.parametrize("bad_id", ["has space", "a/b", "x" * 200, "-leading", ".dot", "é"])
async def test_c1_bad_job_id_is_invalid_field(
    clients: Clients, make_collection: MakeCollection, bad_id: str
) -> None:
    """C1: a job id outside 1-128 of [A-Za-z0-9._~-] (letter/digit first) is INVALID_FIELD."""
    col = await make_collection(res.SCHEDULED)
    err = await expect_error(new_job(clients, col.name, bad_id), INVALID, "INVALID_FIELD")
    assert_violation(err, "job_id")
    assert await list_all(clients, col.name) == []


async def test_c1_longest_and_punctuated_ids_are_accepted(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C1: ids of exactly 128 chars and with . _ ~ - are valid names."""
    col = await make_collection(res.SCHEDULED)
    for job_id in ("a" * 128, "a.b_c~d-e", "9start"):
        job = await new_job(clients, col.name, job_id)
        assert job.name == f"{col.name}/jobs/{job_id}"
    assert len(await list_all(clients, col.name)) == 3


@pytest.mark.parametrize("bad_id", ["a.b", "a~b", "x" * 65, "a b"])
async def test_c1_batch_job_id_is_invalid_field(
    clients: Clients, make_collection: MakeCollection, bad_id: str
) -> None:
    """C1: a batch job id outside 1-64 of [A-Za-z0-9_-] is INVALID_FIELD."""
    col = await make_collection(res.BATCH)
    err = await expect_error(
        new_job(clients, col.name, bad_id, spec="batch"), INVALID, "INVALID_FIELD"
    )
    assert_violation(err, "job_id")
    assert await list_all(clients, col.name) == []
    ok = await new_job(clients, col.name, "b" * 64, spec="batch")
    assert ok.name.endswith("/" + "b" * 64)


async def test_c1_bad_collection_id_and_parent_are_invalid_field(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C1: a bad collection id or a malformed parent is INVALID_FIELD naming the field."""
    before = await clients.jobs.ListCollections(js.ListCollectionsRequest(page_size=1000))
    err = await expect_error(
        clients.jobs.CreateCollection(
            js.CreateCollectionRequest(
                collection_id="bad id", collection=res.Collection(profile=res.SCHEDULED)
            )
        ),
        INVALID,
        "INVALID_FIELD",
    )
    assert_violation(err, "collection_id")
    err = await expect_error(
        clients.jobs.CreateJob(
            js.CreateJobRequest(parent="foo/bar", job_id="j", job=res.Job(scheduled=sched_spec()))
        ),
        INVALID,
        "INVALID_FIELD",
    )
    assert_violation(err, "parent")
    after = await clients.jobs.ListCollections(js.ListCollectionsRequest(page_size=1000))
    assert after.collections == before.collections


# --- C2 / C3 existence ------------------------------------------------------------------------


async def test_c2_missing_resources_are_not_found(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C2: missing collection / job / task / operation are NOT_FOUND with their reason."""
    err = await expect_error(
        clients.jobs.GetCollection(js.GetCollectionRequest(name="collections/nope")),
        NOT_FOUND,
        "COLLECTION_NOT_FOUND",
    )
    assert err.resource is not None and err.resource.resource_name == "collections/nope"

    col = await make_collection(res.BATCH)
    missing = f"{col.name}/jobs/nope"
    err = await expect_error(get_job(clients, missing), NOT_FOUND, "JOB_NOT_FOUND")
    assert err.resource is not None and err.resource.resource_name == missing
    await expect_error(
        clients.jobs.DeleteJob(js.DeleteJobRequest(name=missing)), NOT_FOUND, "JOB_NOT_FOUND"
    )

    job = await new_job(clients, col.name, "j", spec="batch")
    err = await expect_error(
        clients.jobs.GetTask(js.GetTaskRequest(name=f"{job.name}/tasks/nope")),
        NOT_FOUND,
        "TASK_NOT_FOUND",
    )
    assert err.resource is not None

    sched = await make_collection(res.SCHEDULED)
    gone = await new_job(clients, sched.name, "gone")
    op = await clients.jobs.DeleteJob(js.DeleteJobRequest(name=gone.name))
    prefix, last = op.name.rsplit("/", 1)
    missing_op = f"{prefix}/{'0' * len(last)}" if last != "0" * len(last) else f"{prefix}/1"
    err = await expect_error(
        clients.operations.GetOperation(operations_pb2.GetOperationRequest(name=missing_op)),
        NOT_FOUND,
        "OPERATION_NOT_FOUND",
    )
    assert err.resource is not None
    assert [j.name for j in await list_all(clients, col.name)] == [job.name]


async def test_c3_duplicate_job_and_task_ids_already_exist(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C3: a duplicate job or task id is ALREADY_EXISTS and the original is unchanged."""
    col = await make_collection(res.SCHEDULED)
    first = await new_job(clients, col.name, "dup", display_name="first")
    await expect_error(
        new_job(clients, col.name, "dup", display_name="second"),
        grpc.StatusCode.ALREADY_EXISTS,
        "JOB_ALREADY_EXISTS",
    )
    assert await get_job(clients, first.name) == first
    assert len(await list_all(clients, col.name)) == 1

    bcol = await make_collection(res.BATCH)
    bjob = await new_job(clients, bcol.name, "b", spec="batch")
    task = await clients.jobs.CreateTask(
        js.CreateTaskRequest(parent=bjob.name, task_id="t", task=res.Task(command_line="one"))
    )
    await expect_error(
        clients.jobs.CreateTask(
            js.CreateTaskRequest(parent=bjob.name, task_id="t", task=res.Task(command_line="two"))
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        "TASK_ALREADY_EXISTS",
    )
    again = await clients.jobs.GetTask(js.GetTaskRequest(name=task.name))
    assert again.command_line == "one"
    tasks = await clients.jobs.ListTasks(js.ListTasksRequest(parent=bjob.name))
    assert [t.name for t in tasks.tasks] == [task.name]


# --- C4 / C5 / C6 creation ----------------------------------------------------------------------


async def test_c4_spec_must_match_profile(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C4: a spec of another profile is INVALID_ARGUMENT SPEC_PROFILE_MISMATCH."""
    col = await make_collection(res.SCHEDULED)
    await expect_error(
        new_job(clients, col.name, "wrong", spec="batch", batch=batch_spec()),
        INVALID,
        "SPEC_PROFILE_MISMATCH",
    )
    assert await list_all(clients, col.name) == []

    job = await new_job(clients, col.name, "j")
    await expect_error(
        clients.jobs.UpdateJob(js.UpdateJobRequest(job=res.Job(name=job.name, batch=batch_spec()))),
        INVALID,
        "SPEC_PROFILE_MISMATCH",
    )
    assert await get_job(clients, job.name) == job


async def test_c4_no_spec_means_an_empty_one(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C4: a job without a spec is created with an empty one (scheduled needs nothing)."""
    col = await make_collection(res.SCHEDULED)
    job = await clients.jobs.CreateJob(
        js.CreateJobRequest(parent=col.name, job_id="bare", job=res.Job(display_name="d"))
    )
    assert job.state == res.ENABLED
    assert job.WhichOneof("spec") in (None, "scheduled")
    assert (await get_job(clients, job.name)).display_name == "d"


async def test_c5_required_fields_missing(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C5: batch pool_info, transfer type/location, backup job_type are REQUIRED_FIELD_MISSING."""
    cases: list[tuple[int, res.Job, str]] = [
        (res.BATCH, res.Job(batch=res.BatchSpec(priority=1)), "pool_info"),
        (res.BATCH, res.Job(), "pool_info"),
        (res.TRANSFER, res.Job(transfer=res.TransferSpec(location="westus")), "type"),
        (
            res.TRANSFER,
            res.Job(transfer=res.TransferSpec(type=res.TransferSpec.IMPORT)),
            "location",
        ),
        (res.BACKUP, res.Job(backup=res.BackupSpec(description="x")), "job_type"),
    ]
    for profile, job, missing in cases:
        col = await make_collection(profile)
        err = await expect_error(
            clients.jobs.CreateJob(js.CreateJobRequest(parent=col.name, job_id="j", job=job)),
            INVALID,
            "REQUIRED_FIELD_MISSING",
        )
        assert err.bad_request is not None
        assert any(missing in v.field for v in err.bad_request.field_violations), (
            f"{missing} not named in {err.bad_request}"
        )
        assert await list_all(clients, col.name) == []


async def test_c6_empty_job_id_gets_32_hex_digits(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C6: an empty job_id makes the server choose one of 32 hex digits."""
    col = await make_collection(res.SCHEDULED)
    a = await new_job(clients, col.name, "")
    b = await new_job(clients, col.name, "")
    for job in (a, b):
        assert re.fullmatch(rf"{col.name}/jobs/[0-9a-fA-F]{{32}}", job.name), job.name
        assert (await get_job(clients, job.name)) == job
    assert a.name != b.name


# --- C7 etag ---------------------------------------------------------------------------------


async def test_c7_every_write_changes_etag_and_update_time(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C7: update, pause and resume each change etag and update_time."""
    col = await make_collection(res.SCHEDULED)
    job = await new_job(clients, col.name, "j")
    assert job.etag
    seen = {job.etag}
    # factories, not calls: a grpc.aio call starts when it is made
    writes = [
        lambda: clients.jobs.UpdateJob(
            js.UpdateJobRequest(job=res.Job(name=job.name, display_name="one"))
        ),
        lambda: clients.jobs.PauseJob(js.PauseJobRequest(name=job.name)),
        lambda: clients.jobs.ResumeJob(js.ResumeJobRequest(name=job.name)),
        lambda: clients.jobs.UpdateJob(
            js.UpdateJobRequest(
                job=res.Job(name=job.name, labels={"k": "v"}), update_mask=mask("labels")
            )
        ),
    ]
    previous = job
    for write in writes:
        after = await write()  # type: ignore[misc]
        assert after.etag and after.etag not in seen
        assert after.update_time != previous.update_time
        assert after.update_time.ToNanoseconds() >= previous.update_time.ToNanoseconds()
        assert await get_job(clients, job.name) == after
        seen.add(after.etag)
        previous = after


async def test_c7_stale_etag_is_aborted_etag_mismatch(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C7: a stale etag on update, delete, pause and resume is ABORTED ETAG_MISMATCH."""
    col = await make_collection(res.SCHEDULED)
    job = await new_job(clients, col.name, "j", display_name="orig")
    stale = job.etag
    current = await clients.jobs.UpdateJob(
        js.UpdateJobRequest(job=res.Job(name=job.name, display_name="new", etag=stale))
    )
    assert current.etag != stale

    refusals = [
        lambda: clients.jobs.UpdateJob(
            js.UpdateJobRequest(job=res.Job(name=job.name, display_name="lost", etag=stale))
        ),
        lambda: clients.jobs.DeleteJob(js.DeleteJobRequest(name=job.name, etag=stale)),
        lambda: clients.jobs.PauseJob(js.PauseJobRequest(name=job.name, etag=stale)),
        lambda: clients.jobs.ResumeJob(js.ResumeJobRequest(name=job.name, etag=stale)),
    ]
    for call in refusals:
        err = await expect_error(call(), ABORTED, "ETAG_MISMATCH")
        assert err.precondition is not None, "ABORTED without PreconditionFailure"
        assert await get_job(clients, job.name) == current

    paused = await clients.jobs.PauseJob(js.PauseJobRequest(name=job.name, etag=current.etag))
    assert paused.state == res.DISABLED
    op = await clients.jobs.DeleteJob(js.DeleteJobRequest(name=job.name, etag=paused.etag))
    assert (await wait_done(clients.operations, op.name)).done
    await expect_error(get_job(clients, job.name), NOT_FOUND, "JOB_NOT_FOUND")


# --- C8 preconditions --------------------------------------------------------------------------


async def test_c8_if_none_match_star_or_current_etag_is_condition_not_met(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C8: if_none_match "*" or the current etag is ABORTED CONDITION_NOT_MET."""
    col = await make_collection(res.SCHEDULED)
    job = await new_job(clients, col.name, "j", display_name="orig")
    for value in ("*", job.etag):
        pre = js.Preconditions(if_none_match=value)
        await expect_error(
            clients.jobs.UpdateJob(
                js.UpdateJobRequest(job=res.Job(name=job.name, display_name="x"), preconditions=pre)
            ),
            ABORTED,
            "CONDITION_NOT_MET",
        )
        await expect_error(
            clients.jobs.DeleteJob(js.DeleteJobRequest(name=job.name, preconditions=pre)),
            ABORTED,
            "CONDITION_NOT_MET",
        )
        assert await get_job(clients, job.name) == job

    updated = await clients.jobs.UpdateJob(
        js.UpdateJobRequest(
            job=res.Job(name=job.name, display_name="passed"),
            preconditions=js.Preconditions(if_none_match='"some-other-etag"'),
        )
    )
    assert updated.display_name == "passed"
    op = await clients.jobs.DeleteJob(
        js.DeleteJobRequest(name=job.name, preconditions=js.Preconditions(if_none_match=job.etag))
    )
    await wait_done(clients.operations, op.name)
    await expect_error(get_job(clients, job.name), NOT_FOUND, "JOB_NOT_FOUND")


async def test_c8_if_unmodified_since(clients: Clients, make_collection: MakeCollection) -> None:
    """C8: if_unmodified_since before update_time is CONDITION_NOT_MET; after it passes."""
    col = await make_collection(res.SCHEDULED)
    job = await new_job(clients, col.name, "j", display_name="orig")
    earlier = ts_seconds(job.update_time.seconds - 10)
    later = ts_seconds(job.update_time.seconds + 3600)

    await expect_error(
        clients.jobs.UpdateJob(
            js.UpdateJobRequest(
                job=res.Job(name=job.name, display_name="x"),
                preconditions=js.Preconditions(if_unmodified_since=earlier),
            )
        ),
        ABORTED,
        "CONDITION_NOT_MET",
    )
    await expect_error(
        clients.jobs.DeleteJob(
            js.DeleteJobRequest(
                name=job.name, preconditions=js.Preconditions(if_unmodified_since=earlier)
            )
        ),
        ABORTED,
        "CONDITION_NOT_MET",
    )
    assert await get_job(clients, job.name) == job

    # whole seconds: update_time truncated to its second is not after that second
    same_second = await clients.jobs.UpdateJob(
        js.UpdateJobRequest(
            job=res.Job(name=job.name, display_name="same-second"),
            preconditions=js.Preconditions(if_unmodified_since=ts_seconds(job.update_time.seconds)),
        )
    )
    assert same_second.display_name == "same-second"
    updated = await clients.jobs.UpdateJob(
        js.UpdateJobRequest(
            job=res.Job(name=job.name, display_name="passed"),
            preconditions=js.Preconditions(if_unmodified_since=later),
        )
    )
    assert updated.display_name == "passed"
    op = await clients.jobs.DeleteJob(
        js.DeleteJobRequest(
            name=job.name, preconditions=js.Preconditions(if_unmodified_since=later)
        )
    )
    await wait_done(clients.operations, op.name)
    await expect_error(get_job(clients, job.name), NOT_FOUND, "JOB_NOT_FOUND")


async def test_c8_if_modified_since(clients: Clients, make_collection: MakeCollection) -> None:
    """C8: if_modified_since after update_time is CONDITION_NOT_MET; before it passes."""
    col = await make_collection(res.SCHEDULED)
    job = await new_job(clients, col.name, "j", display_name="orig")
    later = ts_seconds(job.update_time.seconds + 3600)
    earlier = ts_seconds(job.update_time.seconds - 10)

    await expect_error(
        clients.jobs.UpdateJob(
            js.UpdateJobRequest(
                job=res.Job(name=job.name, display_name="x"),
                preconditions=js.Preconditions(if_modified_since=later),
            )
        ),
        ABORTED,
        "CONDITION_NOT_MET",
    )
    await expect_error(
        clients.jobs.DeleteJob(
            js.DeleteJobRequest(
                name=job.name, preconditions=js.Preconditions(if_modified_since=later)
            )
        ),
        ABORTED,
        "CONDITION_NOT_MET",
    )
    # whole seconds: update_time truncated to its second is not after that second
    await expect_error(
        clients.jobs.UpdateJob(
            js.UpdateJobRequest(
                job=res.Job(name=job.name, display_name="x"),
                preconditions=js.Preconditions(
                    if_modified_since=ts_seconds(job.update_time.seconds)
                ),
            )
        ),
        ABORTED,
        "CONDITION_NOT_MET",
    )
    assert await get_job(clients, job.name) == job

    updated = await clients.jobs.UpdateJob(
        js.UpdateJobRequest(
            job=res.Job(name=job.name, display_name="passed"),
            preconditions=js.Preconditions(if_modified_since=earlier),
        )
    )
    assert updated.display_name == "passed"


# --- C9 / C10 / C11 update masks -----------------------------------------------------------------


async def test_c9_merge_keeps_fields_not_given(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C9: without a mask only present fields are written; nested messages merge by leaf."""
    col = await make_collection(res.SCHEDULED)
    job = await new_job(clients, col.name, "j", display_name="orig", labels={"a": "1"})
    updated = await clients.jobs.UpdateJob(
        js.UpdateJobRequest(
            job=res.Job(
                name=job.name,
                scheduled=res.ScheduledSpec(recurrence=res.Recurrence(interval=2)),
            )
        )
    )
    assert updated.scheduled.recurrence.interval == 2
    assert updated.scheduled.recurrence.frequency == res.Recurrence.HOUR
    assert updated.scheduled.action == job.scheduled.action
    assert updated.scheduled.start_time == job.scheduled.start_time
    assert updated.display_name == "orig"
    assert dict(updated.labels) == {"a": "1"}
    assert await get_job(clients, job.name) == updated


async def test_c9_merge_replaces_maps_whole(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C9: a map present in the merge body replaces the stored map whole."""
    col = await make_collection(res.SCHEDULED)
    job = await new_job(clients, col.name, "j", labels={"a": "1", "b": "2"})
    updated = await clients.jobs.UpdateJob(
        js.UpdateJobRequest(job=res.Job(name=job.name, labels={"c": "3"}))
    )
    assert dict(updated.labels) == {"c": "3"}
    assert updated.scheduled == job.scheduled
    assert dict((await get_job(clients, job.name)).labels) == {"c": "3"}


async def test_c9_output_only_field_in_merge_is_forbidden(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C9: an output-only field (status) present in a merge is FORBIDDEN_FIELD."""
    col = await make_collection(res.SCHEDULED)
    job = await new_job(clients, col.name, "j", display_name="orig")
    err = await expect_error(
        clients.jobs.UpdateJob(
            js.UpdateJobRequest(
                job=res.Job(
                    name=job.name,
                    display_name="x",
                    status=res.ExecutionStatus(execution_count=5),
                )
            )
        ),
        INVALID,
        "FORBIDDEN_FIELD",
    )
    assert_violation(err, "job.status", "status")
    assert await get_job(clients, job.name) == job


async def test_c10_star_mask_replaces_and_ignores_output_only(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C10: mask "*" replaces every updatable field (absent = cleared), ignores output-only."""
    col = await make_collection(res.SCHEDULED)
    job = await new_job(clients, col.name, "j", display_name="orig", labels={"a": "1"})
    recurrence = res.Recurrence(frequency=res.Recurrence.DAY, interval=1)
    updated = await clients.jobs.UpdateJob(
        js.UpdateJobRequest(
            job=res.Job(
                name=job.name,
                display_name="new",
                state=res.ENABLED,
                scheduled=res.ScheduledSpec(recurrence=recurrence),
                uid="bogus",
                create_time=ts_seconds(1),
                status=res.ExecutionStatus(execution_count=9),
            ),
            update_mask=mask("*"),
        )
    )
    assert updated.display_name == "new"
    assert dict(updated.labels) == {}
    assert updated.scheduled.recurrence == recurrence
    assert not updated.scheduled.HasField("action")
    assert not updated.scheduled.HasField("start_time")
    assert updated.uid == job.uid
    assert updated.create_time == job.create_time
    assert updated.status.execution_count == job.status.execution_count
    assert await get_job(clients, job.name) == updated


@pytest.mark.parametrize("path", ["status", "create_time", "uid", "update_time", "profile"])
async def test_c11_output_only_mask_path_is_forbidden(
    clients: Clients, make_collection: MakeCollection, path: str
) -> None:
    """C11: an explicit mask path that is output-only is FORBIDDEN_FIELD."""
    col = await make_collection(res.SCHEDULED)
    job = await new_job(clients, col.name, "j", display_name="orig")
    err = await expect_error(
        clients.jobs.UpdateJob(
            js.UpdateJobRequest(
                job=res.Job(name=job.name, display_name="x"), update_mask=mask(path)
            )
        ),
        INVALID,
        "FORBIDDEN_FIELD",
    )
    assert_has_violation(err)
    assert await get_job(clients, job.name) == job


@pytest.mark.parametrize("path", ["nonsense", "batch.priority", "scheduled.nonsense"])
async def test_c11_unknown_or_foreign_mask_path_is_invalid_update_mask(
    clients: Clients, make_collection: MakeCollection, path: str
) -> None:
    """C11: a mask path unknown or not updatable in the profile is INVALID_UPDATE_MASK."""
    col = await make_collection(res.SCHEDULED)
    job = await new_job(clients, col.name, "j", display_name="orig")
    err = await expect_error(
        clients.jobs.UpdateJob(
            js.UpdateJobRequest(
                job=res.Job(name=job.name, display_name="x"), update_mask=mask(path)
            )
        ),
        INVALID,
        "INVALID_UPDATE_MASK",
    )
    assert_has_violation(err)
    assert await get_job(clients, job.name) == job


async def test_c11_spec_output_only_mask_path_is_forbidden(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C11: batch.execution_info in a mask is FORBIDDEN_FIELD."""
    col = await make_collection(res.BATCH)
    job = await new_job(clients, col.name, "j", spec="batch")
    err = await expect_error(
        clients.jobs.UpdateJob(
            js.UpdateJobRequest(
                job=res.Job(name=job.name, batch=batch_spec()),
                update_mask=mask("batch.execution_info"),
            )
        ),
        INVALID,
        "FORBIDDEN_FIELD",
    )
    assert_has_violation(err)
    assert await get_job(clients, job.name) == job


async def test_c11_masked_update_writes_only_masked_paths(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C11: an explicit mask writes its paths only; other body fields are not applied."""
    col = await make_collection(res.SCHEDULED)
    job = await new_job(clients, col.name, "j", display_name="orig", labels={"a": "1"})
    updated = await clients.jobs.UpdateJob(
        js.UpdateJobRequest(
            job=res.Job(name=job.name, display_name="new", labels={"b": "2"}),
            update_mask=mask("display_name"),
        )
    )
    assert updated.display_name == "new"
    assert dict(updated.labels) == {"a": "1"}


# --- C12 immutable fields -------------------------------------------------------------------------


async def test_c12_fields_fixed_at_creation_are_immutable(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C12: changing batch on_task_failure, transfer type/location, backup job_type/platform
    is INVALID_ARGUMENT FIELD_IMMUTABLE."""
    bcol = await make_collection(res.BATCH)
    bjob = await new_job(
        clients,
        bcol.name,
        "b",
        spec="batch",
        batch=batch_spec(on_task_failure=res.BatchSpec.TASK_FAILURE_NO_ACTION),
    )
    tcol = await make_collection(res.TRANSFER)
    tjob = await new_job(
        clients,
        tcol.name,
        "t",
        spec="transfer",
        transfer=res.TransferSpec(type=res.TransferSpec.IMPORT, location="westus"),
    )
    kcol = await make_collection(res.BACKUP)
    kjob = await new_job(
        clients,
        kcol.name,
        "k",
        spec="backup",
        backup=res.BackupSpec(job_type=res.BackupSpec.BACKUP, platform=res.BackupSpec.VMWARE),
    )
    cases = [
        (bjob, res.Job(name=bjob.name, batch=res.BatchSpec(on_task_failure=2)), "on_task_failure"),
        (tjob, res.Job(name=tjob.name, transfer=res.TransferSpec(type=2)), "type"),
        (tjob, res.Job(name=tjob.name, transfer=res.TransferSpec(location="eastus")), "location"),
        (kjob, res.Job(name=kjob.name, backup=res.BackupSpec(job_type=2)), "job_type"),
        (kjob, res.Job(name=kjob.name, backup=res.BackupSpec(platform=3)), "platform"),
    ]
    for original, body, field in cases:
        err = await expect_error(
            clients.jobs.UpdateJob(js.UpdateJobRequest(job=body)), INVALID, "FIELD_IMMUTABLE"
        )
        assert err.bad_request is not None
        assert any(field in v.field for v in err.bad_request.field_violations)
        assert await get_job(clients, original.name) == original


# --- C13 allow_missing ---------------------------------------------------------------------------


async def test_c13_allow_missing_update_creates(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C13: UpdateJob with allow_missing on a missing job creates it."""
    col = await make_collection(res.SCHEDULED)
    name = f"{col.name}/jobs/fresh"
    await expect_error(
        clients.jobs.UpdateJob(
            js.UpdateJobRequest(job=res.Job(name=name, display_name="d", scheduled=sched_spec()))
        ),
        NOT_FOUND,
        "JOB_NOT_FOUND",
    )
    assert await list_all(clients, col.name) == []
    created = await clients.jobs.UpdateJob(
        js.UpdateJobRequest(
            job=res.Job(name=name, display_name="d", scheduled=sched_spec()),
            allow_missing=True,
        )
    )
    assert created.name == name
    assert created.display_name == "d"
    assert created.state == res.ENABLED
    assert created.uid and created.etag
    assert await get_job(clients, name) == created


async def test_c13_allow_missing_delete_returns_done_operation(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C13: DeleteJob with allow_missing on a missing job returns a done Operation."""
    col = await make_collection(res.SCHEDULED)
    keep = await new_job(clients, col.name, "keep")
    op = await clients.jobs.DeleteJob(
        js.DeleteJobRequest(name=f"{col.name}/jobs/absent", allow_missing=True)
    )
    assert op.done
    assert not op.HasField("error")
    assert [j.name for j in await list_all(clients, col.name)] == [keep.name]


# --- C14 request_id ------------------------------------------------------------------------------


async def test_c14_create_replay_returns_first_reply(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C14: CreateJob repeated with its request_id returns the first Job, even after updates."""
    col = await make_collection(res.SCHEDULED)
    request = js.CreateJobRequest(
        parent=col.name,
        job_id="j",
        job=res.Job(display_name="orig", scheduled=sched_spec()),
        request_id=uuid.uuid4().hex,
    )
    first = await clients.jobs.CreateJob(request)
    second = await clients.jobs.CreateJob(request)
    assert second == first
    assert len(await list_all(clients, col.name)) == 1

    updated = await clients.jobs.UpdateJob(
        js.UpdateJobRequest(job=res.Job(name=first.name, display_name="changed"))
    )
    third = await clients.jobs.CreateJob(request)
    assert third == first
    assert await get_job(clients, first.name) == updated


async def test_c14_update_replay_changes_nothing(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C14: UpdateJob repeated with its request_id returns the first reply, etag unchanged."""
    col = await make_collection(res.SCHEDULED)
    job = await new_job(clients, col.name, "j", display_name="orig")
    request = js.UpdateJobRequest(
        job=res.Job(name=job.name, display_name="once", etag=job.etag),
        request_id=uuid.uuid4().hex,
    )
    first = await clients.jobs.UpdateJob(request)
    assert first.etag != job.etag
    again = await clients.jobs.UpdateJob(request)
    assert again == first
    assert await get_job(clients, job.name) == first


async def test_c14_delete_replay_returns_same_operation(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C14: DeleteJob repeated with its request_id returns the same Operation, not NOT_FOUND."""
    col = await make_collection(res.SCHEDULED)
    job = await new_job(clients, col.name, "j")
    request = js.DeleteJobRequest(name=job.name, request_id=uuid.uuid4().hex)
    first = await clients.jobs.DeleteJob(request)
    await wait_done(clients.operations, first.name)
    again = await clients.jobs.DeleteJob(request)
    assert again.name == first.name
    await expect_error(get_job(clients, job.name), NOT_FOUND, "JOB_NOT_FOUND")
    # without the request id the repeat is a plain second delete
    await expect_error(
        clients.jobs.DeleteJob(js.DeleteJobRequest(name=job.name)), NOT_FOUND, "JOB_NOT_FOUND"
    )


# --- C15 bad input -------------------------------------------------------------------------------


CREATE_BAD_INPUT: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("display_name_1025", {"display_name": "d" * 1025}, ("job.display_name",)),
    ("labels_65", {"labels": {f"k{i}": "v" for i in range(65)}}, ("job.labels",)),
    ("label_key_64", {"labels": {"k" * 64: "v"}}, ("job.labels",)),
    ("label_value_257", {"labels": {"k": "v" * 257}}, ("job.labels",)),
    ("state_99", {"state": 99}, ("job.state",)),
    (
        "spec_over_64k",
        {
            "scheduled": sched_spec(
                action=res.JobAction(
                    type=res.JobAction.HTTP,
                    request=res.HttpRequest(uri="http://x", method="POST", body="b" * 70_000),
                )
            )
        },
        ("job.scheduled", "job.spec"),
    ),
]


@pytest.mark.parametrize(
    ("fields", "violation"),
    [(f, v) for _, f, v in CREATE_BAD_INPUT],
    ids=[i for i, _, _ in CREATE_BAD_INPUT],
)
async def test_c15_bad_job_input_on_create_is_invalid_field(
    clients: Clients,
    make_collection: MakeCollection,
    fields: dict[str, Any],
    violation: tuple[str, ...],
) -> None:
    """C15: oversized or out-of-range job fields on create are INVALID_FIELD naming the field."""
    col = await make_collection(res.SCHEDULED)
    keep = await new_job(clients, col.name, "keep")
    err = await expect_error(new_job(clients, col.name, "bad", **fields), INVALID, "INVALID_FIELD")
    assert_violation(err, *violation)
    assert [j.name for j in await list_all(clients, col.name)] == [keep.name]


@pytest.mark.parametrize(
    ("fields", "violation"),
    [(f, v) for _, f, v in CREATE_BAD_INPUT],
    ids=[i for i, _, _ in CREATE_BAD_INPUT],
)
async def test_c15_bad_job_input_on_update_is_invalid_field(
    clients: Clients,
    make_collection: MakeCollection,
    fields: dict[str, Any],
    violation: tuple[str, ...],
) -> None:
    """C15: the same bad fields on update are INVALID_FIELD and the job is unchanged."""
    col = await make_collection(res.SCHEDULED)
    job = await new_job(clients, col.name, "j", display_name="orig", labels={"a": "1"})
    err = await expect_error(
        clients.jobs.UpdateJob(js.UpdateJobRequest(job=res.Job(name=job.name, **fields))),
        INVALID,
        "INVALID_FIELD",
    )
    assert_violation(err, *violation)
    after = await get_job(clients, job.name)
    assert after.etag == job.etag
    assert after == job


def _http_spec(body: str) -> res.ScheduledSpec:
    return sched_spec(
        action=res.JobAction(
            type=res.JobAction.HTTP,
            request=res.HttpRequest(uri="http://x", method="POST", body=body),
        )
    )


async def test_c15_spec_limit_counts_the_stored_utf8_bytes(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C15: the 64 KiB spec limit counts the spec's JSON as stored, compact UTF-8: a body
    of 30,000 "é" (60,000 bytes; 180,000 characters had it been ASCII-escaped) is
    accepted and kept; 33,000 of them (66,000 bytes) are INVALID_FIELD with the size."""
    col = await make_collection(res.SCHEDULED)
    kept = await new_job(clients, col.name, "wide", scheduled=_http_spec("é" * 30_000))
    assert kept.scheduled.action.request.body == "é" * 30_000
    err = await expect_error(
        new_job(clients, col.name, "wider", scheduled=_http_spec("é" * 33_000)),
        INVALID,
        "INVALID_FIELD",
    )
    assert err.bad_request is not None
    [violation] = err.bad_request.field_violations
    assert violation.field == "job.scheduled"
    assert re.fullmatch(r"6[6-9]\d{3} bytes, over 65536", violation.description)
    assert [j.name for j in await list_all(clients, col.name)] == [kept.name]


async def test_c15_limits_themselves_are_accepted(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C15: display_name of 1024, 64 labels, key of 63 and value of 256 chars are accepted."""
    col = await make_collection(res.SCHEDULED)
    labels = {f"k{i}": "v" for i in range(63)}
    labels["k" * 63] = "v" * 256
    job = await new_job(clients, col.name, "edge", display_name="d" * 1024, labels=labels)
    assert len(job.display_name) == 1024
    assert dict(job.labels) == labels


async def test_c15_unknown_profile_and_long_request_id_and_negative_page_size(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C15: Collection profile 42, request_id of 129 chars, page_size -1 are INVALID_FIELD."""
    before = await clients.jobs.ListCollections(js.ListCollectionsRequest(page_size=1000))
    err = await expect_error(
        clients.jobs.CreateCollection(
            js.CreateCollectionRequest(collection_id="weird", collection=res.Collection(profile=42))
        ),
        INVALID,
        "INVALID_FIELD",
    )
    assert_violation(err, "collection.profile")
    after = await clients.jobs.ListCollections(js.ListCollectionsRequest(page_size=1000))
    assert after.collections == before.collections

    col = await make_collection(res.SCHEDULED)
    job = await new_job(clients, col.name, "j")
    err = await expect_error(
        clients.jobs.CreateJob(
            js.CreateJobRequest(
                parent=col.name,
                job_id="k",
                job=res.Job(scheduled=sched_spec()),
                request_id="r" * 129,
            )
        ),
        INVALID,
        "INVALID_FIELD",
    )
    assert_violation(err, "request_id")
    err = await expect_error(
        clients.jobs.UpdateJob(
            js.UpdateJobRequest(job=res.Job(name=job.name, display_name="x"), request_id="r" * 129)
        ),
        INVALID,
        "INVALID_FIELD",
    )
    assert_violation(err, "request_id")
    err = await expect_error(
        clients.jobs.ListJobs(js.ListJobsRequest(parent=col.name, page_size=-1)),
        INVALID,
        "INVALID_FIELD",
    )
    assert_violation(err, "page_size")
    assert [j.name for j in await list_all(clients, col.name)] == [job.name]
    assert await get_job(clients, job.name) == job


# --- C16 paging ----------------------------------------------------------------------------------


async def test_c16_pages_cover_every_job_once_in_name_order(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C16: 7 jobs in pages of 3 are 3 pages, each job once, in name order."""
    col = await make_collection(res.SCHEDULED)
    for job_id in ("j5", "j2", "j0", "j6", "j1", "j3", "j4"):
        await new_job(clients, col.name, job_id)
    pages: list[list[str]] = []
    token = ""
    while True:
        page = await clients.jobs.ListJobs(
            js.ListJobsRequest(parent=col.name, page_size=3, page_token=token)
        )
        pages.append([j.name for j in page.jobs])
        token = page.next_page_token
        if not token:
            break
        assert len(pages) < 10, "paging does not terminate"
    assert [len(p) for p in pages] == [3, 3, 1]
    names = [n for p in pages for n in p]
    assert names == sorted(names)
    assert names == [f"{col.name}/jobs/j{i}" for i in range(7)]


async def test_c16_default_and_maximum_page_size(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C16: page_size 0 means 50; a page_size above 1000 is capped, not refused."""
    col = await make_collection(res.SCHEDULED)
    for i in range(51):
        await new_job(clients, col.name, f"j{i:02d}")
    page = await clients.jobs.ListJobs(js.ListJobsRequest(parent=col.name))
    assert len(page.jobs) == 50
    assert page.next_page_token
    rest = await clients.jobs.ListJobs(
        js.ListJobsRequest(parent=col.name, page_token=page.next_page_token)
    )
    assert len(rest.jobs) == 1
    assert not rest.next_page_token
    big = await clients.jobs.ListJobs(js.ListJobsRequest(parent=col.name, page_size=5000))
    assert len(big.jobs) == 51


async def test_c16_foreign_or_garbage_page_token_is_invalid(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C16: a token used with another filter, order or parent, or not ours, is
    INVALID_PAGE_TOKEN."""
    col = await make_collection(res.SCHEDULED)
    other = await make_collection(res.SCHEDULED)
    for i in range(4):
        await new_job(clients, col.name, f"j{i}")
        await new_job(clients, other.name, f"j{i}")
    first = await clients.jobs.ListJobs(js.ListJobsRequest(parent=col.name, page_size=2))
    token = first.next_page_token
    assert token

    bad_requests = [
        js.ListJobsRequest(
            parent=col.name, page_size=2, page_token=token, filter="state = ENABLED"
        ),
        js.ListJobsRequest(parent=other.name, page_size=2, page_token=token),
        js.ListJobsRequest(parent=col.name, page_size=2, page_token=token, order_by="create_time"),
        js.ListJobsRequest(parent=col.name, page_size=2, page_token="garbage-token"),
        js.ListJobsRequest(parent=col.name, page_size=2, page_token=token[:-2] + "xx"),
    ]
    for request in bad_requests:
        err = await expect_error(clients.jobs.ListJobs(request), INVALID, "INVALID_PAGE_TOKEN")
        assert_has_violation(err)

    # the token still works with its own query
    second = await clients.jobs.ListJobs(
        js.ListJobsRequest(parent=col.name, page_size=2, page_token=token)
    )
    assert [j.name for j in second.jobs] == [f"{col.name}/jobs/j2", f"{col.name}/jobs/j3"]
    assert len(await list_all(clients, col.name)) == 4


# --- C17 filters ---------------------------------------------------------------------------------


@pytest.fixture
async def filter_jobs(clients: Clients, make_collection: MakeCollection) -> str:
    """a: ENABLED prod, b: DISABLED prod, c: ENABLED dev, d: DISABLED no labels."""
    col = await make_collection(res.SCHEDULED)
    await new_job(clients, col.name, "a", labels={"env": "prod"})
    b = await new_job(clients, col.name, "b", labels={"env": "prod"})
    await new_job(clients, col.name, "c", labels={"env": "dev"})
    d = await new_job(clients, col.name, "d")
    for job in (b, d):
        paused = await clients.jobs.PauseJob(js.PauseJobRequest(name=job.name))
        assert paused.state == res.DISABLED
    return col.name


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ("state = DISABLED", {"b", "d"}),
        ('labels.env = "prod"', {"a", "b"}),
        ('state = ENABLED AND labels.env = "prod"', {"a"}),
        ("NOT state = ENABLED", {"b", "d"}),
        ("(state = ENABLED OR state = DISABLED)", {"a", "b", "c", "d"}),
        ('create_time > "2000-01-01T00:00:00Z"', {"a", "b", "c", "d"}),
        ('create_time < "2000-01-01T00:00:00Z"', set()),
        ('state = ENABLED AND (labels.env = "dev" OR labels.env = "prod")', {"a", "c"}),
    ],
)
async def test_c17_filter_selects_matching_jobs(
    clients: Clients, filter_jobs: str, filter: str, expected: set[str]
) -> None:
    """C17: AIP-160 filters on state, labels and times select exactly the matching jobs."""
    assert job_ids(await list_all(clients, filter_jobs, filter)) == expected


@pytest.mark.parametrize("bad", ["state ==", "color = red", "state = PURPLE", "(state = ENABLED"])
async def test_c17_bad_filter_is_invalid_filter(
    clients: Clients, filter_jobs: str, bad: str
) -> None:
    """C17: bad syntax, an unknown field or an unknown state is INVALID_FILTER."""
    await expect_error(
        clients.jobs.ListJobs(js.ListJobsRequest(parent=filter_jobs, filter=bad)),
        INVALID,
        "INVALID_FILTER",
    )
    await expect_error(
        clients.jobs.DeleteJobs(js.DeleteJobsRequest(parent=filter_jobs, filter=bad)),
        INVALID,
        "INVALID_FILTER",
    )
    assert job_ids(await list_all(clients, filter_jobs)) == {"a", "b", "c", "d"}


# --- C18 concurrency -----------------------------------------------------------------------------


async def test_c18_concurrent_updates_with_same_etag_one_wins(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C18: of 20 concurrent updates carrying one etag exactly one succeeds; the rest are
    ABORTED ETAG_MISMATCH and the stored job is the winner's reply."""
    col = await make_collection(res.SCHEDULED)
    job = await new_job(clients, col.name, "j", labels={"writer": "none"})
    calls = [
        clients.jobs.UpdateJob(
            js.UpdateJobRequest(
                job=res.Job(
                    name=job.name, etag=job.etag, labels={"writer": str(i)}, display_name=f"w{i}"
                )
            )
        )
        for i in range(20)
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    winners = [r for r in results if isinstance(r, res.Job)]
    losers = [r for r in results if not isinstance(r, res.Job)]
    assert len(winners) == 1, f"{len(winners)} updates succeeded"
    assert len(losers) == 19
    for exc in losers:
        assert isinstance(exc, grpc.aio.AioRpcError), repr(exc)
        err = decode(exc)
        assert err.code == ABORTED, err.message
        assert err.reason == "ETAG_MISMATCH"
    winner = winners[0]
    i = winner.labels["writer"]
    assert winner.display_name == f"w{i}"
    assert await get_job(clients, job.name) == winner


# --- C19 quotas ----------------------------------------------------------------------------------


async def test_c19_max_job_count(clients: Clients, make_collection: MakeCollection) -> None:
    """C19: creating beyond max_job_count is RESOURCE_EXHAUSTED QUOTA_EXCEEDED."""
    col = await make_collection(res.SCHEDULED, max_job_count=2)
    a = await new_job(clients, col.name, "a")
    await new_job(clients, col.name, "b")
    err = await expect_error(
        new_job(clients, col.name, "c"), grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED"
    )
    assert err.quota is not None and err.quota.violations, "no QuotaFailure detail"
    await expect_error(
        clients.jobs.UpdateJob(
            js.UpdateJobRequest(
                job=res.Job(name=f"{col.name}/jobs/c", scheduled=sched_spec()),
                allow_missing=True,
            )
        ),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "QUOTA_EXCEEDED",
    )
    assert job_ids(await list_all(clients, col.name)) == {"a", "b"}

    # a final job still counts toward max_job_count; a deleted one does not
    await clients.operator.TransitionJob(ops.TransitionJobRequest(name=a.name, state=res.COMPLETED))
    await expect_error(
        new_job(clients, col.name, "c"), grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED"
    )
    op = await clients.jobs.DeleteJob(js.DeleteJobRequest(name=a.name))
    await wait_done(clients.operations, op.name)
    await new_job(clients, col.name, "c")
    assert job_ids(await list_all(clients, col.name)) == {"b", "c"}


async def test_c19_max_active_jobs(clients: Clients, make_collection: MakeCollection) -> None:
    """C19: creating beyond max_active_jobs is QUOTA_EXCEEDED; final jobs do not count."""
    col = await make_collection(res.SCHEDULED, max_active_jobs=1)
    a = await new_job(clients, col.name, "a")
    err = await expect_error(
        new_job(clients, col.name, "b"), grpc.StatusCode.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED"
    )
    assert err.quota is not None and err.quota.violations, "no QuotaFailure detail"
    assert job_ids(await list_all(clients, col.name)) == {"a"}
    done = await clients.operator.TransitionJob(
        ops.TransitionJobRequest(name=a.name, state=res.COMPLETED)
    )
    assert done.state == res.COMPLETED
    await new_job(clients, col.name, "b")
    assert job_ids(await list_all(clients, col.name)) == {"a", "b"}


# --- C22 / C23 unsupported actions and transitions -----------------------------------------------


async def test_c22_actions_the_profile_lacks_are_not_supported(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C22: Terminate/Start/Stop/Retry and tasks on a scheduled job are OPERATION_NOT_SUPPORTED."""
    col = await make_collection(res.SCHEDULED)
    job = await new_job(clients, col.name, "j")
    calls = [
        lambda: clients.jobs.TerminateJob(js.TerminateJobRequest(name=job.name)),
        lambda: clients.jobs.StartJob(js.StartJobRequest(name=job.name)),
        lambda: clients.jobs.StopJob(js.StopJobRequest(name=job.name)),
        lambda: clients.jobs.RetryJob(js.RetryJobRequest(name=job.name)),
        lambda: clients.jobs.CreateTask(
            js.CreateTaskRequest(parent=job.name, task_id="t", task=res.Task(command_line="x"))
        ),
    ]
    for call in calls:
        err = await expect_error(call(), FAILED, "OPERATION_NOT_SUPPORTED")
        assert err.precondition is not None, "FAILED_PRECONDITION without PreconditionFailure"
        assert await get_job(clients, job.name) == job


async def test_c23_operator_transition_outside_table(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C23: an operator transition not in the table is INVALID_STATE_TRANSITION; a state
    outside the profile is STATE_NOT_SETTABLE."""
    col = await make_collection(res.SCHEDULED)
    job = await new_job(clients, col.name, "j")
    await expect_error(
        clients.operator.TransitionJob(ops.TransitionJobRequest(name=job.name, state=res.ACTIVE)),
        INVALID,
        "STATE_NOT_SETTABLE",
    )
    assert await get_job(clients, job.name) == job
    done = await clients.operator.TransitionJob(
        ops.TransitionJobRequest(name=job.name, state=res.COMPLETED)
    )
    assert done.state == res.COMPLETED
    assert done.previous_state == res.ENABLED
    await expect_error(
        clients.operator.TransitionJob(ops.TransitionJobRequest(name=job.name, state=res.ENABLED)),
        FAILED,
        "INVALID_STATE_TRANSITION",
    )
    assert await get_job(clients, job.name) == done


# --- C24 bulk deletion ---------------------------------------------------------------------------


def deleted_count(op: operations_pb2.Operation) -> int:
    reply = js.DeleteJobsResponse()
    assert op.response.Unpack(reply), f"response is {op.response.type_url}"
    return reply.deleted_count


async def test_c24_delete_jobs_with_filter_deletes_only_matching(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C24: DeleteJobs with a filter deletes the matching jobs only."""
    col = await make_collection(res.SCHEDULED)
    other = await make_collection(res.SCHEDULED)
    for i in range(3):
        await new_job(clients, col.name, f"dev{i}", labels={"env": "dev"})
        await new_job(clients, other.name, f"dev{i}", labels={"env": "dev"})
    await new_job(clients, col.name, "prod", labels={"env": "prod"})
    op = await clients.jobs.DeleteJobs(
        js.DeleteJobsRequest(parent=col.name, filter='labels.env = "dev"')
    )
    done = await wait_done(clients.operations, op.name)
    assert not done.HasField("error")
    assert deleted_count(done) == 3
    assert job_ids(await list_all(clients, col.name)) == {"prod"}
    assert len(await list_all(clients, other.name)) == 3
    await expect_error(get_job(clients, f"{col.name}/jobs/dev0"), NOT_FOUND, "JOB_NOT_FOUND")


async def test_c24_delete_jobs_without_filter_empties_collection(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C24: DeleteJobs with an empty filter empties the collection (and only it)."""
    col = await make_collection(res.SCHEDULED)
    other = await make_collection(res.SCHEDULED)
    for i in range(4):
        await new_job(clients, col.name, f"j{i}")
    await new_job(clients, other.name, "keep")
    op = await clients.jobs.DeleteJobs(js.DeleteJobsRequest(parent=col.name))
    done = await wait_done(clients.operations, op.name)
    assert deleted_count(done) == 4
    assert await list_all(clients, col.name) == []
    assert job_ids(await list_all(clients, other.name)) == {"keep"}
    await clients.jobs.GetCollection(js.GetCollectionRequest(name=col.name))


async def test_c24_delete_collection_removes_it_and_its_jobs(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C24: DeleteCollection removes the collection and its jobs."""
    col = await make_collection(res.SCHEDULED)
    other = await make_collection(res.SCHEDULED)
    for i in range(3):
        await new_job(clients, col.name, f"j{i}")
    await new_job(clients, other.name, "keep")
    op = await clients.jobs.DeleteCollection(js.DeleteCollectionRequest(name=col.name))
    done = await wait_done(clients.operations, op.name)
    assert not done.HasField("error")
    await expect_error(
        clients.jobs.GetCollection(js.GetCollectionRequest(name=col.name)),
        NOT_FOUND,
        "COLLECTION_NOT_FOUND",
    )
    err = await expect_error(get_job(clients, f"{col.name}/jobs/j0"), NOT_FOUND)
    assert err.reason in ("COLLECTION_NOT_FOUND", "JOB_NOT_FOUND")
    listed = await clients.jobs.ListCollections(js.ListCollectionsRequest(page_size=1000))
    assert col.name not in [c.name for c in listed.collections]
    # a new collection of the same id starts empty: the jobs are gone, not hidden
    await clients.jobs.CreateCollection(
        js.CreateCollectionRequest(
            collection_id=col.name.split("/")[1], collection=res.Collection(profile=res.SCHEDULED)
        )
    )
    assert await list_all(clients, col.name) == []
    assert job_ids(await list_all(clients, other.name)) == {"keep"}


# --- collections ---------------------------------------------------------------------------------


async def test_c2_c3_collections_crud(clients: Clients) -> None:
    """C2/C3: collections are created, read, listed, updated and deleted; a duplicate id is
    ALREADY_EXISTS COLLECTION_ALREADY_EXISTS and a job in a missing one COLLECTION_NOT_FOUND."""
    created = await clients.jobs.CreateCollection(
        js.CreateCollectionRequest(
            collection_id="crud",
            collection=res.Collection(
                display_name="CRUD",
                profile=res.SCHEDULED,
                plan="Standard",
                labels={"team": "a"},
                quota=res.Quota(max_job_count=5),
            ),
        )
    )
    assert created.name == "collections/crud"
    assert created.uid and created.etag
    assert created.profile == res.SCHEDULED
    assert created.display_name == "CRUD"
    assert created.quota.max_job_count == 5
    assert await clients.jobs.GetCollection(js.GetCollectionRequest(name=created.name)) == created
    listed = await clients.jobs.ListCollections(js.ListCollectionsRequest())
    assert created.name in [c.name for c in listed.collections]

    await expect_error(
        clients.jobs.CreateCollection(
            js.CreateCollectionRequest(
                collection_id="crud",
                collection=res.Collection(display_name="other", profile=res.BATCH),
            )
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        "COLLECTION_ALREADY_EXISTS",
    )
    assert await clients.jobs.GetCollection(js.GetCollectionRequest(name=created.name)) == created

    renamed = await clients.jobs.UpdateCollection(
        js.UpdateCollectionRequest(
            collection=res.Collection(name=created.name, display_name="Renamed"),
            update_mask=mask("display_name"),
        )
    )
    assert renamed.display_name == "Renamed"
    assert renamed.quota.max_job_count == 5
    assert dict(renamed.labels) == {"team": "a"}
    assert renamed.etag != created.etag
    requota = await clients.jobs.UpdateCollection(
        js.UpdateCollectionRequest(
            collection=res.Collection(name=created.name, quota=res.Quota(max_job_count=10)),
            update_mask=mask("quota"),
        )
    )
    assert requota.quota.max_job_count == 10
    assert requota.display_name == "Renamed"
    assert await clients.jobs.GetCollection(js.GetCollectionRequest(name=created.name)) == requota

    op = await clients.jobs.DeleteCollection(js.DeleteCollectionRequest(name=created.name))
    await wait_done(clients.operations, op.name)
    await expect_error(
        clients.jobs.GetCollection(js.GetCollectionRequest(name=created.name)),
        NOT_FOUND,
        "COLLECTION_NOT_FOUND",
    )
    await expect_error(new_job(clients, "collections/crud", "j"), NOT_FOUND, "COLLECTION_NOT_FOUND")
    await expect_error(
        new_job(clients, "collections/never", "j"), NOT_FOUND, "COLLECTION_NOT_FOUND"
    )
    listed = await clients.jobs.ListCollections(js.ListCollectionsRequest())
    assert created.name not in [c.name for c in listed.collections]
