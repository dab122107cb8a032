"""Bad input to the Azure Scheduler dialect over real HTTP to a real gRPC server: a 400 in
the Service Management format, never a 5xx, and nothing changed (issue 13 point 5)."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest

from tests.conftest import RunningGateway, record_rpcs
from tests.helpers import json_error
from tests.test_dialect_scheduler import (
    HEADERS,
    SIMPLE,
    assert_empty,
    assert_error,
    get_job,
    jc_url,
    list_ids,
    prefix,
    put_job,
    xml_of,
)

NS = "http://schemas.microsoft.com/windowsazure"
INT32 = 2**31


@pytest.fixture
async def jc(http: httpx.AsyncClient) -> str:
    """The default job collection (Standard, no quota); returns its job prefix."""
    assert_empty(await http.put(jc_url(), headers=HEADERS), 202)
    return prefix()


def job(**recurrence: Any) -> dict[str, Any]:
    """SIMPLE with a recurrence (frequency week, interval 1, and `recurrence`)."""
    return {**SIMPLE, "recurrence": {"frequency": "week", "interval": 1, **recurrence}}


def retry(**policy: Any) -> dict[str, Any]:
    """SIMPLE with a retry policy."""
    action = copy.deepcopy(SIMPLE["action"])
    action["retryPolicy"] = {"retryType": "fixed", **policy}
    return {**SIMPLE, "action": action}


def nested(depth: int) -> str:
    """A job whose request headers hold an object `depth` levels deep (the job itself is
    three levels: job, action, request; headers the fourth)."""
    inner = '"x"'
    for _ in range(depth - 4):
        inner = '{"a":' + inner + "}"
    return (
        '{"action": {"type": "http", "request": {"uri": "http://example.org/", '
        f'"method": "GET", "headers": {{"h": {inner}}}}}}}}}'
    )


DEEP = nested(1100)
BAD_BODIES = [
    ("weekDays-number", job(schedule={"weekDays": 5}),
     "recurrence.schedule.weekDays: must be an array"),
    ("monthlyOccurrences-number", job(schedule={"monthlyOccurrences": 5}),
     "recurrence.schedule.monthlyOccurrences: must be an array"),
    ("monthlyOccurrences-object", job(schedule={"monthlyOccurrences": {"day": "monday"}}),
     "recurrence.schedule.monthlyOccurrences: must be an array"),
    ("monthlyOccurrences-item-number", job(schedule={"monthlyOccurrences": [5]}),
     "recurrence.schedule.monthlyOccurrences: must be an object"),
    ("minutes-number", job(schedule={"minutes": 5}),
     "recurrence.schedule.minutes: must be an array"),
    ("hours-string", job(schedule={"hours": "9"}), "recurrence.schedule.hours: must be an array"),
    ("monthDays-object", job(schedule={"monthDays": {"1": 1}}),
     "recurrence.schedule.monthDays: must be an array"),
    ("interval-int32", job(interval=INT32), "recurrence.interval: out of range"),
    ("count-int64", job(count=2**63), "recurrence.count: out of range"),
    ("count-negative-int64", job(count=-(2**63)), "recurrence.count: out of range"),
    ("count-beyond-int64", job(count=2**70), "recurrence.count: must be an integer"),
    ("minutes-item-int32", job(schedule={"minutes": [INT32]}),
     "recurrence.schedule.minutes: out of range"),
    ("occurrence-int32", job(schedule={"monthlyOccurrences": [{"day": "monday",
                                                               "occurrence": -INT32 - 1}]}),
     "recurrence.schedule.monthlyOccurrences.occurrence: out of range"),
    ("retryCount-int32", retry(retryCount=INT32), "action.retryPolicy.retryCount: out of range"),
    ("startTime-after-9999", {**SIMPLE, "startTime": "9999-12-31T23:59:59-23:59"},
     "startTime: out of range (years 0001 to 9999 in UTC): '9999-12-31T23:59:59-23:59'"),
    ("startTime-before-0001", {**SIMPLE, "startTime": "0001-01-01T00:00:00+23:59"},
     "startTime: out of range (years 0001 to 9999 in UTC): '0001-01-01T00:00:00+23:59'"),
    ("endTime-year-10000", job(endTime="10000-01-01T00:00:00Z"),
     "recurrence.endTime: not an ISO 8601 time: '10000-01-01T00:00:00Z'"),
    ("retryInterval-timespan-beyond-10000-years", retry(retryInterval="99999999.00:00:00"),
     "action.retryPolicy.retryInterval: duration out of range: '99999999.00:00:00'"),
    ("retryInterval-iso-beyond-10000-years", retry(retryInterval="P3652501D"),
     "action.retryPolicy.retryInterval: duration out of range: 'P3652501D'"),
    ("retryInterval-infinite", retry(retryInterval="PT1" + "0" * 400 + "S"),
     f"action.retryPolicy.retryInterval: duration out of range: 'PT1{'0' * 400}S'"),
    ("nested-33", nested(33), "The body nests more than 32 levels deep."),
    ("nested-1000", nested(1000), "The body nests more than 32 levels deep."),
    ("nested-beyond-the-parser", DEEP, json_error(DEEP)),
]  # fmt: skip


def content(body: dict[str, Any] | str) -> bytes:
    """The raw body (json, not orjson: some hold integers beyond 64 bits)."""
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()


@pytest.mark.parametrize(("body", "message"), [c[1:] for c in BAD_BODIES],
                         ids=[c[0] for c in BAD_BODIES])  # fmt: skip
@pytest.mark.parametrize("method", ["PUT", "POST", "PATCH"])
async def test_bad_job_values_are_400_bad_request_and_change_nothing(
    http: httpx.AsyncClient,
    gateway: RunningGateway,
    jc: str,
    method: str,
    body: dict[str, Any] | str,
    message: str,
) -> None:
    """A19: Bad input: a number where a list is expected (weekDays, monthlyOccurrences, …),
    integers beyond int32/int64, times beyond years 1-9999, durations beyond protobuf's
    10,000 years (that one was a 500), objects nested deeper than 32 (or than the parser
    takes): 400 BadRequest with the whole `<Error>` body, no call, nothing changed."""
    await put_job(http, "j1")
    before = await get_job(http, "j1")
    calls = record_rpcs(gateway.app)
    path = f"{jc}/jobs" if method == "POST" else f"{jc}/jobs/j1"
    r = await http.request(method, path, content=content(body), headers=HEADERS)
    assert_error(r, 400, "BadRequest", message)
    assert calls == []
    assert await get_job(http, "j1") == before
    assert await list_ids(http) == ["j1"]


@pytest.mark.parametrize("route", ["jobs", "jobs/j1/history"])
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"$skip": str(INT32)}, f"$skip must be an integer from 0 to {INT32 - 1}, not '{INT32}'."),
        ({"$skip": "9" * 30}, f"$skip must be an integer from 0 to {INT32 - 1}, not '{'9' * 30}'."),
        ({"$top": str(2**64)}, f"$top must be an integer from 1 to 100, not '{2**64}'."),
    ],
)
async def test_skip_beyond_int32_is_400_missing_or_invalid_required_query_parameter(
    http: httpx.AsyncClient,
    gateway: RunningGateway,
    jc: str,
    route: str,
    params: dict[str, str],
    message: str,
) -> None:
    """A19: Bad input: `$skip` beyond 2^31 - 1 (and `$top` beyond int64) on the job list and
    the history: 400 MissingOrInvalidRequiredQueryParameter, no call."""
    await put_job(http, "j1")
    calls = record_rpcs(gateway.app)
    r = await http.get(f"{jc}/{route}", params=params, headers=HEADERS)
    assert_error(r, 400, "MissingOrInvalidRequiredQueryParameter", message)
    assert calls == []


def _resource(inner: str) -> bytes:
    settings = f"<IntrinsicSettings>{inner}</IntrinsicSettings>"
    return f'<Resource xmlns="{NS}">{settings}</Resource>'.encode()


INTEGERS = "MaxJobCount and MaxRecurrence/Interval must be integers."
DEEP_XML = "The request body nests elements more than 32 deep."


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_resource(f"<Quota><MaxJobCount>{INT32}</MaxJobCount></Quota>"), INTEGERS),
        (_resource(f"<Quota><MaxJobCount>{'9' * 5000}</MaxJobCount></Quota>"), INTEGERS),
        (_resource("<Quota><MaxRecurrence><Frequency>Hour</Frequency>"
                   f"<Interval>{-INT32 - 1}</Interval></MaxRecurrence></Quota>"), INTEGERS),
        (_resource("<a>" * 31 + "</a>" * 31), DEEP_XML),
        (_resource("<a>" * 2000 + "</a>" * 2000), DEEP_XML),
    ],
    ids=["MaxJobCount-int32", "MaxJobCount-5000-digits", "Interval-int32", "nested-33",
         "nested-2002"],
)  # fmt: skip
async def test_bad_job_collection_values_are_400_invalid_xml_request_and_change_nothing(
    http: httpx.AsyncClient, gateway: RunningGateway, body: bytes, message: str
) -> None:
    """A19: Bad input: a job collection's integers beyond int32 and elements nested deeper than
    32: 400 InvalidXmlRequest, no call; the existing collection keeps its quota and a new
    one is not created."""
    assert_empty(await http.put(jc_url(jc="kept"), headers=HEADERS,
                                content=_resource("<Quota><MaxJobCount>7</MaxJobCount></Quota>")),
                 202)  # fmt: skip
    before = (await http.get(jc_url(jc="kept"), headers=HEADERS)).content
    calls = record_rpcs(gateway.app)
    for name in ("kept", "new"):
        r = await http.put(jc_url(jc=name), headers=HEADERS, content=body)
        assert_error(r, 400, "InvalidXmlRequest", message)
    assert calls == []
    assert (await http.get(jc_url(jc="kept"), headers=HEADERS)).content == before
    r = await http.get(jc_url(jc="new"), headers=HEADERS)
    assert_error(r, 404, "ResourceNotFound", "The job collection 'new' was not found.")


async def test_scheduler_responses_carry_nothing_of_the_host_header(
    http: httpx.AsyncClient, jc: str
) -> None:
    """A18: Links: the Scheduler's responses hold no links; nothing the client put in `Host`
    appears in a job, a list, a collection or a cloud service."""
    evil = {**HEADERS, "host": "evil.example"}
    await put_job(http, "j1")
    for path in (f"{jc}/jobs/j1", f"{jc}/jobs", jc_url(), jc_url().rsplit("/resources", 1)[0]):
        r = await http.get(path, headers=evil)
        assert r.status_code == 200, r.text
        assert b"evil" not in r.content and "evil" not in str(r.headers)
    xml_of(await http.get(jc_url(), headers=evil), 200, "Resource")
