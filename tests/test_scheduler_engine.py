"""Scheduled jobs run (issue 15): occurrences fire HTTP actions at a real target on
127.0.0.1 that records every request; retries, the error action, history, counters and
completion; disabled, updated and deleted jobs; Basic and ClientCertificate
authentication (an HTTPS target requiring client certificates of a test CA). Rules E1..E12
and E15..E20 of docs/rules.md."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2

from jobcontrol.service.core.model import ActionOutcome
from jobcontrol.service.server import RunningServer, start_server
from jobcontrol.service.storage.repository import Contention
from jobcontrol.v1 import job_service_pb2, job_service_pb2_grpc, resources_pb2
from tests.conftest import make_settings, start_gateway
from tests.helpers import expect_error
from tests.http_target import WAIT, Target, TargetTls, serving_target
from tests.pki import Pki

pytestmark = pytest.mark.backends

R, JS = resources_pb2, job_service_pb2
Code = grpc.StatusCode


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    async with serving_target() as recorded:
        yield recorded


@contextlib.asynccontextmanager
async def scheduling(tmp_path: Path, **overrides: Any) -> AsyncIterator[RunningServer]:
    """A server that runs scheduled jobs: a 1 s floor on intervals, 5 s action timeout."""
    settings = make_settings(
        tmp_path,
        **{
            "scheduler_concurrency": 64,
            "scheduler_min_interval": 1.0,
            "action_timeout": 5.0,
            "lease_duration": 2.0,
            **overrides,
        },
    )
    running = await start_server(settings)
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


@contextlib.asynccontextmanager
async def collection_c(server: RunningServer) -> AsyncIterator[Jobs]:
    """A JobService stub on `server`, with the scheduled collection `c` created."""
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        await stub.CreateCollection(
            JS.CreateCollectionRequest(
                collection_id="c", collection=R.Collection(profile=R.Profile.SCHEDULED)
            )
        )
        yield stub


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with scheduling(tmp_path) as running:
        yield running


@pytest.fixture
async def jobs(server: RunningServer) -> AsyncIterator[Jobs]:
    async with collection_c(server) as stub:
        yield stub


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A test CA: it signs the HTTPS target's certificate and the clients' it accepts."""
    return Pki(tmp_path / "pki")


@pytest.fixture
async def tls_target(pki: Pki) -> AsyncIterator[Target]:
    """An HTTPS target on 127.0.0.1 requiring a client certificate of the test CA."""
    cert = pki.server()
    async with serving_target(TargetTls(cert.cert, cert.key, pki.ca.cert)) as recorded:
        yield recorded


@pytest.fixture
async def tls_jobs(tmp_path: Path, pki: Pki) -> AsyncIterator[Jobs]:
    """Jobs on a scheduling server that trusts the test CA (--action-ca-file)."""
    async with (
        scheduling(tmp_path, action_ca_file=str(pki.ca.cert)) as running,
        collection_c(running) as stub,
    ):
        yield stub


if TYPE_CHECKING:
    Jobs = job_service_pb2_grpc.JobServiceAsyncStub


def action(url: str, **retry: Any) -> R.JobAction:
    """An HTTP action at `url`; retry: none=True, or count/interval (seconds)."""
    act = R.JobAction(type=R.JobAction.HTTP, request=R.HttpRequest(uri=url, method="POST"))
    if retry.get("none"):
        act.retry_policy.retry_type = R.RetryPolicy.NONE
    elif retry:
        act.retry_policy.retry_type = R.RetryPolicy.FIXED
        act.retry_policy.retry_count = retry["count"]
        act.retry_policy.retry_interval.CopyFrom(duration_pb2.Duration(seconds=retry["interval"]))
    return act


def every(seconds: int, count: int = 0) -> R.Recurrence:
    rec = R.Recurrence(frequency=R.Recurrence.SECOND, interval=seconds)
    if count:
        rec.count = count
    return rec


async def create(jobs: Jobs, job_id: str, spec: R.ScheduledSpec, **fields: Any) -> R.Job:
    return await jobs.CreateJob(
        JS.CreateJobRequest(
            parent="collections/c", job_id=job_id, job=R.Job(scheduled=spec, **fields)
        )
    )


async def get(jobs: Jobs, job_id: str) -> R.Job:
    return await jobs.GetJob(JS.GetJobRequest(name=f"collections/c/jobs/{job_id}"))


