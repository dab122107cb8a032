"""The Azure Scheduler codecs as pure functions, no server: job JSON (scheduler_codec,
scheduler_values), list queries (scheduler_filter), Service Management XML
(scheduler_xml)."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from jobcontrol.gateway.dialects import scheduler_codec as codec
from jobcontrol.gateway.dialects import scheduler_filter as sf
from jobcontrol.gateway.dialects import scheduler_xml as sx
from jobcontrol.gateway.errors import GatewayError
from jobcontrol.v1 import resources_pb2 as r

NS = "http://schemas.microsoft.com/windowsazure"
SEED_003: dict[str, Any] = {
    "startTime": "2013-01-30T20:08:00Z",
    "action": {
        "request": {"uri": "http://example.org/", "method": "GET",
                    "headers": {"content-Type": "text/plain"}},
        "type": "http",
    },
    "recurrence": {"frequency": "minute", "count": 10, "interval": 30},
    "state": "enabled",
}  # fmt: skip
EVERY_FIELD: dict[str, Any] = {
    "startTime": "2013-01-30T20:08:00.25Z",
    "action": {
        "request": {"uri": "https://example.org/hook", "method": "POST",
                    "headers": {"x-Custom": "One"}, "body": "{}"},
        "type": "https",
        "retryPolicy": {"retryType": "fixed", "retryInterval": "1.00:00:30", "retryCount": 3},
        "queueMessage": {"storageAccount": "acct", "queueName": "q", "sasToken": "?sv=1",
                         "message": "m"},
        "errorAction": {
            "type": "serviceBusTopic",
            "request": {"uri": "http://example.org/err", "method": "PUT"},
            "retryPolicy": {"retryType": "none"},
        },
    },
    "recurrence": {
        "frequency": "month", "count": 3, "interval": 2, "endTime": "2030-01-01T00:00:00Z",
        "schedule": {"minutes": [0, 30], "hours": [9], "weekDays": ["monday", "sunday"],
                     "monthDays": [1, -1],
                     "monthlyOccurrences": [{"day": "friday", "occurrence": -1}]},
    },
    "state": "disabled",
}  # fmt: skip


def refused(call: Any, *args: Any) -> GatewayError:
    """The GatewayError `call(*args)` raises."""
    with pytest.raises(GatewayError) as caught:
        call(*args)
    return caught.value


def named(job: r.Job) -> r.Job:
    job.name = "collections/c/jobs/job1"
    return job


# --- job JSON ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", [SEED_003, EVERY_FIELD], ids=["seed-003", "every-field"])
def test_job_json_decodes_and_encodes_back_unchanged(body: dict[str, Any]) -> None:
    """Job JSON: decode_job then encode_job gives the body back (with its id and zero
    status counts), every member of action, recurrence and schedule included."""
    encoded = codec.encode_job(named(codec.decode_job(body)))
    zero = {"executionCount": 0, "failureCount": 0, "faultedCount": 0}
    assert encoded == {"id": "job1", **body, "status": zero}


def test_job_json_enum_words_match_in_any_case_and_come_back_canonical() -> None:
    """Job JSON: enum words are read in any case and written in the documented case."""
    body = {"action": {"type": "STORAGEQUEUE"}, "recurrence": {"frequency": "Hour"},
            "state": "Disabled"}  # fmt: skip
    job = codec.decode_job(body)
    assert job.scheduled.action.type == r.JobAction.STORAGE_QUEUE
    assert codec.encode_job(named(job))["action"] == {"type": "storageQueue"}
    assert codec.encode_job(named(job))["recurrence"] == {"frequency": "hour"}
    assert codec.encode_job(named(job))["state"] == "disabled"


def test_job_json_authentication_is_decoded_but_never_encoded() -> None:
    """Job JSON (S13): `authentication` reaches the proto and never leaves it."""
    body = copy.deepcopy(SEED_003)
    body["action"]["request"]["authentication"] = {"type": "basic", "username": "u",
                                                   "password": "p", "clientId": "c"}  # fmt: skip
    job = codec.decode_job(body)
    auth = job.scheduled.action.request.authentication
    assert (auth.type, auth.username, auth.password, auth.client_id) == ("basic", "u", "p", "c")
    assert "authentication" not in codec.encode_job(named(job))["action"]["request"]


def test_job_json_status_and_id_are_not_decoded() -> None:
    """Job JSON: `id` and `status` are accepted members that decode_job leaves out (the
    URL names the job; status is output only)."""
    job = codec.decode_job({"id": "other", "status": {"executionCount": 9}})
    assert job == r.Job(scheduled=r.ScheduledSpec())


def test_job_status_is_encoded_with_its_times_and_counts() -> None:
    """Job JSON: status carries last/next execution times when present and the three
    counts always."""
    job = named(r.Job(state=r.COMPLETED))
    job.status.last_execution_time.FromJsonString("2013-08-30T20:55:02.414371Z")
    job.status.execution_count, job.status.failure_count, job.status.faulted_count = 4, 2, 1
    assert codec.encode_job(job) == {
        "id": "job1",
        "state": "completed",
        "status": {"lastExecutionTime": "2013-08-30T20:55:02.414371Z", "executionCount": 4,
                   "failureCount": 2, "faultedCount": 1},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ([], "job", "job: must be an object"),
        ({"bogus": 1}, "job", "job: unknown fields bogus"),
        ({"action": {"colour": "red"}}, "action", "action: unknown fields colour"),
        ({"action": {"request": {"extra": 1}}}, "action.request",
         "action.request: unknown fields extra"),
        ({"action": {"errorAction": {"errorAction": {}}}}, "action.errorAction",
         "action.errorAction: unknown fields errorAction"),
        ({"action": {"type": "ftp"}}, "action.type",
         "action.type: unknown value 'ftp' (allowed: http, https, storageQueue, "
         "serviceBusQueue, serviceBusTopic)"),
        ({"action": {"request": {"uri": 5}}}, "action.request.uri",
         "action.request.uri: must be a string"),
        ({"action": {"request": {"headers": {"a": 1}}}}, "action.request.headers.a",
         "action.request.headers.a: must be a string"),
        ({"action": {"retryPolicy": {"retryCount": True}}}, "action.retryPolicy.retryCount",
         "action.retryPolicy.retryCount: must be an integer"),
        ({"action": {"retryPolicy": {"retryInterval": "30"}}},
         "action.retryPolicy.retryInterval",
         "action.retryPolicy.retryInterval: not a duration: '30' (e.g. 00:00:30)"),
        ({"recurrence": {"interval": 2**31}}, "recurrence.interval",
         "recurrence.interval: out of range"),
        ({"recurrence": {"frequency": "second"}}, "recurrence.frequency",
         "recurrence.frequency: unknown value 'second' (allowed: minute, hour, day, week, "
         "month)"),
        ({"recurrence": {"schedule": {"hours": 9}}}, "recurrence.schedule.hours",
         "recurrence.schedule.hours: must be an array"),
        ({"recurrence": {"schedule": {"weekDays": ["funday"]}}},
         "recurrence.schedule.weekDays",
         "recurrence.schedule.weekDays: unknown value 'funday' (allowed: monday, tuesday, "
         "wednesday, thursday, friday, saturday, sunday)"),
        ({"startTime": "yesterday"}, "startTime", "startTime: not an ISO 8601 time: 'yesterday'"),
        ({"state": 1}, "state", "state: must be a string"),
    ],
)  # fmt: skip
def test_bad_job_json_is_invalid_body_naming_the_member(
    body: Any, field: str, message: str
) -> None:
    """Job JSON: a wrong member at any depth is INVALID_BODY (400 BadRequest in the
    dialect) naming the member, never a crash."""
    error = refused(codec.decode_job, body)
    assert (error.reason, error.metadata, error.message) == ("INVALID_BODY", {"field": field},
                                                             message)  # fmt: skip


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        ({}, []),
        ({"id": "job1"}, []),
        ({"id": "other"}, ["name"]),
        ({"state": "disabled"}, ["state"]),
        ({"status": {}}, ["status"]),
        ({"startTime": "2014-01-01T00:00:00Z"}, ["scheduled.start_time"]),
        ({"action": {"request": {"uri": "u", "headers": {"a": "b"}}}},
         ["scheduled.action.request.uri", "scheduled.action.request.headers"]),
        ({"action": {"errorAction": {"retryPolicy": {"retryCount": 1}}}},
         ["scheduled.action.error_action.retry_policy.retry_count"]),
        ({"action": {}}, ["scheduled.action"]),
        ({"recurrence": {"interval": 1, "schedule": {"weekDays": ["monday"]}}},
         ["scheduled.recurrence.interval", "scheduled.recurrence.schedule.week_days"]),
    ],
)  # fmt: skip
def test_patch_body_means_the_update_mask_of_its_members(
    body: dict[str, Any], paths: list[str]
) -> None:
    """Update job (seed 003): the mask is each member present, merged member by member;
    an id equal to the URL's is no path, another one is `name` and status is `status`
    (so that the core refuses them)."""
    assert codec.decode_update_mask(body, "job1") == paths


def test_patch_body_with_an_unknown_member_is_invalid_body() -> None:
    """Update job: an unknown top-level member is INVALID_BODY, not a crash."""
    error = refused(codec.decode_update_mask, {"bogus": 1}, "job1")
    assert (error.reason, error.message) == ("INVALID_BODY", "job: unknown fields bogus")


def test_history_entry_is_encoded_with_every_decision_field() -> None:
    """History (spec Decision): jobId, timestamp, startTime, endTime, state, status,
    message, retryCount, repeatCount, actionName (MainAction by default)."""
    entry = r.HistoryEntry(state=r.ENABLED, status=r.HistoryEntry.POSTPONED, message="later",
                           retry_count=1, repeat_count=2)  # fmt: skip
    entry.timestamp.FromJsonString("2013-08-30T20:55:02Z")
    entry.start_time.FromJsonString("2013-08-30T20:55:01Z")
    entry.end_time.FromJsonString("2013-08-30T20:55:02.5Z")
    assert codec.encode_history(entry, "job1") == {
        "jobId": "job1", "timestamp": "2013-08-30T20:55:02Z",
        "startTime": "2013-08-30T20:55:01Z", "endTime": "2013-08-30T20:55:02.5Z",
        "state": "enabled", "status": "postponed", "message": "later", "retryCount": 1,
        "repeatCount": 2, "actionName": "MainAction",
    }  # fmt: skip


# --- times and durations ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("00:00:30", timedelta(seconds=30)),
        ("1.02:03:04", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("00:00:00.5", timedelta(milliseconds=500)),
        ("PT30S", timedelta(seconds=30)),
        ("P1DT1H", timedelta(days=1, hours=1)),
        ("PT1.5S", timedelta(seconds=1.5)),
    ],
)
def test_durations_are_timespans_or_iso_8601(text: str, delta: timedelta) -> None:
    """Values: retry intervals are .NET TimeSpans or ISO 8601 durations (the names the
    Batch codec shares: decode_duration, encode_time)."""
    assert codec.decode_duration(text, "d").ToTimedelta() == delta


@pytest.mark.parametrize("text", ["P", "PT", "30", "00:60", "abc", "99999999999.00:00:00"])
def test_bad_durations_are_invalid_body(text: str) -> None:
    """Values: anything else (or out of range) is INVALID_BODY, never a crash."""
    assert refused(codec.decode_duration, text, "d").reason == "INVALID_BODY"


def test_times_and_durations_encode_as_documented() -> None:
    """Values: times in UTC with `Z` and fractions only when present; durations as
    `hh:mm:ss` with a day prefix."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromJsonString("2013-01-30T21:08:00+01:00")
    assert codec.encode_time(stamp) == "2013-01-30T20:08:00Z"
    assert codec.encode_history(r.HistoryEntry(timestamp=stamp), "j")["timestamp"] == (
        "2013-01-30T20:08:00Z"
    )
    spans = [duration_pb2.Duration(seconds=s) for s in (30, 90061)]
    assert [codec.encode_job(named(_retry(d)))["action"]["retryPolicy"] for d in spans] == [
        {"retryInterval": "00:00:30"},
        {"retryInterval": "1.01:01:01"},
    ]


