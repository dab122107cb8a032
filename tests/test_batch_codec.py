"""The Azure Batch dialect's codec as pure functions (no server): the OData $filter parser,
job and task JSON <-> jobcontrol.v1, values, query parameters and BatchError bodies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, json_format, timestamp_pb2

from jobcontrol.gateway.dialects import batch
from jobcontrol.gateway.dialects import batch_codec as codec
from jobcontrol.gateway.dialects import batch_errors as errors
from jobcontrol.gateway.dialects import batch_query as query
from jobcontrol.gateway.dialects import batch_values as values
from jobcontrol.gateway.dialects.batch_filter import JOB_FIELDS, TASK_FIELDS, decode_filter
from jobcontrol.gateway.errors import GatewayError, gateway_error
from jobcontrol.v1 import resources_pb2 as r

C = r.Comparison
T0 = "2024-01-02T03:04:05Z"


def stamp(text: str = T0) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromJsonString(text)
    return out


def cmp(field: str, op: Any, value: str | timestamp_pb2.Timestamp) -> r.Filter:
    c = C(field=field, operator=op)
    if isinstance(value, str):
        c.text = value
    else:
        c.time.CopyFrom(value)
    return r.Filter(comparison=c)


def all_of(*items: r.Filter) -> r.Filter:
    return r.Filter(all=r.FilterList(filters=list(items)))


def any_of(*items: r.Filter) -> r.Filter:
    return r.Filter(any=r.FilterList(filters=list(items)))


def negation(item: r.Filter) -> r.Filter:
    return r.Filter(negation=item)


def raises(fn: Any, *args: Any) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        fn(*args)
    return info.value


# --- $filter ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "op"),
    [("eq", C.EQUAL), ("ne", C.NOT_EQUAL), ("gt", C.GREATER), ("ge", C.GREATER_OR_EQUAL),
     ("lt", C.LESS), ("le", C.LESS_OR_EQUAL), ("EQ", C.EQUAL)],
)  # fmt: skip
def test_filter_every_comparison_operator_on_id_and_times(word: str, op: Any) -> None:
    """$filter: eq, ne, gt, ge, lt, le (any case) on id and the time properties."""
    assert decode_filter(f"id {word} 'j1'") == cmp("id", op, "j1")
    for name, field in (("creationTime", "create_time"), ("lastModified", "update_time"),
                        ("stateTransitionTime", "state_transition_time"),
                        ("executionInfo/startTime", "create_time")):  # fmt: skip
        assert decode_filter(f"{name} {word} datetime'{T0}'") == cmp(field, op, stamp())


def test_filter_states_are_batch_words_sent_as_enum_names() -> None:
    """$filter: state / previousState take Batch's lower-case words (any case), sent as
    the contract's enum names; only eq and ne."""
    assert decode_filter("state eq 'active'") == cmp("state", C.EQUAL, "ACTIVE")
    assert decode_filter("previousState ne 'Disabled'") == cmp(
        "previous_state", C.NOT_EQUAL, "DISABLED"
    )
    for word in ("disabling", "enabling", "terminating", "completed", "deleting"):
        assert decode_filter(f"state eq '{word}'") == cmp("state", C.EQUAL, word.upper())


def test_filter_pool_id_display_name_and_startswith() -> None:
    """$filter: executionInfo/poolId -> batch.pool_info.pool_id (eq, ne, startswith),
    displayName -> display_name, startswith(id, ...) and `startswith(...) eq false`."""
    assert decode_filter("executionInfo/poolId eq 'p1'") == cmp(
        "batch.pool_info.pool_id", C.EQUAL, "p1"
    )
    assert decode_filter("startswith(executionInfo/poolId,'p')") == cmp(
        "batch.pool_info.pool_id", C.STARTS_WITH, "p"
    )
    assert decode_filter("startswith(id, 'a') eq true") == cmp("id", C.STARTS_WITH, "a")
    assert decode_filter("startswith(id,'a') eq false") == negation(cmp("id", C.STARTS_WITH, "a"))
    assert decode_filter("displayName ne 'x'") == cmp("display_name", C.NOT_EQUAL, "x")


def test_filter_end_time_is_the_completion_time_of_completed_jobs() -> None:
    """$filter: executionInfo/endTime op t -> all(state = COMPLETED, state_transition_time
    op t), as endTime is rendered."""
    assert decode_filter(f"executionInfo/endTime ge datetime'{T0}'") == all_of(
        cmp("state", C.EQUAL, "COMPLETED"),
        cmp("state_transition_time", C.GREATER_OR_EQUAL, stamp()),
    )