async def history(jobs: Jobs, job_id: str) -> list[R.HistoryEntry]:
    """Oldest first."""
    reply = await jobs.ListJobHistory(
        JS.ListJobHistoryRequest(parent=f"collections/c/jobs/{job_id}", page_size=1000)
    )
    return list(reversed(reply.entries))


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not {what} after {WAIT} s")


async def state_is(jobs: Jobs, job_id: str, state: int) -> None:
    async def check() -> bool:
        return (await get(jobs, job_id)).state == state

    await eventually(check, f"{job_id} in {R.State.Name(state)}")


def whole(dt: datetime) -> datetime:
    return dt.replace(microsecond=0)


# --- one occurrence ------------------------------------------------------------------


async def test_e1_one_shot_job_runs_once_with_the_schedulers_headers(
    jobs: Jobs, target: Target
) -> None:
    """E1: A job with no start time and no recurrence runs once, now: one request with the
    job's method, headers and body, and the scheduler's headers (job id, collection,
    expected time, and x-ms-client-request-id = the occurrence id); one history entry
    MainAction completed with the response's status and body; executionCount 1, the job
    COMPLETED with no next execution."""
    act = action(f"{target.url}/ok", none=True)
    act.request.headers["x-custom"] = "yes"
    act.request.body = "payload"
    created = await create(jobs, "once", R.ScheduledSpec(action=act))
    assert created.status.HasField("next_execution_time")
    (request,) = await target.wait_for(1)
    await state_is(jobs, "once", R.State.COMPLETED)
    assert (request.method, request.body, request.headers["x-custom"]) == ("POST", "payload", "yes")
    assert request.headers["x-ms-scheduler-jobid"] == "once"
    assert request.headers["x-ms-scheduler-jobcollectionid"] == "c"
    assert len(request.headers["x-ms-client-request-id"]) == 32
    expected = datetime.fromisoformat(request.headers["x-ms-scheduler-expected-execution-time"])
    assert expected == created.status.next_execution_time.ToDatetime(tzinfo=UTC)
    (entry,) = await history(jobs, "once")
    assert (entry.action_name, entry.status, entry.retry_count) == (
        "MainAction", R.HistoryEntry.COMPLETED, 0,
    )  # fmt: skip
    host = "127.0.0.1"
    assert (
        entry.message == f"Http Action - Response from host '{host}': '200 OK' Body: answer to /ok"
    )
    assert entry.expected_execution_time.ToDatetime(tzinfo=UTC) == expected
    job = await get(jobs, "once")
    assert (job.status.execution_count, job.status.failure_count, job.status.faulted_count) == (
        1, 0, 0,
    )  # fmt: skip
    assert not job.status.HasField("next_execution_time")
    await asyncio.sleep(1.5)
    assert len(target.seen) == 1


async def test_e2_recurring_job_with_count_runs_count_times_then_completes(
    jobs: Jobs, target: Target
) -> None:
    """E2: Every second, count 3: three requests, each its own occurrence id and expected
    time, about a second apart; three history entries (repeat counts 0, 1, 2); then
    COMPLETED and no more requests."""
    await create(
        jobs, "rec", R.ScheduledSpec(action=action(f"{target.url}/ok"), recurrence=every(1, 3))
    )
    seen = await target.wait_for(3)
    await state_is(jobs, "rec", R.State.COMPLETED)
    assert len({s.headers["x-ms-client-request-id"] for s in seen}) == 3
    expected = [
        datetime.fromisoformat(s.headers["x-ms-scheduler-expected-execution-time"]) for s in seen
    ]
    assert expected == sorted(set(expected))
    assert [e.repeat_count for e in await history(jobs, "rec")] == [0, 1, 2]
    await asyncio.sleep(1.5)
    assert len(target.seen) == 3


