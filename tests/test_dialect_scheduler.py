"""The Azure Scheduler (classic) dialect over real HTTP to a real gRPC server
(shared/spec/dialects.md section 1; seeds 000 Delete Job and 003 Update Job)."""

from __future__ import annotations

import asyncio
import copy
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import grpc
import httpx
import orjson
import pytest
from google.protobuf import timestamp_pb2

from jobcontrol.gateway.dialects.error_table import ErrorRow
from jobcontrol.gateway.dialects.scheduler import ERRORS, SchedulerDialect
from jobcontrol.gateway.errors import GatewayError
from jobcontrol.gateway.http import Request
from jobcontrol.service.server import start_server
from jobcontrol.v1 import job_service_pb2, operator_service_pb2, resources_pb2
from tests.conftest import Clients, RunningGateway, make_settings, record_rpcs, start_gateway

NS = "http://schemas.microsoft.com/windowsazure"
Q = {"a": NS}
HEADERS = {"x-ms-version": "2013-06-01"}
SUB, CS, JC = "mysub", "mycs", "myjc"
HEX32 = re.compile(r"[0-9a-fA-F]{32}")

SIMPLE: dict[str, Any] = {
    "startTime": "2013-01-30T20:08:00Z",
    "action": {"type": "http", "request": {"uri": "http://example.org/", "method": "GET"}},
    "state": "enabled",
}
SEED_003_JOB: dict[str, Any] = {
    "id": "job1",
    "startTime": "2013-01-30T20:08:00Z",
    "action": {
        "request": {
            "uri": "http://example.org/",
            "method": "GET",
            "headers": {"content-Type": "text/plain"},
        },
        "type": "http",
    },
    "recurrence": {"frequency": "minute", "count": 10, "interval": 30},
    "state": "enabled",
}
FULL_WEEKLY: dict[str, Any] = {
    "startTime": "2013-01-30T20:08:00Z",
    "action": {
        "type": "https",
        "request": {
            "uri": "https://example.org/hook",
            "method": "POST",
            "headers": {"x-Custom": "One", "Content-Type": "application/json"},
            "body": '{"hello": "world"}',
        },
        "retryPolicy": {"retryType": "fixed", "retryInterval": "00:00:30", "retryCount": 3},
        "errorAction": {
            "type": "storageQueue",
            "queueMessage": {
                "storageAccount": "acct",
                "queueName": "errors",
                "sasToken": "?sv=2012-02-12&sig=abc",
                "message": "it failed",
            },
            "retryPolicy": {"retryType": "none"},
        },
    },
    "recurrence": {
        "frequency": "week",
        "interval": 1,
        "endTime": "2030-01-01T00:00:00Z",
        "schedule": {"minutes": [0, 30], "hours": [9, 17], "weekDays": ["monday", "friday"]},
    },
    "state": "disabled",
}
FULL_MONTHLY: dict[str, Any] = {
    "startTime": "2013-01-30T20:08:00Z",
    "action": {
        "type": "storageQueue",
        "queueMessage": {
            "storageAccount": "acct",
            "queueName": "work",
            "sasToken": "?sv=2012-02-12&sig=def",
            "message": "do it",
        },
    },
    "recurrence": {
        "frequency": "month",
        "interval": 2,
        "endTime": "2030-01-01T00:00:00Z",
        "schedule": {
            "monthDays": [1, 15],
            "monthlyOccurrences": [{"day": "monday", "occurrence": 1}],
        },
    },
    "state": "enabled",
}


# --- helpers ------------------------------------------------------------------------


def prefix(sub: str = SUB, cs: str = CS, jc: str = JC) -> str:
    """The dialect's job prefix P."""
    return f"/{sub}/cloudServices/{cs}/resources/scheduler/~/jobCollections/{jc}"


def jc_url(sub: str = SUB, cs: str = CS, jc: str = JC) -> str:
    """A job collection's address (no `~`)."""
    return f"/{sub}/cloudServices/{cs}/resources/scheduler/jobCollections/{jc}"


def collection_xml(
    plan: str = "Standard",
    max_jobs: int | None = None,
    frequency: str | None = None,
    interval: int | None = None,
) -> bytes:
    """A job collection body; the quota parts only where given."""
    quota = ""
    if max_jobs is not None:
        quota += f"<MaxJobCount>{max_jobs}</MaxJobCount>"
    if frequency is not None:
        quota += (
            f"<MaxRecurrence><Frequency>{frequency}</Frequency>"
            f"<Interval>{interval}</Interval></MaxRecurrence>"
        )
    quota_xml = f"<Quota>{quota}</Quota>" if quota else ""
    return (
        f'<Resource xmlns="{NS}"><IntrinsicSettings><Plan>{plan}</Plan>{quota_xml}'
        "</IntrinsicSettings></Resource>"
    ).encode()


def request_id(r: httpx.Response) -> str:
    """The response's x-ms-request-id, checked to be 32 hex digits."""
    rid = r.headers.get("x-ms-request-id")
    assert rid is not None, f"no x-ms-request-id on {r.status_code} {r.text}"
    assert HEX32.fullmatch(rid), rid
    return rid


def media_type(r: httpx.Response) -> str:
    """The Content-Type without parameters, lower case."""
    return r.headers.get("content-type", "").split(";")[0].strip().lower()


def json_of(r: httpx.Response, status: int) -> Any:
    """A JSON success: status, request id, `application/json; charset=utf-8`, body."""
    assert r.status_code == status, r.text
    request_id(r)
    assert r.headers["content-type"].replace(" ", "").lower() == "application/json;charset=utf-8"
    return r.json()


def assert_empty(r: httpx.Response, status: int) -> None:
    """An empty success: status, request id, no body."""
    assert r.status_code == status, r.text
    request_id(r)
    assert r.content == b""


def error_code(r: httpx.Response, status: int) -> str:
    """An XML error: status, request id, application/xml, `<Error>` with a Message."""
    assert r.status_code == status, r.text
    request_id(r)
    assert media_type(r) == "application/xml", r.headers.get("content-type")
    root = ET.fromstring(r.content)
    assert root.tag == f"{{{NS}}}Error", r.text
    code = root.find("a:Code", Q)
    message = root.find("a:Message", Q)
    assert code is not None and code.text, r.text
    assert message is not None and (message.text or "").strip(), r.text
    return code.text


def assert_error(r: httpx.Response, status: int, code: str, message: str) -> None:
    """The whole XML error response: status, request id, content type and body."""
    assert r.status_code == status, r.text
    request_id(r)
    assert r.headers["content-type"] == "application/xml; charset=utf-8"
    assert r.text == (
        f'<Error xmlns="{NS}"><Code>{code}</Code><Message>{escape(message)}</Message></Error>'
    )


