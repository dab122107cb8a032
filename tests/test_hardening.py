"""Bad input never gives a 5xx (issue 13 point 5): integers, times and durations out of
range, nesting past the documented depths, over gRPC and through the native REST mapping,
each a clear INVALID_ARGUMENT naming the field that changes nothing; open and secured."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2

from jobcontrol.gateway import conditional
from jobcontrol.gateway.dialects.importexport import ImportExportDialect
from jobcontrol.service import tokens
from jobcontrol.service.server import RunningServer, start_server
from jobcontrol.v1 import job_service_pb2 as js
from jobcontrol.v1 import job_service_pb2_grpc, operator_service_pb2_grpc
from jobcontrol.v1 import operator_service_pb2 as ops
from jobcontrol.v1 import resources_pb2 as res
from tests.conftest import RunningGateway, make_settings, secured_settings, start_gateway
from tests.helpers import expect_error

TS_RANGE = "from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z"
DURATION_RANGE = "within +-315576000000s, seconds and nanos of one sign"
INVALID = grpc.StatusCode.INVALID_ARGUMENT
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


@dataclass
class Stack:
    """A real gRPC server and the real gateway in front of it, with the caller's
    credentials (none in the open mode; a bearer JWT of an admin when secured)."""

    mode: str
    server: RunningServer
    gateway: RunningGateway
    channel: grpc.aio.Channel
    http: httpx.AsyncClient
    metadata: tuple[tuple[str, str], ...]

    @property
    def jobs(self) -> job_service_pb2_grpc.JobServiceAsyncStub:
        return job_service_pb2_grpc.JobServiceStub(self.channel)

    @property
    def operator(self) -> operator_service_pb2_grpc.OperatorServiceAsyncStub:
        return operator_service_pb2_grpc.OperatorServiceStub(self.channel)

    @property
    def operations(self) -> Any:
        return operations_pb2_grpc.OperationsStub(self.channel)


async def start_stack(tmp_path: Path, mode: str, **gateway: Any) -> tuple[Stack, Any]:
    """The stack in `mode` ("open" or "secured"); returns it and its stopper."""
    bearer: tuple[tuple[str, str], ...] = ()
    if mode == "secured":
        settings, key = secured_settings(tmp_path)
        token_file = tmp_path / "gateway.jwt"
        token_file.write_text(tokens.mint(key, "gateway"))
        gateway["grpc_token_file"] = str(token_file)
        bearer = (("authorization", f"Bearer {tokens.mint(key, 'admin')}"),)
    else:
        settings = make_settings(tmp_path)
    server = await start_server(settings)
    running, stop_gateway = await start_gateway(server.address, **gateway)
    channel = grpc.aio.insecure_channel(server.address)
    http = httpx.AsyncClient(base_url=running.base_url, headers=dict(bearer), timeout=30)
    stack = Stack(mode, server, running, channel, http, bearer)

    async def stop() -> None:
        await http.aclose()
        await channel.close()
        await stop_gateway()
        await server.stop(grace=1.0)

    return stack, stop


@pytest.fixture(params=["open", "secured"])
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    """The stack in each mode, with collections `s` (scheduled), `b` (batch) and `t`
    (transfer) and a scheduled job `s/j` that has one recorded run."""
    running, stop = await start_stack(tmp_path, request.param)
    try:
        for cid, profile in (("s", res.SCHEDULED), ("b", res.BATCH), ("t", res.TRANSFER)):
            await running.jobs.CreateCollection(
                js.CreateCollectionRequest(
                    collection_id=cid, collection=res.Collection(profile=profile)
                ),
                metadata=running.metadata,
            )
        await running.jobs.CreateJob(
            js.CreateJobRequest(parent="collections/s", job_id="j", job=res.Job()),
            metadata=running.metadata,
        )
        await running.operator.RecordRun(
            ops.RecordRunRequest(
                parent="collections/s/jobs/j",
                entry=res.HistoryEntry(status=res.HistoryEntry.COMPLETED),
            ),
            metadata=running.metadata,
        )
        yield running
    finally:
        await stop()


async def snapshot(stack: Stack) -> tuple[Any, ...]:
    """Everything a refused request could have changed: every job of every collection
    (each field, etag included), the history and the tasks of `s/j`."""
    md = stack.metadata
    jobs = [
        (await stack.jobs.ListJobs(js.ListJobsRequest(parent=f"collections/{c}"), metadata=md))
        for c in ("s", "b", "t")
    ]
    history = await stack.jobs.ListJobHistory(
        js.ListJobHistoryRequest(parent="collections/s/jobs/j"), metadata=md
    )
    collections = await stack.jobs.ListCollections(js.ListCollectionsRequest(), metadata=md)
    return (*jobs, history, collections)


def ts(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def scheduled(job_id: str, **spec: Any) -> js.CreateJobRequest:
    return js.CreateJobRequest(
        parent="collections/s", job_id=job_id, job=res.Job(scheduled=res.ScheduledSpec(**spec))
    )


def nested(depth: int) -> dict[str, Any]:
    """An object `depth` levels deep: {"a": {"a": ... {"a": "x"}}}."""
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return dict(value)


def deep_struct(depth: int) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(nested(depth))
    return struct


def batch_job(job_id: str, auto_pool: struct_pb2.Struct) -> js.CreateJobRequest:
    spec = res.BatchSpec(pool_info=res.PoolInfo(auto_pool_specification=auto_pool))
    return js.CreateJobRequest(parent="collections/b", job_id=job_id, job=res.Job(batch=spec))


def timestamp_violation(seconds: int, nanos: int = 0) -> str:
    return f"Timestamp out of range (seconds {seconds}, nanos {nanos}); {TS_RANGE}"


async def refused_over_grpc(
    stack: Stack, call: Any, request: Any, reason: str, field: str, description: str
) -> None:
    """The call is INVALID_ARGUMENT with `reason` and one field violation, and nothing
    changed."""
    before = await snapshot(stack)
    err = await expect_error(call(request, metadata=stack.metadata), INVALID, reason)
    assert err.message == f"{field}: {description}"
    assert err.info is not None and dict(err.info.metadata) == {"field": field}
    assert err.bad_request is not None
    violations = [(v.field, v.description) for v in err.bad_request.field_violations]
    assert violations == [(field, description)]
    assert await snapshot(stack) == before


# --- times and durations out of range, straight over gRPC --------------------------------

GRPC_TIMES = {
    "start_time_seconds_1e12": (
        lambda s: s.jobs.CreateJob,
        scheduled("a", start_time=ts(10**12)),
        "job.scheduled.start_time",
        timestamp_violation(10**12),
    ),
    "start_time_negative_nanos": (
        lambda s: s.jobs.CreateJob,
        scheduled("a", start_time=ts(1, -5)),
        "job.scheduled.start_time",
        timestamp_violation(1, -5),
    ),
    "start_time_before_year_1": (
        lambda s: s.jobs.CreateJob,
        scheduled("a", start_time=ts(-62_135_596_801)),
        "job.scheduled.start_time",
        timestamp_violation(-62_135_596_801),
    ),
    "recurrence_end_time_1e12": (
        lambda s: s.jobs.CreateJob,
        scheduled(
            "a",
            recurrence=res.Recurrence(frequency=res.Recurrence.DAY, end_time=ts(10**12)),
        ),
        "job.scheduled.recurrence.end_time",
        timestamp_violation(10**12),
    ),
    "retry_interval_duration_1e12_s": (
        lambda s: s.jobs.CreateJob,
        scheduled(
            "a",
            action=res.JobAction(
                retry_policy=res.RetryPolicy(retry_interval=duration_pb2.Duration(seconds=10**12))
            ),
        ),
        "job.scheduled.action.retry_policy.retry_interval",
        f"Duration out of range (seconds {10**12}, nanos 0); {DURATION_RANGE}",
    ),
    "max_wall_clock_time_mixed_signs": (
        lambda s: s.jobs.CreateJob,
        js.CreateJobRequest(
            parent="collections/b",
            job_id="a",
            job=res.Job(
                batch=res.BatchSpec(
                    constraints=res.JobConstraints(
                        max_wall_clock_time=duration_pb2.Duration(seconds=5, nanos=-1)
                    )
                )
            ),
        ),
        "job.batch.constraints.max_wall_clock_time",
        f"Duration out of range (seconds 5, nanos -1); {DURATION_RANGE}",
    ),
    "update_output_only_time_out_of_range": (
        lambda s: s.jobs.UpdateJob,
        js.UpdateJobRequest(
            job=res.Job(name="collections/s/jobs/j", display_name="x", create_time=ts(2**62))
        ),
        "job.create_time",
        timestamp_violation(2**62),
    ),
    "precondition_if_modified_since_2e62": (
        lambda s: s.jobs.UpdateJob,
        js.UpdateJobRequest(
            job=res.Job(name="collections/s/jobs/j", display_name="x"),
            preconditions=js.Preconditions(if_modified_since=ts(2**62)),
        ),
        "preconditions.if_modified_since",
        timestamp_violation(2**62),
    ),
    "recorded_run_end_time_1e12": (
        lambda s: s.operator.RecordRun,
        ops.RecordRunRequest(
            parent="collections/s/jobs/j",
            entry=res.HistoryEntry(status=res.HistoryEntry.COMPLETED, end_time=ts(10**12)),
        ),
        "entry.end_time",
        timestamp_violation(10**12),
    ),
}


@pytest.mark.parametrize("case", list(GRPC_TIMES))
async def test_times_and_durations_out_of_range_are_invalid_over_grpc(
    stack: Stack, case: str
) -> None:
    """A19: A Timestamp outside years 1-9999 (or with nanos outside 0..999999999) and a Duration
    beyond +-10000 years (or with seconds and nanos of two signs) are INVALID_FIELD naming
    the field, wherever they are (specs, output-only fields, preconditions, history)."""
    method, request, field, description = GRPC_TIMES[case]
    await refused_over_grpc(stack, method(stack), request, "INVALID_FIELD", field, description)


async def test_wait_operation_timeout_out_of_range_is_invalid(stack: Stack) -> None:
    """A19: WaitOperation with a timeout beyond +-10000 years is INVALID_FIELD naming
    `timeout` (found by fuzzing: it was INTERNAL, the timeout overflowing a timedelta)."""
    request = operations_pb2.WaitOperationRequest(
        name="operations/none", timeout=duration_pb2.Duration(seconds=2**63 - 1)
    )
    description = (
        f"Duration out of range (seconds {2**63 - 1}, nanos 0); within +-315576000000s, "
        "seconds and nanos of one sign"
    )
    await refused_over_grpc(
        stack, stack.operations.WaitOperation, request, "INVALID_FIELD", "timeout", description
    )


async def test_structured_filter_time_out_of_range_is_invalid_filter(stack: Stack) -> None:
    """A19: A structured filter comparing with a time out of range is INVALID_FILTER naming the
    comparison's time, not a storage overflow."""
    where = res.Filter(
        comparison=res.Comparison(
            field="create_time", operator=res.Comparison.GREATER, time=ts(2**62)
        )
    )
    request = js.ListJobsRequest(parent="collections/s", structured_filter=where)
    await refused_over_grpc(
        stack,
        stack.jobs.ListJobs,
        request,
        "INVALID_FILTER",
        "structured_filter.comparison.time",
        timestamp_violation(2**62),
    )


