"""The Azure Batch jobs dialect over real HTTP to a real gRPC server
(shared/spec/dialects.md section 2; seed 001 Delete Job; rules B1..B13), raw and through
the `azure-batch` SDK."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import grpc
import httpx
import orjson
import pytest
from azure.batch import BatchClient
from azure.batch import models as bm
from azure.batch.models._models import BatchJobTerminateOptions
from azure.core import MatchConditions
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)

from jobcontrol.service.server import RunningServer
from jobcontrol.v1 import job_service_pb2, operator_service_pb2, resources_pb2, worker_service_pb2
from tests.conftest import Clients, RunningGateway, record_rpcs, start_gateway
from tests.helpers import json_error

ACCOUNT = "acct1"
KEY = base64.b64encode(b"k" * 32).decode()
OTHER_KEY = base64.b64encode(b"z" * 32).decode()
CID = "batch-acct1"
API = "2025-06-01"
ERROR_CT = "application/json;odata=minimalmetadata"
ERROR_METADATA = "/$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element"
SIGNED_HEADERS = [
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
]
RFC1123 = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT")
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?")
SETTLE_LIMIT = 10.0  # seconds a settle may take before the test gives up (not a timing claim)
T = TypeVar("T")

FULL_JOB: dict[str, Any] = {
    "id": "full",
    "displayName": "the full job",
    "priority": 100,
    "maxParallelTasks": 4,
    "allowTaskPreemption": True,
    "constraints": {"maxWallClockTime": "PT1H", "maxTaskRetryCount": 3},
    "poolInfo": {"poolId": "p1"},
    "onAllTasksComplete": "terminatejob",
    "onTaskFailure": "performexitoptionsjobaction",
    "metadata": [{"name": "env", "value": "prod"}],
}


# --- signing and raw requests ----------------------------------------------------------


def string_to_sign(
    account: str, method: str, path: str, query: str, headers: Mapping[str, str]
) -> str:
    """The canonical string of azure-batch's BatchSharedKeyAuthPolicy."""
    lower = {k.lower(): v for k, v in headers.items() if v}
    if method not in ("GET", "HEAD"):
        lower.setdefault("content-length", "0")
    out = method + "\n" + "\n".join(lower.get(h, "") for h in SIGNED_HEADERS) + "\n"
    for name, value in sorted((k, v) for k, v in lower.items() if "ocp-" in k):
        out += f"{name}:{value}\n"
    out += f"/{account}{path}"
    parsed = parse_qs(query)
    for name in sorted(parsed):
        if parsed[name][0]:
            out += f"\n{name}:{parsed[name][0]}"
    return out


def shared_key(
    account: str, key: str, method: str, path: str, query: str, headers: Mapping[str, str]
) -> str:
    """The Authorization header value for one request."""
    digest = hmac.new(
        base64.b64decode(key),
        string_to_sign(account, method, path, query, headers).encode(),
        hashlib.sha256,
    ).digest()
    return f"SharedKey {account}:{base64.b64encode(digest).decode()}"


def http_date(moment: datetime) -> str:
    """An RFC 1123 date."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)


class Api:
    """Signed raw requests to the batch dialect."""

    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self.http = http
        self.base_url = base_url

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        version: str | None = API,
        signer: tuple[str, str] | None = (ACCOUNT, KEY),
        authorization: str | None = None,
        raw_query: str | None = None,
    ) -> httpx.Response:
        """Send one request; api-version added unless `version` is None; signed with
        `signer` (account, key) unless `authorization` overrides or `signer` is None;
        `raw_query` is sent (and signed) as given instead of params and api-version."""
        items = [("api-version", version)] if version is not None else []
        items += [(k, str(v)) for k, v in (params or {}).items()]
        query = urlencode(items, quote_via=quote) if raw_query is None else raw_query
        if json is not None:
            content = orjson.dumps(json)
        sent: dict[str, str] = {"ocp-date": http_date(datetime.now(UTC))}
        if content is not None:
            sent["content-type"] = "application/json; odata=minimalmetadata"
            sent["content-length"] = str(len(content))
        sent.update(headers or {})
        if authorization is not None:
            sent["authorization"] = authorization
        elif signer is not None:
            sent["authorization"] = shared_key(*signer, method, path, query, sent)
        url = path + (f"?{query}" if query else "")
        return await self.http.request(method, url, content=content, headers=sent)

    async def create(self, job_id: str, pool: str = "p1", **fields: Any) -> httpx.Response:
        """POST /jobs; asserts 201."""
        r = await self.call(
            "POST", "/jobs", json={"id": job_id, "poolInfo": {"poolId": pool}, **fields}
        )
        assert r.status_code == 201, r.text
        return r

    async def get(self, job_id: str) -> dict[str, Any]:
        """GET /jobs/{id}; asserts 200 and the success headers."""
        r = await self.call("GET", f"/jobs/{job_id}")
        job: dict[str, Any] = json_of(r, 200)
        assert_success_headers(r, job["url"])
        assert r.headers["etag"] == job["eTag"]
        return job

    async def status(self, job_id: str) -> int:
        """The status of GET /jobs/{id}."""
        return (await self.call("GET", f"/jobs/{job_id}")).status_code

    async def list_ids(self, **params: Any) -> list[str]:
        """Ids of one GET /jobs page."""
        body = json_of(await self.call("GET", "/jobs", params=params), 200)
        return [job["id"] for job in body["value"]]

    async def add_task(self, job_id: str, task_id: str) -> None:
        """POST /jobs/{id}/tasks; asserts 201."""
        r = await self.call(
            "POST", f"/jobs/{job_id}/tasks", json={"id": task_id, "commandLine": "echo hi"}
        )
        assert r.status_code == 201, r.text

    async def wait_state(self, job_id: str, state: str) -> dict[str, Any]:
        """Poll GET until the job is in `state` (bounded)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_LIMIT
        while True:
            job = await self.get(job_id)
            if job["state"] == state:
                return job
            assert loop.time() < deadline, f"{job_id} is {job['state']}, expected {state}"
            await asyncio.sleep(0.02)

    async def wait_gone(self, job_id: str) -> httpx.Response:
        """Poll GET until 404 (bounded); returns the 404."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_LIMIT
        while True:
            r = await self.call("GET", f"/jobs/{job_id}")
            if r.status_code == 404:
                return r
            assert r.status_code == 200, r.text
            assert loop.time() < deadline, f"{job_id} still {r.json()['state']}"
            await asyncio.sleep(0.02)


# --- response checks -------------------------------------------------------------------


def request_id(r: httpx.Response) -> str:
    """The response's request-id, checked to be a GUID."""
    rid = r.headers.get("request-id")
    assert rid is not None, f"no request-id on {r.status_code} {r.text}"
    assert str(uuid.UUID(rid)) == rid.lower(), rid
    return rid


def assert_success_headers(r: httpx.Response, job_url: str) -> None:
    """ETag, Last-Modified (RFC 1123) and DataServiceId (the job URL)."""
    assert r.headers.get("etag"), r.headers
    assert RFC1123.fullmatch(r.headers.get("last-modified", "")), r.headers
    # ids are case-insensitive: a lookup in another case names the same job
    assert r.headers.get("dataserviceid", "").lower() == job_url.lower(), r.headers


def json_of(r: httpx.Response, status: int) -> Any:
    """A JSON success: status, request id, body."""
    assert r.status_code == status, r.text
    request_id(r)
    return r.json()


def assert_empty(r: httpx.Response, status: int, job_url: str | None = None) -> None:
    """An empty success: status, request id, no body; the success headers when a job
    URL is given."""
    assert r.status_code == status, r.text
    request_id(r)
    assert r.content == b""
    if job_url is not None:
        assert_success_headers(r, job_url)


def error_code(r: httpx.Response, status: int, base_url: str | None = None) -> str:
    """A BatchError: status, request id, content type, odata shape; returns the code."""
    assert r.status_code == status, r.text
    rid = request_id(r)
    assert r.headers.get("content-type", "").replace(" ", "").lower() == ERROR_CT
    body = r.json()
    assert set(body) >= {"odata.metadata", "code", "message"}, body
    assert body["odata.metadata"].endswith(ERROR_METADATA), body
    if base_url is not None:
        assert body["odata.metadata"] == base_url + ERROR_METADATA
    assert body["message"]["lang"] == "en-US", body
    text, _, stamp = body["message"]["value"].rpartition("\nTime:")
    assert text.endswith(f"\nRequestId:{rid}"), body
    assert ISO_TIME.fullmatch(stamp), body
    for item in body.get("values", []):
        assert set(item) == {"key", "value"}, body
    assert isinstance(body["code"], str) and body["code"]
    return str(body["code"])


def seconds(duration: str) -> float:
    """An ISO 8601 duration (days and time parts) in seconds."""
    m = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?)?", duration)
    assert m, duration
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s


def job_url(api: Api, job_id: str) -> str:
    """The URL the dialect gives a job."""
    return f"{api.base_url}/jobs/{job_id}"


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture
async def batch_gateway(server: RunningServer) -> AsyncIterator[RunningGateway]:
    """The gateway with one batch account `acct1` keyed with KEY."""
    running, stop = await start_gateway(server.address, batch_accounts=f"{ACCOUNT}={KEY}")
    try:
        yield running
    finally:
        await stop()


@pytest.fixture
async def api(batch_gateway: RunningGateway) -> AsyncIterator[Api]:
    """Signed raw HTTP to the batch dialect."""
    async with httpx.AsyncClient(base_url=batch_gateway.base_url, timeout=30) as http:
        yield Api(http, batch_gateway.base_url)


@pytest.fixture
def sdk(batch_gateway: RunningGateway) -> Iterator[BatchClient]:
    """The azure-batch SDK client pointed at the gateway with the account's shared key."""
    client = BatchClient(
        endpoint=batch_gateway.base_url, credential=AzureNamedKeyCredential(ACCOUNT, KEY)
    )
    try:
        yield client
    finally:
        client.close()


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a synchronous SDK call off the event loop (the servers live on it)."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def task_name(job_id: str, task_id: str) -> str:
    return f"collections/{CID}/jobs/{job_id}/tasks/{task_id}"


async def move_task(clients: Clients, job_id: str, task_id: str, state: int) -> None:
    """Move a task over the gRPC OperatorService (RUNNING, or COMPLETED with success)."""
    result = resources_pb2.Task.SUCCESS if state == resources_pb2.Task.COMPLETED else 0
    await clients.operator.TransitionTask(
        operator_service_pb2.TransitionTaskRequest(
            name=task_name(job_id, task_id), state=state, result=result
        )
    )


async def running_job(api: Api, clients: Clients, job_id: str = "j1") -> None:
    """A job with one task `t1` RUNNING."""
    await api.create(job_id)
    await api.add_task(job_id, "t1")
    await move_task(clients, job_id, "t1", resources_pb2.Task.RUNNING)


# --- signing, account, version ---------------------------------------------------------


def test_helper_signs_exactly_like_the_sdk_policy() -> None:
    """Auth: the raw-request signer of this file equals azure-batch's
    BatchSharedKeyAuthPolicy for a request with body, ocp-date and a query."""
    from azure.batch._patch import BatchSharedKeyAuthPolicy
    from azure.core.pipeline import PipelineContext, PipelineRequest
    from azure.core.rest import HttpRequest

    content = b'{"id": "j1"}'
    headers = {
        "ocp-date": "Mon, 01 Jan 2024 00:00:00 GMT",
        "Content-Type": "application/json; odata=minimalmetadata",
        "If-Match": "0x1",
    }
    query = urlencode(
        [("api-version", API), ("$filter", "state eq 'active'"), ("maxresults", "2")],
        quote_via=quote,
    )
    request = HttpRequest("POST", f"http://h/jobs?{query}", headers=headers, content=content)
    policy = BatchSharedKeyAuthPolicy(AzureNamedKeyCredential(ACCOUNT, KEY))
    policy.on_request(PipelineRequest(request, PipelineContext(None)))
    ours = shared_key(
        ACCOUNT, KEY, "POST", "/jobs", query, {**headers, "content-length": str(len(content))}
    )
    assert request.headers["Authorization"] == ours


async def test_signed_request_is_served(api: Api) -> None:
    """Auth: a request signed with the account's key is served (200)."""
    body = json_of(await api.call("GET", "/jobs"), 200)
    assert body["value"] == []


async def test_missing_authorization_is_403_authentication_failed(api: Api) -> None:
    """Auth: no Authorization header is 403 AuthenticationFailed."""
    for method, path in (("GET", "/jobs"), ("GET", "/jobs/j1"), ("POST", "/jobs")):
        content = (
            orjson.dumps({"id": "j1", "poolInfo": {"poolId": "p"}}) if method == "POST" else None
        )
        r = await api.call(method, path, content=content, signer=None)
        assert error_code(r, 403) == "AuthenticationFailed", (method, path)
    assert json_of(await api.call("GET", "/jobs"), 200)["value"] == []


@pytest.mark.parametrize(
    ("signer", "authorization"),
    [
        ((ACCOUNT, OTHER_KEY), None),
        (("acct2", KEY), None),
        (None, "SharedKey acct1:bm90IGEgc2lnbmF0dXJl"),
        (None, "SharedKey acct1"),
        (None, "Basic YWNjdDE6a2V5"),
    ],
    ids=["wrong-key", "unknown-account", "garbage-signature", "no-signature", "basic"],
)
async def test_bad_signature_or_unknown_account_is_403_authentication_failed(
    api: Api, signer: tuple[str, str] | None, authorization: str | None
) -> None:
    """Auth: a wrong key, an unknown account or a malformed header is 403
    AuthenticationFailed, and nothing is created."""
    r = await api.call(
        "POST",
        "/jobs",
        json={"id": "j1", "poolInfo": {"poolId": "p"}},
        signer=signer,
        authorization=authorization,
    )
    assert error_code(r, 403) == "AuthenticationFailed"
    assert await api.status("j1") == 404