def test_filter_and_or_not_and_parentheses_nest_with_odata_precedence() -> None:
    """$filter: not binds tightest, then and, then or; parentheses group; runs of and / or
    are one list."""
    a, b, c = (cmp("id", C.EQUAL, x) for x in "abc")
    assert decode_filter("id eq 'a' or id eq 'b' and id eq 'c'") == any_of(a, all_of(b, c))
    assert decode_filter("(id eq 'a' or id eq 'b') and id eq 'c'") == all_of(any_of(a, b), c)
    assert decode_filter("id eq 'a' and id eq 'b' and id eq 'c'") == all_of(a, b, c)
    assert decode_filter("not id eq 'a' or id eq 'b'") == any_of(negation(a), b)
    assert decode_filter("not (id eq 'a' or id eq 'b')") == negation(any_of(a, b))
    assert decode_filter("((id eq 'a'))") == a
    assert decode_filter("NOT id eq 'a' AND id eq 'b'") == all_of(negation(a), b)


@pytest.mark.parametrize(
    ("text", "value"),
    [("'it''s'", "it's"), ("''''", "'"), ("''", ""), ("'a\" or id ne \"b'", 'a" or id ne "b'),
     ("'x'' or id ne ''y'", "x' or id ne 'y"), ("'(id eq ''a'')'", "(id eq 'a')")],
)  # fmt: skip
def test_filter_values_are_data_quotes_included(text: str, value: str) -> None:
    """$filter: '' is a quote inside a string; a value holding ", ' or filter syntax stays
    one text value (never spliced into filter text)."""
    assert decode_filter(f"displayName eq {text}") == cmp("display_name", C.EQUAL, value)


def test_filter_times_take_datetime_literals_or_strings_utc_by_default() -> None:
    """$filter: datetime'...' (any case) or a quoted time; offsets are honoured, a time
    without one is UTC."""
    expected = cmp("create_time", C.LESS, stamp())
    assert decode_filter(f"creationTime lt DateTime'{T0}'") == expected
    assert decode_filter(f"creationTime lt '{T0}'") == expected
    assert decode_filter("creationTime lt datetime'2024-01-02T04:04:05+01:00'") == expected
    assert decode_filter("creationTime lt datetime'2024-01-02T03:04:05'") == expected


def test_filter_empty_is_none() -> None:
    """$filter: empty or blank asks for no filter."""
    assert decode_filter("") is None
    assert decode_filter("   ") is None


def test_filter_tasks_state_id_times_and_result() -> None:
    """$filter on tasks: state (active, running, completed), id, the times and
    executionInfo/result (success, failure -> result)."""
    assert decode_filter("state eq 'running'", TASK_FIELDS) == cmp("state", C.EQUAL, "RUNNING")
    assert decode_filter("executionInfo/result eq 'failure'", TASK_FIELDS) == cmp(
        "result", C.EQUAL, "FAILURE"
    )
    assert decode_filter("id ge 't2'", TASK_FIELDS) == cmp("id", C.GREATER_OR_EQUAL, "t2")
    assert decode_filter(f"lastModified gt datetime'{T0}'", TASK_FIELDS) == cmp(
        "update_time", C.GREATER, stamp()
    )