async def test_times_at_the_ends_of_the_range_are_stored_and_rendered(stack: Stack) -> None:
    """A19: Times at the very ends of the range are accepted and stay usable later: the next
    occurrence from year 1 is computed at once, the one from 9999-12-31T23:59:59 is that
    moment, a recorded run ending at 9999-12-31T23:59:59.999999999 is the job's last
    execution time, over gRPC and REST alike."""
    md = stack.metadata
    early = scheduled(
        "early",
        start_time=ts(-62_135_596_800),
        recurrence=res.Recurrence(frequency=res.Recurrence.MONTH),
    )
    job = await stack.jobs.CreateJob(early, metadata=md)
    assert job.status.next_execution_time.ToDatetime().day == 1
    late = scheduled(
        "late",
        start_time=ts(253_402_300_799),
        recurrence=res.Recurrence(frequency=res.Recurrence.DAY),
    )
    job = await stack.jobs.CreateJob(late, metadata=md)
    assert job.status.next_execution_time == ts(253_402_300_799)
    entry = res.HistoryEntry(
        status=res.HistoryEntry.COMPLETED, end_time=ts(253_402_300_799, 999_999_999)
    )
    await stack.operator.RecordRun(
        ops.RecordRunRequest(parent="collections/s/jobs/late", entry=entry), metadata=md
    )
    r = await stack.http.get("/v1/collections/s/jobs/late")
    assert r.status_code == 200, r.text
    assert r.json()["status"]["lastExecutionTime"] == "9999-12-31T23:59:59.999999Z"
    assert r.json()["status"]["nextExecutionTime"] == "9999-12-31T23:59:59Z"