@pytest.mark.parametrize("tamper", ["path", "query", "ocp-date", "content-type", "if-match"])
async def test_signature_covers_path_query_ocp_and_signed_headers(api: Api, tamper: str) -> None:
    """Auth: a signature computed for one request does not authorize another differing in
    path, query, ocp-date, content-type or a conditional header (403)."""
    await api.create("j1")
    # a current date: the signature, not the clock, is what refuses the tampered request
    now = datetime.now(UTC)
    headers = {"ocp-date": http_date(now), "if-match": "*"}
    content = orjson.dumps({"priority": 3})
    query = urlencode([("api-version", API)])
    signed = {
        **headers,
        "content-type": "application/json; odata=minimalmetadata",
        "content-length": str(len(content)),
    }
    auth = shared_key(ACCOUNT, KEY, "PATCH", "/jobs/j1", query, signed)
    path, params, sent = "/jobs/j1", {}, dict(headers)
    if tamper == "path":
        await api.create("j2")
        path = "/jobs/j2"
    elif tamper == "query":
        params = {"timeOut": 10}
    elif tamper == "ocp-date":
        sent["ocp-date"] = http_date(now + timedelta(seconds=1))
    elif tamper == "content-type":
        sent["content-type"] = "application/json"
    else:
        sent["if-match"] = (await api.get("j1"))["eTag"]
    r = await api.call(
        "PATCH", path, params=params, content=content, headers=sent, authorization=auth
    )
    assert error_code(r, 403) == "AuthenticationFailed"
    assert (await api.get("j1")).get("priority") != 3


async def test_account_selects_collection_created_on_first_write(
    api: Api, batch_gateway: RunningGateway, clients: Clients
) -> None:
    """Accounts: account acct1 is collection `batch-acct1` (profile batch), created on the
    first write; reads before it see no jobs."""
    found: list[Any] = [
        d
        for d in batch_gateway.app.dialects
        if type(d).__module__ == "jobcontrol.gateway.dialects.batch"
    ]
    assert len(found) == 1, batch_gateway.app.dialects
    assert found[0].collection_id(ACCOUNT) == CID
    assert json_of(await api.call("GET", "/jobs"), 200)["value"] == []
    assert error_code(await api.call("GET", "/jobs/j1"), 404) == "JobNotFound"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await clients.jobs.GetCollection(
            job_service_pb2.GetCollectionRequest(name=f"collections/{CID}")
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    await api.create("j1", pool="pool-a")
    collection = await clients.jobs.GetCollection(
        job_service_pb2.GetCollectionRequest(name=f"collections/{CID}")
    )
    assert collection.profile == resources_pb2.BATCH
    job = await clients.jobs.GetJob(
        job_service_pb2.GetJobRequest(name=f"collections/{CID}/jobs/j1")
    )
    assert job.state == resources_pb2.ACTIVE
    assert job.batch.pool_info.pool_id == "pool-a"


async def test_job_created_over_grpc_is_visible_through_the_dialect(
    api: Api, clients: Clients
) -> None:
    """Accounts: a job created over gRPC in `batch-acct1` is listed and got through the
    dialect, and a dialect job is got over gRPC."""
    await api.create("from-rest")
    await clients.jobs.CreateJob(
        job_service_pb2.CreateJobRequest(
            parent=f"collections/{CID}",
            job_id="from-grpc",
            job=resources_pb2.Job(
                batch=resources_pb2.BatchSpec(pool_info=resources_pb2.PoolInfo(pool_id="pg"))
            ),
        )
    )
    assert set(await api.list_ids()) == {"from-rest", "from-grpc"}
    job = await api.get("from-grpc")
    assert (job["state"], job["poolInfo"]["poolId"]) == ("active", "pg")
    rest = await clients.jobs.GetJob(
        job_service_pb2.GetJobRequest(name=f"collections/{CID}/jobs/from-rest")
    )
    assert rest.batch.pool_info.pool_id == "p1"


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/jobs"), ("POST", "/jobs"), ("GET", "/jobs/j1")]
)
async def test_missing_api_version_is_400_missing_required_query_parameter(
    api: Api, method: str, path: str
) -> None:
    """Version: no api-version query is 400 MissingRequiredQueryParameter."""
    body = {"id": "j1", "poolInfo": {"poolId": "p"}} if method == "POST" else None
    r = await api.call(method, path, json=body, version=None)
    assert error_code(r, 400, api.base_url) == "MissingRequiredQueryParameter"


@pytest.mark.parametrize("version", ["2024-07-01.20.0", "2023-05-01.17.0", "2025-06-02", "garbage"])
async def test_unknown_api_version_is_400_unsupported_request_version(
    api: Api, version: str
) -> None:
    """Version: an api-version other than 2025-06-01 (or its dated variants) is 400
    UnsupportedRequestVersion, and nothing is created."""
    for method, path in (("GET", "/jobs"), ("POST", "/jobs"), ("GET", "/jobs/j1")):
        body = {"id": "j1", "poolInfo": {"poolId": "p"}} if method == "POST" else None
        r = await api.call(method, path, json=body, version=version)
        assert error_code(r, 400) == "UnsupportedRequestVersion", (method, path)
    assert await api.status("j1") == 404


@pytest.mark.parametrize("version", ["2025-06-01", "2025-06-01.21.0"])
async def test_api_version_2025_06_01_and_dated_variants_are_served(api: Api, version: str) -> None:
    """Version: 2025-06-01 and a dated variant like 2025-06-01.21.0 are served."""
    r = await api.call(
        "POST", "/jobs", json={"id": "j1", "poolInfo": {"poolId": "p"}}, version=version
    )
    assert_empty(r, 201, job_url(api, "j1"))
    assert json_of(await api.call("GET", "/jobs/j1", version=version), 200)["id"] == "j1"


# --- routing, headers, errors ----------------------------------------------------------


async def test_fixed_segments_match_in_any_case_and_ids_keep_case(api: Api) -> None:
    """Routing: `jobs`, `tasks`, `taskcounts`, `disable` match in any case; the job id
    keeps the case the client sent."""
    r = await api.call("POST", "/JOBS", json={"id": "MyJob", "poolInfo": {"poolId": "p"}})
    assert_empty(r, 201)
    job = json_of(await api.call("GET", "/Jobs/MyJob"), 200)
    assert job["id"] == "MyJob"
    r = await api.call("POST", "/jobs/MyJob/TASKS", json={"id": "t1", "commandLine": "x"})
    assert_empty(r, 201)
    counts = json_of(await api.call("GET", "/JOBS/MyJob/TaskCounts"), 200)
    assert counts["taskCounts"]["active"] == 1
    r = await api.call("POST", "/jobs/MyJob/DISABLE", json={"disableTasks": "requeue"})
    assert r.status_code == 202, r.text
    assert [j["id"] for j in json_of(await api.call("GET", "/jobs"), 200)["value"]] == ["MyJob"]


@pytest.mark.parametrize(
    "path", ["/jobs/j1/bogus", "/jobs/j1/tasks/t1/bogus/x", "/jobs/j1/taskcounts/x"]
)
async def test_unknown_route_is_404_batch_error(api: Api, path: str) -> None:
    """Routing: an unknown path under /jobs is 404 in the BatchError format
    (ResourceNotFound or InvalidUri)."""
    await api.create("j1")
    assert error_code(await api.call("GET", path), 404) in {"ResourceNotFound", "InvalidUri"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/jobs/j1"),
        ("DELETE", "/jobs"),
        ("PUT", "/jobs"),
        ("GET", "/jobs/j1/disable"),
        ("GET", "/jobs/j1/terminate"),
        ("DELETE", "/jobs/j1/tasks"),
        ("PUT", "/jobs/j1/taskcounts"),
    ],
)
async def test_wrong_method_on_known_route_is_405_batch_error(
    api: Api, method: str, path: str
) -> None:
    """Routing: a known path with a method it does not have is 405 in the BatchError
    format, and the job is untouched."""
    await api.create("j1")
    before = await api.get("j1")
    r = await api.call(method, path, content=b"{}" if method != "GET" else None)
    error_code(r, 405)
    assert (await api.get("j1"))["eTag"] == before["eTag"]


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("POST", ""),
        ("PATCH", "/j1"),
        ("PUT", "/j1"),
        ("POST", "/j1/disable"),
        ("POST", "/j1/tasks"),
    ],
)
async def test_malformed_json_body_is_400_invalid_request_body(
    api: Api, method: str, suffix: str
) -> None:
    """Errors: a body that is not JSON is 400 InvalidRequestBody."""
    await api.create("j1")
    r = await api.call(method, f"/jobs{suffix}", content=b'{"id": "j2", ')
    assert error_code(r, 400, api.base_url) == "InvalidRequestBody"
    assert (await api.get("j1"))["state"] == "active"


@pytest.mark.parametrize("missing", ["poolInfo", "id"])
async def test_add_job_without_required_property_is_400_missing_required_property(
    api: Api, missing: str
) -> None:
    """Add: a body without poolInfo (or id) is 400 MissingRequiredProperty; nothing is
    created."""
    body = {k: v for k, v in {"id": "j1", "poolInfo": {"poolId": "p"}}.items() if k != missing}
    r = await api.call("POST", "/jobs", json=body)
    assert error_code(r, 400) == "MissingRequiredProperty"
    assert await api.list_ids() == []


async def test_every_response_carries_a_distinct_guid_request_id(api: Api) -> None:
    """Headers: successes and errors alike carry a GUID request-id, new each time."""
    await api.create("j1")
    responses = [
        await api.call("GET", "/jobs"),
        await api.call("GET", "/jobs/j1"),
        await api.call("GET", "/jobs/nope"),
        await api.call("GET", "/jobs", version=None),
        await api.call("GET", "/jobs", signer=None),
        await api.call("POST", "/jobs/j1/disable", json={"disableTasks": "requeue"}),
        await api.call("DELETE", "/jobs/j1"),
        await api.call("GET", "/jobs/j1/bogus"),
    ]
    ids = [request_id(r) for r in responses]
    assert len(set(ids)) == len(ids)


async def test_client_request_id_is_echoed_only_when_asked(api: Api) -> None:
    """Headers: client-request-id comes back only with return-client-request-id: true,
    on successes and errors."""
    crid = "9C4D50EE-2D56-4CD3-8152-34347DC9F2B0"
    await api.create("j1")
    for path, status in (("/jobs/j1", 200), ("/jobs/nope", 404)):
        r = await api.call(
            "GET", path, headers={"client-request-id": crid, "return-client-request-id": "true"}
        )
        assert r.status_code == status, r.text
        assert r.headers.get("client-request-id", "").lower() == crid.lower()
        request_id(r)
        for extra in ({}, {"return-client-request-id": "false"}):
            r = await api.call("GET", path, headers={"client-request-id": crid, **extra})
            assert r.status_code == status, r.text
            assert "client-request-id" not in r.headers


# --- add, get, list --------------------------------------------------------------------


async def test_add_job_is_201_empty_with_etag_last_modified_and_data_service_id(api: Api) -> None:
    """Add: POST /jobs is 201 with no body, ETag, Last-Modified and DataServiceId = the
    job's URL."""
    r = await api.call("POST", "/jobs", json={"id": "j1", "poolInfo": {"poolId": "p1"}})
    assert_empty(r, 201, job_url(api, "j1"))
    job = await api.get("j1")
    assert job["url"] == job_url(api, "j1")
    assert job["eTag"] == r.headers["etag"]


async def test_get_job_returns_every_field_sent_and_output_fields(api: Api) -> None:
    """Get: the job JSON has id, url, eTag, lastModified, creationTime, state active,
    stateTransitionTime, the fields sent at add, and executionInfo{startTime, poolId}."""
    await api.create("full", **{k: v for k, v in FULL_JOB.items() if k not in ("id", "poolInfo")})
    job = await api.get("full")
    assert job["id"] == "full"
    assert job["displayName"] == "the full job"
    assert job["url"] == job_url(api, "full")
    assert job["state"] == "active"
    for stamp in ("lastModified", "creationTime", "stateTransitionTime"):
        assert ISO_TIME.fullmatch(job[stamp]), (stamp, job)
    assert (job["priority"], job["maxParallelTasks"], job["allowTaskPreemption"]) == (100, 4, True)
    assert seconds(job["constraints"]["maxWallClockTime"]) == 3600
    assert job["constraints"]["maxTaskRetryCount"] == 3
    assert job["poolInfo"] == {"poolId": "p1"}
    assert job["onAllTasksComplete"] == "terminatejob"
    assert job["onTaskFailure"] == "performexitoptionsjobaction"
    assert job["metadata"] == [{"name": "env", "value": "prod"}]
    assert ISO_TIME.fullmatch(job["executionInfo"]["startTime"]), job
    assert job["executionInfo"]["poolId"] == "p1"


async def test_get_unknown_job_is_404_job_not_found(api: Api) -> None:
    """Get: an id never created is 404 JobNotFound."""
    await api.create("j1")
    assert error_code(await api.call("GET", "/jobs/j2"), 404, api.base_url) == "JobNotFound"


async def test_job_ids_are_unique_and_looked_up_case_insensitively(api: Api) -> None:
    """Add: an id differing only in case is 409 JobExists; lookups ignore case and
    return the id as first sent (B11)."""
    await api.create("MyJob")
    r = await api.call("POST", "/jobs", json={"id": "myjob", "poolInfo": {"poolId": "p"}})
    assert error_code(r, 409) == "JobExists"
    assert (await api.get("MYJOB"))["id"] == "MyJob"
    assert await api.list_ids() == ["MyJob"]