@pytest.mark.parametrize(
    ("text", "fields", "reason"),
    [
        ("state eq active", JOB_FIELDS, "state takes a quoted string value, got 'active'"),
        ("foo eq 'x'", JOB_FIELDS, "'foo' is not a property this filter supports"),
        ("state gt 'active'", JOB_FIELDS,
         "'gt' is not an operator of state (supported: eq, ne)"),
        ("executionInfo/poolId ge 'a'", JOB_FIELDS,
         "'ge' is not an operator of executionInfo/poolId (supported: eq, ne)"),
        ("state eq 'running'", JOB_FIELDS, "'running' is not a state value this service supports"),
        ("state eq 'preparing'", TASK_FIELDS,
         "'preparing' is not a state value this service supports"),
        ("executionInfo/result eq 'failure'", JOB_FIELDS,
         "'executionInfo/result' is not a property this filter supports"),
        ("priority eq 'a'", JOB_FIELDS, "'priority' is not a property this filter supports"),
        ("priority eq 5", JOB_FIELDS, "unexpected input at position 12: '5'"),
        ("id eq 'a' id eq 'b'", JOB_FIELDS, "unexpected 'id'"),
        ("(id eq 'a'", JOB_FIELDS, "expected ')' at the end of the filter"),
        ("id eq 'a')", JOB_FIELDS, "unexpected ')'"),
        ("id eq", JOB_FIELDS, "expected a value after id eq at the end of the filter"),
        ("id eq 'a' and", JOB_FIELDS, "expected a property name at the end of the filter"),
        ("id eq 'unterminated", JOB_FIELDS, "unexpected input at position 6: \"'unterminated\""),
        ("id eq \"a\"", JOB_FIELDS, "unexpected input at position 6: '\"a\"'"),
        ("creationTime gt datetime'nope'", JOB_FIELDS,
         "creationTime: 'nope' is not an ISO 8601 time"),
        ("creationTime gt 5", JOB_FIELDS, "unexpected input at position 16: '5'"),
        ("creationTime gt datetime'0001-01-01T00:00:00+14:00'", JOB_FIELDS,
         "creationTime: '0001-01-01T00:00:00+14:00' is out of range"),
        ("startswith(state,'a')", JOB_FIELDS, "startswith does not apply to state"),
        ("startswith(id,'a') eq maybe", JOB_FIELDS, "startswith(...) eq takes true or false"),
        ("startswith(id a)", JOB_FIELDS, "expected ',', got 'a'"),
        ("not", JOB_FIELDS, "expected a property name at the end of the filter"),
        ("(" * 40 + "id eq 'a'" + ")" * 40, JOB_FIELDS, "nested more than 32 deep"),
        (" or ".join(["id eq 'a'"] * 300), JOB_FIELDS, "more than 256 terms"),
    ],
)  # fmt: skip
def test_filter_errors_are_400_invalid_query_naming_filter(
    text: str, fields: Any, reason: str
) -> None:
    """$filter: anything outside the supported subset is INVALID_QUERY (400
    InvalidQueryParameterValue) with QueryParameterName $filter, the value and the reason."""
    error = raises(decode_filter, text, fields)
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_QUERY")
    assert error.metadata == {
        "QueryParameterName": "$filter", "QueryParameterValue": text, "Reason": reason,
    }  # fmt: skip


def test_filter_longer_than_4096_is_refused() -> None:
    """$filter: a filter over 4096 characters is refused before parsing."""
    error = raises(decode_filter, "id eq '" + "a" * 4100 + "'")
    assert error.metadata["Reason"] == "longer than 4096 characters"


# --- jobs ------------------------------------------------------------------------------------

FULL_BODY: dict[str, Any] = {
    "id": "j1",
    "displayName": "the job",
    "priority": 100,
    "maxParallelTasks": 4,
    "allowTaskPreemption": True,
    "constraints": {"maxWallClockTime": "PT1H30M", "maxTaskRetryCount": 3},
    "poolInfo": {"poolId": "p1"},
    "onAllTasksComplete": "terminatejob",
    "onTaskFailure": "performexitoptionsjobaction",
    "metadata": [{"name": "env", "value": "prod"}],
    "usesTaskDependencies": True,
    "jobManagerTask": {"id": "mgr", "commandLine": "run", "requiredSlots": 2,
                       "killJobOnCompletion": False, "resourceFiles": [{"httpUrl": "u"}]},
    "jobPreparationTask": {"commandLine": "prep", "waitForSuccess": True},
    "jobReleaseTask": {"commandLine": "rel", "maxWallClockTime": "PT5M"},
    "commonEnvironmentSettings": [{"name": "A", "value": "1"}, {"name": "B"}],
    "networkConfiguration": {"subnetId": "/subscriptions/s/subnets/n",
                             "skipWithdrawFromVNet": True},
}  # fmt: skip


def test_decode_job_keeps_every_member() -> None:
    """Add: every BatchJobCreateOptions member lands in the Job, the task definitions and
    network configuration whole."""
    job_id, job = codec.decode_job(FULL_BODY)
    spec = job.batch
    assert (job_id, job.display_name) == ("j1", "the job")
    assert (spec.priority, spec.max_parallel_tasks, spec.allow_task_preemption) == (100, 4, True)
    assert spec.constraints.max_wall_clock_time.seconds == 5400
    assert spec.constraints.max_task_retry_count == 3
    assert spec.pool_info.pool_id == "p1"
    assert spec.on_all_tasks_complete == r.BatchSpec.TERMINATE_JOB
    assert spec.on_task_failure == r.BatchSpec.PERFORM_EXIT_OPTIONS_JOB_ACTION
    assert [(m.name, m.value) for m in spec.metadata] == [("env", "prod")]
    assert spec.uses_task_dependencies is True
    assert json_format.MessageToDict(spec.job_preparation_task) == FULL_BODY["jobPreparationTask"]
    assert [(s.name, s.value) for s in spec.common_environment_settings] == [("A", "1"), ("B", "")]
    assert spec.network_configuration["subnetId"] == "/subscriptions/s/subnets/n"


