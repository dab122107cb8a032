"""The `scheduled` profile (Azure Scheduler): rules S1..S13 of docs/rules.md."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import timestamp_pb2

from jobcontrol.v1 import job_service_pb2, operator_service_pb2, resources_pb2
from tests.conftest import Clients, MakeCollection
from tests.helpers import assert_deleted_ok as _delete_ok
from tests.helpers import assert_gone, assert_unchanged, expect_error, operator_to, update
from tests.helpers import get_job as get

pytestmark = pytest.mark.backends

R = resources_pb2
JS = job_service_pb2
Code = grpc.StatusCode


# --- helpers -----------------------------------------------------------------------


def ts(dt: datetime) -> timestamp_pb2.Timestamp:
    """A Timestamp of an aware datetime."""
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(dt)
    return out


def as_dt(stamp: timestamp_pb2.Timestamp) -> datetime:
    """An aware UTC datetime of a Timestamp."""
    return stamp.ToDatetime(tzinfo=UTC)


def whole_now() -> datetime:
    """Now, in UTC, truncated to whole seconds."""
    return datetime.now(UTC).replace(microsecond=0)


def action(uri: str = "https://example.com/ping") -> R.JobAction:
    """A plain HTTPS action."""
    return R.JobAction(
        type=R.JobAction.HTTPS,
        request=R.HttpRequest(uri=uri, method="POST", headers={"x-h": "1"}, body="{}"),
    )


def spec(
    frequency: int = R.Recurrence.HOUR,
    interval: int = 1,
    start: datetime | None = None,
    job_action: R.JobAction | None = None,
) -> R.ScheduledSpec:
    """A recurring scheduled spec starting a day ago (unless `start` is given)."""
    return R.ScheduledSpec(
        start_time=ts(start if start is not None else whole_now() - timedelta(days=1)),
        action=job_action if job_action is not None else action(),
        recurrence=R.Recurrence(frequency=frequency, interval=interval),
    )


async def create(
    clients: Clients,
    coll: R.Collection,
    job_id: str = "j1",
    **job_fields: object,
) -> R.Job:
    """Create a scheduled job; `scheduled` defaults to `spec()`."""
    job_fields.setdefault("scheduled", spec())
    return await clients.jobs.CreateJob(
        JS.CreateJobRequest(parent=coll.name, job_id=job_id, job=R.Job(**job_fields))
    )


# --- S1 ----------------------------------------------------------------------------


async def test_scheduled_initial_state_is_enabled(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S1: a job created without a state starts ENABLED."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll)
    assert job.state == R.ENABLED
    assert job.profile == R.SCHEDULED
    assert (await get(clients, job.name)).state == R.ENABLED


async def test_scheduled_create_enabled_explicitly(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S1: a create request asking for ENABLED gets ENABLED."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll, state=R.ENABLED)
    assert job.state == R.ENABLED
    assert (await get(clients, job.name)).state == R.ENABLED


async def test_scheduled_create_disabled_when_requested(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S1: a create request asking for DISABLED starts the job DISABLED."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll, state=R.DISABLED)
    assert job.state == R.DISABLED
    assert (await get(clients, job.name)).state == R.DISABLED


# --- S2 ----------------------------------------------------------------------------


async def test_scheduled_client_toggles_state_by_update(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S2: UpdateJob of `state` moves ENABLED -> DISABLED -> ENABLED (merge and mask)."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll)

    disabled = await update(clients, R.Job(name=job.name, state=R.DISABLED))
    assert disabled.state == R.DISABLED
    assert disabled.etag != job.etag
    assert (await get(clients, job.name)).state == R.DISABLED

    enabled = await update(clients, R.Job(name=job.name, state=R.ENABLED), ["state"])
    assert enabled.state == R.ENABLED
    assert enabled.etag != disabled.etag
    assert (await get(clients, job.name)).state == R.ENABLED

    again = await update(clients, R.Job(name=job.name, state=R.DISABLED), ["state"])
    assert again.state == R.DISABLED
    assert (await get(clients, job.name)).state == R.DISABLED


async def test_scheduled_pause_and_resume_toggle_state(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S2: PauseJob disables an ENABLED job and ResumeJob enables it again."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll)

    paused = await clients.jobs.PauseJob(JS.PauseJobRequest(name=job.name))
    assert paused.state == R.DISABLED
    assert paused.etag != job.etag
    assert (await get(clients, job.name)).state == R.DISABLED

    resumed = await clients.jobs.ResumeJob(JS.ResumeJobRequest(name=job.name))
    assert resumed.state == R.ENABLED
    assert resumed.etag != paused.etag
    assert (await get(clients, job.name)).state == R.ENABLED


async def test_scheduled_resume_enables_job_created_disabled(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S2: a job created DISABLED is enabled by ResumeJob."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll, state=R.DISABLED)
    resumed = await clients.jobs.ResumeJob(JS.ResumeJobRequest(name=job.name))
    assert resumed.state == R.ENABLED
    assert (await get(clients, job.name)).state == R.ENABLED


# --- S3 ----------------------------------------------------------------------------


async def test_scheduled_update_to_completed_or_faulted_not_settable(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S3: a client setting COMPLETED or FAULTED gets STATE_NOT_SETTABLE; nothing changes."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll)
    for state in (R.COMPLETED, R.FAULTED):
        for paths in (None, ["state"]):
            before = await get(clients, job.name)
            await expect_error(
                update(clients, R.Job(name=job.name, state=state), paths),
                Code.INVALID_ARGUMENT,
                "STATE_NOT_SETTABLE",
            )
            await assert_unchanged(clients, before)
            assert before.state == R.ENABLED


async def test_scheduled_update_from_disabled_to_final_not_settable(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S3: from DISABLED too, COMPLETED and FAULTED are not client-settable."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll, state=R.DISABLED)
    for state in (R.COMPLETED, R.FAULTED):
        before = await get(clients, job.name)
        await expect_error(
            update(clients, R.Job(name=job.name, state=state)),
            Code.INVALID_ARGUMENT,
            "STATE_NOT_SETTABLE",
        )
        await assert_unchanged(clients, before)
        assert before.state == R.DISABLED


async def test_scheduled_update_to_foreign_state_not_settable(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S3: states of other profiles (ACTIVE, SHIPPING, IDLE, ...) are not settable."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll)
    for state in (R.ACTIVE, R.DISABLING, R.TERMINATING, R.DELETING, R.SHIPPING, R.IDLE):
        before = await get(clients, job.name)
        await expect_error(
            update(clients, R.Job(name=job.name, state=state)),
            Code.INVALID_ARGUMENT,
            "STATE_NOT_SETTABLE",
        )
        await assert_unchanged(clients, before)


async def test_scheduled_update_changing_other_fields_with_bad_state_is_atomic(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S3: a merge carrying COMPLETED plus a valid field change is refused as a whole."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll, display_name="before")
    before = await get(clients, job.name)
    await expect_error(
        update(clients, R.Job(name=job.name, display_name="after", state=R.COMPLETED)),
        Code.INVALID_ARGUMENT,
        "STATE_NOT_SETTABLE",
    )
    await assert_unchanged(clients, before)
    assert before.display_name == "before"


async def test_scheduled_create_in_completed_state_not_settable(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S3: a create asking for COMPLETED or FAULTED is refused and creates nothing."""
    coll = await make_collection(R.SCHEDULED)
    for job_id, state in (("jc", R.COMPLETED), ("jf", R.FAULTED)):
        await expect_error(
            create(clients, coll, job_id, state=state),
            Code.INVALID_ARGUMENT,
            "STATE_NOT_SETTABLE",
        )
        await assert_gone(clients, f"{coll.name}/jobs/{job_id}")
    listed = await clients.jobs.ListJobs(JS.ListJobsRequest(parent=coll.name))
    assert list(listed.jobs) == []