async def test_list_jobs_is_200_odata_envelope(api: Api) -> None:
    """List: GET /jobs is 200 {"odata.metadata", "value": [jobs]} with full jobs."""
    await api.create("j1")
    await api.create("j2")
    body = json_of(await api.call("GET", "/jobs"), 200)
    assert isinstance(body["odata.metadata"], str) and body["odata.metadata"]
    assert sorted(j["id"] for j in body["value"]) == ["j1", "j2"]
    assert all(j["state"] == "active" and j["poolInfo"] == {"poolId": "p1"} for j in body["value"])
    assert "odata.nextLink" not in body


async def test_list_jobs_pages_with_maxresults_and_next_link(api: Api) -> None:
    """List: maxresults bounds a page; odata.nextLink leads to the rest, each job once."""
    ids = {f"j{i}" for i in range(5)}
    for job_id in sorted(ids):
        await api.create(job_id)
    seen: list[str] = []
    body = json_of(await api.call("GET", "/jobs", params={"maxresults": 2}), 200)
    assert len(body["value"]) == 2
    for _ in range(10):
        seen += [j["id"] for j in body["value"]]
        if "odata.nextLink" not in body:
            break
        link = urlsplit(body["odata.nextLink"])
        assert f"{link.scheme}://{link.netloc}" == api.base_url, link
        assert "api-version" in parse_qs(link.query), link
        body = json_of(await api.call("GET", link.path, raw_query=link.query), 200)
        assert len(body["value"]) <= 2
    assert sorted(seen) == sorted(ids)


@pytest.mark.parametrize("maxresults", [0, 1001, -1, "x"])
async def test_list_jobs_maxresults_outside_1_to_1000_is_400(api: Api, maxresults: Any) -> None:
    """List: maxresults outside 1..1000 is 400 in the BatchError format."""
    error_code(await api.call("GET", "/jobs", params={"maxresults": maxresults}), 400)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("state eq 'active'", {"j1", "j3"}),
        ("state eq 'disabled'", {"j2"}),
        ("id eq 'j2'", {"j2"}),
        ("state eq 'active' and id eq 'j1'", {"j1"}),
        ("id eq 'j1' or id eq 'j2'", {"j1", "j2"}),
    ],
)
async def test_list_jobs_filter_on_state_and_id(
    api: Api, expression: str, expected: set[str]
) -> None:
    """List: $filter with `state eq`, `id eq`, `and`, `or` selects the matching jobs."""
    for job_id in ("j1", "j2", "j3"):
        await api.create(job_id)
    r = await api.call("POST", "/jobs/j2/disable", json={"disableTasks": "requeue"})
    assert r.status_code == 202, r.text
    await api.wait_state("j2", "disabled")
    assert set(await api.list_ids(**{"$filter": expression})) == expected


async def test_list_jobs_select_returns_only_selected_properties(api: Api) -> None:
    """List: $select=id,state returns each job with only id and state."""
    await api.create("j1")
    await api.create("j2")
    body = json_of(await api.call("GET", "/jobs", params={"$select": "id,state"}), 200)
    assert sorted(body["value"], key=lambda j: j["id"]) == [
        {"id": "j1", "state": "active"},
        {"id": "j2", "state": "active"},
    ]


# --- update, replace -------------------------------------------------------------------


async def test_patch_merges_given_fields_and_keeps_the_rest(api: Api) -> None:
    """Update: PATCH is 200 empty with the success headers; given fields change, omitted
    ones are kept; the ETag changes."""
    await api.create(
        "j1",
        priority=1,
        metadata=[{"name": "a", "value": "1"}],
        constraints={"maxTaskRetryCount": 2},
    )
    before = await api.get("j1")
    r = await api.call("PATCH", "/jobs/j1", json={"priority": 5, "maxParallelTasks": 3})
    assert_empty(r, 200, job_url(api, "j1"))
    after = await api.get("j1")
    assert (after["priority"], after["maxParallelTasks"]) == (5, 3)
    assert after["metadata"] == [{"name": "a", "value": "1"}]
    assert after["constraints"]["maxTaskRetryCount"] == 2
    assert after["eTag"] != before["eTag"]
    assert r.headers["etag"] == after["eTag"]


async def test_put_replaces_and_resets_omitted_updatable_fields(api: Api) -> None:
    """Replace: PUT is 200 empty with the success headers; fields given are set, omitted
    updatable fields go back to their defaults."""
    await api.create("full", **{k: v for k, v in FULL_JOB.items() if k not in ("id", "poolInfo")})
    r = await api.call("PUT", "/jobs/full", json={"poolInfo": {"poolId": "p1"}, "priority": 7})
    assert_empty(r, 200, job_url(api, "full"))
    job = await api.get("full")
    assert job["priority"] == 7
    assert job["poolInfo"] == {"poolId": "p1"}
    assert job.get("metadata") in (None, [])
    assert job.get("maxParallelTasks") in (None, -1)
    assert job.get("allowTaskPreemption") in (None, False)
    assert job.get("onAllTasksComplete") in (None, "noaction")
    constraints = job.get("constraints") or {}
    assert constraints.get("maxTaskRetryCount") in (None, 0)
    assert seconds(constraints.get("maxWallClockTime") or "P99999D") != 3600


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
async def test_pool_info_changes_only_while_disabled(api: Api, method: str) -> None:
    """Update: a new poolInfo on an active job is 409 (job unchanged); on a disabled job
    it is taken (B10)."""
    await api.create("j1", pool="p1")
    r = await api.call(method, "/jobs/j1", json={"poolInfo": {"poolId": "p2"}})
    error_code(r, 409)
    assert (await api.get("j1"))["poolInfo"] == {"poolId": "p1"}
    r = await api.call("POST", "/jobs/j1/disable", json={"disableTasks": "requeue"})
    assert r.status_code == 202, r.text
    await api.wait_state("j1", "disabled")
    assert_empty(await api.call(method, "/jobs/j1", json={"poolInfo": {"poolId": "p2"}}), 200)
    assert (await api.get("j1"))["poolInfo"] == {"poolId": "p2"}


# --- disable, enable, terminate --------------------------------------------------------


@pytest.mark.parametrize("disposition", ["requeue", "terminate", "wait"])
async def test_disable_is_202_and_job_becomes_disabled(api: Api, disposition: str) -> None:
    """Disable: POST disable is 202 with the success headers; without running tasks the
    job ends disabled with previousState active."""
    await api.create("j1")
    r = await api.call("POST", "/jobs/j1/disable", json={"disableTasks": disposition})
    assert_empty(r, 202, job_url(api, "j1"))
    job = await api.wait_state("j1", "disabled")
    assert job["previousState"] in ("active", "disabling")
    assert ISO_TIME.fullmatch(job["previousStateTransitionTime"]), job


async def test_enable_is_202_and_job_returns_to_active(api: Api) -> None:
    """Enable: POST enable of a disabled job is 202 with the success headers; the job
    goes back to active."""
    await api.create("j1")
    r = await api.call("POST", "/jobs/j1/disable", json={"disableTasks": "requeue"})
    assert r.status_code == 202, r.text
    await api.wait_state("j1", "disabled")
    assert_empty(await api.call("POST", "/jobs/j1/enable"), 202, job_url(api, "j1"))
    job = await api.wait_state("j1", "active")
    assert job["previousState"] in ("disabled", "enabling")


async def test_terminate_is_202_and_job_completes_with_reason(api: Api) -> None:
    """Terminate: POST terminate is 202 with the success headers; without running tasks
    the job is completed and executionInfo carries the terminateReason."""
    await api.create("j1")
    r = await api.call("POST", "/jobs/j1/terminate", json={"terminateReason": "done here"})
    assert_empty(r, 202, job_url(api, "j1"))
    job = await api.wait_state("j1", "completed")
    assert job["executionInfo"]["terminateReason"] == "done here"
    assert job["previousState"] in ("active", "terminating")


async def test_terminate_with_running_task_holds_terminating_until_it_completes(
    api: Api, clients: Clients
) -> None:
    """Terminate: with a running task the job shows terminating, then completed once the
    task completes (B4)."""
    await running_job(api, clients)
    assert (await api.call("POST", "/jobs/j1/terminate", json={})).status_code == 202
    assert (await api.get("j1"))["state"] == "terminating"
    await move_task(clients, "j1", "t1", resources_pb2.Task.COMPLETED)
    await api.wait_state("j1", "completed")


# --- delete ----------------------------------------------------------------------------


async def test_delete_is_202_without_etag_then_404_job_not_found(api: Api) -> None:
    """Delete: DELETE is 202 with request-id and no ETag; the job is then 404
    JobNotFound."""
    await api.create("j1")
    r = await api.call("DELETE", "/jobs/j1")
    assert r.status_code == 202, r.text
    request_id(r)
    assert "etag" not in r.headers
    r = await api.wait_gone("j1")
    assert error_code(r, 404) == "JobNotFound"
    assert await api.list_ids() == []


async def test_deleting_job_shows_state_deleting_in_get_and_list_until_purged(
    api: Api, clients: Clients
) -> None:
    """Delete: with a running task the job shows state deleting (Get and List) until the
    task completes, then 404 JobNotFound (B8, B9)."""
    await running_job(api, clients)
    assert (await api.call("DELETE", "/jobs/j1")).status_code == 202
    assert (await api.get("j1"))["state"] == "deleting"
    listed = json_of(await api.call("GET", "/jobs"), 200)["value"]
    assert [(j["id"], j["state"]) for j in listed] == [("j1", "deleting")]
    await move_task(clients, "j1", "t1", resources_pb2.Task.COMPLETED)
    assert error_code(await api.wait_gone("j1"), 404) == "JobNotFound"


async def test_delete_with_force_purges_despite_running_task(api: Api, clients: Clients) -> None:
    """Delete: force=true purges the job even with a task still running (B9)."""
    await running_job(api, clients)
    r = await api.call("DELETE", "/jobs/j1", params={"force": "true"})
    assert r.status_code == 202, r.text
    assert error_code(await api.wait_gone("j1"), 404) == "JobNotFound"


@pytest.mark.parametrize("time_out", [1, 30, 31, 600])
async def test_delete_timeout_above_30_is_accepted(api: Api, time_out: int) -> None:
    """Delete: timeOut is accepted at any positive value (above 30 means 30)."""
    await api.create("j1")
    r = await api.call("DELETE", "/jobs/j1", params={"timeOut": time_out})
    assert r.status_code == 202, r.text
    await api.wait_gone("j1")


async def test_delete_of_unknown_job_is_404_job_not_found(api: Api) -> None:
    """Delete: an id never created is 404 JobNotFound."""
    await api.create("j1")
    assert error_code(await api.call("DELETE", "/jobs/nope"), 404) == "JobNotFound"


# --- tasks -----------------------------------------------------------------------------


async def test_tasks_create_list_get(api: Api) -> None:
    """Tasks: POST tasks is 201; GET tasks lists them; GET tasks/{id} is 200 with the
    task; an unknown task is 404 (B12)."""
    await api.create("j1")
    r = await api.call("POST", "/jobs/j1/tasks", json={"id": "t1", "commandLine": "echo 1"})
    assert_empty(r, 201)
    await api.add_task("j1", "t2")
    listed = json_of(await api.call("GET", "/jobs/j1/tasks"), 200)
    assert sorted(t["id"] for t in listed["value"]) == ["t1", "t2"]
    task = json_of(await api.call("GET", "/jobs/j1/tasks/t1"), 200)
    assert (task["id"], task["state"], task["commandLine"]) == ("t1", "active", "echo 1")
    error_code(await api.call("GET", "/jobs/j1/tasks/t9"), 404)


async def test_task_counts_by_state_and_result(api: Api, clients: Clients) -> None:
    """Tasks: GET taskcounts is 200 with taskCounts and taskSlotCounts {active, running,
    completed, succeeded, failed}."""
    await api.create("j1")
    for task_id in ("t1", "t2", "t3", "t4"):
        await api.add_task("j1", task_id)
    running = resources_pb2.Task.RUNNING
    for task_id in ("t2", "t3", "t4"):
        await move_task(clients, "j1", task_id, running)
    await move_task(clients, "j1", "t3", resources_pb2.Task.COMPLETED)
    await clients.operator.TransitionTask(
        operator_service_pb2.TransitionTaskRequest(
            name=task_name("j1", "t4"),
            state=resources_pb2.Task.COMPLETED,
            result=resources_pb2.Task.FAILURE,
        )
    )
    body = json_of(await api.call("GET", "/jobs/j1/taskcounts"), 200)
    keys = {"active", "running", "completed", "succeeded", "failed"}
    assert body["taskCounts"] == {
        "active": 1,
        "running": 1,
        "completed": 2,
        "succeeded": 1,
        "failed": 1,
    }
    assert set(body["taskSlotCounts"]) == keys


async def test_task_on_completed_job_is_409_job_completed(api: Api) -> None:
    """Tasks: adding a task to a completed job gives that state's code (B12)."""
    await api.create("j1")
    assert (await api.call("POST", "/jobs/j1/terminate", json={})).status_code == 202
    await api.wait_state("j1", "completed")
    r = await api.call("POST", "/jobs/j1/tasks", json={"id": "t1", "commandLine": "x"})
    assert error_code(r, 409) == "JobCompleted"


# --- state refusals --------------------------------------------------------------------

OPS: dict[str, tuple[str, str, Any]] = {
    "patch": ("PATCH", "", {"priority": 9}),
    "put": ("PUT", "", {"poolInfo": {"poolId": "p1"}, "priority": 9}),
    "disable": ("POST", "/disable", {"disableTasks": "requeue"}),
    "enable": ("POST", "/enable", None),
    "terminate": ("POST", "/terminate", {"terminateReason": "r"}),
    "delete": ("DELETE", "", None),
}
NOT_DELETE = [op for op in OPS if op != "delete"]


async def do(api: Api, op: str, job_id: str = "j1", **kwargs: Any) -> httpx.Response:
    """Run one of OPS on a job."""
    method, suffix, body = OPS[op]
    return await api.call(method, f"/jobs/{job_id}{suffix}", json=body, **kwargs)