def test_encode_job_returns_every_member_as_given() -> None:
    """Get: a job created from a body reads back with every member as given (whole
    numbers stay integers in the kept task definitions)."""
    _, job = codec.decode_job(FULL_BODY)
    job.name = "collections/batch-a/jobs/j1"
    job.etag = "ab12"
    job.state = r.ACTIVE
    out = codec.encode_job(job, "http://h")
    for key, value in FULL_BODY.items():
        assert out[key] == value, key
    assert out["url"] == "http://h/jobs/j1"
    assert out["eTag"] == "0xAB12"
    assert out["executionInfo"] == {"startTime": "1970-01-01T00:00:00Z", "poolId": "p1"}


def test_encode_job_defaults_and_end_time() -> None:
    """Get: unset members read as Batch's defaults; a completed job has executionInfo
    endTime = its state transition time."""
    job = r.Job(name="collections/c/jobs/j", state=r.COMPLETED, batch=r.BatchSpec())
    job.state_transition_time.CopyFrom(stamp())
    out = codec.encode_job(job, "http://h")
    assert (out["priority"], out["maxParallelTasks"], out["allowTaskPreemption"]) == (0, -1, False)
    assert (out["usesTaskDependencies"], out["constraints"]) == (False, {"maxTaskRetryCount": 0})
    assert (out["onAllTasksComplete"], out["onTaskFailure"]) == ("noaction", "noaction")
    assert out["executionInfo"]["endTime"] == T0
    for absent in ("jobManagerTask", "networkConfiguration", "metadata", "displayName"):
        assert absent not in out


def test_decode_job_without_id_is_required_field_missing() -> None:
    """Add: no id (or an empty one) is REQUIRED_FIELD_MISSING with PropertyName id."""
    for body in ({"poolInfo": {"poolId": "p"}}, {"id": ""}, {"id": 5}):
        error = raises(codec.decode_job, body)
        assert (error.reason, error.metadata) == ("REQUIRED_FIELD_MISSING", {"PropertyName": "id"})


def test_decode_job_leaves_pool_info_and_ranges_to_the_core() -> None:
    """Add: poolInfo absent and priority 5000 are not the codec's to refuse (the core's
    rules C5 and C31)."""
    _, job = codec.decode_job({"id": "j", "priority": 5000, "maxParallelTasks": 0})
    assert not job.batch.HasField("pool_info")
    assert (job.batch.priority, job.batch.max_parallel_tasks) == (5000, 0)


@pytest.mark.parametrize(
    ("body", "member", "reason"),
    [
        ({"bogus": 1}, "bogus", "The property 'bogus' is not a member of BatchJobCreateOptions."),
        ({"url": "x"}, "url", "The property 'url' is not a member of BatchJobCreateOptions."),
        ({"priority": "5"}, "priority", "must be an integer"),
        ({"priority": True}, "priority", "must be an integer"),
        ({"priority": 2**31}, "priority", "must be a 32-bit integer"),
        ({"allowTaskPreemption": 1}, "allowTaskPreemption", "must be a boolean"),
        ({"poolInfo": "p"}, "poolInfo", "must be an object"),
        ({"poolInfo": {"poolid": "p"}}, "poolid",
         "The property 'poolid' is not a member of BatchPoolInfo."),
        ({"constraints": {"maxWallClockTime": "1h"}}, "constraints.maxWallClockTime",
         "not an ISO 8601 duration: '1h'"),
        ({"onAllTasksComplete": "never"}, "onAllTasksComplete",
         "unknown value 'never' (one of noaction, terminatejob)"),
        ({"metadata": {"a": "b"}}, "metadata", "must be an array"),
        ({"metadata": [{"name": 1}]}, "metadata[0].name", "must be a string"),
        ({"commonEnvironmentSettings": [{"name": "a", "value": 2}]},
         "commonEnvironmentSettings[0].value", "must be a string"),
        ({"jobManagerTask": ["x"]}, "jobManagerTask", "must be an object"),
        ({"displayName": 3}, "displayName", "must be a string"),
    ],
)  # fmt: skip
def test_decode_job_bad_member_is_invalid_body_naming_it(
    body: dict[str, Any], member: str, reason: str
) -> None:
    """Add: an unknown member or a value of the wrong shape is INVALID_BODY (400
    InvalidRequestBody) naming the member."""
    error = raises(codec.decode_job, {"id": "j", **body})
    assert (error.reason, error.metadata) == (
        "INVALID_BODY", {"PropertyName": member, "Reason": reason},
    )  # fmt: skip