async def test_recurrence_past_year_9999_has_no_next_occurrence(stack: Stack) -> None:
    """A19: An interval so long that the next occurrence would fall after year 9999 (a day
    interval of 2^31-1, a week interval of 2^31-1) is a job without a next execution time,
    not an overflow."""
    for job_id, frequency in (("d", res.Recurrence.DAY), ("w", res.Recurrence.WEEK)):
        request = scheduled(
            job_id,
            start_time=ts(946_684_800),
            recurrence=res.Recurrence(frequency=frequency, interval=2**31 - 1),
        )
        job = await stack.jobs.CreateJob(request, metadata=stack.metadata)
        assert not job.status.HasField("next_execution_time")


SCHEDULES = {
    "minute_60": (res.Schedule(minutes=[60]), "schedule.minutes", "60 is not in 0..59"),
    "minute_int32_max": (
        res.Schedule(minutes=[2**31 - 1]),
        "schedule.minutes",
        f"{2**31 - 1} is not in 0..59",
    ),
    "hour_24": (res.Schedule(hours=[24]), "schedule.hours", "24 is not in 0..23"),
    "month_day_0": (res.Schedule(month_days=[0]), "schedule.month_days", "0 is not in -31..31"),
    "month_day_int32_min": (
        res.Schedule(month_days=[-(2**31)]),
        "schedule.month_days",
        f"{-(2**31)} is not in -31..31",
    ),
    "occurrence_int32_max": (
        res.Schedule(
            monthly_occurrences=[
                res.MonthlyOccurrence(day=res.Schedule.MONDAY, occurrence=2**31 - 1)
            ]
        ),
        "schedule.monthly_occurrences[0].occurrence",
        "must be 1..5 or -1..-5",
    ),
}