def capture_requests(gateway: RunningGateway) -> list[tuple[str, Any]]:
    """From now on, (method name, request message) of every upstream call."""
    seen: list[tuple[str, Any]] = []
    upstream = gateway.app.upstream
    real = upstream.call

    async def recorded(method: str, request: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((method.rsplit("/", 1)[-1], request))
        return await real(method, request, *args, **kwargs)

    upstream.call = recorded  # type: ignore[method-assign]
    return seen


def xml_of(r: httpx.Response, status: int, root_tag: str) -> ET.Element:
    """An XML success: status, request id, application/xml, root element in NS."""
    assert r.status_code == status, r.text
    request_id(r)
    assert media_type(r) == "application/xml", r.headers.get("content-type")
    root = ET.fromstring(r.content)
    assert root.tag == f"{{{NS}}}{root_tag}", r.text
    return root


def text(element: ET.Element, path: str) -> str | None:
    """The text of a namespaced child path (`a:` prefixes), or None if absent."""
    found = element.find(path, Q)
    return None if found is None else (found.text or "")


def without_status(job: dict[str, Any]) -> dict[str, Any]:
    """A job body minus its output-only status."""
    return {k: v for k, v in job.items() if k != "status"}


def dialect_of(gateway: RunningGateway) -> Any:
    """The scheduler dialect registered in the gateway."""
    found = [d for d in gateway.app.dialects if isinstance(d, SchedulerDialect)]
    assert len(found) == 1, gateway.app.dialects
    return found[0]


async def put_job(
    http: httpx.AsyncClient, job_id: str, body: dict[str, Any] | None = None, p: str = ""
) -> dict[str, Any]:
    """Create a job through the dialect; 201."""
    r = await http.put(f"{p or prefix()}/jobs/{job_id}", json=body or SIMPLE, headers=HEADERS)
    job: dict[str, Any] = json_of(r, 201)
    return job


async def get_job(http: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """A job through the dialect; 200."""
    job: dict[str, Any] = json_of(await http.get(f"{prefix()}/jobs/{job_id}", headers=HEADERS), 200)
    return job


async def list_ids(http: httpx.AsyncClient, **params: Any) -> list[str]:
    """The ids of GET P/jobs with the given query."""
    body = json_of(await http.get(f"{prefix()}/jobs", params=params, headers=HEADERS), 200)
    assert isinstance(body, list)
    return [job["id"] for job in body]


async def transition(clients: Clients, cid: str, job_id: str, state: int) -> None:
    """Move a job over the gRPC OperatorService (COMPLETED, FAULTED)."""
    await clients.operator.TransitionJob(
        operator_service_pb2.TransitionJobRequest(
            name=f"collections/{cid}/jobs/{job_id}",
            state=state,
        )
    )


async def record_run(
    clients: Clients, cid: str, job_id: str, status: int, message: str, **fields: Any
) -> None:
    """Record one run of a job over gRPC."""
    await clients.operator.RecordRun(
        operator_service_pb2.RecordRunRequest(
            parent=f"collections/{cid}/jobs/{job_id}",
            entry=resources_pb2.HistoryEntry(status=status, message=message, **fields),
        )
    )


def utc(value: str) -> datetime:
    """An RFC 3339 string as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
async def jc(http: httpx.AsyncClient) -> str:
    """The default job collection (empty body: Standard, no quota); returns P."""
    assert_empty(await http.put(jc_url(), headers=HEADERS), 202)
    return prefix()


@pytest.fixture
def cid(gateway: RunningGateway) -> str:
    """The gRPC collection id of the default job collection."""
    value: str = dialect_of(gateway).collection_id(SUB, CS, JC)
    return value


# --- routing, headers, errors -------------------------------------------------------


async def test_fixed_segments_are_case_insensitive_and_ids_keep_case(
    http: httpx.AsyncClient,
) -> None:
    """Paths: fixed segments match in any case; subscription, service, collection and job
    ids keep the case the client sent."""
    r = await http.put(
        "/MySub/cloudservices/MyCs/RESOURCES/Scheduler/JOBCOLLECTIONS/MyJc", headers=HEADERS
    )
    assert_empty(r, 202)
    weird = "/MySub/CLOUDSERVICES/MyCs/resources/SCHEDULER/~/jobcollections/MyJc"
    job = json_of(await http.put(f"{weird}/JOBS/Job1", json=SIMPLE, headers=HEADERS), 201)
    assert job["id"] == "Job1"
    same = json_of(
        await http.get(f"{prefix('MySub', 'MyCs', 'MyJc')}/jobs/Job1", headers=HEADERS), 200
    )
    assert same == job
    assert json_of(await http.get(f"{weird}/Jobs/Job1/HISTORY", headers=HEADERS), 200) == []
    r = await http.get(f"{prefix('MySub', 'MyCs', 'MyJc')}/jobs/job1", headers=HEADERS)
    assert error_code(r, 404) == "ResourceNotFound"
    r = await http.get(f"{prefix('MySub', 'MyCs', 'myjc')}/jobs/Job1", headers=HEADERS)
    assert error_code(r, 404) == "ResourceNotFound"
    root = xml_of(await http.get("/MySub/cloudServices/MyCs", headers=HEADERS), 200, "CloudService")
    assert text(root, "a:Name") == "MyCs"
    assert [text(res, "a:Name") for res in root.findall("a:Resources/a:Resource", Q)] == ["MyJc"]


@pytest.mark.parametrize(
    "version",
    [None, "2012-01-01", "2013-05-31", "garbage", ""],
    ids=["missing", "2012-01-01", "2013-05-31", "garbage", "empty"],
)
async def test_missing_or_old_version_header_is_400_missing_or_incorrect_version_header(
    http: httpx.AsyncClient, jc: str, version: str | None
) -> None:
    """Headers: x-ms-version absent, older than 2013-06-01 or not a date is 400
    MissingOrIncorrectVersionHeader, on job, collection and operation routes."""
    headers = {} if version is None else {"x-ms-version": version}
    for method, path in (
        ("GET", f"{jc}/jobs"),
        ("PUT", f"{jc}/jobs/j1"),
        ("GET", jc_url()),
        ("GET", f"/{SUB}/operations/{'0' * 32}"),
    ):
        content = orjson.dumps(SIMPLE) if method == "PUT" else None
        r = await http.request(method, path, headers=headers, content=content)
        assert error_code(r, 400) == "MissingOrIncorrectVersionHeader", (method, path)
    r = await http.get(f"{jc}/jobs/j1", headers=HEADERS)
    assert error_code(r, 404) == "ResourceNotFound"


@pytest.mark.parametrize("version", ["2013-06-01", "2014-04-01", "2016-03-01"])
async def test_version_at_or_after_2013_06_01_and_api_version_query_are_accepted(
    http: httpx.AsyncClient, jc: str, version: str
) -> None:
    """Headers: any x-ms-version >= 2013-06-01 is served; `api-version=2014-04-01` in the
    query is accepted."""
    headers = {"x-ms-version": version}
    r = await http.put(
        f"{jc}/jobs/j1", params={"api-version": "2014-04-01"}, json=SIMPLE, headers=headers
    )
    assert json_of(r, 201)["id"] == "j1"
    r = await http.get(f"{jc}/jobs", params={"api-version": "2014-04-01"}, headers=headers)
    assert [job["id"] for job in json_of(r, 200)] == ["j1"]


async def test_every_response_carries_a_distinct_request_id(
    http: httpx.AsyncClient, jc: str
) -> None:
    """Headers: successes and errors alike carry x-ms-request-id (32 hex), new each time."""
    responses = [
        await http.get(f"{jc}/jobs", headers=HEADERS),
        await http.get(f"{jc}/jobs", headers=HEADERS),
        await http.get(f"{jc}/jobs/none", headers=HEADERS),
        await http.get(f"{jc}/jobs"),
        await http.post(f"{jc}/jobs/none", headers=HEADERS),
        await http.get(f"{jc}/nowhere", headers=HEADERS),
    ]
    ids = [request_id(r) for r in responses]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    "suffix", ["/widgets", "/jobs/j1/bar", "/jobs/j1/history/x", "/jobs/j1/history/x/y"]
)
async def test_unknown_route_under_prefix_is_404_resource_not_found(
    http: httpx.AsyncClient, jc: str, suffix: str
) -> None:
    """Routing: an unknown path under the prefix is 404 ResourceNotFound in XML."""
    r = await http.get(f"{jc}{suffix}", headers=HEADERS)
    assert error_code(r, 404) == "ResourceNotFound"


@pytest.mark.parametrize(
    ("method", "suffix", "allowed"),
    [
        ("POST", "/jobs/j1", {"GET", "PUT", "PATCH", "DELETE"}),
        ("PATCH", "/jobs", {"GET", "POST", "DELETE"}),
        ("PUT", "/jobs", {"GET", "POST", "DELETE"}),
        ("POST", "/jobs/j1/history", {"GET"}),
        ("POST", "COLLECTION", {"PUT", "GET", "DELETE"}),
    ],
)
async def test_wrong_method_on_known_path_is_405_bad_request_with_allow(
    http: httpx.AsyncClient, jc: str, method: str, suffix: str, allowed: set[str]
) -> None:
    """Routing: a known path with another method is 405, Code BadRequest, and an Allow
    header naming the methods the path has."""
    path = jc_url() if suffix == "COLLECTION" else f"{jc}{suffix}"
    r = await http.request(method, path, headers=HEADERS, content=b"{}")
    assert error_code(r, 405) == "BadRequest"
    allow = {m.strip().upper() for m in r.headers["allow"].split(",")}
    assert allowed <= allow
    assert method not in allow


async def test_upstream_failure_is_500_internal_error(
    gateway: RunningGateway, http: httpx.AsyncClient, jc: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Errors: an unexpected failure behind a route is 500 InternalError in XML."""

    async def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(gateway.app.upstream, "call", boom)
    r = await http.get(f"{jc}/jobs/j1", headers=HEADERS)
    assert error_code(r, 500) == "InternalError"


async def test_stopped_grpc_server_is_503_server_busy() -> None:
    """Errors: a gateway whose gRPC server does not answer replies 503 ServerBusy."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    running, stop = await start_gateway(f"127.0.0.1:{port}")
    try:
        async with httpx.AsyncClient(base_url=running.base_url, timeout=30) as client:
            r = await client.get(f"{prefix()}/jobs/j1", headers=HEADERS)
            assert error_code(r, 503) == "ServerBusy"
    finally:
        await stop()


# --- job collections ----------------------------------------------------------------


async def test_put_job_collection_with_quota_is_202_and_get_returns_it(
    http: httpx.AsyncClient,
) -> None:
    """Collections: PUT with plan and quota is 202 with no body; GET returns Name, Type,
    State, Plan, MaxJobCount and MaxRecurrence."""
    body = collection_xml("Standard", max_jobs=10, frequency="Hour", interval=1)
    r = await http.put(jc_url(), content=body, headers=HEADERS)
    assert_empty(r, 202)
    root = xml_of(await http.get(jc_url(), headers=HEADERS), 200, "Resource")
    assert text(root, "a:Name") == JC
    assert text(root, "a:Type") == "jobcollections"
    assert text(root, "a:State") == "Started"
    assert text(root, "a:IntrinsicSettings/a:Plan") == "Standard"
    assert text(root, "a:IntrinsicSettings/a:Quota/a:MaxJobCount") == "10"
    rec = "a:IntrinsicSettings/a:Quota/a:MaxRecurrence"
    assert text(root, f"{rec}/a:Frequency") == "Hour"
    assert text(root, f"{rec}/a:Interval") == "1"


async def test_put_job_collection_with_empty_body_is_standard_without_quota(
    http: httpx.AsyncClient,
) -> None:
    """Collections: an empty PUT body means plan Standard and no quota."""
    assert_empty(await http.put(jc_url(), headers=HEADERS), 202)
    root = xml_of(await http.get(jc_url(), headers=HEADERS), 200, "Resource")
    assert text(root, "a:Name") == JC
    assert text(root, "a:State") == "Started"
    assert text(root, "a:IntrinsicSettings/a:Plan") == "Standard"
    assert root.find("a:IntrinsicSettings/a:Quota/a:MaxJobCount", Q) is None
    assert root.find("a:IntrinsicSettings/a:Quota/a:MaxRecurrence", Q) is None


async def test_put_job_collection_again_updates_plan_and_quota(
    http: httpx.AsyncClient,
) -> None:
    """Collections: a second PUT is 202 and replaces plan and quota."""
    first = collection_xml("Free", max_jobs=5, frequency="Hour", interval=1)
    assert_empty(await http.put(jc_url(), content=first, headers=HEADERS), 202)
    second = collection_xml("Standard", max_jobs=50, frequency="Minute", interval=1)
    assert_empty(await http.put(jc_url(), content=second, headers=HEADERS), 202)
    root = xml_of(await http.get(jc_url(), headers=HEADERS), 200, "Resource")
    assert text(root, "a:IntrinsicSettings/a:Plan") == "Standard"
    assert text(root, "a:IntrinsicSettings/a:Quota/a:MaxJobCount") == "50"
    rec = "a:IntrinsicSettings/a:Quota/a:MaxRecurrence"
    assert (text(root, f"{rec}/a:Frequency"), text(root, f"{rec}/a:Interval")) == ("Minute", "1")


async def test_put_job_collection_again_keeps_its_jobs(http: httpx.AsyncClient, jc: str) -> None:
    """Collections: updating a collection's plan keeps the jobs in it."""
    await put_job(http, "j1")
    assert_empty(
        await http.put(jc_url(), content=collection_xml("Standard", 10), headers=HEADERS), 202
    )
    assert await list_ids(http) == ["j1"]


@pytest.mark.parametrize(
    "body", [b"<Resource", b"not xml at all", b"<Resource xmlns='x'><Plan></Resource>"]
)
async def test_put_job_collection_malformed_xml_is_400_invalid_xml_request(
    http: httpx.AsyncClient, body: bytes
) -> None:
    """Collections: a body that is not well-formed XML is 400 InvalidXmlRequest, and no
    collection is created."""
    r = await http.put(jc_url(), content=body, headers=HEADERS)
    assert error_code(r, 400) == "InvalidXmlRequest"
    assert error_code(await http.get(jc_url(), headers=HEADERS), 404) == "ResourceNotFound"


async def test_get_unknown_job_collection_is_404_resource_not_found(
    http: httpx.AsyncClient,
) -> None:
    """Collections: GET of a collection never created is 404 ResourceNotFound."""
    r = await http.get(jc_url(jc="nope"), headers=HEADERS)
    assert error_code(r, 404) == "ResourceNotFound"


async def test_delete_job_collection_is_200_and_removes_it_and_its_jobs(
    http: httpx.AsyncClient, clients: Clients, jc: str, cid: str
) -> None:
    """Collections: DELETE is 200 with no body; the collection and its jobs are gone."""
    await put_job(http, "j1")
    await put_job(http, "j2")
    assert_empty(await http.delete(jc_url(), headers=HEADERS), 200)
    assert error_code(await http.get(jc_url(), headers=HEADERS), 404) == "ResourceNotFound"
    r = await http.get(f"{jc}/jobs/j1", headers=HEADERS)
    assert error_code(r, 404) == "ResourceNotFound"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.jobs.GetJob(job_service_pb2.GetJobRequest(name=f"collections/{cid}/jobs/j1"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert_empty(await http.put(jc_url(), headers=HEADERS), 202)
    assert await list_ids(http) == []


async def test_get_cloud_service_lists_its_job_collections(http: httpx.AsyncClient) -> None:
    """Collections: GET /{sub}/cloudServices/{cs} lists the service's collections (Name,
    Type, State), not another service's."""
    for name in ("jca", "jcb"):
        assert_empty(await http.put(jc_url(jc=name), headers=HEADERS), 202)
    assert_empty(await http.put(jc_url(cs="othercs", jc="jcc"), headers=HEADERS), 202)
    root = xml_of(
        await http.get(f"/{SUB}/cloudServices/{CS}", headers=HEADERS), 200, "CloudService"
    )
    assert text(root, "a:Name") == CS
    resources = root.findall("a:Resources/a:Resource", Q)
    assert sorted(text(res, "a:Name") or "" for res in resources) == ["jca", "jcb"]
    for res in resources:
        assert text(res, "a:Type") == "jobcollections"
        assert text(res, "a:State") == "Started"


async def test_cloud_service_without_collections_is_404_resource_not_found(
    http: httpx.AsyncClient,
) -> None:
    """Collections: a cloud service with no collections (never, or no longer) is 404."""
    r = await http.get(f"/{SUB}/cloudServices/empty", headers=HEADERS)
    assert error_code(r, 404) == "ResourceNotFound"
    assert_empty(await http.put(jc_url(cs="brief"), headers=HEADERS), 202)
    assert_empty(await http.delete(jc_url(cs="brief"), headers=HEADERS), 200)
    r = await http.get(f"/{SUB}/cloudServices/brief", headers=HEADERS)
    assert error_code(r, 404) == "ResourceNotFound"


async def test_job_in_unknown_collection_is_404_resource_not_found(
    http: httpx.AsyncClient,
) -> None:
    """Collections: creating a job (PUT or POST) before its collection exists is 404
    ResourceNotFound."""
    p = prefix(jc="nope")
    r = await http.put(f"{p}/jobs/j1", json=SIMPLE, headers=HEADERS)
    assert error_code(r, 404) == "ResourceNotFound"
    r = await http.post(f"{p}/jobs", json=SIMPLE, headers=HEADERS)
    assert error_code(r, 404) == "ResourceNotFound"
    assert error_code(await http.get(jc_url(jc="nope"), headers=HEADERS), 404) == "ResourceNotFound"


def test_collection_id_is_deterministic(gateway: RunningGateway) -> None:
    """Mapping: the gRPC collection id is a function of (sub, cs, jc), distinct per jc."""
    dialect = dialect_of(gateway)
    first = dialect.collection_id(SUB, CS, JC)
    assert isinstance(first, str) and first
    assert dialect.collection_id(SUB, CS, JC) == first
    assert dialect.collection_id(SUB, CS, "other") != first
    assert dialect.collection_id(SUB, "other", JC) != first
    assert dialect.collection_id("other", CS, JC) != first


# --- jobs: create, get, list --------------------------------------------------------


async def test_put_new_job_is_201_with_job_body(http: httpx.AsyncClient, jc: str) -> None:
    """Create job: PUT of a new id is 201 with the job, status counts at 0; a one-shot
    job whose start time has passed is due at once (nextExecutionTime: its creation,
    whole seconds)."""
    before = datetime.now(UTC).replace(microsecond=0)
    r = await http.put(f"{jc}/jobs/j1", json=SIMPLE, headers=HEADERS)
    job = json_of(r, 201)
    assert without_status(job) == {"id": "j1", **SIMPLE}
    due = datetime.fromisoformat(job["status"].pop("nextExecutionTime"))
    assert before <= due <= datetime.now(UTC)
    assert job["status"] == {"executionCount": 0, "failureCount": 0, "faultedCount": 0}


async def test_put_existing_job_replaces_it_with_200(http: httpx.AsyncClient, jc: str) -> None:
    """Create job: PUT over an existing id replaces the whole job (absent fields are
    gone) and is 200."""
    await put_job(http, "job1", SEED_003_JOB)
    replacement = {
        "action": {"type": "https", "request": {"uri": "https://other.example/", "method": "POST"}},
        "state": "disabled",
    }
    r = await http.put(f"{jc}/jobs/job1", json=replacement, headers=HEADERS)
    job = json_of(r, 200)
    assert without_status(job) == {"id": "job1", **replacement}
    assert "recurrence" not in job and "startTime" not in job
    assert await get_job(http, "job1") == job
    assert await list_ids(http) == ["job1"]


async def test_post_jobs_is_201_with_server_chosen_id(http: httpx.AsyncClient, jc: str) -> None:
    """Create job: POST P/jobs without an id is 201 and the server picks a 32-hex id."""
    r = await http.post(f"{jc}/jobs", json=SIMPLE, headers=HEADERS)
    job = json_of(r, 201)
    assert HEX32.fullmatch(job["id"]), job["id"]
    assert without_status(job) == {"id": job["id"], **SIMPLE}
    assert await get_job(http, job["id"]) == job
    second = json_of(await http.post(f"{jc}/jobs", json=SIMPLE, headers=HEADERS), 201)
    assert second["id"] != job["id"]


@pytest.mark.parametrize("body", [FULL_WEEKLY, FULL_MONTHLY], ids=["weekly", "monthly"])
async def test_job_json_round_trips_every_field(
    http: httpx.AsyncClient, jc: str, body: dict[str, Any]
) -> None:
    """Job JSON: action (type, request, retryPolicy, errorAction, queueMessage),
    recurrence (frequency, interval, endTime, schedule) and state come back as sent, in
    camelCase, with status counts."""
    job = await put_job(http, "full", body)
    assert without_status(job) == {"id": "full", **body}
    status = job["status"]
    assert {k: status[k] for k in ("executionCount", "failureCount", "faultedCount")} == {
        "executionCount": 0,
        "failureCount": 0,
        "faultedCount": 0,
    }
    assert "lastExecutionTime" not in status
    assert set(status) <= {"executionCount", "failureCount", "faultedCount", "nextExecutionTime"}
    assert await get_job(http, "full") == job


async def test_absent_job_fields_are_omitted(http: httpx.AsyncClient, jc: str) -> None:
    """Job JSON: fields the job does not have are left out, the three counts are not."""
    minimal = {
        "action": {"type": "http", "request": {"uri": "http://example.org/", "method": "GET"}}
    }
    job = await put_job(http, "min", minimal)
    assert "recurrence" not in job
    assert set(job["action"]) == {"type", "request"}
    assert set(job["action"]["request"]) == {"uri", "method"}
    assert job["status"]["executionCount"] == 0
    assert job["status"]["failureCount"] == 0
    assert job["status"]["faultedCount"] == 0
    assert "lastExecutionTime" not in job["status"]
    assert job["state"] == "enabled"


async def test_authentication_is_stored_but_never_returned(
    http: httpx.AsyncClient, jc: str
) -> None:
    """Job JSON (S13): action.request.authentication (and the error action's) is accepted
    and never appears in PUT, GET, list or PATCH responses."""
    body = copy.deepcopy(SIMPLE)
    auth = {"type": "basic", "username": "u", "password": "p"}
    body["action"]["request"]["authentication"] = auth
    body["action"]["errorAction"] = {
        "type": "http",
        "request": {"uri": "http://example.org/err", "method": "POST", "authentication": auth},
    }
    expected = copy.deepcopy(body)
    del expected["action"]["request"]["authentication"]
    del expected["action"]["errorAction"]["request"]["authentication"]
    created = await put_job(http, "secret", body)
    assert without_status(created) == {"id": "secret", **expected}
    fetched = await get_job(http, "secret")
    listed = json_of(await http.get(f"{jc}/jobs", headers=HEADERS), 200)
    r = await http.patch(f"{jc}/jobs/secret", json={"state": "disabled"}, headers=HEADERS)
    patched = json_of(r, 202)
    for response in (created, fetched, listed[0], patched):
        assert "authentication" not in orjson.dumps(response).decode()
        assert "password" not in orjson.dumps(response).decode()
    assert without_status(patched) == {"id": "secret", **expected, "state": "disabled"}


async def test_get_job_is_200_with_job_body(http: httpx.AsyncClient, jc: str) -> None:
    """Get job: 200 with the same body the create returned."""
    created = await put_job(http, "job1", SEED_003_JOB)
    r = await http.get(f"{jc}/jobs/job1", headers=HEADERS)
    assert json_of(r, 200) == created


async def test_get_unknown_job_is_404_resource_not_found(http: httpx.AsyncClient, jc: str) -> None:
    """Get job: an unknown id is 404 ResourceNotFound."""
    r = await http.get(f"{jc}/jobs/nope", headers=HEADERS)
    assert error_code(r, 404) == "ResourceNotFound"


async def test_list_jobs_is_200_array_ordered_by_id(http: httpx.AsyncClient, jc: str) -> None:
    """List jobs: 200 JSON array of whole jobs, ordered by id."""
    assert json_of(await http.get(f"{jc}/jobs", headers=HEADERS), 200) == []
    created = {}
    for job_id in ("b", "c", "a"):
        created[job_id] = await put_job(http, job_id)
    body = json_of(await http.get(f"{jc}/jobs", headers=HEADERS), 200)
    assert [job["id"] for job in body] == ["a", "b", "c"]
    assert body == [created["a"], created["b"], created["c"]]


async def test_list_jobs_filters_by_state(
    http: httpx.AsyncClient, clients: Clients, jc: str, cid: str
) -> None:
    """List jobs: `$filter=state eq X` for enabled, disabled, completed, faulted; the
    value's case does not matter."""
    await put_job(http, "a")
    await put_job(http, "b", {**SIMPLE, "state": "disabled"})
    await put_job(http, "c")
    await put_job(http, "d")
    await put_job(http, "e")
    await transition(clients, cid, "c", resources_pb2.COMPLETED)
    await transition(clients, cid, "d", resources_pb2.FAULTED)
    assert await list_ids(http, **{"$filter": "state eq enabled"}) == ["a", "e"]
    assert await list_ids(http, **{"$filter": "state eq disabled"}) == ["b"]
    assert await list_ids(http, **{"$filter": "state eq completed"}) == ["c"]
    assert await list_ids(http, **{"$filter": "state eq faulted"}) == ["d"]
    assert await list_ids(http, **{"$filter": "state eq Enabled"}) == ["a", "e"]
    assert await list_ids(http, **{"$filter": "state eq DISABLED"}) == ["b"]
    body = json_of(
        await http.get(f"{jc}/jobs", params={"$filter": "state eq completed"}, headers=HEADERS), 200
    )
    assert body[0]["state"] == "completed"


async def test_list_jobs_top_and_skip_page_in_id_order(http: httpx.AsyncClient, jc: str) -> None:
    """List jobs: `$top` limits, `$skip` skips, both in id order."""
    for job_id in ("j1", "j2", "j3", "j4", "j5"):
        await put_job(http, job_id)
    assert await list_ids(http, **{"$top": "2"}) == ["j1", "j2"]
    assert await list_ids(http, **{"$skip": "2", "$top": "2"}) == ["j3", "j4"]
    assert await list_ids(http, **{"$skip": "4"}) == ["j5"]
    assert await list_ids(http, **{"$skip": "0"}) == ["j1", "j2", "j3", "j4", "j5"]
    assert await list_ids(http, **{"$skip": "9"}) == []
    assert await list_ids(http, **{"$filter": "state eq enabled", "$top": "1", "$skip": "1"}) == [
        "j2"
    ]


async def test_list_jobs_top_defaults_to_100_and_allows_100(
    http: httpx.AsyncClient, clients: Clients, jc: str, cid: str
) -> None:
    """List jobs: without `$top` at most 100 jobs; `$top=100` is allowed."""
    for i in range(101):
        await clients.jobs.CreateJob(
            job_service_pb2.CreateJobRequest(
                parent=f"collections/{cid}",
                job_id=f"j{i:03d}",
                job=resources_pb2.Job(scheduled=resources_pb2.ScheduledSpec()),
            )
        )
    expected = [f"j{i:03d}" for i in range(100)]
    assert await list_ids(http) == expected
    assert await list_ids(http, **{"$top": "100"}) == expected
    assert await list_ids(http, **{"$skip": "100"}) == ["j100"]


@pytest.mark.parametrize(
    "params",
    [
        {"$filter": "state eq"},
        {"$filter": "state enabled"},
        {"$filter": "state eq enabled and"},
        {"$filter": "(state eq enabled"},
        {"$top": "0"},
        {"$top": "101"},
        {"$top": "-1"},
        {"$top": "abc"},
        {"$top": "1.5"},
        {"$top": ""},
        {"$skip": "-1"},
        {"$skip": "x"},
    ],
    ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()),
)
async def test_list_jobs_bad_query_is_400_missing_or_invalid_required_query_parameter(
    http: httpx.AsyncClient, jc: str, params: dict[str, str]
) -> None:
    """List jobs: bad `$filter` syntax, `$top` outside 1..100, negative `$skip` or
    non-numbers are 400 MissingOrInvalidRequiredQueryParameter."""
    await put_job(http, "j1")
    r = await http.get(f"{jc}/jobs", params=params, headers=HEADERS)
    assert error_code(r, 400) == "MissingOrInvalidRequiredQueryParameter"


# --- jobs: update -------------------------------------------------------------------


async def test_seed_003_patch_state_disabled_is_202_with_whole_job(
    http: httpx.AsyncClient, jc: str
) -> None:
    """Update job (seed 003): PATCH {"state":"disabled"} is 202 and the body is the whole
    job, field by field as in the sample response."""
    await put_job(http, "job1", SEED_003_JOB)
    r = await http.patch(
        f"{jc}/jobs/job1",
        content=b'{ "state": "disabled"}',
        headers={**HEADERS, "Content-Type": "application/json"},
    )
    body = json_of(r, 202)
    assert body["id"] == "job1"
    assert body["startTime"] == "2013-01-30T20:08:00Z"
    assert body["action"]["request"]["uri"] == "http://example.org/"
    assert body["action"]["request"]["method"] == "GET"
    assert body["action"]["request"]["headers"] == {"content-Type": "text/plain"}
    assert body["action"]["type"] == "http"
    assert body["recurrence"] == {"frequency": "minute", "count": 10, "interval": 30}
    assert body["state"] == "disabled"
    assert body["status"] == {"executionCount": 0, "failureCount": 0, "faultedCount": 0}
    assert set(body) == {"id", "startTime", "action", "recurrence", "state", "status"}
    assert await get_job(http, "job1") == body


async def test_patch_merges_fields_not_given_keep_their_value(
    http: httpx.AsyncClient, jc: str
) -> None:
    """Update job (S6): PATCH changes only the fields it carries; enabled <-> disabled
    both ways."""
    await put_job(http, "job1", SEED_003_JOB)
    r = await http.patch(
        f"{jc}/jobs/job1", json={"startTime": "2014-02-01T10:00:00Z"}, headers=HEADERS
    )
    body = json_of(r, 202)
    assert without_status(body) == {**SEED_003_JOB, "startTime": "2014-02-01T10:00:00Z"}
    body = json_of(
        await http.patch(f"{jc}/jobs/job1", json={"state": "disabled"}, headers=HEADERS), 202
    )
    assert body["state"] == "disabled"
    body = json_of(
        await http.patch(f"{jc}/jobs/job1", json={"state": "enabled"}, headers=HEADERS), 202
    )
    assert without_status(body) == {**SEED_003_JOB, "startTime": "2014-02-01T10:00:00Z"}
    assert await get_job(http, "job1") == body


async def test_patch_with_same_id_as_url_is_accepted(http: httpx.AsyncClient, jc: str) -> None:
    """Update job: an `id` in the body equal to the URL's is fine (202)."""
    await put_job(http, "job1", SEED_003_JOB)
    r = await http.patch(
        f"{jc}/jobs/job1", json={"id": "job1", "state": "disabled"}, headers=HEADERS
    )
    body = json_of(r, 202)
    assert without_status(body) == {**SEED_003_JOB, "state": "disabled"}


@pytest.mark.parametrize(
    "patch",
    [
        {"status": {"executionCount": 5}},
        {"status": {}},
        {"state": "disabled", "status": {"failureCount": 0}},
        {"id": "other"},
        {"id": "JOB1", "state": "disabled"},
        {"state": "completed"},
        {"state": "faulted"},
    ],
    ids=[
        "status",
        "empty-status",
        "status-with-state",
        "other-id",
        "id-other-case",
        "state-completed",
        "state-faulted",
    ],
)
async def test_patch_refusal_is_400_bad_request_and_job_unchanged(
    http: httpx.AsyncClient, jc: str, patch: dict[str, Any]
) -> None:
    """Update job refusals: any `status`, an `id` other than the URL's, `state` completed
    or faulted are 400 BadRequest; the job is unchanged."""
    await put_job(http, "job1")
    before = await get_job(http, "job1")
    r = await http.patch(f"{jc}/jobs/job1", json=patch, headers=HEADERS)
    assert error_code(r, 400) == "BadRequest"
    assert await get_job(http, "job1") == before


@pytest.mark.parametrize(
    "state", [resources_pb2.COMPLETED, resources_pb2.FAULTED], ids=["completed", "faulted"]
)
async def test_patch_of_completed_or_faulted_job_is_409_conflict_error(
    http: httpx.AsyncClient, clients: Clients, jc: str, cid: str, state: int
) -> None:
    """Update job (S4): a completed or faulted job is final: PATCH is 409 ConflictError
    and the job is unchanged."""
    await put_job(http, "job1")
    await transition(clients, cid, "job1", state)
    before = await get_job(http, "job1")
    assert before["state"] == ("completed" if state == resources_pb2.COMPLETED else "faulted")
    for patch in ({"state": "enabled"}, {"startTime": "2014-01-01T00:00:00Z"}):
        r = await http.patch(f"{jc}/jobs/job1", json=patch, headers=HEADERS)
        assert error_code(r, 409) == "ConflictError"
    assert await get_job(http, "job1") == before


async def test_patch_unknown_job_is_404_resource_not_found(
    http: httpx.AsyncClient, jc: str
) -> None:
    """Update job: PATCH of an unknown id is 404 ResourceNotFound."""
    r = await http.patch(f"{jc}/jobs/nope", json={"state": "disabled"}, headers=HEADERS)
    assert error_code(r, 404) == "ResourceNotFound"


# --- jobs: bad bodies ---------------------------------------------------------------


def _padded_job(size: int) -> bytes:
    """A valid job JSON of exactly `size` bytes (padding in the request body)."""
    body = copy.deepcopy(SIMPLE)
    body["action"]["request"]["body"] = ""
    base = len(orjson.dumps(body))
    body["action"]["request"]["body"] = "x" * (size - base)
    raw = orjson.dumps(body)
    assert len(raw) == size
    return raw


@pytest.mark.parametrize("method", ["PUT", "POST", "PATCH"])
async def test_body_over_16_kib_is_400_bad_request(
    http: httpx.AsyncClient, jc: str, method: str
) -> None:
    """Bodies: a job body over 16 KiB is 400 BadRequest (not 413) and changes nothing."""
    await put_job(http, "j1")
    before = await get_job(http, "j1")
    path = f"{jc}/jobs" if method == "POST" else f"{jc}/jobs/j1"
    r = await http.request(
        method,
        path,
        content=_padded_job(16 * 1024 + 1),
        headers={**HEADERS, "Content-Type": "application/json"},
    )
    assert error_code(r, 400) == "BadRequest"
    assert await get_job(http, "j1") == before
    assert await list_ids(http) == ["j1"]


async def test_body_of_exactly_16_kib_is_accepted(http: httpx.AsyncClient, jc: str) -> None:
    """Bodies: 16 KiB is the limit itself, not over it: 201."""
    r = await http.put(
        f"{jc}/jobs/j1",
        content=_padded_job(16 * 1024),
        headers={**HEADERS, "Content-Type": "application/json"},
    )
    job = json_of(r, 201)
    assert len(job["action"]["request"]["body"]) > 16000


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b'{"state": "enabled"', b"", b"\xff\xfe"],
    ids=["garbage", "truncated", "empty", "not-utf8"],
)
@pytest.mark.parametrize("method", ["PUT", "POST", "PATCH"])
async def test_malformed_json_is_400_bad_request(
    http: httpx.AsyncClient, jc: str, raw: bytes, method: str
) -> None:
    """Bodies: malformed JSON is 400 BadRequest and changes nothing."""
    await put_job(http, "j1")
    before = await get_job(http, "j1")
    path = f"{jc}/jobs" if method == "POST" else f"{jc}/jobs/j1"
    r = await http.request(
        method, path, content=raw, headers={**HEADERS, "Content-Type": "application/json"}
    )
    assert error_code(r, 400) == "BadRequest"
    assert await get_job(http, "j1") == before
    assert await list_ids(http) == ["j1"]


@pytest.mark.parametrize(
    "body",
    [
        {**SIMPLE, "bogus": 1},
        {**SIMPLE, "action": {**SIMPLE["action"], "colour": "red"}},
        {
            **SIMPLE,
            "action": {
                "type": "http",
                "request": {"uri": "http://example.org/", "method": "GET", "extra": True},
            },
        },
        {**SIMPLE, "recurrence": {"frequency": "hour", "interval": 1, "often": True}},
    ],
    ids=["top", "action", "request", "recurrence"],
)
@pytest.mark.parametrize("method", ["PUT", "POST", "PATCH"])
async def test_unknown_fields_are_400_bad_request(
    http: httpx.AsyncClient, jc: str, body: dict[str, Any], method: str
) -> None:
    """Bodies: an unknown field at any depth is 400 BadRequest and changes nothing."""
    await put_job(http, "j1")
    before = await get_job(http, "j1")
    path = f"{jc}/jobs" if method == "POST" else f"{jc}/jobs/j1"
    r = await http.request(method, path, json=body, headers=HEADERS)
    assert error_code(r, 400) == "BadRequest"
    assert await get_job(http, "j1") == before
    assert await list_ids(http) == ["j1"]


# --- quota --------------------------------------------------------------------------


async def test_job_count_over_max_job_count_is_409_conflict_error(
    http: httpx.AsyncClient,
) -> None:
    """Quota (S11): a job beyond MaxJobCount (PUT or POST) is 409 ConflictError and is not
    created."""
    body = collection_xml("Standard", max_jobs=2)
    assert_empty(await http.put(jc_url(), content=body, headers=HEADERS), 202)
    await put_job(http, "j1")
    await put_job(http, "j2")
    r = await http.put(f"{prefix()}/jobs/j3", json=SIMPLE, headers=HEADERS)
    assert error_code(r, 409) == "ConflictError"
    r = await http.post(f"{prefix()}/jobs", json=SIMPLE, headers=HEADERS)
    assert error_code(r, 409) == "ConflictError"
    assert await list_ids(http) == ["j1", "j2"]
    assert error_code(await http.get(f"{prefix()}/jobs/j3", headers=HEADERS), 404) == (
        "ResourceNotFound"
    )


async def test_replacing_a_job_at_the_job_count_quota_is_allowed(
    http: httpx.AsyncClient,
) -> None:
    """Quota (S11): PUT over an existing id adds no job, so a full collection accepts it."""
    body = collection_xml("Standard", max_jobs=1)
    assert_empty(await http.put(jc_url(), content=body, headers=HEADERS), 202)
    await put_job(http, "j1")
    r = await http.put(f"{prefix()}/jobs/j1", json={**SIMPLE, "state": "disabled"}, headers=HEADERS)
    assert json_of(r, 200)["state"] == "disabled"


async def test_recurrence_more_frequent_than_max_recurrence_is_409_conflict_error(
    http: httpx.AsyncClient,
) -> None:
    """Quota (S12): with MaxRecurrence Hour/1, a minute/30 job (PUT or POST) is 409
    ConflictError and not created; hour/1 and minute/60 fit."""
    body = collection_xml("Standard", frequency="Hour", interval=1)
    assert_empty(await http.put(jc_url(), content=body, headers=HEADERS), 202)
    fast = {**SIMPLE, "recurrence": {"frequency": "minute", "interval": 30}}
    r = await http.put(f"{prefix()}/jobs/fast", json=fast, headers=HEADERS)
    assert error_code(r, 409) == "ConflictError"
    r = await http.post(f"{prefix()}/jobs", json=fast, headers=HEADERS)
    assert error_code(r, 409) == "ConflictError"
    assert await list_ids(http) == []
    await put_job(http, "hourly", {**SIMPLE, "recurrence": {"frequency": "hour", "interval": 1}})
    await put_job(http, "sixty", {**SIMPLE, "recurrence": {"frequency": "minute", "interval": 60}})
    assert await list_ids(http) == ["hourly", "sixty"]


async def test_patch_to_recurrence_more_frequent_than_max_recurrence_is_409(
    http: httpx.AsyncClient,
) -> None:
    """Quota (S12): a PATCH making the recurrence more frequent than MaxRecurrence is 409
    ConflictError; the job is unchanged."""
    body = collection_xml("Standard", frequency="Hour", interval=1)
    assert_empty(await http.put(jc_url(), content=body, headers=HEADERS), 202)
    await put_job(http, "hourly", {**SIMPLE, "recurrence": {"frequency": "hour", "interval": 1}})
    before = await get_job(http, "hourly")
    r = await http.patch(
        f"{prefix()}/jobs/hourly",
        json={"recurrence": {"frequency": "minute", "interval": 30}},
        headers=HEADERS,
    )
    assert error_code(r, 409) == "ConflictError"
    assert await get_job(http, "hourly") == before


# --- jobs: delete -------------------------------------------------------------------


async def test_seed_000_delete_job_is_200_empty_then_404_and_404_again(
    http: httpx.AsyncClient, jc: str
) -> None:
    """Delete job (seed 000, S9): 200 with Content-Length 0; then GET and a second
    DELETE are 404 ResourceNotFound."""
    await put_job(http, "job1", SEED_003_JOB)
    r = await http.delete(
        f"{jc}/jobs/job1",
        params={"api-version": "2014-04-01"},
        headers={**HEADERS, "Accept": "application/json"},
    )
    assert_empty(r, 200)
    assert r.headers["content-length"] == "0"
    r = await http.get(f"{jc}/jobs/job1", headers=HEADERS)
    assert error_code(r, 404) == "ResourceNotFound"
    r = await http.delete(f"{jc}/jobs/job1", headers=HEADERS)
    assert error_code(r, 404) == "ResourceNotFound"
    assert await list_ids(http) == []


async def test_delete_unknown_job_is_404_resource_not_found(
    http: httpx.AsyncClient, jc: str
) -> None:
    """Delete job: an id that never existed is 404 ResourceNotFound."""
    r = await http.delete(f"{jc}/jobs/never", headers=HEADERS)
    assert error_code(r, 404) == "ResourceNotFound"


@pytest.mark.parametrize(
    "state", [resources_pb2.COMPLETED, resources_pb2.FAULTED], ids=["completed", "faulted"]
)
async def test_delete_completed_or_faulted_job_is_allowed(
    http: httpx.AsyncClient, clients: Clients, jc: str, cid: str, state: int
) -> None:
    """Delete job (S5): final states can be deleted: 200, then 404."""
    await put_job(http, "job1")
    await transition(clients, cid, "job1", state)
    assert_empty(await http.delete(f"{jc}/jobs/job1", headers=HEADERS), 200)
    assert error_code(await http.get(f"{jc}/jobs/job1", headers=HEADERS), 404) == "ResourceNotFound"


async def test_delete_job_purges_its_history(
    http: httpx.AsyncClient, clients: Clients, jc: str, cid: str
) -> None:
    """Delete job (seed 000): history is purged; a new job with the same id starts with
    an empty history."""
    await put_job(http, "job1")
    await record_run(clients, cid, "job1", resources_pb2.HistoryEntry.FAILED, "boom")
    r = await http.get(f"{jc}/jobs/job1/history", headers=HEADERS)
    assert len(json_of(r, 200)) == 1
    assert_empty(await http.delete(f"{jc}/jobs/job1", headers=HEADERS), 200)
    await put_job(http, "job1")
    assert json_of(await http.get(f"{jc}/jobs/job1/history", headers=HEADERS), 200) == []


async def test_delete_all_jobs_is_200_empty_and_empties_the_collection(
    http: httpx.AsyncClient, jc: str
) -> None:
    """Delete all jobs (seed 000, S10): DELETE P/jobs is 200 with no body; GET P/jobs is
    [] and the collection itself stays."""
    for job_id in ("a", "b", "c"):
        await put_job(http, job_id)
    r = await http.delete(f"{jc}/jobs", params={"api-version": "2014-04-01"}, headers=HEADERS)
    assert_empty(r, 200)
    assert json_of(await http.get(f"{jc}/jobs", headers=HEADERS), 200) == []
    assert error_code(await http.get(f"{jc}/jobs/a", headers=HEADERS), 404) == "ResourceNotFound"
    xml_of(await http.get(jc_url(), headers=HEADERS), 200, "Resource")
    await put_job(http, "a")


# --- history ------------------------------------------------------------------------


async def test_history_is_empty_array_until_runs_are_recorded(
    http: httpx.AsyncClient, jc: str
) -> None:
    """History: a job that never ran has history []."""
    await put_job(http, "job1")
    assert json_of(await http.get(f"{jc}/jobs/job1/history", headers=HEADERS), 200) == []


async def test_history_lists_runs_newest_first_with_entry_fields(
    http: httpx.AsyncClient, clients: Clients, jc: str, cid: str
) -> None:
    """History: recorded runs come newest first as {jobId, timestamp, startTime, endTime,
    state, status, message, retryCount, repeatCount, actionName}; the job's status
    counts them."""
    await put_job(http, "job1")
    started, ended = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
    started.FromJsonString("2013-08-30T20:55:01Z")
    ended.FromJsonString("2013-08-30T20:55:02Z")
    await record_run(clients, cid, "job1", resources_pb2.HistoryEntry.COMPLETED, "first")
    await record_run(
        clients,
        cid,
        "job1",
        resources_pb2.HistoryEntry.FAILED,
        "boom",
        start_time=started,
        end_time=ended,
        retry_count=1,
        repeat_count=2,
        action_name="MainAction",
    )
    body = json_of(await http.get(f"{jc}/jobs/job1/history", headers=HEADERS), 200)
    assert [entry["message"] for entry in body] == ["boom", "first"]
    newest = body[0]
    assert set(newest) == {
        "jobId",
        "timestamp",
        "startTime",
        "endTime",
        "state",
        "status",
        "message",
        "retryCount",
        "repeatCount",
        "actionName",
    }
    assert newest["jobId"] == "job1"
    assert newest["state"] == "enabled"
    assert newest["status"] == "failed"
    assert utc(newest["startTime"]) == utc("2013-08-30T20:55:01Z")
    assert utc(newest["endTime"]) == utc("2013-08-30T20:55:02Z")
    assert (newest["retryCount"], newest["repeatCount"], newest["actionName"]) == (
        1,
        2,
        "MainAction",
    )
    assert utc(newest["timestamp"]) >= utc(body[1]["timestamp"])
    assert body[1]["status"] == "completed"
    job = await get_job(http, "job1")
    assert job["status"]["executionCount"] == 2
    assert job["status"]["failureCount"] == 1
    assert job["status"]["faultedCount"] == 0
    assert utc(job["status"]["lastExecutionTime"]) == utc("2013-08-30T20:55:02Z")


async def test_history_filter_status_and_top_skip(
    http: httpx.AsyncClient, clients: Clients, jc: str, cid: str
) -> None:
    """History: `$filter=status eq failed` keeps failed runs; `$top` and `$skip` page
    newest first; postponed is reported as such."""
    await put_job(http, "job1")
    statuses = [
        (resources_pb2.HistoryEntry.FAILED, "r1"),
        (resources_pb2.HistoryEntry.COMPLETED, "r2"),
        (resources_pb2.HistoryEntry.FAILED, "r3"),
        (resources_pb2.HistoryEntry.POSTPONED, "r4"),
        (resources_pb2.HistoryEntry.FAILED, "r5"),
    ]
    for status, message in statuses:
        await record_run(clients, cid, "job1", status, message)
    url = f"{jc}/jobs/job1/history"

    async def messages(**params: str) -> list[str]:
        body = json_of(await http.get(url, params=params, headers=HEADERS), 200)
        return [entry["message"] for entry in body]

    assert await messages() == ["r5", "r4", "r3", "r2", "r1"]
    assert await messages(**{"$filter": "status eq failed"}) == ["r5", "r3", "r1"]
    assert await messages(**{"$top": "2"}) == ["r5", "r4"]
    assert await messages(**{"$skip": "1", "$top": "2"}) == ["r4", "r3"]
    assert await messages(**{"$filter": "status eq failed", "$skip": "1", "$top": "1"}) == ["r3"]
    body = json_of(await http.get(url, params={"$skip": "1", "$top": "1"}, headers=HEADERS), 200)
    assert body[0]["status"] == "postponed"


# --- operation status ---------------------------------------------------------------


async def test_operation_status_of_a_success_is_succeeded_with_its_http_status(
    http: httpx.AsyncClient, jc: str
) -> None:
    """Operation status: a request id from a successful response is Succeeded with the
    original status code."""
    r = await http.put(f"{jc}/jobs/j1", json=SIMPLE, headers=HEADERS)
    rid = request_id(r)
    assert r.status_code == 201
    op = xml_of(await http.get(f"/{SUB}/operations/{rid}", headers=HEADERS), 200, "Operation")
    assert text(op, "a:ID") == rid
    assert text(op, "a:Status") == "Succeeded"
    assert text(op, "a:HttpStatusCode") == "201"
    assert op.find("a:Error", Q) is None
    r = await http.delete(f"{jc}/jobs/j1", headers=HEADERS)
    op = xml_of(
        await http.get(f"/{SUB}/operations/{request_id(r)}", headers=HEADERS), 200, "Operation"
    )
    assert (text(op, "a:Status"), text(op, "a:HttpStatusCode")) == ("Succeeded", "200")


async def test_operation_status_of_a_failure_is_failed_with_its_error(
    http: httpx.AsyncClient, jc: str
) -> None:
    """Operation status: a request id from an error response is Failed with the original
    status and the error's Code and Message."""
    r = await http.delete(f"{jc}/jobs/nope", headers=HEADERS)
    assert error_code(r, 404) == "ResourceNotFound"
    rid = request_id(r)
    op = xml_of(await http.get(f"/{SUB}/operations/{rid}", headers=HEADERS), 200, "Operation")
    assert text(op, "a:ID") == rid
    assert text(op, "a:Status") == "Failed"
    assert text(op, "a:HttpStatusCode") == "404"
    assert text(op, "a:Error/a:Code") == "ResourceNotFound"
    assert (text(op, "a:Error/a:Message") or "").strip()


async def test_operation_status_of_unknown_id_is_404_resource_not_found(
    http: httpx.AsyncClient, jc: str
) -> None:
    """Operation status: an id the dialect never issued is 404 ResourceNotFound."""
    r = await http.get(f"/{SUB}/operations/{'ab' * 16}", headers=HEADERS)
    assert error_code(r, 404) == "ResourceNotFound"


# --- cross-protocol -----------------------------------------------------------------


async def test_grpc_created_job_is_visible_and_deletable_through_the_dialect(
    http: httpx.AsyncClient, clients: Clients, jc: str, cid: str
) -> None:
    """Mapping: a job created over gRPC in the mapped collection is listed and served by
    the dialect, and deleting it there deletes it for gRPC too."""
    await clients.jobs.CreateJob(
        job_service_pb2.CreateJobRequest(
            parent=f"collections/{cid}",
            job_id="g1",
            job=resources_pb2.Job(scheduled=resources_pb2.ScheduledSpec()),
        )
    )
    job = await get_job(http, "g1")
    assert job["id"] == "g1"
    assert job["state"] == "enabled"
    assert job["status"]["executionCount"] == 0
    assert await list_ids(http) == ["g1"]
    assert_empty(await http.delete(f"{jc}/jobs/g1", headers=HEADERS), 200)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.jobs.GetJob(job_service_pb2.GetJobRequest(name=f"collections/{cid}/jobs/g1"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_dialect_created_job_deleted_over_grpc_is_404_in_the_dialect(
    http: httpx.AsyncClient, clients: Clients, jc: str, cid: str
) -> None:
    """Mapping: a job created through the dialect is a gRPC job of the mapped collection;
    deleted over gRPC, the dialect's GET is 404 ResourceNotFound."""
    await put_job(http, "d1", SEED_003_JOB)
    grpc_job = await clients.jobs.GetJob(
        job_service_pb2.GetJobRequest(name=f"collections/{cid}/jobs/d1")
    )
    assert grpc_job.state == resources_pb2.ENABLED
    assert grpc_job.scheduled.action.request.uri == "http://example.org/"
    await clients.jobs.DeleteJob(
        job_service_pb2.DeleteJobRequest(name=f"collections/{cid}/jobs/d1")
    )
    r = await http.get(f"{jc}/jobs/d1", headers=HEADERS)
    assert error_code(r, 404) == "ResourceNotFound"


# --- one call per request (the dialect seam) --------------------------------------------


async def test_put_job_is_one_upsert_201_when_it_creates_200_when_it_replaces(
    gateway: RunningGateway, http: httpx.AsyncClient, jc: str, cid: str
) -> None:
    """Create job: PUT is one UpdateJob (allow_missing, mask `*`) on the derived job name:
    201 with the job when it created it, 200 when it replaced one (before: CreateJob, then
    UpdateJob on JOB_ALREADY_EXISTS)."""
    seen = capture_requests(gateway)
    r = await http.put(f"{jc}/jobs/j1", json=SIMPLE, headers=HEADERS)
    created = json_of(r, 201)
    assert created == {"id": "j1", **SIMPLE, "status": created["status"]}
    replacement = {**SIMPLE, "state": "disabled"}
    replaced = json_of(await http.put(f"{jc}/jobs/j1", json=replacement, headers=HEADERS), 200)
    assert without_status(replaced) == {"id": "j1", **replacement}
    assert [name for name, _ in seen] == ["UpdateJob", "UpdateJob"]
    request = seen[0][1]
    assert (request.allow_missing, list(request.update_mask.paths)) == (True, ["*"])
    assert request.job.name == f"collections/{cid}/jobs/j1"
    assert await get_job(http, "j1") == replaced


async def test_list_jobs_with_a_trailing_slash_is_the_list(
    gateway: RunningGateway, http: httpx.AsyncClient, jc: str
) -> None:
    """List jobs: `GET …/jobs/` (as the Service Management client's get_all_jobs sends
    it) lists like `GET …/jobs`, with the same query, in one ListJobs (it was 404)."""
    first = await put_job(http, "a")
    await put_job(http, "b", {**SIMPLE, "state": "disabled"})
    calls = record_rpcs(gateway.app)
    r = await http.get(f"{jc}/jobs/", params={"api-version": "2014-04-01"}, headers=HEADERS)
    assert [job["id"] for job in json_of(r, 200)] == ["a", "b"]
    r = await http.get(f"{jc}/jobs/", params={"$filter": "state eq enabled"}, headers=HEADERS)
    assert json_of(r, 200) == [first]
    assert calls == ["ListJobs", "ListJobs"]


async def test_list_filter_travels_as_a_structured_filter_never_as_filter_text(
    gateway: RunningGateway, http: httpx.AsyncClient, jc: str, cid: str
) -> None:
    """List jobs: `$filter=state eq X`, `$top` and `$skip` become one ListJobs with a
    structured filter (no text spliced into `filter`); a value that is not a state word is
    400 MissingOrInvalidRequiredQueryParameter before any call."""
    await put_job(http, "a")
    seen = capture_requests(gateway)
    params = {"$filter": "state eq 'Enabled'", "$top": "5", "$skip": "1"}
    assert json_of(await http.get(f"{jc}/jobs", params=params, headers=HEADERS), 200) == []
    comparison = resources_pb2.Comparison(
        field="state", operator=resources_pb2.Comparison.EQUAL, text="ENABLED"
    )
    assert seen == [
        ("ListJobs", job_service_pb2.ListJobsRequest(
            parent=f"collections/{cid}", page_size=5, skip=1,
            structured_filter=resources_pb2.Filter(comparison=comparison)))
    ]  # fmt: skip
    raw = 'state eq enabled" OR id != "x'
    r = await http.get(f"{jc}/jobs", params={"$filter": raw}, headers=HEADERS)
    assert_error(r, 400, "MissingOrInvalidRequiredQueryParameter",
                 f"Unsupported $filter: {raw!r}.")  # fmt: skip
    assert len(seen) == 1


async def test_empty_patch_is_one_update_job_that_changes_nothing(
    gateway: RunningGateway, http: httpx.AsyncClient, clients: Clients, jc: str, cid: str
) -> None:
    """Update job: PATCH `{}` (or only the URL's own id) is one UpdateJob with no paths,
    never a GetJob: 202 with the job as it is, same etag and update time."""
    await put_job(http, "job1", SEED_003_JOB)
    name = f"collections/{cid}/jobs/job1"
    before = await clients.jobs.GetJob(job_service_pb2.GetJobRequest(name=name))
    seen = capture_requests(gateway)
    for body in ({}, {"id": "job1"}):
        r = await http.patch(f"{jc}/jobs/job1", json=body, headers=HEADERS)
        assert without_status(json_of(r, 202)) == {"id": "job1", **SEED_003_JOB}
    expected = job_service_pb2.UpdateJobRequest(job=resources_pb2.Job(name=name))
    assert seen == [("UpdateJob", expected), ("UpdateJob", expected)]
    after = await clients.jobs.GetJob(job_service_pb2.GetJobRequest(name=name))
    assert (after.etag, after.update_time) == (before.etag, before.update_time)


@pytest.mark.parametrize(
    ("state", "word"),
    [(resources_pb2.COMPLETED, "completed"), (resources_pb2.FAULTED, "faulted")],
    ids=["completed", "faulted"],
)
async def test_empty_patch_of_a_completed_or_faulted_job_is_409_conflict_error(
    gateway: RunningGateway,
    http: httpx.AsyncClient,
    clients: Clients,
    jc: str,
    cid: str,
    state: int,
    word: str,
) -> None:
    """Update job (S4, C29): even a PATCH that changes nothing is refused on a final job,
    by the core, in one UpdateJob: 409 ConflictError; the job is unchanged."""
    await put_job(http, "job1")
    await transition(clients, cid, "job1", state)
    before = await get_job(http, "job1")
    calls = record_rpcs(gateway.app)
    r = await http.patch(f"{jc}/jobs/job1", json={}, headers=HEADERS)
    assert_error(r, 409, "ConflictError", f"The job 'job1' is {word} and cannot be updated.")
    assert calls == ["UpdateJob"]
    assert await get_job(http, "job1") == before


async def test_history_filters_by_the_jobs_state_when_recorded(
    http: httpx.AsyncClient, clients: Clients, jc: str, cid: str
) -> None:
    """History: `$filter=state eq enabled|disabled|completed|faulted` keeps the entries
    recorded in that job state (it was 400), as well as `status eq …`."""
    await put_job(http, "job1")
    await record_run(clients, cid, "job1", resources_pb2.HistoryEntry.COMPLETED, "while on")
    json_of(await http.patch(f"{jc}/jobs/job1", json={"state": "disabled"}, headers=HEADERS), 202)
    await record_run(clients, cid, "job1", resources_pb2.HistoryEntry.FAILED, "while off")
    url = f"{jc}/jobs/job1/history"

    async def messages(raw: str) -> list[str]:
        r = await http.get(url, params={"$filter": raw}, headers=HEADERS)
        return [entry["message"] for entry in json_of(r, 200)]

    assert await messages("state eq disabled") == ["while off"]
    assert await messages("state eq 'Enabled'") == ["while on"]
    assert await messages("state eq completed") == []
    assert await messages("status eq completed") == ["while on"]
    r = await http.get(url, params={"$filter": "state eq paused"}, headers=HEADERS)
    assert_error(r, 400, "MissingOrInvalidRequiredQueryParameter",
                 "Unsupported $filter value 'paused' for state (allowed: enabled, disabled, "
                 "completed, faulted).")  # fmt: skip


def tilde_url(sub: str = SUB, cs: str = CS, jc: str = JC) -> str:
    """A job collection at its documented `~` address (as get_job_collection sends it)."""
    return f"/{sub}/cloudServices/{cs}/resources/scheduler/~/jobCollections/{jc}"


async def test_job_collection_routes_answer_at_the_documented_tilde_address(
    gateway: RunningGateway, http: httpx.AsyncClient
) -> None:
    """Collections: PUT, GET and DELETE on `…/scheduler/~/jobCollections/{jc}` (with
    `api-version=2014-04-01`) are the same collection as without `~` (they were 404)."""
    q = {"api-version": "2014-04-01"}
    body = collection_xml("Standard", max_jobs=3)
    assert_empty(await http.put(tilde_url(), params=q, content=body, headers=HEADERS), 202)
    tilde = await http.get(tilde_url(), params=q, headers=HEADERS)
    plain = await http.get(jc_url(), headers=HEADERS)
    xml_of(tilde, 200, "Resource")
    assert tilde.content == plain.content
    etag = text(xml_of(plain, 200, "Resource"), "a:ETag")
    assert tilde.text == (
        f'<Resource xmlns="{NS}"><Name>{JC}</Name>'
        "<ResourceProviderNamespace>scheduler</ResourceProviderNamespace>"
        "<Type>jobcollections</Type><SchemaVersion>1.0</SchemaVersion>"
        f"<ETag>{etag}</ETag><State>Started</State><IntrinsicSettings><Plan>Standard</Plan>"
        "<Quota><MaxJobCount>3</MaxJobCount></Quota></IntrinsicSettings></Resource>"
    )
    calls = record_rpcs(gateway.app)
    assert_empty(await http.delete(tilde_url(), params=q, headers=HEADERS), 200)
    assert calls == ["DeleteCollection"]
    r = await http.get(tilde_url(), params=q, headers=HEADERS)
    assert_error(r, 404, "ResourceNotFound", f"The job collection '{JC}' was not found.")


async def test_put_job_collection_is_one_upsert_of_a_scheduled_collection(
    gateway: RunningGateway, http: httpx.AsyncClient, cid: str
) -> None:
    """Collections: a PUT is one UpdateCollection (allow_missing, mask plan, quota,
    labels) with profile SCHEDULED and the labels that tie it to its cloud service, both
    to create and to update (before: CreateCollection, then UpdateCollection)."""
    seen = capture_requests(gateway)
    assert_empty(await http.put(jc_url(), headers=HEADERS), 202)
    body = collection_xml("Free", max_jobs=4)
    assert_empty(await http.put(jc_url(), content=body, headers=HEADERS), 202)
    labels = {"dialect": "scheduler", "subscription": SUB, "cloud-service": CS,
              "job-collection": JC}  # fmt: skip

    def upsert(plan: str, quota: Any) -> job_service_pb2.UpdateCollectionRequest:
        collection = resources_pb2.Collection(
            name=f"collections/{cid}",
            profile=resources_pb2.SCHEDULED,
            plan=plan,
            quota=quota,
            labels=labels,
        )
        return job_service_pb2.UpdateCollectionRequest(
            collection=collection, allow_missing=True,
            update_mask={"paths": ["plan", "quota", "labels"]})  # fmt: skip

    assert seen == [
        ("UpdateCollection", upsert("Standard", None)),
        ("UpdateCollection", upsert("Free", resources_pb2.Quota(max_job_count=4))),
    ]
    root = xml_of(await http.get(jc_url(), headers=HEADERS), 200, "Resource")
    assert text(root, "a:IntrinsicSettings/a:Plan") == "Free"
    assert text(root, "a:IntrinsicSettings/a:Quota/a:MaxJobCount") == "4"


@pytest.mark.parametrize(
    "body",
    [b"<NotAResource/>", f'<NotAResource xmlns="{NS}"><Plan>Free</Plan></NotAResource>'.encode(),
     b"<Resource><IntrinsicSettings><Plan>Free</Plan></IntrinsicSettings></Resource>"],
    ids=["no-namespace", "other-root", "resource-outside-namespace"],
)  # fmt: skip
async def test_put_job_collection_with_a_root_other_than_resource_is_400_and_changes_nothing(
    gateway: RunningGateway, http: httpx.AsyncClient, body: bytes
) -> None:
    """Collections: the PUT body's root must be `Resource` in the Service Management
    namespace; anything else is 400 InvalidXmlRequest before any call and the collection
    keeps its plan and quota (it was 202 and reset them)."""
    first = collection_xml("Free", max_jobs=7, frequency="Hour", interval=1)
    assert_empty(await http.put(jc_url(), content=first, headers=HEADERS), 202)
    before = (await http.get(jc_url(), headers=HEADERS)).content
    calls = record_rpcs(gateway.app)
    r = await http.put(jc_url(), content=body, headers=HEADERS)
    assert_error(r, 400, "InvalidXmlRequest",
                 f"The root element must be Resource in the namespace {NS}.")  # fmt: skip
    assert calls == []
    assert (await http.get(jc_url(), headers=HEADERS)).content == before


async def test_job_collection_element_names_match_in_any_case(http: httpx.AsyncClient) -> None:
    """Collections: `<plan>Free</plan>` (the Service Management client's body) and any
    other casing of the element names are read (the plan was stored as Standard)."""
    client_body = (
        '<Resource xmlns:i="http://www.w3.org/2001/XMLSchema-instance" '
        f'xmlns="{NS}"><IntrinsicSettings><plan>Free</plan></IntrinsicSettings></Resource>'
    )
    assert_empty(await http.put(jc_url(), content=client_body, headers=HEADERS), 202)
    root = xml_of(await http.get(jc_url(), headers=HEADERS), 200, "Resource")
    assert text(root, "a:IntrinsicSettings/a:Plan") == "Free"
    lower = (
        f'<resource xmlns="{NS}"><intrinsicSETTINGS><PLAN>Standard</PLAN><quota>'
        "<maxJobCount>2</maxJobCount></quota></intrinsicSETTINGS></resource>"
    )
    assert_empty(await http.put(jc_url(), content=lower, headers=HEADERS), 202)
    root = xml_of(await http.get(jc_url(), headers=HEADERS), 200, "Resource")
    assert text(root, "a:IntrinsicSettings/a:Plan") == "Standard"
    assert text(root, "a:IntrinsicSettings/a:Quota/a:MaxJobCount") == "2"


async def test_max_recurrence_frequency_second_is_accepted(http: httpx.AsyncClient) -> None:
    """Collections: the documented sample's MaxRecurrence `Second` / 1 is accepted and
    read back; every job recurrence (at most once a minute) fits it."""
    body = collection_xml("Standard", max_jobs=10, frequency="Second", interval=1)
    assert_empty(await http.put(jc_url(), content=body, headers=HEADERS), 202)
    root = xml_of(await http.get(jc_url(), headers=HEADERS), 200, "Resource")
    rec = "a:IntrinsicSettings/a:Quota/a:MaxRecurrence"
    assert (text(root, f"{rec}/a:Frequency"), text(root, f"{rec}/a:Interval")) == ("Second", "1")
    fast = {**SIMPLE, "recurrence": {"frequency": "minute", "interval": 1}}
    assert (await put_job(http, "fast", fast))["recurrence"] == fast["recurrence"]


async def test_get_cloud_service_is_one_list_of_collections_by_their_labels(
    gateway: RunningGateway, http: httpx.AsyncClient
) -> None:
    """Collections: GET /{sub}/cloudServices/{cs} is one ListCollections with a
    structured filter on the labels (dialect, subscription, cloud service), page size 1000
    (before: a walk over every page of every collection); none found is 404."""
    assert_empty(await http.put(jc_url(jc="one"), headers=HEADERS), 202)
    assert_empty(await http.put(jc_url(sub="othersub", jc="two"), headers=HEADERS), 202)
    seen = capture_requests(gateway)
    root = xml_of(await http.get(f"/{SUB}/cloudServices/{CS}", headers=HEADERS), 200,
                  "CloudService")  # fmt: skip
    assert [text(res, "a:Name") for res in root.findall("a:Resources/a:Resource", Q)] == ["one"]
    equal = resources_pb2.Comparison.EQUAL
    wanted = [
        resources_pb2.Filter(comparison=resources_pb2.Comparison(
            field=f"labels.{key}", operator=equal, text=value))
        for key, value in (("dialect", "scheduler"), ("subscription", SUB), ("cloud-service", CS))
    ]  # fmt: skip
    assert seen == [
        ("ListCollections", job_service_pb2.ListCollectionsRequest(
            page_size=1000, structured_filter=resources_pb2.Filter(
                all=resources_pb2.FilterList(filters=wanted))))
    ]  # fmt: skip
    r = await http.get(f"/{SUB}/cloudServices/nothing", headers=HEADERS)
    assert_error(r, 404, "ResourceNotFound", "The cloud service 'nothing' was not found.")


async def test_operation_status_of_another_subscriptions_request_is_404_resource_not_found(
    http: httpx.AsyncClient, jc: str
) -> None:
    """Operation status: a request id is known only to the subscription it addressed;
    from another subscription it is 404 ResourceNotFound (it could be read)."""
    rid = request_id(await http.put(f"{jc}/jobs/j1", json=SIMPLE, headers=HEADERS))
    assert_error(await http.get(f"/othersub/operations/{rid}", headers=HEADERS), 404,
                 "ResourceNotFound", f"The operation '{rid}' was not found.")  # fmt: skip
    r = await http.get(f"/{SUB}/operations/{rid}", headers=HEADERS)
    assert r.text == (
        f'<Operation xmlns="{NS}"><ID>{rid}</ID><Status>Succeeded</Status>'
        "<HttpStatusCode>201</HttpStatusCode></Operation>"
    )


async def test_operation_status_keeps_the_requests_of_the_idempotency_window_only(
    tmp_path: Path,
) -> None:
    """Operation status: the core keeps the records for its idempotency window
    (`idempotency_window`, 24 h by default; the reaper sweeps older ones); an older id is
    404 like an unknown one."""
    running = await start_server(make_settings(tmp_path, idempotency_window=1.0))
    try:
        gateway, stop = await start_gateway(running.address)
        try:
            async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
                oldest = request_id(await http.get(f"/{SUB}/cloudServices/{CS}", headers=HEADERS))
                await asyncio.sleep(1.2)
                newer = request_id(await http.get(f"/{SUB}/cloudServices/{CS}", headers=HEADERS))
                r = await http.get(f"/{SUB}/operations/{newer}", headers=HEADERS)
                assert text(xml_of(r, 200, "Operation"), "a:Status") == "Failed"
                r = await http.get(f"/{SUB}/operations/{oldest}", headers=HEADERS)
                assert_error(r, 404, "ResourceNotFound", f"The operation '{oldest}' was not found.")
        finally:
            await stop()
    finally:
        await running.stop(grace=1.0)


async def test_operation_status_of_a_failure_has_the_whole_error(
    http: httpx.AsyncClient, jc: str
) -> None:
    """Operation status: a failed request's record is Failed with its status and the
    Code and Message its error body had."""
    r = await http.patch(f"{jc}/jobs/nope", json={"state": "disabled"}, headers=HEADERS)
    assert_error(r, 404, "ResourceNotFound", "The job 'nope' was not found.")
    rid = request_id(r)
    op = await http.get(f"/{SUB}/operations/{rid}", headers=HEADERS)
    assert op.text == (
        f'<Operation xmlns="{NS}"><ID>{rid}</ID><Status>Failed</Status>'
        "<HttpStatusCode>404</HttpStatusCode><Error><Code>ResourceNotFound</Code>"
        "<Message>The job 'nope' was not found.</Message></Error></Operation>"
    )


async def test_check_job_collection_name_availability_is_one_list_by_id(
    gateway: RunningGateway, http: httpx.AsyncClient, cid: str
) -> None:
    """Collections: POST …/jobCollections?op=checknameavailability&resourceName=jc is one
    ListCollections by the derived id: Result true for a free name, false for a taken one;
    without op or resourceName it is 400 MissingOrInvalidRequiredQueryParameter."""
    assert_empty(await http.put(jc_url(), headers=HEADERS), 202)
    url = f"/{SUB}/cloudservices/{CS}/resources/scheduler/jobCollections"
    seen = capture_requests(gateway)
    answers = []
    for name in (JC, "free"):
        q = {"op": "checknameavailability", "resourceName": name}
        r = await http.post(url, params=q, headers=HEADERS)
        assert r.status_code == 200
        answers.append(r.text)
    assert answers == [
        f'<AvailabilityResponse xmlns="{NS}"><Result>{v}</Result></AvailabilityResponse>'
        for v in ("false", "true")
    ]
    assert seen[0] == ("ListCollections", job_service_pb2.ListCollectionsRequest(
        page_size=1, structured_filter=resources_pb2.Filter(comparison=resources_pb2.Comparison(
            field="id", operator=resources_pb2.Comparison.EQUAL, text=cid))))  # fmt: skip
    r = await http.post(url, params={"op": "other", "resourceName": "x"}, headers=HEADERS)
    assert_error(r, 400, "MissingOrInvalidRequiredQueryParameter",
                 "op=checknameavailability and resourceName are required.")  # fmt: skip
    assert len(seen) == 2


# --- every route, one call at most -------------------------------------------------------

BIG = b'{"action": {"request": {"body": "' + b"x" * (16 * 1024) + b'"}}}'
# (method, path, body, status, the calls it makes); P = the job prefix, C = a collection
ROUTE_SCRIPT: list[tuple[str, str, Any, int, list[str]]] = [
    ("PUT", "C", b"", 202, ["UpdateCollection"]),
    ("PUT", "~C", collection_xml("Free", 5), 202, ["UpdateCollection"]),
    ("PUT", "C", b"<NotAResource/>", 400, []),
    ("GET", "C", None, 200, ["GetCollection"]),
    ("GET", "~C", None, 200, ["GetCollection"]),
    ("GET", "C-none", None, 404, ["GetCollection"]),
    ("POST", "CHECK?op=checknameavailability&resourceName=x", None, 200, ["ListCollections"]),
    ("POST", "~CHECK?op=checknameavailability&resourceName=x", None, 200, ["ListCollections"]),
    ("POST", "CHECK", None, 400, []),
    ("GET", "CS", None, 200, ["ListCollections"]),
    ("GET", "CS-none", None, 404, ["ListCollections"]),
    ("PUT", "P/jobs/j1", SIMPLE, 201, ["UpdateJob"]),
    ("PUT", "P/jobs/j1", {**SIMPLE, "state": "disabled"}, 200, ["UpdateJob"]),
    ("PUT", "P/jobs/j1", b"{not json", 400, []),
    ("PUT", "P-none/jobs/j1", SIMPLE, 404, ["UpdateJob"]),
    ("POST", "P/jobs", SIMPLE, 201, ["CreateJob"]),
    ("POST", "P/jobs", {"id": "x"}, 400, []),
    ("GET", "P/jobs/j1", None, 200, ["GetJob"]),
    ("GET", "P/jobs/nope", None, 404, ["GetJob"]),
    ("GET", "P/jobs?$filter=state eq disabled&$top=1", None, 200, ["ListJobs"]),
    ("GET", "P/jobs/", None, 200, ["ListJobs"]),
    ("GET", "P/jobs?$top=0", None, 400, []),
    ("PATCH", "P/jobs/j1", {"state": "enabled"}, 202, ["UpdateJob"]),
    ("PATCH", "P/jobs/j1", {}, 202, ["UpdateJob"]),
    ("PATCH", "P/jobs/j1", {"status": {}}, 400, ["UpdateJob"]),
    ("PATCH", "P/jobs/j1", {"bogus": 1}, 400, []),
    ("PATCH", "P/jobs/j1", BIG, 400, []),
    ("GET", "P/jobs/j1/history?$filter=status eq failed", None, 200, ["ListJobHistory"]),
    ("GET", "P/jobs/j1/history?$filter=x eq y", None, 400, []),
    ("GET", "P/jobs/nope/history", None, 404, ["ListJobHistory"]),
    ("DELETE", "P/jobs/j1", None, 200, ["DeleteJob"]),
    ("DELETE", "P/jobs/j1", None, 404, ["DeleteJob"]),
    ("DELETE", "P/jobs", None, 200, ["DeleteJobs"]),
    ("GET", "OP", None, 200, []),
    ("GET", f"/{SUB}/operations/{'0' * 32}", None, 404, []),
    ("GET", "P/nowhere", None, 404, []),
    ("POST", "P/jobs/j1", None, 405, []),
    ("DELETE", "C", None, 200, ["DeleteCollection"]),
    ("DELETE", "~C", None, 404, ["DeleteCollection"]),
]


def _script_path(path: str, last_id: str) -> str:
    base = f"/{SUB}/cloudServices/{CS}/resources/scheduler"
    for key, value in (
        ("~CHECK", f"{base}/~/jobCollections"), ("CHECK", f"{base}/jobCollections"),
        ("~C", tilde_url()), ("C-none", jc_url(jc="nope")),
        ("CS-none", f"/{SUB}/cloudServices/none"), ("CS", f"/{SUB}/cloudServices/{CS}"),
        ("C", jc_url()),
        ("P-none", prefix(jc="none")), ("P", prefix()), ("OP", f"/{SUB}/operations/{last_id}"),
    ):  # fmt: skip
        if path.startswith(key):
            return value + path[len(key) :]
    return path


def _route_of(dialect: SchedulerDialect, method: str, path: str) -> int | None:
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
             "headers": [], "query_string": b""}  # fmt: skip
    try:
        route, _ = dialect.resolve(Request(scope, None))
    except GatewayError:
        return None
    return dialect.routes.index(route)


async def test_every_route_makes_at_most_one_rpc(
    gateway: RunningGateway, http: httpx.AsyncClient
) -> None:
    """Seam: every route of the dialect, on success and on refusal, makes exactly the
    calls listed (one at most: refusals of the gateway's own checks make none, the
    operation status none at all), and the script covers every route of the table."""
    dialect = dialect_of(gateway)
    calls = record_rpcs(gateway.app)
    last_id, covered = "", set()
    for method, raw_path, body, status, expected in ROUTE_SCRIPT:
        path = _script_path(raw_path, last_id)
        content = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
        calls.clear()
        r = await http.request(method, path, content=content, headers=HEADERS)
        assert (r.status_code, calls) == (status, expected), (method, path, r.text)
        last_id = request_id(r)
        covered.add(_route_of(dialect, method, path.split("?")[0]))
    assert covered - {None} == set(range(len(dialect.routes)))


# --- the error table ----------------------------------------------------------------------

# (reason, ErrorInfo field, gRPC code) -> (status, code, message) for path j1 in myjc of mycs
ERROR_CASES: list[tuple[str, str, grpc.StatusCode, int, str, str]] = [
    ("AUTHENTICATION_FAILED", "", grpc.StatusCode.UNAUTHENTICATED, 403, "AuthenticationFailed",
     "The server failed to authenticate the request. Verify that the certificate is valid "
     "and is associated with this subscription."),
    ("MISSING_VERSION", "", grpc.StatusCode.INVALID_ARGUMENT, 400,
     "MissingOrIncorrectVersionHeader", "server says"),
    ("INVALID_QUERY", "", grpc.StatusCode.INVALID_ARGUMENT, 400,
     "MissingOrInvalidRequiredQueryParameter", "server says"),
    ("INVALID_XML", "", grpc.StatusCode.INVALID_ARGUMENT, 400, "InvalidXmlRequest",
     "server says"),
    ("BODY_TOO_LARGE", "", grpc.StatusCode.INVALID_ARGUMENT, 400, "BadRequest",
     "The request body is too large: server says."),
    ("ROUTE_NOT_FOUND", "", grpc.StatusCode.NOT_FOUND, 404, "ResourceNotFound",
     "The requested URI does not represent any resource on the server."),
    ("METHOD_NOT_ALLOWED", "", grpc.StatusCode.UNIMPLEMENTED, 405, "BadRequest", "server says"),
    ("ID_NOT_ALLOWED", "", grpc.StatusCode.INVALID_ARGUMENT, 400, "BadRequest", "server says"),
    ("JOB_NOT_FOUND", "", grpc.StatusCode.NOT_FOUND, 404, "ResourceNotFound",
     "The job 'j1' was not found."),
    ("COLLECTION_NOT_FOUND", "", grpc.StatusCode.NOT_FOUND, 404, "ResourceNotFound",
     "The job collection 'myjc' was not found."),
    ("CLOUD_SERVICE_NOT_FOUND", "", grpc.StatusCode.NOT_FOUND, 404, "ResourceNotFound",
     "The cloud service 'mycs' was not found."),
    ("OPERATION_NOT_FOUND", "", grpc.StatusCode.NOT_FOUND, 404, "ResourceNotFound",
     "The operation 'r1' was not found."),
    ("JOB_ALREADY_EXISTS", "", grpc.StatusCode.ALREADY_EXISTS, 409, "ConflictError",
     "The job 'j1' already exists."),
    ("JOB_COMPLETED", "", grpc.StatusCode.FAILED_PRECONDITION, 409, "ConflictError",
     "The job 'j1' is completed and cannot be updated."),
    ("JOB_FAULTED", "", grpc.StatusCode.FAILED_PRECONDITION, 409, "ConflictError",
     "The job 'j1' is faulted and cannot be updated."),
    ("QUOTA_EXCEEDED", "", grpc.StatusCode.RESOURCE_EXHAUSTED, 409, "ConflictError",
     "The job collection 'myjc' has reached its maximum job count."),
    ("RECURRENCE_QUOTA_EXCEEDED", "", grpc.StatusCode.RESOURCE_EXHAUSTED, 409, "ConflictError",
     "The recurrence is more frequent than the job collection 'myjc' allows."),
    ("STATE_NOT_SETTABLE", "", grpc.StatusCode.INVALID_ARGUMENT, 400, "BadRequest",
     "The state of a job may only be set to enabled or disabled."),
    ("FORBIDDEN_FIELD", "name", grpc.StatusCode.INVALID_ARGUMENT, 400, "BadRequest",
     "The job id in the body does not match the job id in the URL."),
    ("FORBIDDEN_FIELD", "status", grpc.StatusCode.INVALID_ARGUMENT, 400, "BadRequest",
     "The status of a job cannot be updated."),
    # by code (reasons without a row of their own)
    ("FORBIDDEN_FIELD", "uid", grpc.StatusCode.INVALID_ARGUMENT, 400, "BadRequest",
     "server says"),
    ("", "", grpc.StatusCode.OUT_OF_RANGE, 400, "BadRequest", "server says"),
    ("TASK_NOT_FOUND", "", grpc.StatusCode.NOT_FOUND, 404, "ResourceNotFound",
     "The resource was not found."),
    ("COLLECTION_ALREADY_EXISTS", "", grpc.StatusCode.ALREADY_EXISTS, 409, "ConflictError",
     "server says"),
    ("OPERATION_NOT_SUPPORTED", "", grpc.StatusCode.FAILED_PRECONDITION, 409, "ConflictError",
     "server says"),
    ("ETAG_MISMATCH", "", grpc.StatusCode.ABORTED, 409, "ConflictError", "server says"),
    ("", "", grpc.StatusCode.RESOURCE_EXHAUSTED, 409, "ConflictError", "server says"),
    ("", "", grpc.StatusCode.PERMISSION_DENIED, 403, "AuthenticationFailed", "server says"),
    ("", "", grpc.StatusCode.UNAUTHENTICATED, 403, "AuthenticationFailed", "server says"),
    ("STORAGE_UNAVAILABLE", "", grpc.StatusCode.UNAVAILABLE, 503, "ServerBusy",
     "The server cannot answer at the moment. Please retry the request."),
    ("DEADLINE_EXCEEDED", "", grpc.StatusCode.DEADLINE_EXCEEDED, 503, "ServerBusy",
     "The server did not answer in time. Please retry the request."),
    # the fallback
    ("INTERNAL_ERROR", "", grpc.StatusCode.INTERNAL, 500, "InternalError",
     "The server encountered an internal error. Please retry the request."),
    ("", "", grpc.StatusCode.UNKNOWN, 500, "InternalError",
     "The server encountered an internal error. Please retry the request."),
]  # fmt: skip


@pytest.mark.parametrize(
    ("reason", "field", "code", "status", "dialect_code", "message"),
    ERROR_CASES,
    ids=[f"{c[0] or c[2].name}{'@' + c[1] if c[1] else ''}" for c in ERROR_CASES],
)
def test_error_table_maps_every_reason_and_code(
    reason: str,
    field: str,
    code: grpc.StatusCode,
    status: int,
    dialect_code: str,
    message: str,
) -> None:
    """Errors: each row of the table (by reason, reason@field, then gRPC code, then the
    fallback) gives its status, Service Management code and message in the dialect's
    terms, filled from the path."""
    http_status = 405 if reason == "METHOD_NOT_ALLOWED" else None
    error = GatewayError(code, "server says", reason, {"field": field} if field else {},
                         http_status=http_status)  # fmt: skip
    row = ERRORS.row(error)
    params = {"sub": SUB, "cs": CS, "jc": JC, "job": "j1", "rid": "r1"}
    assert (row.status, row.code, ERRORS.message(row, error, params)) == (
        status, dialect_code, message
    )  # fmt: skip


def test_error_cases_cover_every_row_of_the_table() -> None:
    """Errors: the cases above name every row of the table."""
    keys = {f"{reason}@{field}" if field else reason for reason, field, *_ in ERROR_CASES}
    codes = {code for reason, _, code, *_ in ERROR_CASES if reason not in ERRORS.by_reason}
    assert set(ERRORS.by_reason) <= keys
    assert set(ERRORS.by_code) <= codes
    assert isinstance(ERRORS.fallback, ErrorRow)


async def test_refusals_answer_the_whole_error_body(http: httpx.AsyncClient, jc: str) -> None:
    """Errors: the gateway's own refusals in the dialect's whole body: missing version,
    unknown route, wrong method, body over 16 KiB, malformed JSON, id on POST."""
    await put_job(http, "j1")
    cases: Sequence[tuple[httpx.Response, int, str, str]] = [
        (await http.get(f"{jc}/jobs"), 400, "MissingOrIncorrectVersionHeader",
         "The x-ms-version header is missing or older than 2013-06-01."),
        (await http.get(f"{jc}/widgets", headers=HEADERS), 404, "ResourceNotFound",
         "The requested URI does not represent any resource on the server."),
        (await http.post(f"{jc}/jobs/j1", headers=HEADERS), 405, "BadRequest",
         "POST is not allowed here; allowed: PUT, GET, PATCH, DELETE"),
        (await http.put(f"{jc}/jobs/j1", content=BIG, headers=HEADERS), 400, "BadRequest",
         "The request body is too large: request body over 16384 bytes."),
        (await http.put(f"{jc}/jobs/j1", content=b"", headers=HEADERS), 400, "BadRequest",
         "A JSON body is required."),
        (await http.post(f"{jc}/jobs", json={"id": "x"}, headers=HEADERS), 400, "BadRequest",
         "POST creates a job with a server-chosen id; PUT the job to its address to choose "
         "one."),
        (await http.patch(f"{jc}/jobs/j1", json={"id": "j2"}, headers=HEADERS), 400,
         "BadRequest", "The job id in the body does not match the job id in the URL."),
        (await http.patch(f"{jc}/jobs/j1", json={"status": {}}, headers=HEADERS), 400,
         "BadRequest", "The status of a job cannot be updated."),
        (await http.patch(f"{jc}/jobs/j1", json={"state": "faulted"}, headers=HEADERS), 400,
         "BadRequest", "The state of a job may only be set to enabled or disabled."),
    ]  # fmt: skip
    for r, status, code, message in cases:
        assert_error(r, status, code, message)
    assert without_status(await get_job(http, "j1")) == {"id": "j1", **SIMPLE}