def _retry(interval: duration_pb2.Duration) -> r.Job:
    job = r.Job()
    job.scheduled.action.retry_policy.retry_interval.CopyFrom(interval)
    return job


# --- list queries -----------------------------------------------------------------------


def _equal(field: str, text: str) -> r.Filter:
    return r.Filter(comparison=r.Comparison(field=field, operator=r.Comparison.EQUAL, text=text))


@pytest.mark.parametrize(
    ("raw", "fields", "expected"),
    [
        ("state eq enabled", sf.JOBS, _equal("state", "ENABLED")),
        ("state eq 'Disabled'", sf.JOBS, _equal("state", "DISABLED")),
        ("  STATE  EQ  faulted ", sf.JOBS, _equal("state", "FAULTED")),
        ("status eq failed", sf.HISTORY, _equal("status", "FAILED")),
        ("status eq 'postponed'", sf.HISTORY, _equal("status", "POSTPONED")),
        ("state eq completed", sf.HISTORY, _equal("state", "COMPLETED")),
    ],
)
def test_filter_is_a_structured_filter_message(
    raw: str, fields: dict[str, tuple[str, ...]], expected: r.Filter
) -> None:
    """Queries: `$filter=field eq word` becomes a Filter message (never filter text);
    history filters on status or state."""
    assert sf.decode_filter(raw, fields) == expected