@pytest.mark.parametrize("op", list(OPS))
async def test_any_write_on_deleting_job_is_409_job_being_deleted(
    api: Api, clients: Clients, op: str
) -> None:
    """States: update, replace, disable, enable, terminate and delete of a deleting job
    are 409 JobBeingDeleted (B7)."""
    await running_job(api, clients)
    assert (await api.call("DELETE", "/jobs/j1")).status_code == 202
    assert error_code(await do(api, op), 409) == "JobBeingDeleted"
    assert (await api.get("j1"))["state"] == "deleting"


@pytest.mark.parametrize("op", NOT_DELETE)
async def test_write_on_terminating_job_is_409_job_being_terminated(
    api: Api, clients: Clients, op: str
) -> None:
    """States: update, replace, disable, enable, terminate of a terminating job are 409
    JobBeingTerminated (B6)."""
    await running_job(api, clients)
    assert (await api.call("POST", "/jobs/j1/terminate", json={})).status_code == 202
    assert error_code(await do(api, op), 409) == "JobBeingTerminated"
    assert (await api.get("j1"))["state"] == "terminating"


async def test_delete_of_terminating_job_is_allowed(api: Api, clients: Clients) -> None:
    """States: delete of a terminating job is 202 and the job goes to deleting."""
    await running_job(api, clients)
    assert (await api.call("POST", "/jobs/j1/terminate", json={})).status_code == 202
    assert (await api.call("DELETE", "/jobs/j1")).status_code == 202
    assert (await api.get("j1"))["state"] == "deleting"


@pytest.mark.parametrize("op", NOT_DELETE)
async def test_write_on_completed_job_is_409_job_completed(api: Api, op: str) -> None:
    """States: update, replace, disable, enable, terminate of a completed job are 409
    JobCompleted (B5)."""
    await api.create("j1")
    assert (await api.call("POST", "/jobs/j1/terminate", json={})).status_code == 202
    await api.wait_state("j1", "completed")
    assert error_code(await do(api, op), 409) == "JobCompleted"


async def test_delete_of_completed_job_is_allowed(api: Api) -> None:
    """States: delete of a completed job is 202 and it is then 404 JobNotFound."""
    await api.create("j1")
    assert (await api.call("POST", "/jobs/j1/terminate", json={})).status_code == 202
    await api.wait_state("j1", "completed")
    assert (await api.call("DELETE", "/jobs/j1")).status_code == 202
    assert error_code(await api.wait_gone("j1"), 404) == "JobNotFound"


async def test_enable_of_active_job_is_409_operation_invalid(api: Api) -> None:
    """States: enable of a job that is not disabled is 409
    OperationInvalidForCurrentState (B3)."""
    await api.create("j1")
    r = await api.call("POST", "/jobs/j1/enable")
    assert error_code(r, 409) == "OperationInvalidForCurrentState"


async def test_disable_or_enable_of_enabling_job_is_409_operation_invalid(
    api: Api, clients: Clients
) -> None:
    """States: disable of an enabling job, and enable of it, are 409
    OperationInvalidForCurrentState (B3)."""
    await api.create("j1")
    assert (await do(api, "disable")).status_code == 202
    await api.wait_state("j1", "disabled")
    await clients.operator.TransitionJob(
        operator_service_pb2.TransitionJobRequest(
            name=f"collections/{CID}/jobs/j1", state=resources_pb2.ENABLING
        )
    )
    assert (await api.get("j1"))["state"] == "enabling"
    assert error_code(await do(api, "disable"), 409) == "OperationInvalidForCurrentState"
    assert error_code(await do(api, "enable"), 409) == "OperationInvalidForCurrentState"


# --- conditional requests --------------------------------------------------------------

PAST = http_date(datetime(2000, 1, 1, tzinfo=UTC))


def future() -> str:
    return http_date(datetime.now(UTC) + timedelta(days=1))


async def test_get_if_none_match_current_etag_is_304_without_body(api: Api) -> None:
    """Conditions: GET with If-None-Match = the current ETag is 304, no body; a stale one
    is 200."""
    await api.create("j1")
    etag = (await api.get("j1"))["eTag"]
    r = await api.call("GET", "/jobs/j1", headers={"If-None-Match": etag})
    assert r.status_code == 304, r.text
    assert r.content == b""
    request_id(r)
    r = await api.call("GET", "/jobs/j1", headers={"If-None-Match": "0xSTALE"})
    assert json_of(r, 200)["id"] == "j1"


async def test_get_if_modified_since_unmet_is_304(api: Api) -> None:
    """Conditions: GET with If-Modified-Since after the last change is 304; before it,
    200."""
    await api.create("j1")
    r = await api.call("GET", "/jobs/j1", headers={"If-Modified-Since": future()})
    assert r.status_code == 304, r.text
    assert r.content == b""
    r = await api.call("GET", "/jobs/j1", headers={"If-Modified-Since": PAST})
    assert json_of(r, 200)["id"] == "j1"


async def test_get_if_match_or_if_unmodified_since_unmet_is_412_condition_not_met(
    api: Api,
) -> None:
    """Conditions: GET with a stale If-Match, or If-Unmodified-Since before the last
    change, is 412 ConditionNotMet; met, 200."""
    await api.create("j1")
    etag = (await api.get("j1"))["eTag"]
    r = await api.call("GET", "/jobs/j1", headers={"If-Match": "0xSTALE"})
    assert error_code(r, 412) == "ConditionNotMet"
    r = await api.call("GET", "/jobs/j1", headers={"If-Unmodified-Since": PAST})
    assert error_code(r, 412) == "ConditionNotMet"
    assert json_of(await api.call("GET", "/jobs/j1", headers={"If-Match": etag}), 200)
    r = await api.call("GET", "/jobs/j1", headers={"If-Unmodified-Since": future()})
    assert json_of(r, 200)["id"] == "j1"


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize(
    "condition",
    ["if-match", "if-none-match", "if-modified-since", "if-unmodified-since"],
)
async def test_write_with_unmet_condition_is_412_and_changes_nothing(
    api: Api, op: str, condition: str
) -> None:
    """Conditions: every single-job write (update, replace, disable, enable, terminate,
    delete) with an unmet If-* header is 412 ConditionNotMet; the job is unchanged."""
    await api.create("j1")
    assert (await do(api, "disable")).status_code == 202
    before = await api.wait_state("j1", "disabled")
    value = {
        "if-match": "0xSTALE",
        "if-none-match": before["eTag"],
        "if-modified-since": future(),
        "if-unmodified-since": PAST,
    }[condition]
    r = await do(api, op, headers={condition: value})
    assert error_code(r, 412) == "ConditionNotMet"
    after = await api.get("j1")
    assert (after["eTag"], after["state"]) == (before["eTag"], "disabled")


@pytest.mark.parametrize("op", list(OPS))
async def test_write_with_current_if_match_is_served(api: Api, op: str) -> None:
    """Conditions: a write whose If-Match is the current ETag goes through."""
    await api.create("j1")
    assert (await do(api, "disable")).status_code == 202
    etag = (await api.wait_state("j1", "disabled"))["eTag"]
    r = await do(api, op, headers={"If-Match": etag})
    assert r.status_code in (200, 202), r.text
    request_id(r)


async def test_if_none_match_decides_over_if_modified_since(api: Api) -> None:
    """Conditions: If-None-Match with If-Modified-Since is allowed and If-None-Match
    decides (GET and PATCH)."""
    await api.create("j1")
    etag = (await api.get("j1"))["eTag"]
    met = {"If-None-Match": "0xSTALE", "If-Modified-Since": future()}
    unmet = {"If-None-Match": etag, "If-Modified-Since": PAST}
    assert json_of(await api.call("GET", "/jobs/j1", headers=met), 200)["id"] == "j1"
    assert (await api.call("GET", "/jobs/j1", headers=unmet)).status_code == 304
    r = await api.call("PATCH", "/jobs/j1", json={"priority": 2}, headers=unmet)
    assert error_code(r, 412) == "ConditionNotMet"
    assert_empty(await api.call("PATCH", "/jobs/j1", json={"priority": 2}, headers=met), 200)


async def test_if_match_decides_over_if_unmodified_since(api: Api) -> None:
    """Conditions: If-Match with If-Unmodified-Since is allowed and If-Match decides
    (GET and PATCH)."""
    await api.create("j1")
    etag = (await api.get("j1"))["eTag"]
    unmet = {"If-Match": "0xSTALE", "If-Unmodified-Since": future()}
    assert error_code(await api.call("GET", "/jobs/j1", headers=unmet), 412) == "ConditionNotMet"
    met = {"If-Match": etag, "If-Unmodified-Since": PAST}
    assert json_of(await api.call("GET", "/jobs/j1", headers=met), 200)["id"] == "j1"
    r = await api.call("PATCH", "/jobs/j1", json={"priority": 2}, headers=unmet)
    assert error_code(r, 412) == "ConditionNotMet"
    assert_empty(await api.call("PATCH", "/jobs/j1", json={"priority": 2}, headers=met), 200)