@pytest.mark.parametrize("case", list(SCHEDULES))
async def test_schedule_numbers_out_of_range_are_invalid(stack: Stack, case: str) -> None:
    """A19: Minutes, hours, month days and monthly occurrences out of their ranges (up to the
    ends of int32) are INVALID_FIELD naming the list, not an error of the next-occurrence
    computation."""
    schedule, field, description = SCHEDULES[case]
    recurrence = res.Recurrence(frequency=res.Recurrence.MONTH, schedule=schedule)
    await refused_over_grpc(
        stack,
        stack.jobs.CreateJob,
        scheduled("a", recurrence=recurrence),
        "INVALID_FIELD",
        f"scheduled.recurrence.{field}",
        description,
    )


async def test_counted_schedule_is_bounded_and_counts_are_not_negative(stack: Stack) -> None:
    """A19: A schedule with a count is counted occurrence by occurrence: at most 10000 (so that
    no request costs more than that); a negative count or interval is INVALID_FIELD."""
    every_hour = res.Schedule(minutes=[1])
    cases = [
        (
            res.Recurrence(frequency=res.Recurrence.MINUTE, count=10_001, schedule=every_hour),
            "count",
            "a schedule counts at most 10000 occurrences",
        ),
        (
            res.Recurrence(frequency=res.Recurrence.MINUTE, count=-1),
            "count",
            "must not be negative",
        ),
        (
            res.Recurrence(frequency=res.Recurrence.MINUTE, interval=-(2**31)),
            "interval",
            "must not be negative",
        ),
    ]
    for recurrence, field, description in cases:
        await refused_over_grpc(
            stack,
            stack.jobs.CreateJob,
            scheduled("a", start_time=ts(-62_135_596_800), recurrence=recurrence),
            "INVALID_FIELD",
            f"scheduled.recurrence.{field}",
            description,
        )
    bounded = res.Recurrence(frequency=res.Recurrence.MINUTE, count=10_000, schedule=every_hour)
    job = await stack.jobs.CreateJob(
        scheduled("a", start_time=ts(-62_135_596_800), recurrence=bounded),
        metadata=stack.metadata,
    )
    assert not job.status.HasField("next_execution_time")  # all 10000 were in year 1