def test_decode_patch_masks_the_members_present() -> None:
    """Update: PATCH writes the BatchJobUpdateOptions members present (networkConfiguration
    included, null as absent); no member is an empty mask."""
    spec, paths = codec.decode_job_update(
        {"priority": 2, "networkConfiguration": {"subnetId": "s"}, "metadata": None}, replace=False
    )
    assert paths == ["batch.priority", "batch.network_configuration"]
    assert (spec.priority, spec.network_configuration["subnetId"]) == (2, "s")
    assert codec.decode_job_update({}, replace=False) == (r.BatchSpec(), [])
    error = raises(codec.decode_job_update, {"displayName": "x"}, False)
    assert error.metadata["PropertyName"] == "displayName"


def test_decode_replace_masks_every_writable_member_and_ignores_read_only() -> None:
    """Replace: PUT masks every writable BatchJob member (absent ones reset); the read-only
    members of a job as read are ignored; unknown members are refused."""
    as_read = codec.encode_job(r.Job(name="collections/c/jobs/j", batch=r.BatchSpec()), "http://h")
    as_read.update({"odata.metadata": "x", "stats": {}, "priority": 9})
    spec, paths = codec.decode_job_update(as_read, replace=True)
    assert paths == list(codec.REPLACE_PATHS.values())
    assert spec.priority == 9 and not spec.HasField("uses_task_dependencies")
    spec, _ = codec.decode_job_update({"networkConfiguration": {"subnetId": "s"}}, replace=True)
    assert not spec.HasField("network_configuration")
    error = raises(codec.decode_job_update, {"bogus": 1}, True)
    assert error.metadata["Reason"] == "The property 'bogus' is not a member of BatchJob."


# --- tasks -----------------------------------------------------------------------------------

TASK_BODY: dict[str, Any] = {
    "id": "t1",
    "displayName": "task one",
    "commandLine": "echo hi",
    "exitConditions": {"default": {"jobAction": "none"}},
    "resourceFiles": [{"httpUrl": "https://x/f", "filePath": "f"}],
    "environmentSettings": [{"name": "E", "value": "v"}],
    "constraints": {"maxTaskRetryCount": 2, "retentionTime": "PT1H"},
    "requiredSlots": 3,
    "dependsOn": {"taskIds": ["t0"]},
}


def test_task_members_beyond_id_name_and_command_line_are_kept_in_properties() -> None:
    """Tasks: id, displayName and commandLine map to Task fields, every other member is kept
    whole in Task.properties and read back as given."""
    task_id, task = codec.decode_task(TASK_BODY)
    assert (task_id, task.display_name, task.command_line) == ("t1", "task one", "echo hi")
    assert set(json_format.MessageToDict(task.properties)) == set(TASK_BODY) - {
        "id", "displayName", "commandLine",
    }  # fmt: skip
    task.name = "collections/c/jobs/j/tasks/t1"
    out = codec.encode_task(task, "http://h", "J")
    assert {k: out[k] for k in TASK_BODY} == TASK_BODY
    assert out["url"] == "http://h/jobs/J/tasks/t1"


def test_decode_task_refuses_unknown_members_and_needs_an_id() -> None:
    """Tasks: an unknown member is INVALID_BODY naming it; no id is REQUIRED_FIELD_MISSING."""
    error = raises(codec.decode_task, {"id": "t", "state": "active"})
    assert error.metadata["PropertyName"] == "state"
    error = raises(codec.decode_task, {"commandLine": "x"})
    assert (error.reason, error.metadata) == ("REQUIRED_FIELD_MISSING", {"PropertyName": "id"})


def test_encode_completed_task_and_counts() -> None:
    """Tasks: a completed task carries executionInfo.result; counts fill taskCounts and the
    (one slot per task) taskSlotCounts."""
    task = r.Task(name="c/j/t", state=r.Task.COMPLETED, result=r.Task.FAILURE)
    info = codec.encode_task(task, "http://h", "j")["executionInfo"]
    assert info == {"result": "failure", "retryCount": 0, "requeueCount": 0}
    counts = r.TaskCounts(active=1, running=2, completed=3, succeeded=2, failed=1)
    want = {"active": 1, "running": 2, "completed": 3, "succeeded": 2, "failed": 1}
    assert codec.encode_task_counts(counts) == {"taskCounts": want, "taskSlotCounts": want}