async def test_e3_failed_attempts_retry_then_run_the_error_action(
    jobs: Jobs, target: Target
) -> None:
    """E3: A failing main action (500) with retryPolicy fixed, 2 retries, 1 s apart runs
    3 times, then the error action runs (its own retry policy); history: MainAction
    failed with retry counts 0, 1, 2 and the 500 in the message, then ErrorAction
    completed; failureCount 3; a one-shot job whose error action succeeded COMPLETED."""
    act = action(f"{target.url}/fail", count=2, interval=1)
    act.error_action.CopyFrom(action(f"{target.url}/ok", none=True))
    await create(jobs, "retry", R.ScheduledSpec(action=act))
    await target.wait_for(1, "/ok")
    await state_is(jobs, "retry", R.State.COMPLETED)
    fails = target.on("/fail")
    assert len(fails) == 3
    assert all(b.at - a.at >= 0.9 for a, b in itertools.pairwise(fails))
    assert len({s.headers["x-ms-client-request-id"] for s in target.seen}) == 1
    entries = await history(jobs, "retry")
    assert [(e.action_name, e.status, e.retry_count) for e in entries] == [
        ("MainAction", R.HistoryEntry.FAILED, 0),
        ("MainAction", R.HistoryEntry.FAILED, 1),
        ("MainAction", R.HistoryEntry.FAILED, 2),
        ("ErrorAction", R.HistoryEntry.COMPLETED, 0),
    ]
    assert "'500 Internal Server Error' Body: answer to /fail" in entries[0].message
    job = await get(jobs, "retry")
    assert (job.status.execution_count, job.status.failure_count, job.status.faulted_count) == (
        4, 3, 0,
    )  # fmt: skip


async def test_e4_last_occurrence_exhausting_retries_and_error_action_faults_the_job(
    jobs: Jobs, target: Target
) -> None:
    """E4: Decision: a job with no further occurrence whose last occurrence failed with no
    retry left and no (or a failed) error action is FAULTED, faultedCount 1."""
    act = action(f"{target.url}/fail", none=True)
    act.error_action.CopyFrom(action(f"{target.url}/fail", none=True))
    await create(jobs, "bad", R.ScheduledSpec(action=act))
    await state_is(jobs, "bad", R.State.FAULTED)
    job = await get(jobs, "bad")
    assert (job.status.execution_count, job.status.failure_count, job.status.faulted_count) == (
        2, 2, 1,
    )  # fmt: skip
    assert [e.action_name for e in await history(jobs, "bad")] == ["MainAction", "ErrorAction"]


async def test_e5_recurring_job_counts_faults_and_keeps_running(jobs: Jobs, target: Target) -> None:
    """E5: A recurring job whose occurrences fault stays ENABLED and counts each fault."""
    spec = R.ScheduledSpec(action=action(f"{target.url}/fail", none=True), recurrence=every(1))
    await create(jobs, "flaky", spec)
    await target.wait_for(2)

    async def two_faults() -> bool:
        return (await get(jobs, "flaky")).status.faulted_count >= 2

    await eventually(two_faults, "two faults counted")
    assert (await get(jobs, "flaky")).state == R.State.ENABLED


async def test_e6_queue_actions_fail_with_a_clear_message(jobs: Jobs, target: Target) -> None:
    """E6: A storage-queue action is stored and shown; its attempt fails with "action type
    not available in this deployment" in the history."""
    queue = R.QueueMessage(storage_account="acct", queue_name="q")
    act = R.JobAction(type=R.JobAction.STORAGE_QUEUE, queue_message=queue)
    act.retry_policy.retry_type = R.RetryPolicy.NONE
    await create(jobs, "queue", R.ScheduledSpec(action=act))
    await state_is(jobs, "queue", R.State.FAULTED)
    (entry,) = await history(jobs, "queue")
    assert entry.status == R.HistoryEntry.FAILED
    assert entry.message == "STORAGE_QUEUE action: action type not available in this deployment"
    assert (await get(jobs, "queue")).scheduled.action.queue_message.queue_name == "q"


# --- state, update, delete -----------------------------------------------------------


async def test_e7_disabled_job_does_not_fire_until_enabled(jobs: Jobs, target: Target) -> None:
    """E7: A job created DISABLED (due now) does not fire; once resumed it does."""
    spec = R.ScheduledSpec(action=action(f"{target.url}/ok", none=True))
    await create(jobs, "off", spec, state=R.State.DISABLED)
    await asyncio.sleep(2)
    assert target.seen == []
    await jobs.ResumeJob(JS.ResumeJobRequest(name="collections/c/jobs/off"))
    await target.wait_for(1)
    await state_is(jobs, "off", R.State.COMPLETED)