@pytest.mark.parametrize(
    ("raw", "fields", "message"),
    [
        ("status eq failed", sf.JOBS, "Unsupported $filter: 'status eq failed'."),
        ("state eq", sf.JOBS, "Unsupported $filter: 'state eq'."),
        ("state eq 'enabled", sf.JOBS, "Unsupported $filter: \"state eq 'enabled\"."),
        ("state eq enabled and state eq disabled", sf.JOBS,
         "Unsupported $filter: 'state eq enabled and state eq disabled'."),
        ('state eq enabled" OR id = "x', sf.JOBS,
         "Unsupported $filter: 'state eq enabled\" OR id = \"x'."),
        ("state eq bogus", sf.JOBS,
         "Unsupported $filter value 'bogus' for state (allowed: enabled, disabled, completed, "
         "faulted)."),
        ("status eq enabled", sf.HISTORY,
         "Unsupported $filter value 'enabled' for status (allowed: completed, failed, "
         "postponed)."),
    ],
)  # fmt: skip
def test_bad_filter_is_invalid_query(
    raw: str, fields: dict[str, tuple[str, ...]], message: str
) -> None:
    """Queries: any other $filter is INVALID_QUERY (400
    MissingOrInvalidRequiredQueryParameter); values never become filter syntax."""
    error = refused(sf.decode_filter, raw, fields)
    assert (error.reason, error.message) == ("INVALID_QUERY", message)