# --- S4 ----------------------------------------------------------------------------


async def _assert_final_refuses_everything(clients: Clients, job: R.Job, reason: str) -> None:
    before = await get(clients, job.name)
    name = job.name
    refused_calls: list[Callable[[], Awaitable[object]]] = [
        lambda: update(clients, R.Job(name=name, display_name="changed")),
        lambda: update(clients, R.Job(name=name, display_name="changed"), ["display_name"]),
        lambda: update(clients, R.Job(name=name, labels={"k": "v"}), ["labels"]),
        lambda: update(
            clients,
            R.Job(name=name, scheduled=R.ScheduledSpec(recurrence=R.Recurrence(interval=5))),
        ),
        lambda: update(clients, R.Job(name=name, state=R.ENABLED)),
        lambda: update(clients, R.Job(name=name, state=R.DISABLED), ["state"]),
        lambda: clients.jobs.PauseJob(JS.PauseJobRequest(name=name)),
        lambda: clients.jobs.ResumeJob(JS.ResumeJobRequest(name=name)),
    ]
    for call in refused_calls:
        err = await expect_error(call(), Code.FAILED_PRECONDITION, reason)
        assert err.precondition is not None
        await assert_unchanged(clients, before)


async def test_scheduled_completed_job_refuses_update_pause_resume(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S4: COMPLETED is final: update, Pause and Resume refused with JOB_COMPLETED."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll, display_name="orig")
    done = await operator_to(clients, job.name, R.COMPLETED)
    assert done.state == R.COMPLETED
    await _assert_final_refuses_everything(clients, done, "JOB_COMPLETED")


async def test_scheduled_faulted_job_refuses_update_pause_resume(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S4: FAULTED is final: update, Pause and Resume refused with JOB_FAULTED."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll, display_name="orig")
    faulted = await operator_to(clients, job.name, R.FAULTED)
    assert faulted.state == R.FAULTED
    await _assert_final_refuses_everything(clients, faulted, "JOB_FAULTED")


async def test_scheduled_completed_from_disabled_is_final(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S4: a DISABLED job completed by the operator is final too (JOB_COMPLETED)."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll, state=R.DISABLED)
    done = await operator_to(clients, job.name, R.COMPLETED)
    assert done.state == R.COMPLETED
    before = await get(clients, job.name)
    await expect_error(
        clients.jobs.ResumeJob(JS.ResumeJobRequest(name=job.name)),
        Code.FAILED_PRECONDITION,
        "JOB_COMPLETED",
    )
    await assert_unchanged(clients, before)


# --- S5 ----------------------------------------------------------------------------


async def test_scheduled_delete_allowed_in_every_state(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S5: delete succeeds in ENABLED, DISABLED, COMPLETED and FAULTED."""
    coll = await make_collection(R.SCHEDULED)
    enabled = await create(clients, coll, "enabled")
    disabled = await create(clients, coll, "disabled", state=R.DISABLED)
    completed = await create(clients, coll, "completed")
    faulted = await create(clients, coll, "faulted")
    assert (await operator_to(clients, completed.name, R.COMPLETED)).state == R.COMPLETED
    assert (await operator_to(clients, faulted.name, R.FAULTED)).state == R.FAULTED
    assert enabled.state == R.ENABLED
    assert disabled.state == R.DISABLED

    for job in (enabled, disabled, completed, faulted):
        await _delete_ok(clients, job.name)
    listed = await clients.jobs.ListJobs(JS.ListJobsRequest(parent=coll.name))
    assert list(listed.jobs) == []


async def test_scheduled_delete_completed_job(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S5: a COMPLETED job (refusing updates) is still deletable."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll)
    await operator_to(clients, job.name, R.COMPLETED)
    await _delete_ok(clients, job.name)


async def test_scheduled_delete_faulted_job(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S5: a FAULTED job is still deletable."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll, state=R.DISABLED)
    await operator_to(clients, job.name, R.FAULTED)
    await _delete_ok(clients, job.name)


# --- S6 ----------------------------------------------------------------------------


async def test_scheduled_merge_update_keeps_fields_not_given(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S6: a merge changing display_name keeps labels, state and the whole spec."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(
        clients, coll, display_name="orig", labels={"team": "a", "env": "prod"}, state=R.DISABLED
    )
    updated = await update(clients, R.Job(name=job.name, display_name="renamed"))
    assert updated.display_name == "renamed"
    assert dict(updated.labels) == {"team": "a", "env": "prod"}
    assert updated.state == R.DISABLED
    assert updated.scheduled == job.scheduled
    assert updated.etag != job.etag
    got = await get(clients, job.name)
    assert got == updated


async def test_scheduled_merge_of_nested_spec_is_leaf_by_leaf(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S6: merging only recurrence.interval keeps frequency, start_time and the action."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(
        clients,
        coll,
        display_name="orig",
        labels={"team": "a"},
        scheduled=spec(R.Recurrence.HOUR, 1),
    )
    updated = await update(
        clients,
        R.Job(name=job.name, scheduled=R.ScheduledSpec(recurrence=R.Recurrence(interval=3))),
    )
    rec = updated.scheduled.recurrence
    assert rec.frequency == R.Recurrence.HOUR
    assert rec.interval == 3
    assert updated.scheduled.start_time == job.scheduled.start_time
    assert updated.scheduled.action == job.scheduled.action
    assert updated.display_name == "orig"
    assert dict(updated.labels) == {"team": "a"}
    assert (await get(clients, job.name)) == updated


async def test_scheduled_merge_of_action_uri_keeps_rest_of_action(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S6: merging only action.request.uri keeps method, body, headers and recurrence."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll)
    updated = await update(
        clients,
        R.Job(
            name=job.name,
            scheduled=R.ScheduledSpec(
                action=R.JobAction(request=R.HttpRequest(uri="https://example.org/new"))
            ),
        ),
    )
    req = updated.scheduled.action.request
    assert req.uri == "https://example.org/new"
    assert req.method == "POST"
    assert req.body == "{}"
    assert dict(req.headers) == {"x-h": "1"}
    assert updated.scheduled.action.type == R.JobAction.HTTPS
    assert updated.scheduled.recurrence == job.scheduled.recurrence
    assert updated.scheduled.start_time == job.scheduled.start_time
    assert (await get(clients, job.name)) == updated


async def test_scheduled_masked_update_writes_only_masked_fields(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S6: with mask ["display_name"], other fields in the body keep their stored value."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll, display_name="orig", labels={"team": "a"})
    updated = await update(
        clients,
        R.Job(
            name=job.name,
            display_name="renamed",
            labels={"other": "x"},
            scheduled=R.ScheduledSpec(recurrence=R.Recurrence(interval=7)),
        ),
        ["display_name"],
    )
    assert updated.display_name == "renamed"
    assert dict(updated.labels) == {"team": "a"}
    assert updated.scheduled == job.scheduled
    assert (await get(clients, job.name)) == updated


# --- S7 ----------------------------------------------------------------------------


async def test_scheduled_status_in_merge_body_forbidden(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S7: a merge carrying `status` is refused with FORBIDDEN_FIELD; nothing changes."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll, display_name="orig")
    before = await get(clients, job.name)
    err = await expect_error(
        update(
            clients,
            R.Job(name=job.name, status=R.ExecutionStatus(execution_count=7, failure_count=2)),
        ),
        Code.INVALID_ARGUMENT,
        "FORBIDDEN_FIELD",
    )
    assert err.bad_request is not None
    await assert_unchanged(clients, before)


async def test_scheduled_status_with_other_changes_forbidden_atomically(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S7: a valid display_name change next to a `status` change is refused as a whole."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll, display_name="orig")
    before = await get(clients, job.name)
    await expect_error(
        update(
            clients,
            R.Job(
                name=job.name,
                display_name="renamed",
                status=R.ExecutionStatus(next_execution_time=ts(whole_now())),
            ),
        ),
        Code.INVALID_ARGUMENT,
        "FORBIDDEN_FIELD",
    )
    await assert_unchanged(clients, before)
    assert before.display_name == "orig"


async def test_scheduled_status_mask_paths_forbidden(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S7: mask paths `status` and `status.*` are refused with FORBIDDEN_FIELD."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll)
    body = R.Job(
        name=job.name,
        status=R.ExecutionStatus(
            execution_count=3, next_execution_time=ts(whole_now() + timedelta(days=3))
        ),
    )
    for paths in (
        ["status"],
        ["status.execution_count"],
        ["status.next_execution_time"],
        ["display_name", "status"],
    ):
        before = await get(clients, job.name)
        err = await expect_error(
            update(clients, body, paths), Code.INVALID_ARGUMENT, "FORBIDDEN_FIELD"
        )
        assert err.bad_request is not None
        await assert_unchanged(clients, before)


# --- S8 ----------------------------------------------------------------------------


def _next(job: R.Job) -> datetime:
    assert job.status.HasField("next_execution_time"), job
    return as_dt(job.status.next_execution_time)


async def test_scheduled_next_execution_time_follows_recurrence_update(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S8: next_execution_time aligns to start+k*30min, then to start+k*2h after update."""
    coll = await make_collection(R.SCHEDULED)
    start = whole_now() - timedelta(days=1, minutes=7)
    job = await create(clients, coll, scheduled=spec(R.Recurrence.MINUTE, 30, start))

    nxt = _next(job)
    assert nxt > datetime.now(UTC)
    assert (nxt - start) % timedelta(minutes=30) == timedelta(0)
    assert _next(await get(clients, job.name)) == nxt

    updated = await update(
        clients,
        R.Job(
            name=job.name,
            scheduled=R.ScheduledSpec(
                recurrence=R.Recurrence(frequency=R.Recurrence.HOUR, interval=2)
            ),
        ),
    )
    assert updated.scheduled.start_time == job.scheduled.start_time
    nxt2 = _next(updated)
    assert nxt2 > datetime.now(UTC)
    assert (nxt2 - start) % timedelta(hours=2) == timedelta(0)
    assert _next(await get(clients, job.name)) == nxt2


async def test_scheduled_next_execution_time_follows_masked_recurrence_update(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S8: a masked replace of the recurrence (DAY, 1) re-aligns next_execution_time."""
    coll = await make_collection(R.SCHEDULED)
    start = whole_now() - timedelta(days=3, hours=5, minutes=11)
    job = await create(clients, coll, scheduled=spec(R.Recurrence.MINUTE, 45, start))
    nxt = _next(job)
    assert nxt > datetime.now(UTC)
    assert (nxt - start) % timedelta(minutes=45) == timedelta(0)

    updated = await update(
        clients,
        R.Job(
            name=job.name,
            scheduled=R.ScheduledSpec(
                recurrence=R.Recurrence(frequency=R.Recurrence.DAY, interval=1)
            ),
        ),
        ["scheduled.recurrence"],
    )
    nxt2 = _next(updated)
    assert nxt2 > datetime.now(UTC)
    assert (nxt2 - start) % timedelta(days=1) == timedelta(0)
    assert _next(await get(clients, job.name)) == nxt2


async def test_scheduled_next_execution_time_follows_start_time_update(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S8: changing start_time re-aligns next_execution_time to the new start."""
    coll = await make_collection(R.SCHEDULED)
    start = whole_now() - timedelta(days=1, minutes=7)
    job = await create(clients, coll, scheduled=spec(R.Recurrence.HOUR, 2, start))
    nxt = _next(job)
    assert nxt > datetime.now(UTC)
    assert (nxt - start) % timedelta(hours=2) == timedelta(0)

    new_start = start - timedelta(minutes=50)
    updated = await update(
        clients, R.Job(name=job.name, scheduled=R.ScheduledSpec(start_time=ts(new_start)))
    )
    assert updated.scheduled.recurrence == job.scheduled.recurrence
    nxt2 = _next(updated)
    assert nxt2 > datetime.now(UTC)
    assert (nxt2 - new_start) % timedelta(hours=2) == timedelta(0)
    assert nxt2 != nxt
    assert _next(await get(clients, job.name)) == nxt2


async def test_scheduled_next_execution_time_is_future_start_time(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S8: a job starting in the future first runs at its start_time."""
    coll = await make_collection(R.SCHEDULED)
    start = whole_now() + timedelta(days=2, minutes=13)
    job = await create(clients, coll, scheduled=spec(R.Recurrence.MINUTE, 30, start))
    assert _next(job) == start
    assert _next(await get(clients, job.name)) == start


async def test_scheduled_next_execution_time_follows_schedule(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S8: a daily recurrence with schedule hours [5] minutes [20] runs next at 05:20."""
    coll = await make_collection(R.SCHEDULED)
    start = whole_now().replace(second=0) - timedelta(days=3)
    scheduled = spec(R.Recurrence.DAY, 1, start)
    scheduled.recurrence.schedule.CopyFrom(R.Schedule(hours=[5], minutes=[20]))
    job = await create(clients, coll, scheduled=scheduled)
    nxt = _next(job)
    assert nxt > datetime.now(UTC)
    assert (nxt.hour, nxt.minute) == (5, 20)
    assert _next(await get(clients, job.name)) == nxt

    updated = await update(
        clients,
        R.Job(
            name=job.name,
            scheduled=R.ScheduledSpec(
                recurrence=R.Recurrence(schedule=R.Schedule(hours=[17], minutes=[45]))
            ),
        ),
    )
    nxt2 = _next(updated)
    assert nxt2 > datetime.now(UTC)
    assert (nxt2.hour, nxt2.minute) == (17, 45)
    assert _next(await get(clients, job.name)) == nxt2


# --- S9 ----------------------------------------------------------------------------


async def _record(clients: Clients, name: str, status: int, message: str) -> R.HistoryEntry:
    return await clients.operator.RecordRun(
        operator_service_pb2.RecordRunRequest(
            parent=name,
            entry=R.HistoryEntry(status=status, message=message),
        )
    )


async def test_scheduled_delete_removes_job_and_history(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S9: delete is immediate; Get, a second Delete and ListJobHistory are JOB_NOT_FOUND."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll)
    await _record(clients, job.name, R.HistoryEntry.COMPLETED, "ok")
    await _record(clients, job.name, R.HistoryEntry.FAILED, "boom")
    history = await clients.jobs.ListJobHistory(JS.ListJobHistoryRequest(parent=job.name))
    assert sorted(e.message for e in history.entries) == ["boom", "ok"]
    assert {e.status for e in history.entries} == {
        R.HistoryEntry.COMPLETED,
        R.HistoryEntry.FAILED,
    }

    op = await clients.jobs.DeleteJob(JS.DeleteJobRequest(name=job.name))
    assert op.done
    assert not op.HasField("error")

    err = await assert_gone(clients, job.name)
    assert err.resource is not None
    assert err.resource.resource_name == job.name
    await expect_error(
        clients.jobs.DeleteJob(JS.DeleteJobRequest(name=job.name)),
        Code.NOT_FOUND,
        "JOB_NOT_FOUND",
    )
    await expect_error(
        clients.jobs.ListJobHistory(JS.ListJobHistoryRequest(parent=job.name)),
        Code.NOT_FOUND,
        "JOB_NOT_FOUND",
    )
    listed = await clients.jobs.ListJobs(JS.ListJobsRequest(parent=coll.name))
    assert list(listed.jobs) == []


async def test_scheduled_recreated_job_has_no_old_history(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S9: history is gone with the job: a job re-created under the same id starts empty."""
    coll = await make_collection(R.SCHEDULED)
    job = await create(clients, coll)
    await _record(clients, job.name, R.HistoryEntry.COMPLETED, "ok")
    await clients.jobs.DeleteJob(JS.DeleteJobRequest(name=job.name))
    again = await create(clients, coll)
    assert again.name == job.name
    history = await clients.jobs.ListJobHistory(JS.ListJobHistoryRequest(parent=job.name))
    assert list(history.entries) == []


# --- S10 ---------------------------------------------------------------------------


async def test_scheduled_delete_all_empties_collection(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S10: DeleteJobs without filter deletes every job; the Operation is done at once."""
    coll = await make_collection(R.SCHEDULED)
    other = await make_collection(R.SCHEDULED)
    names = [
        (await create(clients, coll, "a")).name,
        (await create(clients, coll, "b", state=R.DISABLED)).name,
        (await create(clients, coll, "c")).name,
    ]
    await operator_to(clients, names[2], R.COMPLETED)
    await _record(clients, names[0], R.HistoryEntry.COMPLETED, "ok")
    survivor = await create(clients, other, "keep")

    op = await clients.jobs.DeleteJobs(JS.DeleteJobsRequest(parent=coll.name))
    assert op.done
    assert not op.HasField("error")
    assert op.HasField("response")
    resp = JS.DeleteJobsResponse()
    assert op.response.Unpack(resp)
    assert resp.deleted_count == 3

    listed = await clients.jobs.ListJobs(JS.ListJobsRequest(parent=coll.name))
    assert list(listed.jobs) == []
    for name in names:
        await assert_gone(clients, name)
    assert (await get(clients, survivor.name)) == survivor


# --- S11 ---------------------------------------------------------------------------


async def test_scheduled_max_job_count_quota(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S11: beyond max_job_count a create is QUOTA_EXCEEDED and creates nothing."""
    coll = await make_collection(R.SCHEDULED, max_job_count=2)
    first = await create(clients, coll, "a")
    await create(clients, coll, "b")

    err = await expect_error(create(clients, coll, "c"), Code.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED")
    assert err.quota is not None
    await assert_gone(clients, f"{coll.name}/jobs/c")
    listed = await clients.jobs.ListJobs(JS.ListJobsRequest(parent=coll.name))
    assert sorted(j.name.rsplit("/", 1)[-1] for j in listed.jobs) == ["a", "b"]

    # a job in a final state still counts toward max_job_count
    await operator_to(clients, first.name, R.COMPLETED)
    await expect_error(create(clients, coll, "c"), Code.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED")
    await assert_gone(clients, f"{coll.name}/jobs/c")

    # deleting one frees a slot
    await clients.jobs.DeleteJob(JS.DeleteJobRequest(name=first.name))
    created = await create(clients, coll, "c")
    assert created.state == R.ENABLED


# --- S12 ---------------------------------------------------------------------------


async def test_scheduled_recurrence_quota_on_create(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S12: with max recurrence HOUR x 1, a 30-minute recurrence is refused at create."""
    coll = await make_collection(
        R.SCHEDULED, max_recurrence_frequency=R.Recurrence.HOUR, max_recurrence_interval=1
    )
    for job_id, freq, interval in (
        ("m30", R.Recurrence.MINUTE, 30),
        ("m59", R.Recurrence.MINUTE, 59),
        ("m1", R.Recurrence.MINUTE, 1),
    ):
        err = await expect_error(
            create(clients, coll, job_id, scheduled=spec(freq, interval)),
            Code.RESOURCE_EXHAUSTED,
            "RECURRENCE_QUOTA_EXCEEDED",
        )
        assert err.quota is not None
        await assert_gone(clients, f"{coll.name}/jobs/{job_id}")

    for job_id, freq, interval in (
        ("h1", R.Recurrence.HOUR, 1),
        ("h2", R.Recurrence.HOUR, 2),
        ("m90", R.Recurrence.MINUTE, 90),
        ("d1", R.Recurrence.DAY, 1),
    ):
        job = await create(clients, coll, job_id, scheduled=spec(freq, interval))
        assert job.scheduled.recurrence.frequency == freq
        assert job.scheduled.recurrence.interval == interval


async def test_scheduled_recurrence_quota_on_update(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S12: an update making the recurrence too frequent is refused; nothing changes."""
    coll = await make_collection(
        R.SCHEDULED, max_recurrence_frequency=R.Recurrence.HOUR, max_recurrence_interval=1
    )
    job = await create(clients, coll, scheduled=spec(R.Recurrence.MINUTE, 90))
    refused = [
        (
            R.Job(name=job.name, scheduled=R.ScheduledSpec(recurrence=R.Recurrence(interval=30))),
            None,
        ),
        (
            R.Job(
                name=job.name,
                scheduled=R.ScheduledSpec(
                    recurrence=R.Recurrence(frequency=R.Recurrence.MINUTE, interval=15)
                ),
            ),
            ["scheduled.recurrence"],
        ),
    ]
    for body, paths in refused:
        before = await get(clients, job.name)
        err = await expect_error(
            update(clients, body, paths),
            Code.RESOURCE_EXHAUSTED,
            "RECURRENCE_QUOTA_EXCEEDED",
        )
        assert err.quota is not None
        await assert_unchanged(clients, before)

    ok = await update(
        clients,
        R.Job(name=job.name, scheduled=R.ScheduledSpec(recurrence=R.Recurrence(interval=120))),
    )
    assert ok.scheduled.recurrence.interval == 120


# --- S13 ---------------------------------------------------------------------------


def _assert_no_auth(job: R.Job) -> None:
    act = job.scheduled.action
    assert act.HasField("request")
    assert act.request.uri
    assert not act.request.HasField("authentication"), act.request
    assert act.HasField("error_action")
    assert act.error_action.request.uri
    assert not act.error_action.request.HasField("authentication"), act.error_action


async def test_scheduled_authentication_never_returned(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """S13: authentication is stored but absent from Create/Get/List/Update/Pause replies."""
    coll = await make_collection(R.SCHEDULED)
    secret = R.HttpAuthentication(type="Basic", username="user", password="hunter2")
    act = action()
    act.request.authentication.CopyFrom(secret)
    act.error_action.CopyFrom(action("https://example.com/error"))
    act.error_action.request.authentication.CopyFrom(
        R.HttpAuthentication(type="ActiveDirectoryOAuth", secret="s3cret", tenant="t")
    )
    created = await create(clients, coll, scheduled=spec(job_action=act))
    _assert_no_auth(created)
    _assert_no_auth(await get(clients, created.name))

    listed = await clients.jobs.ListJobs(JS.ListJobsRequest(parent=coll.name))
    assert len(listed.jobs) == 1
    _assert_no_auth(listed.jobs[0])

    updated = await update(clients, R.Job(name=created.name, display_name="renamed"))
    _assert_no_auth(updated)

    # sending new credentials in an update: still never echoed
    new_auth = R.Job(
        name=created.name,
        scheduled=R.ScheduledSpec(
            action=R.JobAction(
                request=R.HttpRequest(
                    authentication=R.HttpAuthentication(type="Basic", username="u2", password="p2")
                )
            )
        ),
    )
    _assert_no_auth(await update(clients, new_auth))
    _assert_no_auth(await clients.jobs.PauseJob(JS.PauseJobRequest(name=created.name)))
    _assert_no_auth(await clients.jobs.ResumeJob(JS.ResumeJobRequest(name=created.name)))
    _assert_no_auth(await get(clients, created.name))
    assert "hunter2" not in str(await get(clients, created.name))