# --- values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds", "back"),
    [("PT1H30M", 5400, "PT1H30M"), ("P2DT5S", 172805, "P2DT5S"), ("PT0S", 0, "PT0S"),
     ("P1W", 604800, "P7DT0S"), ("PT1.5S", 1.5, "PT1.5S"), ("PT90M", 5400, "PT1H30M")],
)  # fmt: skip
def test_durations_are_iso_8601(text: str, seconds: float, back: str) -> None:
    """Values: ISO 8601 durations in and out (weeks read as days)."""
    duration = values.decode_duration(text, "d")
    assert duration is not None and duration.ToTimedelta().total_seconds() == seconds
    assert values.encode_duration(duration) == back


def test_unlimited_duration_is_no_limit_and_bad_ones_are_refused() -> None:
    """Values: Batch's TimeSpan.MaxValue (or anything past a Duration up to it) means no
    limit; malformed durations, and durations past TimeSpan.MaxValue (issue 13: they meant
    "no limit" before), are refused."""
    assert values.decode_duration("P10675199DT2H48M5.4775807S", "d") is None
    assert values.decode_duration("P3652500D", "d") is None
    for bad in ("P", "PT", "P1DT", "1h", "-PT1S", "P1Y", 5):
        assert raises(values.decode_duration, bad, "d").reason == "INVALID_BODY"
    for too_long in ("P10675199DT2H48M6S", "P99999999999999999999D", "PT" + "9" * 400 + "S"):
        error = raises(values.decode_duration, too_long, "d")
        assert error.metadata == {
            "PropertyName": "d",
            "Reason": f"{too_long!r} is longer than P10675199DT2H48M5.4775807S",
        }
    assert values.encode_duration(duration_pb2.Duration(seconds=86400)) == "P1DT0S"


def test_kept_objects_nest_at_most_32_deep() -> None:
    """Values: a kept object (task definitions, network configuration, task members) nests at
    most 32 objects / arrays deep, within what protobuf accepts; deeper is INVALID_BODY."""
    deep: Any = 1
    for level in range(values.MAX_NESTING):  # 32 objects and arrays, the outermost an object
        deep = {"a": deep} if level % 2 else [deep]
    values.decode_struct(deep, "jobManagerTask")
    for too_deep in ({"a": deep}, {"x": 1, "y": [deep]}):
        error = raises(values.decode_struct, too_deep, "jobManagerTask")
        assert error.metadata == {
            "PropertyName": "jobManagerTask", "Reason": "nested more than 32 levels deep",
        }  # fmt: skip
    error = raises(codec.decode_task, {"id": "t", "resourceFiles": [deep]})
    assert error.metadata["PropertyName"] == "resourceFiles"


@pytest.mark.parametrize(
    ("given", "wide"),
    [({"a": 2**63}, "9223372036854775808"), ({"a": [-(2**63) - 1]}, "-9223372036854775809"),
     ({"a": {"b": 1.2e21}}, "1.2e+21")],
)  # fmt: skip
def test_kept_integers_fit_an_int64(given: dict[str, Any], wide: str) -> None:
    """Values (issue 13): an integer in a kept object beyond Int64 (orjson reads those past
    UInt64 as whole doubles) is INVALID_BODY naming the member; Int64's own ends pass."""
    error = raises(values.decode_struct, given, "autoPoolSpecification")
    assert error.metadata == {
        "PropertyName": "autoPoolSpecification",
        "Reason": f"{wide} is beyond the 64-bit integer range",
    }
    edges = {"max": 2**63 - 1, "min": -(2**63), "half": 0.5, "flag": True, "big": 1e18}
    assert set(values.encode_struct(values.decode_struct(edges, "x"))) == set(edges)


@pytest.mark.parametrize("name", ["If-Modified-Since", "If-Unmodified-Since"])
def test_conditional_dates_out_of_range_are_invalid_header(name: str) -> None:
    """Values (issue 13): an If-*-Since date that names no moment of UTC's years 1-9999 is
    INVALID_HEADER (InvalidHeaderValue) naming the header; dates in range, and values that
    are no date at all (ignored, RFC 9110), pass."""
    value = "Fri, 31 Dec 9999 23:59:59 -2359"
    error = raises(values.check_http_dates, {name.lower(): value})
    assert (error.reason, error.metadata) == (
        "INVALID_HEADER", {"HeaderName": name, "HeaderValue": value},
    )  # fmt: skip
    for fine in ("Fri, 31 Dec 9999 23:59:59 GMT", "Fri, 31 Dec 9999 23:59:59 +2359",
                 "Fri, 31 Dec 9999 23:59:59 -0000", "not a date", ""):  # fmt: skip
        values.check_http_dates({name.lower(): fine})