def test_list_query_defaults_and_bounds() -> None:
    """Queries: no filter, $top 100 and $skip 0 by default; $top 1..100, $skip >= 0."""
    assert sf.decode_list_query({}, sf.JOBS) == sf.ListQuery(None, 100, 0)
    query = sf.decode_list_query({"$top": "1", "$skip": "7", "$filter": "state eq enabled"},
                                 sf.JOBS)  # fmt: skip
    assert query == sf.ListQuery(_equal("state", "ENABLED"), 1, 7)
    assert sf.decode_list_query({"$top": "100"}, sf.JOBS).top == 100


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"$top": "0"}, "$top must be an integer from 1 to 100, not '0'."),
        ({"$top": "101"}, "$top must be an integer from 1 to 100, not '101'."),
        ({"$top": "+5"}, "$top must be an integer from 1 to 100, not '+5'."),
        ({"$top": "\u0665"}, "$top must be an integer from 1 to 100, not '\u0665'."),
        ({"$skip": "-1"}, "$skip must be an integer from 0 to 2147483647, not '-1'."),
        ({"$skip": "99999999999"},
         "$skip must be an integer from 0 to 2147483647, not '99999999999'."),
    ],
)  # fmt: skip
def test_bad_top_or_skip_is_invalid_query(query: dict[str, str], message: str) -> None:
    """Queries: $top and $skip are plain decimal digits in range."""
    error = refused(sf.decode_list_query, query, sf.JOBS)
    assert (error.reason, error.message) == ("INVALID_QUERY", message)