async def test_e8_update_applies_from_the_next_occurrence(jobs: Jobs, target: Target) -> None:
    """E8: A recurring job updated between occurrences calls the new uri from the next
    occurrence on."""
    spec = R.ScheduledSpec(action=action(f"{target.url}/a", none=True), recurrence=every(1))
    await create(jobs, "upd", spec)
    await target.wait_for(1, "/a")
    job = await get(jobs, "upd")
    job.scheduled.action.request.uri = f"{target.url}/b"
    job.etag = ""  # unconditional: the engine records the first attempt meanwhile
    await jobs.UpdateJob(
        JS.UpdateJobRequest(
            job=job, update_mask=field_mask_pb2.FieldMask(paths=["scheduled.action"])
        )
    )
    count_a = len(target.on("/a"))
    await target.wait_for(2, "/b")
    assert len(target.on("/a")) <= count_a + 1  # at most the occurrence already under way


async def test_e9_deleted_job_fires_no_more(jobs: Jobs, target: Target) -> None:
    """E9: Deleting a recurring job stops its future occurrences at once."""
    spec = R.ScheduledSpec(action=action(f"{target.url}/ok", none=True), recurrence=every(1))
    await create(jobs, "del", spec)
    await target.wait_for(1)
    await jobs.DeleteJob(JS.DeleteJobRequest(name="collections/c/jobs/del"))
    settled = len(target.seen)
    await asyncio.sleep(2.5)
    assert len(target.seen) <= settled + 1  # at most an attempt that had already started


async def test_e10_past_start_time_skips_past_instances(jobs: Jobs, target: Target) -> None:
    """E10: A recurring job whose start time is an hour ago, every 10 s: the first
    occurrence is the first instance after now (none of the 360 past ones runs)."""
    start = whole(datetime.now(UTC)) - timedelta(hours=1)
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(start)
    spec = R.ScheduledSpec(start_time=stamp, action=action(f"{target.url}/ok", none=True),
                           recurrence=every(10))  # fmt: skip
    # the server's "now" (in-process, the same clock) is between these two: a loaded
    # machine may take more than a second to reply, so no fixed slack is assumed
    before = datetime.now(UTC)
    created = await create(jobs, "past", spec)
    after = datetime.now(UTC)
    nxt = created.status.next_execution_time.ToDatetime(tzinfo=UTC)
    assert (nxt - start).total_seconds() % 10 == 0
    # the first instance after now: later than now, and the one before it is not
    assert before < nxt and nxt - timedelta(seconds=10) <= after
    # the instances fall on whole(now) + 10 k s, so nxt is 9-10 s away: a wait of
    # WAIT (10 s) from here left the scheduler well under a second; wait WAIT past nxt
    await target.wait_for(1, within=(nxt - after).total_seconds() + WAIT)
    await asyncio.sleep(0.5)
    # by the instances they were fired for (the next one, 10 s later, may have come too
    # if the machine is slow): the first is nxt, none is earlier, nxt ran once
    expected = [
        datetime.fromisoformat(seen.headers["x-ms-scheduler-expected-execution-time"])
        for seen in target.seen
    ]
    assert expected[0] == nxt, f"the first request was for {expected[0]}, planned {nxt}"
    assert min(expected) == nxt, f"past instances ran: {sorted(expected)}"
    assert expected.count(nxt) == 1, f"{nxt} ran {expected.count(nxt)} times"


# --- limits ----------------------------------------------------------------------------