# --- nesting ---------------------------------------------------------------------------


async def test_struct_deeper_than_20_is_invalid_over_grpc(stack: Stack) -> None:
    """A19: Struct fields (Batch's autoPoolSpecification, a task's properties) nest objects and
    arrays at most 20 levels deep: 20 is stored, 21 is INVALID_FIELD naming the field."""
    created = await stack.jobs.CreateJob(batch_job("ok", deep_struct(20)), metadata=stack.metadata)
    assert created.batch.pool_info.auto_pool_specification == deep_struct(20)
    await refused_over_grpc(
        stack,
        stack.jobs.CreateJob,
        batch_job("deep", deep_struct(21)),
        "INVALID_FIELD",
        "job.batch.pool_info.auto_pool_specification",
        "objects and arrays nest deeper than 20",
    )
    lists = struct_pb2.Struct()
    lists.update({"a": [[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]})
    await refused_over_grpc(
        stack,
        stack.jobs.CreateJob,
        batch_job("lists", lists),
        "INVALID_FIELD",
        "job.batch.pool_info.auto_pool_specification",
        "objects and arrays nest deeper than 20",
    )


async def test_struct_too_deep_to_decode_is_invalid_message(stack: Stack) -> None:
    """A19: A Struct nested past what protobuf decodes (100 message levels) never reaches the
    servicer: INVALID_ARGUMENT / INVALID_MESSAGE, nothing changed."""
    inner = b"\x0a\x03\x0a\x01x"  # innermost Value: struct_value {} (placeholder)
    for _ in range(60):  # Struct.fields["a"] = Value(struct_value=inner)
        value = b"\x2a" + _varint(len(inner)) + inner
        entry = b"\x0a\x01a\x12" + _varint(len(value)) + value
        inner = b"\x0a" + _varint(len(entry)) + entry
    pool = b"\x12" + _varint(len(inner)) + inner
    batch = b"\x2a" + _varint(len(pool)) + pool
    job = b"\xaa\x01" + _varint(len(batch)) + batch
    raw = b"\x0a\x0dcollections/b\x12\x01z\x1a" + _varint(len(job)) + job
    call: Any = stack.channel.unary_unary("/jobcontrol.v1.JobService/CreateJob")
    before = await snapshot(stack)
    err = await expect_error(call(raw, metadata=stack.metadata), INVALID, "INVALID_MESSAGE")
    assert "undecodable" in err.message
    assert await snapshot(stack) == before


def _varint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ("(" * 32 + "id = 'a'" + ")" * 32, True),
        ("NOT " * 32 + "id = 'a'", True),
        ("(" * 33 + "id = 'a'" + ")" * 33, False),
        ("(" * 600 + "id = 'a'" + ")" * 600, False),
        ("NOT " * 600 + "id = 'a'", False),
        ("NOT (" * 300 + "id = 'a'" + ")" * 300, False),
    ],
    ids=["parens-32", "not-32", "parens-33", "parens-600", "not-600", "not-parens-600"],
)
async def test_filters_nest_at_most_32_deep(stack: Stack, text: str, accepted: bool) -> None:
    """A19: Parentheses and NOT nest at most 32 deep in filters (List and bulk delete, over gRPC
    and REST): deeper is INVALID_FILTER, never a recursion error."""
    description = "parentheses and NOT nest deeper than 32"
    if accepted:
        await stack.jobs.ListJobs(js.ListJobsRequest(parent="collections/s", filter=text),
                                  metadata=stack.metadata)  # fmt: skip
        r = await stack.http.get("/v1/collections/s/jobs", params={"filter": text})
        assert r.status_code == 200, r.text
        return
    await refused_over_grpc(stack, stack.jobs.ListJobs,
                            js.ListJobsRequest(parent="collections/s", filter=text),
                            "INVALID_FILTER", "filter", description)  # fmt: skip
    await refused_over_grpc(stack, stack.jobs.DeleteJobs,
                            js.DeleteJobsRequest(parent="collections/s", filter=text),
                            "INVALID_FILTER", "filter", description)  # fmt: skip
    before = await snapshot(stack)
    r = await stack.http.post("/v1/collections/s/jobs:batchDelete", json={"filter": text})
    assert r.status_code == 400
    assert r.json() == aip193_field_error("INVALID_FILTER", "filter", description)
    assert await snapshot(stack) == before