# --- Service Management XML -------------------------------------------------------------


def _resource(settings: str, root: str = "Resource", ns: str = NS) -> bytes:
    return (
        f'<{root} xmlns="{ns}"><IntrinsicSettings>{settings}</IntrinsicSettings></{root}>'.encode()
    )


def test_empty_collection_body_is_standard_without_quota() -> None:
    """Collections: an empty PUT body is a scheduled collection, plan Standard, no quota."""
    expected = r.Collection(profile=r.SCHEDULED, plan="Standard")
    assert sx.decode_collection(b"") == expected
    assert sx.decode_collection(b"  \n") == expected
    assert sx.decode_collection(_resource("")) == expected


def test_collection_element_names_match_in_any_case() -> None:
    """Collections: the client library's `<plan>Free</plan>` (its own serializer's body,
    i: namespace declaration included) is plan Free; every element matches in any case."""
    client_body = (
        '<Resource xmlns:i="http://www.w3.org/2001/XMLSchema-instance" '
        f'xmlns="{NS}"><IntrinsicSettings><plan>Free</plan></IntrinsicSettings></Resource>'
    ).encode()
    assert sx.decode_collection(client_body).plan == "Free"
    lower = (
        f'<resource xmlns="{NS}"><intrinsicsettings><PLAN>Free</PLAN><quota>'
        "<maxjobcount>3</maxjobcount><maxrecurrence><frequency>hour</frequency>"
        "<interval>2</interval></maxrecurrence></quota></intrinsicsettings></resource>"
    ).encode()
    quota = r.Quota(max_job_count=3, max_recurrence_frequency=r.Recurrence.HOUR,
                    max_recurrence_interval=2)  # fmt: skip
    assert sx.decode_collection(lower) == r.Collection(profile=r.SCHEDULED, plan="Free",
                                                       quota=quota)  # fmt: skip