def test_etags_are_batch_hex_both_ways() -> None:
    """Values: 0x-prefixed upper-case tags out; quotes, 0x and case ignored in."""
    assert values.etag_out("ab12") == "0xAB12"
    for given in ("0xAB12", '"0xab12"', "AB12", ' "ab12" '):
        assert values.etag_in(given) == "ab12"


def test_kept_json_keeps_integers_and_other_values() -> None:
    """Values: a kept object comes back as given: integers stay integers, fractions,
    strings, booleans, nulls, lists and nesting unchanged."""
    given = {"a": 1, "b": 1.5, "c": "s", "d": True, "e": None, "f": [1, {"g": -2}], "h": {}}
    back = values.encode_struct(values.decode_struct(given, "x"))
    assert back == given
    assert isinstance(back["a"], int) and isinstance(back["f"][1]["g"], int)


# --- query parameters ------------------------------------------------------------------------


def test_query_parameters_decode_and_refuse_bad_values() -> None:
    """Query: maxresults 1-1000 (1000 absent), $select of known members, $expand=stats,
    force true/false, timeOut positive (above 30: 30); others INVALID_QUERY naming them."""
    assert query.decode_page_size({}) == 1000
    assert query.decode_page_size({"maxresults": "7"}) == 7
    selected = query.decode_select({"$select": "id, state"}, query.JOB_MEMBERS)
    assert selected == frozenset({"id", "state"})
    assert query.decode_select({}, query.JOB_MEMBERS) is None
    assert query.decode_expand({"$expand": "STATS"}) is True
    assert query.decode_expand({}) is False
    assert (query.decode_force({}), query.decode_force({"force": "True"})) == (False, True)
    assert query.decode_timeout({}) == 30.0
    assert query.decode_timeout({"timeout": "5"}) == 5.0
    assert query.decode_timeout({"timeout": "600"}) == 30.0
    bad: list[tuple[Callable[[dict[str, str]], object], dict[str, str], str]] = [
        (query.decode_page_size, {"maxresults": v}, "maxresults") for v in ("0", "1001", "x", "²")
    ]
    bad += [(query.decode_timeout, {"timeout": v}, "timeOut") for v in ("0", "-1", "1.5", "")]
    bad += [(query.decode_force, {"force": "yes"}, "force"),
            (query.decode_expand, {"$expand": "tasks"}, "$expand")]  # fmt: skip
    for fn, params, name in bad:
        error = raises(fn, params)
        assert (error.reason, error.metadata["QueryParameterName"]) == ("INVALID_QUERY", name)
    error = raises(query.decode_select, {"$select": "id,bogus"}, query.TASK_MEMBERS)
    assert error.metadata["Reason"] == "not a property: bogus"


def test_query_parameters_may_not_repeat_in_any_case() -> None:
    """Query (issue 13): a parameter given twice, names compared in any case, is
    INVALID_QUERY naming it (Batch defines none that repeats)."""
    query.check_single([("api-version", "1"), ("force", "false"), ("timeOut", "5")])
    for pairs in ([("force", "false"), ("force", "true")], [("timeOut", "5"), ("timeout", "9")]):
        error = raises(query.check_single, pairs)
        assert error.reason == "INVALID_QUERY"
        assert error.metadata == {
            "QueryParameterName": pairs[0][0], "QueryParameterValue": pairs[0][1],
            "Reason": "the parameter is given more than once",
        }  # fmt: skip


def test_project_keeps_selected_members_and_odata_metadata() -> None:
    """Query: $select keeps the named members and the odata.metadata."""
    body = {"odata.metadata": "m", "id": "j", "state": "active", "priority": 1}
    assert query.project(body, frozenset({"id"})) == {"odata.metadata": "m", "id": "j"}
    assert query.project(body, None) is body


def test_next_link_keeps_the_query_and_replaces_the_skiptoken() -> None:
    """Query: odata.nextLink is the request's own query (filter included) with the new
    $skiptoken in place of the old one."""
    given = [("api-version", "2025-06-01"), ("$filter", "id eq 'a b'"), ("$skiptoken", "old")]
    link = query.encode_next_link("http://h/jobs", given, "t/1")
    assert link == ("http://h/jobs?api-version=2025-06-01&$filter=id+eq+%27a+b%27&$skiptoken=t%2F1")


# --- error bodies ----------------------------------------------------------------------------


def test_property_names_are_batch_members() -> None:
    """Errors: core field paths name the Batch member they came from."""
    assert errors.property_name("job.batch.max_parallel_tasks") == "maxParallelTasks"
    assert errors.property_name("batch.pool_info") == "poolInfo"
    assert errors.property_name("job.batch.constraints.max_task_retry_count") == (
        "constraints.maxTaskRetryCount"
    )
    assert errors.property_name("job_id") == "id"
    assert errors.property_name("task.display_name") == "displayName"