async def test_structured_filter_nests_at_most_32_deep(stack: Stack) -> None:
    """A19: A structured filter nests all/any/negation at most 32 deep: 33 is INVALID_FILTER
    naming the node."""
    leaf = res.Filter(
        comparison=res.Comparison(field="id", operator=res.Comparison.EQUAL, text="j")
    )
    node = leaf
    for _ in range(32):
        node = res.Filter(negation=node)
    ok = await stack.jobs.ListJobs(
        js.ListJobsRequest(parent="collections/s", structured_filter=node),
        metadata=stack.metadata,
    )
    assert len(ok.jobs) == 1  # 32 negations of `id = j` select j
    request = js.ListJobsRequest(
        parent="collections/s", structured_filter=res.Filter(negation=node)
    )
    await refused_over_grpc(stack, stack.jobs.ListJobs, request, "INVALID_FILTER",
                            "structured_filter" + ".negation" * 32,
                            "nests deeper than 32")  # fmt: skip


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"q":"x","a":' + b"[" * 700 + b"]" * 700 + b"}",
        b'{"a":' * 500 + b"1" + b"}" * 500,
    ],
    ids=["deep-array", "deep-sort-key", "deep-object"],
)
async def test_page_tokens_holding_deep_json_are_invalid(stack: Stack, payload: bytes) -> None:
    """A19: A page token holding deeply nested JSON (or longer than any token we issue) is
    INVALID_PAGE_TOKEN over gRPC and REST, never a recursion error."""
    token = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    await refused_over_grpc(stack, stack.jobs.ListJobs,
                            js.ListJobsRequest(parent="collections/s", page_token=token),
                            "INVALID_PAGE_TOKEN", "page_token", "not a page token")  # fmt: skip
    r = await stack.http.get("/v1/collections/s/jobs", params={"pageToken": token})
    assert r.status_code == 400
    assert r.json() == aip193_field_error("INVALID_PAGE_TOKEN", "page_token", "not a page token")


# --- the native REST mapping ---------------------------------------------------------------


def aip193_field_error(
    reason: str, field: str, description: str, message: str = ""
) -> dict[str, Any]:
    """The whole AIP-193 body of a 400 about one field."""
    return {
        "error": {
            "code": 400,
            "status": "INVALID_ARGUMENT",
            "message": message or f"{field}: {description}",
            "details": [
                {
                    "@type": ERROR_INFO,
                    "reason": reason,
                    "domain": "jobcontrol.dev",
                    "metadata": {"field": field},
                },
                {
                    "@type": BAD_REQUEST,
                    "fieldViolations": [{"field": field, "description": description}],
                },
            ],
        }
    }


def body_error(field: str, message: str) -> dict[str, Any]:
    """A gateway INVALID_BODY: protobuf's JSON parser's message, the field it names."""
    return aip193_field_error("INVALID_BODY", field, message, f"body: {message}")


def parser_message(body: dict[str, Any]) -> str:
    """What protobuf's JSON parser says of `body` as a Job."""
    try:
        json_format.ParseDict(body, res.Job())
    except json_format.ParseError as exc:
        return str(exc)
    raise AssertionError("parsed")