async def test_e11_intervals_below_the_servers_floor_are_refused(tmp_path: Path) -> None:
    """E11: With --scheduler-min-interval 120 s: a recurrence every minute is
    RESOURCE_EXHAUSTED / RECURRENCE_QUOTA_EXCEEDED; a SECOND frequency (a minute or more
    floor) is INVALID_ARGUMENT / FIELD_VALUE_NOT_ALLOWED naming the field; a retry
    interval of 10 s is INVALID_ARGUMENT / INVALID_FIELD (the retry floor is 30 s at
    most); nothing is created."""
    running = await start_server(make_settings(tmp_path, scheduler_min_interval=120.0))
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            collection = R.Collection(profile=R.Profile.SCHEDULED)
            await stub.CreateCollection(
                JS.CreateCollectionRequest(collection_id="c", collection=collection)
            )
            minute = R.Recurrence(frequency=R.Recurrence.MINUTE, interval=1)
            often = R.ScheduledSpec(action=action("http://127.0.0.1:9/"), recurrence=minute)
            err = await expect_error(
                create(stub, "often", often), Code.RESOURCE_EXHAUSTED, "RECURRENCE_QUOTA_EXCEEDED"
            )
            assert err.message == (
                "recurrence every 60 s is more frequent than this service allows (120 s)"
            )
            seconds = R.ScheduledSpec(action=action("http://127.0.0.1:9/"), recurrence=every(300))
            err = await expect_error(
                create(stub, "sec", seconds), Code.INVALID_ARGUMENT, "FIELD_VALUE_NOT_ALLOWED"
            )
            assert err.bad_request is not None
            assert [v.field for v in err.bad_request.field_violations] == [
                "job.scheduled.recurrence.frequency"
            ]
            quick = R.ScheduledSpec(action=action("http://127.0.0.1:9/", count=1, interval=10))
            err = await expect_error(
                create(stub, "quick", quick), Code.INVALID_ARGUMENT, "INVALID_FIELD"
            )
            assert err.bad_request is not None
            (violation,) = err.bad_request.field_violations
            assert violation.field == "scheduled.action.retry_policy.retry_interval"
            assert violation.description == "10 s is shorter than this service allows (30 s)"
            listed = await stub.ListJobs(JS.ListJobsRequest(parent="collections/c"))
            assert list(listed.jobs) == []
    finally:
        await running.stop(grace=1.0)


async def test_e12_scheduler_dialect_reads_runs_in_history(
    server: RunningServer, target: Target
) -> None:
    """E12: Through the Azure Scheduler dialect: a job PUT with an http action and no
    start time runs; GET shows executionCount 1 and lastExecutionTime; the history route
    lists the run (MainAction, completed, the response in the message) with `$filter`."""
    gateway, stop = await start_gateway(server.address)
    try:
        async with httpx.AsyncClient(base_url=gateway.base_url) as http:
            headers = {"x-ms-version": "2013-06-01"}
            r = await http.put(
                "/sub/cloudServices/cs/resources/scheduler/jobCollections/jc", headers=headers
            )
            assert r.status_code == 202, r.text
            jc = "/sub/cloudServices/cs/resources/scheduler/~/jobCollections/jc"
            body = {"action": {"type": "http", "request": {"uri": f"{target.url}/ok",
                    "method": "GET"}, "retryPolicy": {"retryType": "none"}}}  # fmt: skip
            r = await http.put(f"{jc}/jobs/j1", headers=headers, json=body)
            assert r.status_code == 201, r.text
            await target.wait_for(1)

            async def ran() -> bool:
                got = await http.get(f"{jc}/jobs/j1", headers=headers)
                return bool(got.json()["status"]["executionCount"] == 1)

            await eventually(ran, "run once")
            status = (await http.get(f"{jc}/jobs/j1", headers=headers)).json()["status"]
            assert status["executionCount"] == 1 and "lastExecutionTime" in status
            r = await http.get(f"{jc}/jobs/j1/history", headers=headers,
                               params={"$filter": "status eq completed"})  # fmt: skip
            assert r.status_code == 200, r.text
            (entry,) = r.json()
            assert (entry["actionName"], entry["status"]) == ("MainAction", "completed")
            assert entry["message"].startswith("Http Action - Response from host '127.0.0.1'")
    finally:
        await stop()


async def test_e15_graceful_stop_gives_attempts_back_at_once(
    tmp_path: Path, target: Target
) -> None:
    """E15: A server stopped (SIGTERM path) while an attempt is in flight releases its
    lease: a server started on the same database runs the attempt again at once (long
    before the 7 s lease would expire), with the same occurrence id."""
    target.slow = 30.0
    settings = make_settings(
        tmp_path, scheduler_concurrency=8, scheduler_min_interval=1.0,
        action_timeout=5.0, lease_duration=2.0,
    )  # fmt: skip
    first = await start_server(settings)
    try:
        async with grpc.aio.insecure_channel(first.address) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            collection = R.Collection(profile=R.Profile.SCHEDULED)
            await stub.CreateCollection(
                JS.CreateCollectionRequest(collection_id="c", collection=collection)
            )
            spec = R.ScheduledSpec(action=action(f"{target.url}/slow", none=True))
            await create(stub, "held", spec)
            (held,) = await target.wait_for(1)
    finally:
        await first.stop(grace=1.0)
    target.slow = 0.0
    stopped = time.time()
    second = await start_server(settings)
    try:
        again = (await target.wait_for(2, within=5))[1]
        assert again.headers["x-ms-client-request-id"] == held.headers["x-ms-client-request-id"]
        assert again.at - stopped < 4.0
    finally:
        await second.stop(grace=1.0)