def test_error_values_from_the_core_name_members_never_jobcontrol_names() -> None:
    """Errors: the core's field (or fields) becomes PropertyName with the violation as
    Reason, query fields become QueryParameterName; a lifecycle refusal's metadata (job
    names, states) is not shown; the gateway's own Batch keys pass as they are."""
    value = gateway_error(grpc.StatusCode.INVALID_ARGUMENT, "FIELD_VALUE_NOT_ALLOWED", "m",
                          metadata={"field": "job.batch.priority"})  # fmt: skip
    value.details.append(
        {"fieldViolations": [{"field": "job.batch.priority", "description": "no"}]}
    )
    assert errors.error_values(value) == [
        {"key": "PropertyName", "value": "priority"}, {"key": "Reason", "value": "no"},
    ]  # fmt: skip
    required = gateway_error(grpc.StatusCode.INVALID_ARGUMENT, "REQUIRED_FIELD_MISSING", "m",
                             metadata={"fields": "batch.pool_info"})  # fmt: skip
    required.details.append(
        {"fieldViolations": [{"field": "job.batch.pool_info", "description": "required"}]}
    )
    assert errors.error_values(required) == [
        {"key": "PropertyName", "value": "poolInfo"}, {"key": "Reason", "value": "required"},
    ]  # fmt: skip
    token = gateway_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN", "m",
                          metadata={"field": "page_token"})  # fmt: skip
    assert errors.error_values(token) == [{"key": "QueryParameterName", "value": "$skiptoken"}]
    for meta in ({"job": "collections/batch-a/jobs/j", "state": "DELETING"}, {"field": "name"}):
        refused = gateway_error(grpc.StatusCode.FAILED_PRECONDITION, "X", "m", metadata=meta)
        assert errors.error_values(refused) == []
    own = gateway_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_QUERY", "m",
                        metadata={"QueryParameterName": "maxresults"})  # fmt: skip
    assert errors.error_values(own) == [{"key": "QueryParameterName", "value": "maxresults"}]


def test_encode_error_is_the_batch_error_body() -> None:
    """Errors: {odata.metadata, code, message{lang, value + RequestId + Time}, values};
    no values member when there are none."""
    body = errors.encode_error("http://h", "JobNotFound", "The specified job does not exist.",
                               "rid", "2024-01-01T00:00:00.000000Z", [])  # fmt: skip
    assert body == {
        "odata.metadata": f"http://h/$metadata#{errors.ERRORS_METADATA}",
        "code": "JobNotFound",
        "message": {
            "lang": "en-US",
            "value": "The specified job does not exist.\nRequestId:rid\n"
            "Time:2024-01-01T00:00:00.000000Z",
        },
    }
    with_values = errors.encode_error("http://h", "C", "M", "r", "t", [{"key": "k", "value": "v"}])
    assert with_values["values"] == [{"key": "k", "value": "v"}]


# --- the error table -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "row", [*batch.ERRORS.by_reason.values(), *batch.ERRORS.by_code.values()], ids=repr
)
def test_every_error_row_is_a_batch_code_with_its_status_and_message(row: Any) -> None:
    """Errors: every row of the table (by reason and by gRPC code) is one of Batch's codes
    with its documented status and message."""
    assert (row.status, row.message) == batch.CODES[row.code]


@pytest.mark.parametrize(
    ("code", "reason", "answer"),
    [
        (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED", "AuthorizationFailure"),
        (grpc.StatusCode.PERMISSION_DENIED, "", "AuthorizationFailure"),
        (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED", "AuthenticationFailed"),
        (grpc.StatusCode.UNAUTHENTICATED, "", "AuthenticationFailed"),
        (grpc.StatusCode.UNAUTHENTICATED, "AUTHENTICATION_FAILED", "AuthenticationFailed"),
    ],
)
def test_core_refusals_are_batch_authorization_and_authentication_failures(
    code: grpc.StatusCode, reason: str, answer: str
) -> None:
    """Errors (issue 13): the core's PERMISSION_DENIED is 403 AuthorizationFailure ("This
    request is not authorized to perform this operation.", Batch's answer to a forbidden
    request), UNAUTHENTICATED and the gateway's own signature check 403
    AuthenticationFailed."""
    row = batch.ERRORS.row(gateway_error(code, reason, "m"))
    assert (row.status, row.code) == (403, answer)