@pytest.mark.parametrize(
    ("word", "frequency"),
    [("Second", r.Recurrence.SECOND), ("Minute", r.Recurrence.MINUTE),
     ("Hour", r.Recurrence.HOUR), ("Day", r.Recurrence.DAY), ("Week", r.Recurrence.WEEK),
     ("Month", r.Recurrence.MONTH)],
)  # fmt: skip
def test_max_recurrence_frequency_second_to_month(word: str, frequency: int) -> None:
    """Collections: MaxRecurrence Frequency is Second (the documented sample) to Month,
    and encodes back in the same word."""
    body = _resource(
        f"<Plan>Standard</Plan><Quota><MaxJobCount>10</MaxJobCount><MaxRecurrence>"
        f"<Frequency>{word}</Frequency><Interval>1</Interval></MaxRecurrence></Quota>"
    )
    collection = sx.decode_collection(body)
    assert collection.quota == r.Quota(max_job_count=10, max_recurrence_frequency=frequency,
                                       max_recurrence_interval=1)  # fmt: skip
    assert f"<Frequency>{word}</Frequency>".encode() in sx.encode_resource(collection)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<Resource", "The request body is not valid XML: unclosed token: line 1, column 0"),
        (b"not xml", "The request body is not valid XML: syntax error: line 1, column 0"),
        (b"<NotAResource/>", f"The root element must be Resource in the namespace {NS}."),
        (f'<NotAResource xmlns="{NS}"/>'.encode(),
         f"The root element must be Resource in the namespace {NS}."),
        (b'<Resource xmlns="urn:other"/>',
         f"The root element must be Resource in the namespace {NS}."),
        (_resource("<Quota><MaxJobCount>ten</MaxJobCount></Quota>"),
         "MaxJobCount and MaxRecurrence/Interval must be integers."),
        (_resource("<Quota><MaxJobCount>99999999999</MaxJobCount></Quota>"),
         "MaxJobCount and MaxRecurrence/Interval must be integers."),
        (_resource("<Quota><MaxRecurrence><Frequency>Year</Frequency></MaxRecurrence></Quota>"),
         "Unknown MaxRecurrence Frequency 'Year' (allowed: Second, Minute, Hour, Day, Week, "
         "Month)."),
        (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><Resource>&a;</Resource>',
         "The request body is not valid XML: EntitiesForbidden(name='a', system_id=None, "
         "public_id=None)"),
    ],
)  # fmt: skip
def test_bad_collection_body_is_invalid_xml(body: bytes, message: str) -> None:
    """Collections: malformed XML, a root other than Resource in the Service Management
    namespace, non-integer or out-of-range counts, unknown frequencies and entity
    declarations are INVALID_XML (400 InvalidXmlRequest)."""
    error = refused(sx.decode_collection, body)
    assert (error.reason, error.message) == ("INVALID_XML", message)


def test_resource_is_encoded_as_the_service_management_resource() -> None:
    """Collections: a collection encodes as the whole `<Resource>` (name from its label)."""
    collection = r.Collection(name="collections/sched-x", plan="Free", etag="e1",
                              labels={"job-collection": "MyJc"},
                              quota=r.Quota(max_job_count=5))  # fmt: skip
    assert sx.encode_resource(collection).decode() == (
        f'<Resource xmlns="{NS}"><Name>MyJc</Name>'
        "<ResourceProviderNamespace>scheduler</ResourceProviderNamespace>"
        "<Type>jobcollections</Type><SchemaVersion>1.0</SchemaVersion><ETag>e1</ETag>"
        "<State>Started</State><IntrinsicSettings><Plan>Free</Plan><Quota>"
        "<MaxJobCount>5</MaxJobCount></Quota></IntrinsicSettings></Resource>"
    )


def test_cloud_service_operation_error_and_availability_bodies() -> None:
    """XML: CloudService with its Resources, Operation (Succeeded / Failed with Error),
    Error and AvailabilityResponse, whole and in the default namespace."""
    one = r.Collection(name="collections/a", etag="e", labels={"job-collection": "a"})
    assert sx.encode_cloud_service("cs", [one]).decode() == (
        f'<CloudService xmlns="{NS}"><Name>cs</Name><Resources>'
        + sx.encode_resource(one).decode().replace(f' xmlns="{NS}"', "")
        + "</Resources></CloudService>"
    )
    assert sx.encode_operation("ab", 201, "", "").decode() == (
        f'<Operation xmlns="{NS}"><ID>ab</ID><Status>Succeeded</Status>'
        "<HttpStatusCode>201</HttpStatusCode></Operation>"
    )
    assert sx.encode_operation("ab", 404, "ResourceNotFound", "gone").decode() == (
        f'<Operation xmlns="{NS}"><ID>ab</ID><Status>Failed</Status>'
        "<HttpStatusCode>404</HttpStatusCode><Error><Code>ResourceNotFound</Code>"
        "<Message>gone</Message></Error></Operation>"
    )
    assert sx.encode_error("BadRequest", "a < b").decode() == (
        f'<Error xmlns="{NS}"><Code>BadRequest</Code><Message>a &lt; b</Message></Error>'
    )
    assert sx.encode_availability(False).decode() == (
        f'<AvailabilityResponse xmlns="{NS}"><Result>false</Result></AvailabilityResponse>'
    )
