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
from jobcontrol.v1 import job_service_pb2, operator_service_pb2, resources_pb2
from tests.conftest import Clients, RunningGateway, start_gateway

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
    headers = {"ocp-date": "Mon, 01 Jan 2024 00:00:00 GMT", "if-match": "*"}
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
        sent["ocp-date"] = "Tue, 02 Jan 2024 00:00:00 GMT"
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