REST_BODIES = {
    "int32_overflow": (
        "/v1/collections",
        {"collectionId": "n"},
        b'{"profile": "SCHEDULED", "quota": {"maxJobCount": 2147483648}}',
        body_error(
            "quota.maxJobCount",
            "Failed to parse quota field: Failed to parse maxJobCount field: "
            "Value out of range: 2147483648..",
        ),
    ),
    "int64_overflow": (
        "/v1/collections",
        {"collectionId": "n"},
        b'{"profile": "SCHEDULED", "quota": {"maxJobCount": 9223372036854775808}}',
        body_error(
            "quota.maxJobCount",
            "Failed to parse quota field: Failed to parse maxJobCount field: "
            "Value out of range: 9223372036854775808..",
        ),
    ),
    "int_in_repeated_int32": (
        "/v1/collections/s/jobs",
        {"jobId": "n"},
        b'{"scheduled": {"recurrence": {"schedule": {"minutes": [-2147483649]}}}}',
        body_error(
            "scheduled.recurrence.schedule.minutes",
            "Failed to parse recurrence field: Failed to parse schedule field: Failed to parse "
            "minutes field: Value out of range: -2147483649...",
        ),
    ),
    "timestamp_year_10000": (
        "/v1/collections/s/jobs",
        {"jobId": "n"},
        b'{"scheduled": {"startTime": "10000-01-01T00:00:00Z"}}',
        body_error(
            "scheduled.startTime",
            "Failed to parse startTime field: time data '10000-01-01T00:00:00' does not match "
            "format '%Y-%m-%dT%H:%M:%S' at Job.scheduled.startTime.",
        ),
    ),
    "timestamp_offset_past_9999": (
        "/v1/collections/s/jobs",
        {"jobId": "n"},
        b'{"scheduled": {"startTime": "9999-12-31T23:59:59-23:59"}}',
        body_error(
            "scheduled.startTime",
            "Failed to parse startTime field: Timestamp is not valid: Seconds 253402387139 "
            "must be in range [-62135596800, 253402300799]. at Job.scheduled.startTime.",
        ),
    ),
    "duration_1e12_s": (
        "/v1/collections/s/jobs",
        {"jobId": "n"},
        b'{"scheduled": {"action": {"retryPolicy": {"retryInterval": "1000000000000s"}}}}',
        body_error(
            "scheduled.action.retryPolicy.retryInterval",
            # protobuf's own wording, whose punctuation differs between its releases
            parser_message(
                {"scheduled": {"action": {"retryPolicy": {"retryInterval": "1000000000000s"}}}}
            ),
        ),
    ),
}


@pytest.mark.parametrize("case", list(REST_BODIES))
async def test_out_of_range_values_in_json_bodies_are_400(stack: Stack, case: str) -> None:
    """A19: Through the native mapping, integers beyond int32/int64 and times and durations out
    of range in a JSON body are 400 INVALID_BODY naming the field (AIP-193 with a
    BadRequest field violation); nothing is written."""
    path, params, body, expected = REST_BODIES[case]
    before = await snapshot(stack)
    r = await stack.http.post(path, params=params, content=body)
    assert r.status_code == 400, r.text
    assert r.json() == expected
    assert await snapshot(stack) == before


REST_QUERIES = {
    "page_size_int32_overflow": (
        {"pageSize": "2147483648"},
        "pageSize",
        "Value out of range: 2147483648",
    ),
    "skip_int64_overflow": (
        {"skip": "9223372036854775808"},
        "skip",
        "Value out of range: 9223372036854775808",
    ),
    "page_size_below_int32": (
        {"pageSize": "-2147483649"},
        "pageSize",
        "Value out of range: -2147483649",
    ),
    "page_size_5000_digits": ({"pageSize": "9" * 5000}, "pageSize", f"invalid value {'9' * 64!r}"),
}


@pytest.mark.parametrize("case", list(REST_QUERIES))
async def test_out_of_range_integers_in_query_strings_are_400(stack: Stack, case: str) -> None:
    """A19: Integers beyond int32/int64 (and beyond what Python converts) in a query string are
    400 INVALID_PARAMETER naming the parameter."""
    params, field, description = REST_QUERIES[case]
    r = await stack.http.get("/v1/collections/s/jobs", params=params)
    assert r.status_code == 400, r.text
    assert r.json() == aip193_field_error("INVALID_PARAMETER", field, description)