async def test_e1_job_without_an_action_is_not_run(jobs: Jobs, target: Target) -> None:
    """E1: Decision: a job without an action has nothing to run: no occurrence, no history,
    the job stays ENABLED at its etag."""
    created = await create(jobs, "empty", R.ScheduledSpec())
    await asyncio.sleep(1.5)
    job = await get(jobs, "empty")
    assert (job.state, job.etag, job.status.execution_count) == (R.State.ENABLED, created.etag, 0)
    assert await history(jobs, "empty") == []


# --- authentication ----------------------------------------------------------------------


def authenticated(url: str, **auth: str) -> R.ScheduledSpec:
    """A one-shot job POSTing to `url` with `auth` as its authentication, no retries."""
    act = action(url, none=True)
    act.request.authentication.CopyFrom(R.HttpAuthentication(**auth))
    return R.ScheduledSpec(action=act)


async def test_e16_basic_authentication_sends_the_stored_credentials(
    jobs: Jobs, target: Target
) -> None:
    """E16: A job with Basic authentication sends `Authorization: Basic
    base64(username:password)` from its stored credentials; history completed."""
    await create(jobs, "basic", authenticated(f"{target.url}/ok", type="Basic",
                                              username="ada", password="s3cret:x"))  # fmt: skip
    (request,) = await target.wait_for(1)
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"ada:s3cret:x").decode()
    await state_is(jobs, "basic", R.State.COMPLETED)
    (entry,) = await history(jobs, "basic")
    assert entry.status == R.HistoryEntry.COMPLETED


async def test_e17_client_certificate_is_presented_to_an_https_target(
    tls_jobs: Jobs, tls_target: Target, pki: Pki
) -> None:
    """E17: A job with ClientCertificate authentication (its base64 PKCS#12 `pfx` and
    `password`) runs against an HTTPS target that requires a client certificate of its
    CA: the target sees the certificate (subject CN), history completed with the 200, the
    job COMPLETED."""
    pfx = pki.client("job-client").pfx("pfx-pass")
    spec = authenticated(f"{tls_target.url}/ok", type="ClientCertificate", pfx=pfx,
                         password="pfx-pass")  # fmt: skip
    await create(tls_jobs, "cert", spec)
    (request,) = await tls_target.wait_for(1)
    assert request.client_cn == "job-client"
    await state_is(tls_jobs, "cert", R.State.COMPLETED)
    (entry,) = await history(tls_jobs, "cert")
    assert (entry.status, entry.message) == (
        R.HistoryEntry.COMPLETED,
        "Http Action - Response from host '127.0.0.1': '200 OK' Body: answer to /ok",
    )


@pytest.mark.parametrize("presented", ["other-ca", "none"])
async def test_e18_target_refusing_the_client_certificate_fails_the_attempt(
    tls_jobs: Jobs, tls_target: Target, tmp_path: Path, presented: str
) -> None:
    """E18: A client certificate of another CA, or none, is refused by the target's TLS
    handshake: the attempt fails (history: failed, "Request to host ... failed" with the
    TLS error), no request reaches the target, the one-shot job without retries is
    FAULTED."""
    if presented == "none":
        spec = authenticated(f"{tls_target.url}/ok")
    else:
        pfx = Pki(tmp_path / "other").client("stranger").pfx("p")
        spec = authenticated(f"{tls_target.url}/ok", type="ClientCertificate", pfx=pfx,
                             password="p")  # fmt: skip
    await create(tls_jobs, "refused", spec)
    await state_is(tls_jobs, "refused", R.State.FAULTED)
    (entry,) = await history(tls_jobs, "refused")
    assert entry.status == R.HistoryEntry.FAILED
    assert entry.message.startswith("Http Action - Request to host '127.0.0.1' failed: ")
    # TLS 1.3: the client's handshake has finished when the target refuses; it then reads
    # either the target's alert or a closed connection (the runner names the likely cause)
    assert (
        "did it refuse or require a client certificate?" in entry.message
        or "alert" in entry.message
    ), entry.message
    assert tls_target.seen == []