@pytest.mark.parametrize(
    "pair",
    [
        ("if-match", "if-none-match"),
        ("if-match", "if-modified-since"),
        ("if-none-match", "if-unmodified-since"),
        ("if-modified-since", "if-unmodified-since"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_other_condition_pairs_are_400_multiple_condition_headers(
    api: Api, pair: tuple[str, str], method: str
) -> None:
    """Conditions: any pair other than If-None-Match+If-Modified-Since and
    If-Match+If-Unmodified-Since is 400 MultipleConditionHeadersNotSupported."""
    await api.create("j1")
    etag = (await api.get("j1"))["eTag"]
    values = {
        "if-match": etag,
        "if-none-match": "0xSTALE",
        "if-modified-since": PAST,
        "if-unmodified-since": future(),
    }
    body = {"priority": 2} if method == "PATCH" else None
    r = await api.call(method, "/jobs/j1", json=body, headers={h: values[h] for h in pair})
    assert error_code(r, 400) == "MultipleConditionHeadersNotSupported"
    job = await api.get("j1")
    assert (job["eTag"], job["state"]) == (etag, "active")


# --- the azure-batch SDK ---------------------------------------------------------------


async def test_sdk_job_lifecycle_end_to_end(sdk: BatchClient) -> None:
    """SDK: create, get, list with a filter, update, replace, disable, enable, terminate
    and begin_delete_job(...).result() work unchanged; then get_job raises
    ResourceNotFoundError with code JobNotFound."""
    options = bm.BatchJobCreateOptions(
        id="sdk1",
        pool_info=bm.BatchPoolInfo(pool_id="p"),
        priority=10,
        metadata=[bm.BatchMetadataItem(name="k", value="v")],
    )
    await in_thread(sdk.create_job, options)
    await in_thread(
        sdk.create_job, bm.BatchJobCreateOptions(id="sdk2", pool_info=bm.BatchPoolInfo(pool_id="p"))
    )
    job = await in_thread(sdk.get_job, "sdk1")
    assert (job.id, job.state, job.pool_info.pool_id, job.priority) == (
        "sdk1",
        bm.BatchJobState.ACTIVE,
        "p",
        10,
    )
    assert job.etag and job.last_modified and job.creation_time
    await in_thread(sdk.update_job, "sdk1", bm.BatchJobUpdateOptions(priority=5))
    job = await in_thread(sdk.get_job, "sdk1")
    assert job.priority == 5
    assert [(m.name, m.value) for m in job.metadata or []] == [("k", "v")]
    await in_thread(
        sdk.replace_job, "sdk1", bm.BatchJob(pool_info=bm.BatchPoolInfo(pool_id="p"), priority=3)
    )
    job = await in_thread(sdk.get_job, "sdk1")
    assert job.priority == 3
    assert not job.metadata
    poller = await in_thread(
        sdk.begin_disable_job,
        "sdk1",
        bm.BatchJobDisableOptions(disable_tasks="requeue"),
        polling_interval=0,
    )
    await in_thread(poller.result)
    assert (await in_thread(sdk.get_job, "sdk1")).state == bm.BatchJobState.DISABLED
    active = await in_thread(lambda: [j.id for j in sdk.list_jobs(filter="state eq 'active'")])
    assert active == ["sdk2"]
    poller = await in_thread(sdk.begin_enable_job, "sdk1", polling_interval=0)
    await in_thread(poller.result)
    assert (await in_thread(sdk.get_job, "sdk1")).state == bm.BatchJobState.ACTIVE
    # 15.1.0 cannot send terminate without options (it serializes a None content-type)
    reason = BatchJobTerminateOptions(termination_reason="sdk done")
    poller = await in_thread(sdk.begin_terminate_job, "sdk1", reason, polling_interval=0)
    await in_thread(poller.result)
    job = await in_thread(sdk.get_job, "sdk1")
    assert job.state == bm.BatchJobState.COMPLETED
    assert job.execution_info is not None
    assert job.execution_info.termination_reason == "sdk done"
    poller = await in_thread(sdk.begin_delete_job, "sdk1", polling_interval=0)
    await in_thread(poller.result)
    with pytest.raises(ResourceNotFoundError) as info:
        await in_thread(sdk.get_job, "sdk1")
    assert info.value.error is not None and info.value.error.code == "JobNotFound"
    assert await in_thread(lambda: [j.id for j in sdk.list_jobs()]) == ["sdk2"]


async def test_sdk_list_jobs_follows_next_link(sdk: BatchClient) -> None:
    """SDK: list_jobs(max_results=2) pages through every job via odata.nextLink."""
    for i in range(5):
        await in_thread(
            sdk.create_job,
            bm.BatchJobCreateOptions(id=f"j{i}", pool_info=bm.BatchPoolInfo(pool_id="p")),
        )
    ids = await in_thread(lambda: [j.id for j in sdk.list_jobs(max_results=2)])
    assert sorted(ids) == [f"j{i}" for i in range(5)]


async def test_sdk_duplicate_create_raises_resource_exists_job_exists(sdk: BatchClient) -> None:
    """SDK: creating an id that exists (in another case) raises ResourceExistsError with
    code JobExists."""
    await in_thread(
        sdk.create_job, bm.BatchJobCreateOptions(id="Dup", pool_info=bm.BatchPoolInfo(pool_id="p"))
    )
    with pytest.raises(ResourceExistsError) as info:
        await in_thread(
            sdk.create_job,
            bm.BatchJobCreateOptions(id="dup", pool_info=bm.BatchPoolInfo(pool_id="p")),
        )
    assert info.value.status_code == 409
    assert info.value.error is not None and info.value.error.code == "JobExists"


async def test_sdk_stale_etag_with_if_not_modified_is_412(sdk: BatchClient) -> None:
    """SDK: update_job with a stale etag and MatchConditions.IfNotModified fails with
    412 (ResourceModifiedError); the current etag succeeds."""
    await in_thread(
        sdk.create_job, bm.BatchJobCreateOptions(id="c1", pool_info=bm.BatchPoolInfo(pool_id="p"))
    )
    stale = (await in_thread(sdk.get_job, "c1")).etag
    await in_thread(sdk.update_job, "c1", bm.BatchJobUpdateOptions(priority=1))
    with pytest.raises((ResourceModifiedError, HttpResponseError)) as info:
        await in_thread(
            sdk.update_job,
            "c1",
            bm.BatchJobUpdateOptions(priority=2),
            etag=stale,
            match_condition=MatchConditions.IfNotModified,
        )
    assert info.value.status_code == 412
    current = (await in_thread(sdk.get_job, "c1")).etag
    assert current != stale
    await in_thread(
        sdk.update_job,
        "c1",
        bm.BatchJobUpdateOptions(priority=2),
        etag=current,
        match_condition=MatchConditions.IfNotModified,
    )
    assert (await in_thread(sdk.get_job, "c1")).priority == 2


async def test_sdk_with_wrong_key_fails_403_authentication_failed(
    batch_gateway: RunningGateway,
) -> None:
    """SDK: a client holding the wrong key gets 403 AuthenticationFailed."""
    client = BatchClient(
        endpoint=batch_gateway.base_url, credential=AzureNamedKeyCredential(ACCOUNT, OTHER_KEY)
    )
    try:
        with pytest.raises(HttpResponseError) as info:
            await in_thread(lambda: list(client.list_jobs()))
    finally:
        client.close()
    assert info.value.status_code == 403
    assert info.value.error is not None and info.value.error.code == "AuthenticationFailed"


async def test_sdk_tasks_and_task_counts(sdk: BatchClient, clients: Clients) -> None:
    """SDK: create_task, list_tasks, get_task and get_job_task_counts work unchanged."""
    await in_thread(
        sdk.create_job, bm.BatchJobCreateOptions(id="tj", pool_info=bm.BatchPoolInfo(pool_id="p"))
    )
    for task_id in ("t1", "t2"):
        await in_thread(
            sdk.create_task, "tj", bm.BatchTaskCreateOptions(id=task_id, command_line="echo")
        )
    await move_task(clients, "tj", "t2", resources_pb2.Task.RUNNING)
    tasks = await in_thread(lambda: sorted(t.id for t in sdk.list_tasks("tj")))
    assert tasks == ["t1", "t2"]
    task = await in_thread(sdk.get_task, "tj", "t1")
    assert (task.id, task.command_line) == ("t1", "echo")
    counts = await in_thread(sdk.get_job_task_counts, "tj")
    assert (counts.task_counts.active, counts.task_counts.running) == (1, 1)
    assert counts.task_slot_counts is not None


# --- round 2: one RPC per route, kept members, structured filters, Batch's messages --------

# Batch's documented error messages (the message value before RequestId / Time)
MESSAGES = {
    "JobNotFound": "The specified job does not exist.",
    "TaskNotFound": "The specified task does not exist.",
    "JobExists": "The specified job already exists.",
    "TaskExists": "The specified task already exists.",
    "JobBeingDeleted": "The specified job has been marked for deletion and is being reclaimed.",
    "JobBeingTerminated": "The specified job is in the process of being terminated.",
    "JobCompleted": "The specified job is already in a completed state.",
    "OperationInvalidForCurrentState": (
        "The specified operation is not valid for the current state of the resource."
    ),
    "ConditionNotMet": "The condition specified using HTTP conditional header(s) is not met.",
    "MissingRequiredProperty": "A required property was not specified in the request body.",
    "InvalidPropertyValue": (
        "The value provided for one of the properties in the request body is invalid."
    ),
    "InvalidQueryParameterValue": (
        "The value for one of the query parameters specified in the request URI is invalid."
    ),
    "MissingRequiredQueryParameter": (
        "A query parameter that's mandatory for this request is not specified."
    ),
    "AuthenticationFailed": (
        "Server failed to authenticate the request. Make sure the value of Authorization "
        "header is formed correctly including the signature."
    ),
    "ResourceNotFound": "The specified resource does not exist.",
    "UnsupportedHttpVerb": "The resource doesn't support the specified HTTP verb.",
    "RequestBodyTooLarge": (
        "The request body is too large and exceeds the maximum permissible limit."
    ),
    "InvalidRequestBody": "The specified Request Body is not syntactically valid.",
    "MultipleConditionHeadersNotSupported": "Multiple condition headers are not supported.",
    "UnsupportedRequestVersion": "The specified Api Version is not supported.",
    "AuthorizationFailure": "This request is not authorized to perform this operation.",
    "InvalidHeaderValue": "The value for one of the HTTP headers is not in the correct format.",
}
NEW_MEMBERS: dict[str, Any] = {
    "usesTaskDependencies": True,
    "jobManagerTask": {
        "id": "mgr",
        "commandLine": "run --all",
        "requiredSlots": 2,
        "killJobOnCompletion": False,
        "resourceFiles": [{"httpUrl": "https://x/f", "filePath": "f"}],
        "environmentSettings": [{"name": "M", "value": "1"}],
    },
    "jobPreparationTask": {"commandLine": "prep", "waitForSuccess": True},
    "jobReleaseTask": {"commandLine": "release", "maxWallClockTime": "PT5M"},
    "commonEnvironmentSettings": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
    "networkConfiguration": {
        "subnetId": "/subscriptions/s/subnets/n",
        "skipWithdrawFromVNet": True,
    },
}
TASK_MEMBERS: dict[str, Any] = {
    "exitConditions": {"default": {"jobAction": "none"}},
    "resourceFiles": [{"httpUrl": "https://x/in", "filePath": "in"}],
    "outputFiles": [{"filePattern": "*.txt", "destination": {"container": {"containerUrl": "u"}},
                     "uploadOptions": {"uploadCondition": "tasksuccess"}}],
    "environmentSettings": [{"name": "E", "value": "v"}],
    "constraints": {"maxTaskRetryCount": 2, "retentionTime": "PT1H"},
    "requiredSlots": 3,
    "userIdentity": {"autoUser": {"scope": "task", "elevationLevel": "admin"}},
    "dependsOn": {"taskIds": ["t0"]},
    "applicationPackageReferences": [{"applicationId": "app", "version": "1"}],
}  # fmt: skip


def assert_batch_error(
    r: httpx.Response,
    status: int,
    code: str,
    values: list[dict[str, str]] | None = None,
    *,
    base_url: str,
) -> None:
    """The whole BatchError: status, request-id, content type, and the body exactly: Batch's
    documented message for `code` with the request id and a time, and `values` (no
    `values` member when None)."""
    assert r.status_code == status, r.text
    rid = request_id(r)
    assert r.headers.get("content-type", "").replace(" ", "").lower() == ERROR_CT
    body = r.json()
    stamp = str(body.get("message", {}).get("value", "")).rpartition("\nTime:")[2]
    assert ISO_TIME.fullmatch(stamp), body
    expected: dict[str, Any] = {
        "odata.metadata": base_url + ERROR_METADATA,
        "code": code,
        "message": {"lang": "en-US", "value": f"{MESSAGES[code]}\nRequestId:{rid}\nTime:{stamp}"},
    }
    if values is not None:
        expected["values"] = values
    assert body == expected


def reason(text: str) -> dict[str, str]:
    return {"key": "Reason", "value": text}


def prop(name: str) -> dict[str, str]:
    return {"key": "PropertyName", "value": name}


def query_value(name: str, value: str, why: str) -> list[dict[str, str]]:
    return [
        {"key": "QueryParameterName", "value": name},
        {"key": "QueryParameterValue", "value": value},
        reason(why),
    ]


@pytest.fixture
def rpcs(batch_gateway: RunningGateway) -> list[str]:
    """The method name of every upstream call the batch gateway makes from now on."""
    return record_rpcs(batch_gateway.app)


async def sdk_ids(sdk: BatchClient, **kwargs: Any) -> list[str]:
    """Ids of every job the SDK lists (following next links)."""
    return await in_thread(lambda: [j.id for j in sdk.list_jobs(**kwargs)])


# --- add job -------------------------------------------------------------------------------


async def test_add_job_is_one_create_job_that_creates_the_account_collection(
    api: Api, rpcs: list[str], clients: Clients
) -> None:
    """Add: the first job of an account is one CreateJob carrying the collection template
    (profile batch, labels dialect=batch and account=acct1), created in its transaction;
    later ones are one CreateJob too."""
    await api.create("j1")
    assert rpcs == ["CreateJob"]
    collection = await clients.jobs.GetCollection(
        job_service_pb2.GetCollectionRequest(name=f"collections/{CID}")
    )
    assert collection.profile == resources_pb2.BATCH
    assert dict(collection.labels) == {"dialect": "batch", "account": ACCOUNT}
    rpcs.clear()
    await api.create("j2")
    assert rpcs == ["CreateJob"]


async def test_add_job_keeps_task_definitions_environment_network_and_dependencies(
    api: Api,
) -> None:
    """Add (B14): usesTaskDependencies, jobManagerTask, jobPreparationTask, jobReleaseTask,
    commonEnvironmentSettings and networkConfiguration are kept and come back as sent from
    Get and List."""
    body = {k: v for k, v in FULL_JOB.items() if k not in ("id", "poolInfo")} | NEW_MEMBERS
    await api.create("full", **body)
    job = await api.get("full")
    listed = json_of(await api.call("GET", "/jobs"), 200)["value"]
    assert [j["id"] for j in listed] == ["full"]
    for member, value in NEW_MEMBERS.items():
        assert job[member] == value, member
        assert listed[0][member] == value, member


async def test_sdk_create_job_with_job_manager_task_reads_every_member_back(
    sdk: BatchClient,
) -> None:
    """SDK (B14): create_job with a job manager, preparation and release task, common
    environment settings, task dependencies and a network configuration; get_job and
    list_jobs return them."""
    options = bm.BatchJobCreateOptions(
        id="sdk-full",
        pool_info=bm.BatchPoolInfo(pool_id="p"),
        uses_task_dependencies=True,
        job_manager_task=bm.BatchJobManagerTask(
            id="mgr", command_line="run", required_slots=2, kill_job_on_completion=False
        ),
        job_preparation_task=bm.BatchJobPreparationTask(command_line="prep"),
        job_release_task=bm.BatchJobReleaseTask(command_line="release"),
        common_environment_settings=[bm.EnvironmentSetting(name="A", value="1")],
        network_configuration=bm.BatchJobNetworkConfiguration(
            subnet_id="/subscriptions/s/subnets/n", skip_withdraw_from_vnet=True
        ),
    )
    await in_thread(sdk.create_job, options)
    for job in [
        await in_thread(sdk.get_job, "sdk-full"),
        *await in_thread(lambda: list(sdk.list_jobs())),
    ]:
        assert job.uses_task_dependencies is True
        assert job.job_manager_task is not None
        assert (job.job_manager_task.id, job.job_manager_task.command_line) == ("mgr", "run")
        assert (
            job.job_manager_task.required_slots,
            job.job_manager_task.kill_job_on_completion,
        ) == (2, False)
        assert (
            job.job_preparation_task is not None and job.job_preparation_task.command_line == "prep"
        )
        assert job.job_release_task is not None and job.job_release_task.command_line == "release"
        assert [(e.name, e.value) for e in job.common_environment_settings or []] == [("A", "1")]
        assert job.network_configuration is not None
        assert job.network_configuration.subnet_id == "/subscriptions/s/subnets/n"
        assert job.network_configuration.skip_withdraw_from_vnet is True


async def test_add_job_with_unknown_member_is_400_invalid_request_body_naming_it(
    api: Api, rpcs: list[str]
) -> None:
    """Add: a member BatchJobCreateOptions does not have is 400 InvalidRequestBody naming
    it; no call, nothing created."""
    r = await api.call("POST", "/jobs", json={"id": "j1", "poolInfo": {"poolId": "p"}, "bogus": 1})
    why = "The property 'bogus' is not a member of BatchJobCreateOptions."
    assert_batch_error(r, 400, "InvalidRequestBody", [prop("bogus"), reason(why)],
                       base_url=api.base_url)  # fmt: skip
    assert rpcs == []
    assert await api.list_ids() == []


async def test_add_job_without_id_is_400_missing_required_property_id(
    api: Api, rpcs: list[str]
) -> None:
    """Add: a body without id is 400 MissingRequiredProperty, PropertyName id; no call."""
    r = await api.call("POST", "/jobs", json={"poolInfo": {"poolId": "p"}})
    assert_batch_error(r, 400, "MissingRequiredProperty", [prop("id")], base_url=api.base_url)
    assert rpcs == []


async def test_add_job_without_pool_info_is_400_missing_required_property_from_the_core(
    api: Api, rpcs: list[str], clients: Clients
) -> None:
    """Add (C5, C25): poolInfo required is the core's rule: one CreateJob, 400
    MissingRequiredProperty naming poolInfo; neither the job nor the collection exists."""
    r = await api.call("POST", "/jobs", json={"id": "j1", "priority": 3})
    assert_batch_error(r, 400, "MissingRequiredProperty", [prop("poolInfo"), reason("required")],
                       base_url=api.base_url)  # fmt: skip
    assert rpcs == ["CreateJob"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await clients.jobs.GetCollection(
            job_service_pb2.GetCollectionRequest(name=f"collections/{CID}")
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("member", "value", "name", "why"),
    [
        ("priority", 5000, "priority", "5000 is not allowed; must be -1000..1000"),
        ("priority", -1001, "priority", "-1001 is not allowed; must be -1000..1000"),
        ("maxParallelTasks", 0, "maxParallelTasks", "0 is not allowed; must be -1 or >= 1"),
        ("maxParallelTasks", -2, "maxParallelTasks", "-2 is not allowed; must be -1 or >= 1"),
        ("constraints", {"maxTaskRetryCount": -2}, "constraints.maxTaskRetryCount",
         "-2 is not allowed; must be >= -1"),
    ],
)  # fmt: skip
async def test_add_job_value_outside_its_range_is_400_invalid_property_value(
    api: Api, member: str, value: Any, name: str, why: str
) -> None:
    """Add (C31): priority outside -1000..1000, maxParallelTasks 0 or below -1 and
    maxTaskRetryCount below -1 are 400 InvalidPropertyValue naming the member; nothing is
    created."""
    r = await api.call(
        "POST", "/jobs", json={"id": "j1", "poolInfo": {"poolId": "p"}, member: value}
    )
    assert_batch_error(r, 400, "InvalidPropertyValue", [prop(name), reason(why)],
                       base_url=api.base_url)  # fmt: skip
    assert await api.list_ids() == []


@pytest.mark.parametrize("fields", [{"priority": 5000}, {"max_parallel_tasks": 0}])
async def test_sdk_priority_5000_or_max_parallel_tasks_0_is_400_invalid_property_value(
    sdk: BatchClient, fields: dict[str, Any]
) -> None:
    """SDK (C31): create_job with priority 5000 or max_parallel_tasks 0 raises a 400
    HttpResponseError with code InvalidPropertyValue; the job does not exist."""
    options = bm.BatchJobCreateOptions(id="bad", pool_info=bm.BatchPoolInfo(pool_id="p"), **fields)
    with pytest.raises(HttpResponseError) as info:
        await in_thread(sdk.create_job, options)
    assert info.value.status_code == 400
    assert info.value.error is not None and info.value.error.code == "InvalidPropertyValue"
    with pytest.raises(ResourceNotFoundError):
        await in_thread(sdk.get_job, "bad")


# --- list and get --------------------------------------------------------------------------


async def test_list_jobs_of_an_account_without_jobs_is_one_list_jobs_call(
    api: Api, rpcs: list[str]
) -> None:
    """List (C27): an account without jobs (no collection yet) lists as empty with one
    ListJobs (allow_missing), no error caught and retried."""
    assert json_of(await api.call("GET", "/jobs"), 200) == {
        "odata.metadata": f"{api.base_url}/$metadata#jobs",
        "value": [],
    }
    assert rpcs == ["ListJobs"]


async def test_expand_stats_returns_job_statistics_on_list_and_get(api: Api) -> None:
    """List / Get: $expand=stats adds the job's statistics (url, times, zero usage) to
    each job; without it there are none."""
    await api.create("j1")
    listed = json_of(await api.call("GET", "/jobs", params={"$expand": "stats"}), 200)["value"]
    got = json_of(await api.call("GET", "/jobs/j1", params={"$expand": "stats"}), 200)
    for job in (listed[0], got):
        stats = job["stats"]
        assert stats["url"] == job_url(api, "j1")
        assert (stats["startTime"], stats["lastUpdateTime"]) == (
            job["creationTime"],
            job["lastModified"],
        )
        assert (stats["numSucceededTasks"], stats["wallClockTime"]) == (0, "PT0S")
    assert "stats" not in json_of(await api.call("GET", "/jobs"), 200)["value"][0]
    selected = json_of(
        await api.call("GET", "/jobs/j1", params={"$select": "id,stats", "$expand": "stats"}), 200
    )
    assert set(selected) == {"odata.metadata", "id", "stats"}


async def worked_job(api: Api, worker: Any) -> None:
    """Job j1 (one retry allowed) whose t1 a worker ends with exit code 0 and whose t2
    fails twice (exit code 3): one succeeded, one failed after one retry."""
    await api.create("j1", constraints={"maxTaskRetryCount": 1})
    for task_id in ("t1", "t2"):
        await api.add_task("j1", task_id)
    lease = worker_service_pb2.LeaseWorkRequest(worker_id="w1", max_items=2)
    for exit_codes in ({"t1": 0, "t2": 3}, {"t2": 3}):
        items = (await worker.LeaseWork(lease)).items
        assert sorted(i.target.rsplit("/", 1)[-1] for i in items) == sorted(exit_codes)
        for item in items:
            code = exit_codes[item.target.rsplit("/", 1)[-1]]
            await worker.CompleteWork(worker_service_pb2.CompleteWorkRequest(
                lease_token=item.lease_token, exit_code=code))  # fmt: skip


async def test_expand_stats_counts_the_jobs_tasks_in_one_full_get_job(
    api: Api, worker: Any, batch_gateway: RunningGateway
) -> None:
    """B16: Get / List with $expand=stats show the core's task statistics
    (numSucceededTasks, numFailedTasks, numTaskRetries; wallClockTime stays PT0S) from
    one GetJob / ListJobs asking view FULL; without $expand the view is BASIC."""
    await worked_job(api, worker)
    views: list[tuple[str, int]] = []
    upstream = batch_gateway.app.upstream
    real = upstream.call

    async def recorded(method: str, request: Any, *args: Any, **kwargs: Any) -> Any:
        views.append((method.rsplit("/", 1)[-1], request.view))
        return await real(method, request, *args, **kwargs)

    upstream.call = recorded  # type: ignore[method-assign]
    got = json_of(await api.call("GET", "/jobs/j1", params={"$expand": "stats"}), 200)
    listed = json_of(await api.call("GET", "/jobs", params={"$expand": "stats"}), 200)["value"]
    for job in (got, listed[0]):
        stats = job["stats"]
        figures = (stats["numSucceededTasks"], stats["numFailedTasks"], stats["numTaskRetries"])
        assert figures == (1, 1, 1), stats
        assert stats["wallClockTime"] == "PT0S"
    assert "stats" not in json_of(await api.call("GET", "/jobs/j1"), 200)
    assert "stats" not in json_of(await api.call("GET", "/jobs"), 200)["value"][0]
    full, basic = job_service_pb2.JOB_VIEW_FULL, job_service_pb2.JOB_VIEW_BASIC
    assert views == [("GetJob", full), ("ListJobs", full), ("GetJob", basic), ("ListJobs", basic)]


async def test_sdk_get_job_expand_stats_counts_tasks(
    sdk: BatchClient, api: Api, worker: Any
) -> None:
    """B16: SDK get_job(expand=["stats"]) and list_jobs(expand=["stats"]) read the task
    figures as job_statistics."""
    await worked_job(api, worker)
    job = await in_thread(sdk.get_job, "j1", expand=["stats"])
    [listed] = await in_thread(lambda: list(sdk.list_jobs(expand=["stats"])))
    for stats in (job.job_statistics, listed.job_statistics):
        assert stats is not None
        assert (stats.succeeded_tasks_count, stats.failed_tasks_count) == (1, 1)
        assert stats.task_retries_count == 1
    plain = await in_thread(sdk.get_job, "j1")
    assert plain.job_statistics is None


async def test_sdk_list_jobs_with_filter_and_expand_stats(sdk: BatchClient) -> None:
    """SDK: list_jobs(filter=..., expand=["stats"]) returns the matching jobs with their
    job_statistics; max_results pages keep the filter."""
    for job_id in ("a1", "a2", "a3", "b1"):
        await in_thread(sdk.create_job, bm.BatchJobCreateOptions(
            id=job_id, pool_info=bm.BatchPoolInfo(pool_id="p")))  # fmt: skip
    jobs = await in_thread(
        lambda: list(sdk.list_jobs(filter="startswith(id,'a')", expand=["stats"]))
    )
    assert sorted(j.id for j in jobs) == ["a1", "a2", "a3"]
    assert all(j.job_statistics is not None and j.job_statistics.url for j in jobs)
    assert sorted(await sdk_ids(sdk, filter="startswith(id,'a')", max_results=1)) == [
        "a1",
        "a2",
        "a3",
    ]
    assert await sdk_ids(sdk, filter="id gt 'a2' and state eq 'active'") == ["a3", "b1"]


async def test_list_jobs_filter_values_are_data_not_filter_syntax(api: Api) -> None:
    """List: a string in $filter is one value, whatever it holds: `"`, `''` or filter
    syntax never change what the filter means (before, a `"` rewrote it)."""
    tricky = 'a" OR id != "zz'
    await api.create("j1", displayName="plain")
    await api.create("j2", displayName=tricky)
    await api.create("j3", displayName="it's")
    assert await api.list_ids(**{"$filter": "displayName eq 'a\" OR id != \"zz'"}) == ["j2"]
    assert await api.list_ids(**{"$filter": "displayName eq 'it''s'"}) == ["j3"]
    assert await api.list_ids(**{"$filter": "displayName eq 'x'' or id ne ''y'"}) == []


async def test_list_jobs_filter_on_pool_times_end_time_and_nesting(
    api: Api, clients: Clients
) -> None:
    """List (C32): startswith on id and executionInfo/poolId, poolId eq / ne, id ordering,
    the times, executionInfo/endTime (completed jobs), not / and / or with parentheses."""
    await api.create("a1", pool="p1")
    await api.create("a2", pool="p2")
    await api.create("b1", pool="p1x")
    assert (await api.call("POST", "/jobs/a2/terminate", json={})).status_code == 202
    await api.wait_state("a2", "completed")
    past = "2000-01-01T00:00:00Z"
    later = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cases = {
        "startswith(id,'a')": ["a1", "a2"],
        "startswith(executionInfo/poolId,'p1')": ["a1", "b1"],
        "executionInfo/poolId eq 'p2'": ["a2"],
        "executionInfo/poolId ne 'p2'": ["a1", "b1"],
        "id ge 'a2' and id lt 'b2'": ["a2", "b1"],
        f"executionInfo/endTime ge datetime'{past}'": ["a2"],
        f"executionInfo/startTime gt datetime'{past}'": ["a1", "a2", "b1"],
        f"creationTime gt datetime'{later}'": [],
        f"lastModified le datetime'{later}'": ["a1", "a2", "b1"],
        "not (state eq 'active')": ["a2"],
        "previousState eq 'active'": ["a2"],
        "(state eq 'completed' or id eq 'b1') and executionInfo/poolId ne 'p2'": ["b1"],
    }
    for expression, expected in cases.items():
        assert sorted(await api.list_ids(**{"$filter": expression})) == expected, expression


@pytest.mark.parametrize(
    ("path", "expression", "why"),
    [
        ("/jobs", "state eq active", "state takes a quoted string value, got 'active'"),
        ("/jobs", "priority eq 'x'", "'priority' is not a property this filter supports"),
        ("/jobs", "executionInfo/poolId gt 'a'",
         "'gt' is not an operator of executionInfo/poolId (supported: eq, ne)"),
        ("/jobs/j1/tasks", "state eq 'preparing'",
         "'preparing' is not a state value this service supports"),
        ("/jobs/j1/tasks", "executionInfo/poolId eq 'p'",
         "'executionInfo/poolId' is not a property this filter supports"),
    ],
)  # fmt: skip
async def test_unsupported_filter_is_400_invalid_query_parameter_value_without_a_call(
    api: Api, rpcs: list[str], path: str, expression: str, why: str
) -> None:
    """List: a $filter outside what the contract models is 400 InvalidQueryParameterValue
    naming $filter, its value and why; no call is made."""
    await api.create("j1")
    rpcs.clear()
    r = await api.call("GET", path, params={"$filter": expression})
    values = query_value("$filter", expression, why)
    assert_batch_error(r, 400, "InvalidQueryParameterValue", values, base_url=api.base_url)
    assert rpcs == []


# --- update and replace --------------------------------------------------------------------


async def test_empty_patch_is_one_update_job_that_writes_nothing(api: Api, rpcs: list[str]) -> None:
    """Update (C29): PATCH {} is one UpdateJob (no GetJob): 200 with the job's ETag and
    Last-Modified unchanged."""
    await api.create("j1")
    before = await api.call("GET", "/jobs/j1")
    rpcs.clear()
    r = await api.call("PATCH", "/jobs/j1", json={})
    assert_empty(r, 200, job_url(api, "j1"))
    assert rpcs == ["UpdateJob"]
    assert (r.headers["etag"], r.headers["last-modified"]) == (
        before.headers["etag"], before.headers["last-modified"],
    )  # fmt: skip
    assert (await api.get("j1"))["eTag"] == before.headers["etag"]


async def test_empty_patch_with_stale_if_match_is_412_condition_not_met(
    api: Api, rpcs: list[str]
) -> None:
    """Update (C29): PATCH {} with a stale If-Match is 412 ConditionNotMet from the one
    UpdateJob; nothing changes."""
    await api.create("j1")
    before = await api.get("j1")
    rpcs.clear()
    r = await api.call("PATCH", "/jobs/j1", json={}, headers={"If-Match": "0xSTALE"})
    assert_batch_error(r, 412, "ConditionNotMet", base_url=api.base_url)
    assert rpcs == ["UpdateJob"]
    assert (await api.get("j1"))["eTag"] == before["eTag"]


async def test_empty_patch_of_deleting_job_is_409_job_being_deleted(
    api: Api, clients: Clients, rpcs: list[str]
) -> None:
    """Update (C29, B7): PATCH {} of a deleting job is 409 JobBeingDeleted from the one
    UpdateJob; the job stays deleting."""
    await running_job(api, clients)
    assert (await api.call("DELETE", "/jobs/j1")).status_code == 202
    rpcs.clear()
    r = await api.call("PATCH", "/jobs/j1", json={})
    assert_batch_error(r, 409, "JobBeingDeleted", base_url=api.base_url)
    assert rpcs == ["UpdateJob"]
    assert (await api.get("j1"))["state"] == "deleting"


async def test_patch_network_configuration_is_written(api: Api) -> None:
    """Update: PATCH networkConfiguration is written (a BatchJobUpdateOptions member) and
    the other members are kept."""
    await api.create("j1", **NEW_MEMBERS)
    network = {"subnetId": "/subscriptions/s/subnets/other", "skipWithdrawFromVNet": False}
    r = await api.call("PATCH", "/jobs/j1", json={"networkConfiguration": network})
    assert_empty(r, 200, job_url(api, "j1"))
    job = await api.get("j1")
    assert job["networkConfiguration"] == network
    assert job["jobManagerTask"] == NEW_MEMBERS["jobManagerTask"]


async def test_sdk_update_job_with_network_configuration(sdk: BatchClient) -> None:
    """SDK: update_job(BatchJobUpdateOptions(network_configuration=...)) succeeds and
    get_job shows the new configuration."""
    await in_thread(sdk.create_job, bm.BatchJobCreateOptions(
        id="n1", pool_info=bm.BatchPoolInfo(pool_id="p")))  # fmt: skip
    network = bm.BatchJobNetworkConfiguration(subnet_id="/subscriptions/s/subnets/y")
    await in_thread(sdk.update_job, "n1", bm.BatchJobUpdateOptions(network_configuration=network))
    job = await in_thread(sdk.get_job, "n1")
    assert job.network_configuration is not None
    assert job.network_configuration.subnet_id == "/subscriptions/s/subnets/y"


@pytest.mark.parametrize(
    ("method", "body", "member", "kind"),
    [
        ("PATCH", {"displayName": "x"}, "displayName", "BatchJobUpdateOptions"),
        ("PATCH", {"jobManagerTask": {"commandLine": "x"}}, "jobManagerTask",
         "BatchJobUpdateOptions"),
        ("PUT", {"poolInfo": {"poolId": "p1"}, "bogus": 1}, "bogus", "BatchJob"),
    ],
)  # fmt: skip
async def test_update_with_a_member_it_does_not_take_is_400_naming_it(
    api: Api, rpcs: list[str], method: str, body: dict[str, Any], member: str, kind: str
) -> None:
    """Update / Replace: a member the operation's body type does not have is 400
    InvalidRequestBody naming it; no call, the job is unchanged."""
    await api.create("j1")
    before = await api.get("j1")
    rpcs.clear()
    r = await api.call(method, "/jobs/j1", json=body)
    why = f"The property '{member}' is not a member of {kind}."
    assert_batch_error(r, 400, "InvalidRequestBody", [prop(member), reason(why)],
                       base_url=api.base_url)  # fmt: skip
    assert rpcs == []
    assert (await api.get("j1"))["eTag"] == before["eTag"]


async def test_put_without_pool_info_is_400_missing_required_property_from_the_core(
    api: Api, rpcs: list[str]
) -> None:
    """Replace (C30): the dialect no longer checks poolInfo; the core's required-field rule
    refuses a replace without it: 400 MissingRequiredProperty naming poolInfo from the one
    UpdateJob; the job is unchanged. (On a disabled job: an active one refuses the pool
    change first, rule B10.)"""
    await api.create("j1")
    assert (await do(api, "disable")).status_code == 202
    before = await api.wait_state("j1", "disabled")
    rpcs.clear()
    r = await api.call("PUT", "/jobs/j1", json={"priority": 3})
    assert_batch_error(r, 400, "MissingRequiredProperty", [prop("poolInfo"), reason("required")],
                       base_url=api.base_url)  # fmt: skip
    assert rpcs == ["UpdateJob"]
    assert (await api.get("j1"))["eTag"] == before["eTag"]


async def test_put_of_a_job_as_read_ignores_its_read_only_members(api: Api) -> None:
    """Replace: a PUT of the job as GET returned it (url, eTag, state, executionInfo, the
    creation-only members, ...) is served; read-only members are ignored (neither written
    nor reset), writable ones are replaced."""
    await api.create("j1", displayName="kept", **NEW_MEMBERS)
    body = await api.get("j1")
    body.pop("odata.metadata", None)
    body["priority"] = 42
    body["networkConfiguration"] = {"subnetId": "/ignored"}
    r = await api.call("PUT", "/jobs/j1", json=body)
    assert_empty(r, 200, job_url(api, "j1"))
    job = await api.get("j1")
    assert job["priority"] == 42
    assert (job["displayName"], job["state"]) == ("kept", "active")
    for member, value in NEW_MEMBERS.items():
        assert job[member] == value, member


async def test_sdk_replace_job_with_the_job_get_job_returned(sdk: BatchClient) -> None:
    """SDK: replace_job(job_id, job) with the BatchJob from get_job, one member changed,
    succeeds and keeps the rest."""
    await in_thread(sdk.create_job, bm.BatchJobCreateOptions(
        id="r1", pool_info=bm.BatchPoolInfo(pool_id="p"), priority=1,
        metadata=[bm.BatchMetadataItem(name="k", value="v")]))  # fmt: skip
    job = await in_thread(sdk.get_job, "r1")
    job.priority = 7
    await in_thread(sdk.replace_job, "r1", job)
    after = await in_thread(sdk.get_job, "r1")
    assert (after.priority, after.pool_info.pool_id) == (7, "p")
    assert [(m.name, m.value) for m in after.metadata or []] == [("k", "v")]


# --- actions and delete ----------------------------------------------------------------------


async def test_disable_enable_terminate_are_one_call_with_headers_from_its_reply(
    api: Api, rpcs: list[str]
) -> None:
    """Actions: disable, enable and terminate are one PauseJob / ResumeJob / TerminateJob
    each (no GetJob after); the 202's ETag and Last-Modified are those of the write."""
    await api.create("j1")
    actions = [("/disable", {"disableTasks": "wait"}, "PauseJob"), ("/enable", None, "ResumeJob"),
               ("/terminate", {"terminateReason": "r"}, "TerminateJob")]  # fmt: skip
    for suffix, body, rpc in actions:
        rpcs.clear()
        r = await api.call("POST", f"/jobs/j1{suffix}", json=body)
        assert_empty(r, 202, job_url(api, "j1"))
        assert rpcs == [rpc]
        read = await api.call("GET", "/jobs/j1")
        assert (r.headers["etag"], r.headers["last-modified"]) == (
            read.headers["etag"], read.headers["last-modified"],
        )  # fmt: skip


def record_deadlines(gateway: RunningGateway) -> list[tuple[str, float | None]]:
    """From now on, each upstream call's method name and deadline (seconds)."""
    seen: list[tuple[str, float | None]] = []
    upstream = gateway.app.upstream
    real = upstream.call

    async def recorded(method: str, *args: Any, **kwargs: Any) -> Any:
        seen.append((method.rsplit("/", 1)[-1], kwargs.get("deadline")))
        return await real(method, *args, **kwargs)

    upstream.call = recorded  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize(
    ("time_out", "low", "high"), [(5, 4.0, 5.0), (600, 29.0, 30.0), (None, 29.0, 30.0)]
)
async def test_time_out_is_the_call_deadline_at_most_30_seconds(
    api: Api, batch_gateway: RunningGateway, time_out: int | None, low: float, high: float
) -> None:
    """Delete (seed 001): timeOut is the call's deadline in seconds; above 30 (or absent)
    Batch's default of 30 applies. Reads take it too."""
    await api.create("j1")
    seen = record_deadlines(batch_gateway)
    params = {} if time_out is None else {"timeOut": time_out}
    assert (await api.call("GET", "/jobs/j1", params=params)).status_code == 200
    assert (await api.call("DELETE", "/jobs/j1", params=params)).status_code == 202
    assert [name for name, _ in seen] == ["GetJob", "DeleteJob"]
    for _, deadline in seen:
        assert deadline is not None and low < deadline <= high, seen


@pytest.mark.parametrize(
    ("params", "name", "value", "why"),
    [({"force": "maybe"}, "force", "maybe", "must be true or false"),
     ({"timeOut": "0"}, "timeOut", "0", "must be a positive integer (seconds)"),
     ({"timeOut": "soon"}, "timeOut", "soon", "must be a positive integer (seconds)")],
)  # fmt: skip
async def test_delete_with_bad_force_or_time_out_is_400_invalid_query_parameter_value(
    api: Api, rpcs: list[str], params: dict[str, str], name: str, value: str, why: str
) -> None:
    """Delete: force other than true/false, or a timeOut that is not a positive number of
    seconds, is 400 InvalidQueryParameterValue naming it; no call, the job stays."""
    await api.create("j1")
    rpcs.clear()
    r = await api.call("DELETE", "/jobs/j1", params=params)
    assert_batch_error(r, 400, "InvalidQueryParameterValue", query_value(name, value, why),
                       base_url=api.base_url)  # fmt: skip
    assert rpcs == []
    assert (await api.get("j1"))["state"] == "active"


# --- tasks -----------------------------------------------------------------------------------


async def test_add_task_keeps_every_batch_task_member(api: Api) -> None:
    """Tasks (B14): the BatchTask members beyond id, displayName and commandLine are kept
    whole (Task.properties) and come back as sent from Get and List."""
    await api.create("j1")
    body = {"id": "t1", "displayName": "one", "commandLine": "echo 1", **TASK_MEMBERS}
    r = await api.call("POST", "/jobs/j1/tasks", json=body)
    assert_empty(r, 201)
    assert r.headers["dataserviceid"] == f"{api.base_url}/jobs/j1/tasks/t1"
    got = json_of(await api.call("GET", "/jobs/j1/tasks/t1"), 200)
    listed = json_of(await api.call("GET", "/jobs/j1/tasks"), 200)["value"]
    for task in (got, listed[0]):
        assert {k: task[k] for k in body} == body
    assert r.headers["etag"] == got["eTag"]


async def test_sdk_task_members_round_trip(sdk: BatchClient) -> None:
    """SDK (B14): create_task with constraints, environment settings, required slots and
    dependencies; get_task returns them."""
    await in_thread(sdk.create_job, bm.BatchJobCreateOptions(
        id="tj", pool_info=bm.BatchPoolInfo(pool_id="p"), uses_task_dependencies=True))  # fmt: skip
    options = bm.BatchTaskCreateOptions(
        id="t1",
        command_line="echo",
        required_slots=2,
        environment_settings=[bm.EnvironmentSetting(name="E", value="v")],
        constraints=bm.BatchTaskConstraints(max_task_retry_count=2),
        depends_on=bm.BatchTaskDependencies(task_ids=["t0"]),
    )
    await in_thread(sdk.create_task, "tj", options)
    task = await in_thread(sdk.get_task, "tj", "t1")
    assert (task.required_slots, task.command_line) == (2, "echo")
    assert [(e.name, e.value) for e in task.environment_settings or []] == [("E", "v")]
    assert task.constraints is not None and task.constraints.max_task_retry_count == 2
    assert task.depends_on is not None and task.depends_on.task_ids == ["t0"]


async def test_list_tasks_filter_select_and_maxresults_page_with_next_link(
    api: Api, clients: Clients, rpcs: list[str]
) -> None:
    """Tasks: GET tasks takes $filter (structured), $select and maxresults, and pages with
    odata.nextLink; each request is one ListTasks (before: every page walked)."""
    await api.create("j1")
    for task_id in ("t1", "t2", "t3"):
        await api.add_task("j1", task_id)
    await move_task(clients, "j1", "t2", resources_pb2.Task.RUNNING)
    rpcs.clear()
    page = json_of(await api.call("GET", "/jobs/j1/tasks", params={"maxresults": 2}), 200)
    assert [t["id"] for t in page["value"]] == ["t1", "t2"]
    link = urlsplit(page["odata.nextLink"])
    assert link.path == "/jobs/j1/tasks"
    rest = json_of(await api.call("GET", link.path, raw_query=link.query), 200)
    assert [t["id"] for t in rest["value"]] == ["t3"]
    assert "odata.nextLink" not in rest
    assert rpcs == ["ListTasks", "ListTasks"]
    params = {"$filter": "state eq 'running' or id eq 't3'", "$select": "id,state"}
    body = json_of(await api.call("GET", "/jobs/j1/tasks", params=params), 200)
    assert body["value"] == [{"id": "t2", "state": "running"}, {"id": "t3", "state": "active"}]


async def test_sdk_list_tasks_with_filter_select_and_max_results(
    sdk: BatchClient, clients: Clients
) -> None:
    """SDK: list_tasks(filter=..., select=[...], max_results=1) returns the matching tasks
    with only the selected members, one page at a time."""
    await in_thread(sdk.create_job, bm.BatchJobCreateOptions(
        id="tj", pool_info=bm.BatchPoolInfo(pool_id="p")))  # fmt: skip
    for task_id in ("t1", "t2", "t3"):
        await in_thread(
            sdk.create_task, "tj", bm.BatchTaskCreateOptions(id=task_id, command_line="x")
        )
    await move_task(clients, "tj", "t1", resources_pb2.Task.COMPLETED)
    tasks = await in_thread(lambda: list(sdk.list_tasks(
        "tj", filter="state eq 'active'", select=["id", "state"], max_results=1)))  # fmt: skip
    assert [(t.id, t.state) for t in tasks] == [
        ("t2", bm.BatchTaskState.ACTIVE), ("t3", bm.BatchTaskState.ACTIVE),
    ]  # fmt: skip
    assert [t.command_line for t in tasks] == [None, None]  # not selected
    done = await in_thread(
        lambda: list(sdk.list_tasks("tj", filter="executionInfo/result eq 'success'"))
    )
    assert [t.id for t in done] == ["t1"]


async def test_task_counts_is_one_count_tasks_call(
    api: Api, clients: Clients, rpcs: list[str]
) -> None:
    """Tasks: GET taskcounts is one CountTasks (before: every ListTasks page)."""
    await api.create("j1")
    for task_id in ("t1", "t2"):
        await api.add_task("j1", task_id)
    await move_task(clients, "j1", "t2", resources_pb2.Task.RUNNING)
    rpcs.clear()
    body = json_of(await api.call("GET", "/jobs/j1/taskcounts"), 200)
    counts = {"active": 1, "running": 1, "completed": 0, "succeeded": 0, "failed": 0}
    assert body == {
        "odata.metadata": f"{api.base_url}/$metadata#taskcounts/@Element",
        "taskCounts": counts,
        "taskSlotCounts": counts,
    }
    assert rpcs == ["CountTasks"]


# --- claims and messages -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/jobschedules", "/JobSchedules", "/pools", "/pools/p1/nodes", "/certificates",
     "/applications", "/poolusagemetrics", "/nodecounts", "/supportedimages",
     "/lifetimejobstats", "/lifetimepoolstats", "/$metadata"],
)  # fmt: skip
async def test_other_batch_collections_are_404_resource_not_found_with_request_id(
    api: Api, rpcs: list[str], path: str
) -> None:
    """Routing: every Batch top-level collection is the dialect's, in any case; one it does
    not serve is 404 ResourceNotFound in the BatchError format with request-id (before: the
    native mapping's AIP-193 body)."""
    r = await api.call("GET", path)
    assert_batch_error(r, 404, "ResourceNotFound", base_url=api.base_url)
    assert rpcs == []


BIG = b'{"id": "' + b"x" * (1024 * 1024) + b'"}'
DEEP: Any = {"commandLine": "x"}
for _ in range(40):
    DEEP = {"nested": DEEP}
MESSAGE_CASES: dict[str, tuple[str, str, dict[str, Any], int, str, list[dict[str, str]] | None]] = {
    "job-not-found": ("GET", "/jobs/nope", {}, 404, "JobNotFound", None),
    "job-not-found-delete": ("DELETE", "/jobs/nope", {}, 404, "JobNotFound", None),
    "job-not-found-task": ("POST", "/jobs/nope/tasks", {"json": {"id": "t"}}, 404, "JobNotFound",
                           None),
    "job-not-found-counts": ("GET", "/jobs/nope/taskcounts", {}, 404, "JobNotFound", None),
    "job-not-found-bad-id": ("GET", "/jobs/a%20b", {}, 404, "JobNotFound", None),
    "task-not-found": ("GET", "/jobs/j1/tasks/nope", {}, 404, "TaskNotFound", None),
    "job-exists": ("POST", "/jobs", {"json": {"id": "J1", "poolInfo": {"poolId": "p"}}}, 409,
                   "JobExists", None),
    "task-exists": ("POST", "/jobs/j1/tasks", {"json": {"id": "t1"}}, 409, "TaskExists", None),
    "completed": ("PATCH", "/jobs/c1", {"json": {"priority": 1}}, 409, "JobCompleted", None),
    "terminating": ("POST", "/jobs/r1/disable", {"json": {}}, 409, "JobBeingTerminated", None),
    "deleting": ("DELETE", "/jobs/d1", {}, 409, "JobBeingDeleted", None),
    "invalid-state": ("POST", "/jobs/j1/enable", {}, 409, "OperationInvalidForCurrentState", None),
    "pool-while-active": ("PATCH", "/jobs/j1", {"json": {"poolInfo": {"poolId": "other"}}}, 409,
                          "OperationInvalidForCurrentState", [prop("poolInfo")]),
    "condition": ("GET", "/jobs/j1", {"headers": {"If-Match": "0xSTALE"}}, 412, "ConditionNotMet",
                  None),
    "two-conditions": ("GET", "/jobs/j1", {"headers": {"If-Match": "*", "If-None-Match": "*"}}, 400,
                       "MultipleConditionHeadersNotSupported", None),
    "malformed-json": ("PATCH", "/jobs/j1", {"content": b"{"}, 400, "InvalidRequestBody",
                       [reason(json_error(b"{"))]),
    "not-an-object": ("PATCH", "/jobs/j1", {"json": [1]}, 400, "InvalidRequestBody",
                      [reason("The body must be a JSON object.")]),
    "wrong-type": ("PATCH", "/jobs/j1", {"json": {"priority": "high"}}, 400, "InvalidRequestBody",
                   [prop("priority"), reason("must be an integer")]),
    "bad-job-id": ("POST", "/jobs", {"json": {"id": "a b", "poolInfo": {"poolId": "p"}}}, 400,
                   "InvalidPropertyValue",
                   [prop("id"), reason("invalid id 'a b' (allowed: [A-Za-z0-9_-]{1,64})")]),
    "maxresults": ("GET", "/jobs", {"params": {"maxresults": 0}}, 400, "InvalidQueryParameterValue",
                   query_value("maxresults", "0", "must be an integer from 1 to 1000")),
    "select": ("GET", "/jobs/j1", {"params": {"$select": "id,bogus"}}, 400,
               "InvalidQueryParameterValue",
               query_value("$select", "id,bogus", "not a property: bogus")),
    "page-token": ("GET", "/jobs", {"params": {"$skiptoken": "garbage"}}, 400,
                   "InvalidQueryParameterValue",
                   [{"key": "QueryParameterName", "value": "$skiptoken"},
                    reason("not a page token")]),
    "no-version": ("GET", "/jobs", {"version": None}, 400, "MissingRequiredQueryParameter",
                   [{"key": "QueryParameterName", "value": "api-version"}]),
    "old-version": ("GET", "/jobs", {"version": "2024-07-01.20.0"}, 400,
                    "UnsupportedRequestVersion",
                    [{"key": "QueryParameterName", "value": "api-version"},
                     {"key": "QueryParameterValue", "value": "2024-07-01.20.0"}]),
    "unsigned": ("GET", "/jobs", {"signer": None}, 403, "AuthenticationFailed",
                 [{"key": "AuthenticationErrorDetail",
                   "value": "The Authorization header is not SharedKey {account}:{signature}."}]),
    "verb": ("DELETE", "/jobs", {}, 405, "UnsupportedHttpVerb", None),
    "route": ("GET", "/jobs/j1/bogus", {}, 404, "ResourceNotFound", None),
    "too-large": ("POST", "/jobs", {"content": BIG}, 413, "RequestBodyTooLarge", None),
    "too-deep": ("POST", "/jobs", {"json": {"id": "j2", "poolInfo": {"poolId": "p"},
                                            "jobManagerTask": DEEP}}, 400, "InvalidRequestBody",
                 [prop("jobManagerTask"), reason("nested more than 32 levels deep")]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MESSAGE_CASES))
async def test_errors_carry_batch_codes_and_documented_messages(
    api: Api, clients: Clients, case: str
) -> None:
    """Errors: every refusal is a BatchError with Batch's code and documented message (never
    jobcontrol's names) and its detail in `values`; the jobs are unchanged."""
    await api.create("j1")
    await api.add_task("j1", "t1")
    await api.create("c1")
    assert (await api.call("POST", "/jobs/c1/terminate", json={})).status_code == 202
    await api.wait_state("c1", "completed")
    for job_id, action in (("r1", "/terminate"), ("d1", "")):
        await running_job(api, clients, job_id)
        r = await api.call("DELETE" if not action else "POST", f"/jobs/{job_id}{action}",
                           json={} if action else None)  # fmt: skip
        assert r.status_code == 202, r.text
    before = json_of(await api.call("GET", "/jobs"), 200)["value"]
    method, path, kwargs, status, code, values = MESSAGE_CASES[case]
    r = await api.call(method, path, **kwargs)
    assert_batch_error(r, status, code, values, base_url=api.base_url)
    assert json_of(await api.call("GET", "/jobs"), 200)["value"] == before


# --- one RPC per route -----------------------------------------------------------------------


async def test_every_route_makes_at_most_one_rpc(
    api: Api, clients: Clients, rpcs: list[str]
) -> None:
    """Seam: every route, served or refused, makes at most one upstream call, the row's
    own; gateway refusals (route, verb, auth, version, body, query) make none."""
    pool = {"poolInfo": {"poolId": "p"}}
    steps: list[tuple[str, str, dict[str, Any], int, list[str]]] = [
        ("POST", "/jobs", {"json": {"id": "j1", **pool}}, 201, ["CreateJob"]),
        ("POST", "/jobs", {"json": {"id": "j1", **pool}}, 409, ["CreateJob"]),
        ("POST", "/jobs", {"json": {"id": "j9", "priority": 5000, **pool}}, 400, ["CreateJob"]),
        ("POST", "/jobs", {"json": {"id": "j9", "bogus": 1}}, 400, []),
        ("GET", "/jobs", {}, 200, ["ListJobs"]),
        ("GET", "/jobs", {"params": {"$filter": "bogus"}}, 400, []),
        ("GET", "/jobs", {"params": {"$skiptoken": "x"}}, 400, ["ListJobs"]),
        ("GET", "/jobs/j1", {}, 200, ["GetJob"]),
        ("GET", "/jobs/nope", {}, 404, ["GetJob"]),
        ("GET", "/jobs/j1", {"headers": {"If-Modified-Since": future()}}, 304, ["GetJob"]),
        ("GET", "/jobs/j1", {"headers": {"If-Match": "0xSTALE"}}, 412, ["GetJob"]),
        ("PATCH", "/jobs/j1", {"json": {"priority": 2}}, 200, ["UpdateJob"]),
        ("PATCH", "/jobs/j1", {"json": {}}, 200, ["UpdateJob"]),
        ("PATCH", "/jobs/j1", {"json": {}, "headers": {"If-Match": "0xSTALE"}}, 412, ["UpdateJob"]),
        ("PATCH", "/jobs/j1", {"json": {"displayName": "x"}}, 400, []),
        ("PUT", "/jobs/j1", {"json": {**pool, "priority": 3}}, 200, ["UpdateJob"]),
        ("PUT", "/jobs/j1", {"json": {"poolInfo": {"poolId": "q"}}}, 409, ["UpdateJob"]),
        ("POST", "/jobs/j1/disable", {"json": {"disableTasks": "requeue"}}, 202, ["PauseJob"]),
        ("POST", "/jobs/j1/disable", {"json": {"disableTasks": "never"}}, 400, []),
        ("POST", "/jobs/j1/enable", {}, 202, ["ResumeJob"]),
        ("POST", "/jobs/j1/enable", {}, 409, ["ResumeJob"]),
        ("POST", "/jobs/j1/tasks", {"json": {"id": "t1", "commandLine": "x"}}, 201, ["CreateTask"]),
        ("POST", "/jobs/j1/tasks", {"json": {"id": "t1"}}, 409, ["CreateTask"]),
        ("POST", "/jobs/j1/tasks", {"json": {"id": "t2", "state": "x"}}, 400, []),
        ("GET", "/jobs/j1/tasks", {"params": {"maxresults": 1}}, 200, ["ListTasks"]),
        ("GET", "/jobs/nope/tasks", {}, 404, ["ListTasks"]),
        ("GET", "/jobs/j1/tasks/t1", {}, 200, ["GetTask"]),
        ("GET", "/jobs/j1/tasks/nope", {}, 404, ["GetTask"]),
        ("GET", "/jobs/j1/taskcounts", {}, 200, ["CountTasks"]),
        ("GET", "/jobs/nope/taskcounts", {}, 404, ["CountTasks"]),
        ("POST", "/jobs/j1/terminate", {"json": {"terminateReason": "r"}}, 202, ["TerminateJob"]),
        ("POST", "/jobs/j1/terminate", {"json": {}}, 409, ["TerminateJob"]),
        ("DELETE", "/jobs/j1", {}, 202, ["DeleteJob"]),
        ("DELETE", "/jobs/nope", {}, 404, ["DeleteJob"]),
        ("DELETE", "/jobs/j1", {"params": {"force": "x"}}, 400, []),
        ("GET", "/jobs/j1/bogus", {}, 404, []),
        ("DELETE", "/jobs", {}, 405, []),
        ("GET", "/pools", {}, 404, []),
        ("GET", "/jobs", {"signer": None}, 403, []),
        ("GET", "/jobs", {"version": None}, 400, []),
        ("PATCH", "/jobs/j1", {"content": b"{"}, 400, []),
    ]
    seen: list[tuple[str, str, int, list[str]]] = []
    for method, path, kwargs, _, _ in steps:
        rpcs.clear()
        r = await api.call(method, path, **kwargs)
        request_id(r)
        seen.append((method, path, r.status_code, list(rpcs)))
    assert seen == [(m, p, status, calls) for m, p, _, status, calls in steps]


@pytest.mark.parametrize("job_id", ["operations", "cloudServices"])
async def test_jobs_named_like_scheduler_segments_are_batch_jobs(api: Api, job_id: str) -> None:
    """Routing: the Batch dialect is asked before the Scheduler's `/{sub}/operations/…` and
    `/{sub}/cloudServices/…`, so a Batch job named `operations` is read, updated and
    deleted as a Batch job (JSON, request-id), not answered as a Scheduler 404."""
    await api.create(job_id)
    job = await api.get(job_id)
    assert job["id"] == job_id
    r = await api.call("PATCH", f"/jobs/{job_id}", json={"priority": 7})
    assert_empty(r, 200, job["url"])
    assert (await api.get(job_id))["priority"] == 7
    r = await api.call("DELETE", f"/jobs/{job_id}")
    assert r.status_code == 202 and r.headers["request-id"]