async def test_json_bodies_nest_at_most_32_deep(stack: Stack) -> None:
    """A19: A JSON body nests objects and arrays at most 32 levels: 33 is 400 INVALID_BODY
    naming the path where it does; 32 reaches the server, which refuses a Struct deeper
    than 20 naming the field; a Struct of 20 is stored."""
    md = stack.metadata
    before = await snapshot(stack)
    body = {"batch": {"poolInfo": {"autoPoolSpecification": nested(30)}}}  # 33 levels
    r = await stack.http.post("/v1/collections/b/jobs", params={"jobId": "n"}, json=body)
    assert r.status_code == 400
    where = "batch.poolInfo.autoPoolSpecification" + ".a" * 29
    assert r.json() == aip193_field_error(
        "INVALID_BODY",
        where,
        "nests deeper than 32 levels",
        f"{where}: nests deeper than 32 levels",
    )
    body = {"batch": {"poolInfo": {"autoPoolSpecification": nested(29)}}}  # 32 levels
    r = await stack.http.post("/v1/collections/b/jobs", params={"jobId": "n"}, json=body)
    assert r.status_code == 400
    field = "job.batch.pool_info.auto_pool_specification"
    assert r.json() == aip193_field_error(
        "INVALID_FIELD", field, "objects and arrays nest deeper than 20"
    )
    assert await snapshot(stack) == before
    body = {"batch": {"poolInfo": {"autoPoolSpecification": nested(20)}}}
    r = await stack.http.post("/v1/collections/b/jobs", params={"jobId": "n"}, json=body)
    assert r.status_code == 200, r.text
    job = await stack.jobs.GetJob(js.GetJobRequest(name="collections/b/jobs/n"), metadata=md)
    assert job.batch.pool_info.auto_pool_specification == deep_struct(20)


async def test_grpc_timeout_beyond_an_hour_is_an_hour(stack: Stack) -> None:
    """A19: `grpc-timeout: 99999999H` (valid gRPC: 8 digits) is capped at the gateway's longest
    deadline, an hour, instead of overflowing gRPC's clock into an instant 504."""
    r = await stack.http.get("/v1/collections/s/jobs/j", headers={"grpc-timeout": "99999999H"})
    assert r.status_code == 200, r.text


# --- If-Modified-Since whose offset overflows ---------------------------------------------

OVERFLOWING_DATES = [
    "Fri, 31 Dec 9999 23:59:59 -2359",
    "Fri, 31 Dec 9999 23:00:00 -0100",
    "Fri, 31 Dec 9999 23:59:59 +9999",
]


@pytest.mark.parametrize("value", OVERFLOWING_DATES)
def test_http_dates_whose_offset_overflows_are_invalid_dates(value: str) -> None:
    """A19: An HTTP-date whose zone offset carries it past year 9999 is an invalid date: the
    condition is ignored (RFC 9110 13.1.3), for reads and writes."""
    rules = conditional.ConditionRules()
    for header in (conditional.IF_MODIFIED_SINCE, conditional.IF_UNMODIFIED_SINCE):
        found = conditional.parse({header: value}, rules)
        assert found == conditional.Conditions()
        assert conditional.for_write(found) == {}
        assert conditional.outcome(found, "GET", "e", None, rules) is None


@pytest.mark.parametrize("value", OVERFLOWING_DATES)
async def test_if_modified_since_overflowing_is_ignored_over_http(
    tmp_path: Path, value: str
) -> None:
    """A19: Over real HTTP (Import/Export reads with If-Modified-Since / If-Unmodified-Since), the
    overflowing date is ignored: 200 with the job, never a 500."""
    running, stop = await start_stack(tmp_path, "open")
    try:
        cid = ImportExportDialect.collection_id("sub", "acct")
        await running.jobs.CreateCollection(
            js.CreateCollectionRequest(
                collection_id=cid, collection=res.Collection(profile=res.TRANSFER)
            )
        )
        await running.jobs.CreateJob(
            js.CreateJobRequest(
                parent=f"collections/{cid}",
                job_id="j1",
                job=res.Job(
                    transfer=res.TransferSpec(type=res.TransferSpec.IMPORT, location="westus")
                ),
            )
        )
        url = "/sub/services/importexport/storageaccounts/acct/jobs/j1"
        for header in ("If-Modified-Since", "If-Unmodified-Since"):
            r = await running.http.get(url, headers={"x-ms-version": "2014-05-01", header: value})
            assert r.status_code == 200, r.text
            assert r.json()["Name"] == "j1"
    finally:
        await stop()