async def test_e19_https_target_of_an_untrusted_ca_is_not_called(
    jobs: Jobs, tls_target: Target, pki: Pki, tmp_path: Path
) -> None:
    """E19: Without --action-ca-file the test CA is not trusted (the system's CAs only):
    the attempt fails with the certificate verification error, even with a valid client
    certificate, and no request reaches the target. An --action-ca-file that cannot be
    read stops the server's start."""
    with pytest.raises(SystemExit, match=r"--action-ca-file .*missing\.pem"):
        await start_server(make_settings(tmp_path, action_ca_file=str(tmp_path / "missing.pem")))
    pfx = pki.client("job-client").pfx("p")
    spec = authenticated(f"{tls_target.url}/ok", type="ClientCertificate", pfx=pfx,
                         password="p")  # fmt: skip
    await create(jobs, "untrusted", spec)
    await state_is(jobs, "untrusted", R.State.FAULTED)
    (entry,) = await history(jobs, "untrusted")
    assert entry.status == R.HistoryEntry.FAILED
    assert "certificate verify failed" in entry.message
    assert tls_target.seen == []


@pytest.mark.parametrize(
    ("broken", "message"),
    [("wrong-password", "Invalid password or PKCS12 data"),
     ("not-pkcs12", "Could not deserialize PKCS12 data")],
)  # fmt: skip
async def test_e20_unreadable_pfx_fails_the_attempt(
    tls_jobs: Jobs, tls_target: Target, pki: Pki, broken: str, message: str
) -> None:
    """E20: A ClientCertificate `pfx` that cannot be read with its `password` (a wrong
    password, bytes that are not PKCS#12) fails the attempt with the loader's message; no
    request is sent."""
    pfx = pki.client("job-client").pfx("right")
    if broken == "not-pkcs12":
        pfx = base64.b64encode(b"not a certificate").decode()
    spec = authenticated(f"{tls_target.url}/ok", type="ClientCertificate", pfx=pfx,
                         password="wrong" if broken == "wrong-password" else "right")  # fmt: skip
    await create(tls_jobs, "badpfx", spec)
    await state_is(tls_jobs, "badpfx", R.State.FAULTED)
    (entry,) = await history(tls_jobs, "badpfx")
    assert entry.status == R.HistoryEntry.FAILED
    assert entry.message == (
        "Http Action - Request to host '127.0.0.1' failed: the client certificate (pfx) cannot"
        f" be read: {message}"
    )
    assert tls_target.seen == []


async def test_e21_an_attempt_recorded_again_after_contention_counts_once(
    tmp_path: Path, target: Target, backend: str
) -> None:
    """E21: The record of an attempt runs again in a later transaction when it loses a
    race (PostgreSQL contention); the rerun starts from the occurrence as claimed: one
    history entry with retry count 0, and the retry planned once (retry count 1)."""
    if backend != "postgres":
        pytest.skip("one SQLite writer per file: a write never loses a race")
    async with (
        scheduling(tmp_path, scheduler_concurrency=0) as server,
        collection_c(server) as stub,
    ):
        spec = R.ScheduledSpec(action=action(f"{target.url}/x", count=3, interval=1))
        await create(stub, "raced", spec)
        core, hour = server.core, 3_600_000_000
        [claimed] = await server.store.write(
            lambda tx: tx.claim_occurrences(core.ctx.replica, hour, 10, hour)
        )
        runs = 0

        async def lose_first_race(tx: Any) -> None:
            nonlocal runs
            now = int(time.time() * 1_000_000)
            await core.scheduler._finish(tx, claimed, ActionOutcome(False, "boom"), now, now)
            runs += 1
            if runs == 1:
                raise Contention("lost a race (test)")

        await server.store.write(lose_first_race)
        assert runs == 2
        entries = await history(stub, "raced")
        assert [(e.retry_count, e.status) for e in entries] == [(0, R.HistoryEntry.FAILED)]
        [again] = await server.store.write(
            lambda tx: tx.claim_occurrences(core.ctx.replica, hour, 10, hour)
        )
        assert (again.retry_count, again.phase, again.pk) == (1, "MAIN", claimed.pk)
