"""A toy dialect made only of the seam's parts (route rows naming their RPC, pure build and
render functions, an error table), served over real HTTP: what every legacy dialect is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any, ClassVar

import grpc
import httpx
import orjson
import pytest

from jobcontrol.gateway import conditional
from jobcontrol.gateway.dialects.base import Dialect
from jobcontrol.gateway.dialects.error_table import ErrorRow, ErrorTable
from jobcontrol.gateway.dialects.incoming import Incoming
from jobcontrol.gateway.errors import GatewayError, gateway_error
from jobcontrol.gateway.http import Request, Response
from jobcontrol.service.server import RunningServer
from jobcontrol.v1 import job_service_pb2 as js
from jobcontrol.v1 import resources_pb2 as res
from tests.conftest import record_rpcs, start_gateway


def job_name(incoming: Incoming) -> str:
    return f"collections/{incoming.params['c']}/jobs/{incoming.params['j']}"


def build_get(incoming: Incoming) -> js.GetJobRequest:
    return js.GetJobRequest(name=job_name(incoming))


def render_job(incoming: Incoming, job: res.Job) -> Response:
    modified = job.update_time.ToDatetime(tzinfo=UTC)
    verdict = incoming.read_outcome(job.etag, modified)
    if verdict is conditional.Outcome.NOT_MODIFIED:
        return Response(304, b"", None)
    if verdict is conditional.Outcome.PRECONDITION_FAILED:
        raise gateway_error(grpc.StatusCode.ABORTED, "CONDITION_NOT_MET", "unmet")
    return Response(incoming.status, orjson.dumps({"Id": job.name, "Label": job.display_name}))


def build_rename(incoming: Incoming) -> js.UpdateJobRequest:
    body = incoming.json(required=True)
    job = res.Job(name=job_name(incoming), display_name=str(body.get("Label", "")))
    return incoming.condition(js.UpdateJobRequest(job=job))


def build_maybe(incoming: Incoming) -> js.GetJobRequest | None:
    """Nothing to ask the server when the client asks for nothing."""
    return None if incoming.query_map().get("skip") == "1" else build_get(incoming)


def render_maybe(incoming: Incoming, job: res.Job | None) -> Response:
    return Response(200, orjson.dumps({"Asked": job is not None}))


class ToyDialect(Dialect):
    """`/toy/{c}/jobs/{j}`: get, rename (PATCH, 202), a maybe-call route; errors as
    {"Code", "Message"}."""

    name = "toy"
    case_insensitive = True
    trailing_slash = True
    request_id_header: ClassVar[str] = "toy-request-id"
    condition_rules = conditional.ConditionRules(read_not_modified=False)
    errors = ErrorTable(
        by_reason={
            "JOB_NOT_FOUND": ErrorRow(404, "JobNotFound", "No job {j} in {c}."),
            "COLLECTION_NOT_FOUND": ErrorRow(404, "JobNotFound", "No job {j} in {c}."),
            "ROUTE_NOT_FOUND": ErrorRow(404, "NoSuchRoute"),
            "METHOD_NOT_ALLOWED": ErrorRow(405, "BadMethod"),
            "MULTIPLE_CONDITION_HEADERS": ErrorRow(400, "TooManyConditions"),
            "CONDITION_NOT_MET": ErrorRow(412, "ConditionNotMet"),
            "ETAG_MISMATCH": ErrorRow(412, "ConditionNotMet"),
            "INVALID_FIELD@job.display_name": ErrorRow(400, "LabelTooLong", "Label: {message}"),
        },
        by_code={grpc.StatusCode.INVALID_ARGUMENT: ErrorRow(400, "Invalid")},
        fallback=ErrorRow(500, "Other"),
    )

    def __init__(self) -> None:
        row = self.row
        super().__init__(
            [
                row("GET", "/toy/{c}/jobs/{j}", "GetJob", build_get, render_job),
                row("PATCH", "/toy/{c}/jobs/{j}", "UpdateJob", build_rename, render_job, 202,
                    errors={"JOB_NOT_FOUND": ErrorRow(409, "Gone", "gone")}),
                row("GET", "/toy/{c}/maybe/{j}", "GetJob", build_maybe, render_maybe),
                row("GET", "/toy/boom", None, None, self.boom),
            ]
        )  # fmt: skip

    def claims(self, request: Request) -> bool:
        return request.path.lower().startswith("/toy/")

    def format_error(self, error: GatewayError, row: ErrorRow, incoming: Incoming) -> Response:
        message = self.errors.message(row, error, incoming.params)
        return Response(row.status, orjson.dumps({"Code": row.code, "Message": message}))

    def boom(self, incoming: Incoming, reply: Any) -> Response:
        raise RuntimeError("a bug")


@pytest.fixture
async def toy(server: RunningServer) -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    """The toy dialect in front of the server, and the log of the RPCs it makes."""
    gateway, stop = await start_gateway(server.address)
    gateway.app.dialects.insert(0, ToyDialect())
    calls = record_rpcs(gateway.app)
    try:
        async with httpx.AsyncClient(base_url=gateway.base_url) as http:
            r = await http.post(
                "/v1/collections", params={"collectionId": "c"}, json={"profile": "SCHEDULED"}
            )
            assert r.status_code == 200
            r = await http.post("/v1/collections/c/jobs", params={"jobId": "J1"}, json={})
            assert r.status_code == 200
            calls.clear()
            yield http, calls
    finally:
        await stop()


async def test_toy_dialect_routes_case_insensitively_and_keeps_id_case(
    toy: tuple[httpx.AsyncClient, list[str]],
) -> None:
    """Seam: fixed segments match in any case, ids keep theirs, a trailing slash routes
    like none (where the dialect says so), responses carry the dialect's request id."""
    http, calls = toy
    for path in ("/TOY/c/JOBS/J1", "/toy/c/jobs/J1/"):
        r = await http.get(path)
        assert (r.status_code, r.json()) == (200, {"Id": "collections/c/jobs/J1", "Label": ""})
        assert r.headers["toy-request-id"]
    assert calls == ["GetJob", "GetJob"]


async def test_toy_dialect_runs_one_declared_rpc_and_renders_its_reply(
    toy: tuple[httpx.AsyncClient, list[str]],
) -> None:
    """Seam: a write is one call of the row's RPC; render gets that call's own reply (no
    re-read) and the row's success status; build may decide that no call is needed."""
    http, calls = toy
    r = await http.patch("/toy/c/jobs/J1", json={"Label": "renamed"})
    assert (r.status_code, r.json()) == (202, {"Id": "collections/c/jobs/J1", "Label": "renamed"})
    assert calls == ["UpdateJob"]
    calls.clear()
    assert (await http.get("/toy/c/maybe/J1", params={"skip": "1"})).json() == {"Asked": False}
    assert calls == []
    assert (await http.get("/toy/c/maybe/J1")).json() == {"Asked": True}
    assert calls == ["GetJob"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "message"),
    [
        ("GET", "/toy/c/jobs/nope", None, 404, "JobNotFound", "No job nope in c."),
        ("PATCH", "/toy/c/jobs/nope", {"Label": "x"}, 409, "Gone", "gone"),
        ("PATCH", "/toy/c/jobs/J1", {"Label": "x" * 1025}, 400, "LabelTooLong",
         "Label: job.display_name: longer than 1024 characters"),
        ("PATCH", "/toy/c/jobs/J1", [1], 400, "Invalid", "The body must be a JSON object."),
        ("GET", "/toy/c/other", None, 404, "NoSuchRoute", "no route for /toy/c/other"),
        ("DELETE", "/toy/c/jobs/J1", None, 405, "BadMethod",
         "DELETE is not allowed here; allowed: GET, PATCH"),
        ("GET", "/toy/boom", None, 500, "Other", "internal gateway error"),
    ],
)  # fmt: skip
async def test_toy_dialect_answers_errors_from_its_table(
    toy: tuple[httpx.AsyncClient, list[str]],
    method: str,
    path: str,
    body: Any,
    status: int,
    code: str,
    message: str,
) -> None:
    """Seam: the error table is looked up once for every failure: a route's own rows, then
    REASON@field, then reason, then code, then the fallback; messages are filled from the
    path; gateway bugs too come back in the dialect's body, never a traceback."""
    http, _ = toy
    r = await http.request(method, path, json=body)
    assert (r.status_code, r.json()) == (status, {"Code": code, "Message": message})
    if status == 405:
        assert r.headers["allow"] == "GET, PATCH"


async def test_toy_dialect_conditions(toy: tuple[httpx.AsyncClient, list[str]]) -> None:
    """Seam: the dialect's condition rules decide reads (an unmet If-None-Match is 412
    here) and travel to the core on writes (a stale If-Match is the core's ETAG_MISMATCH);
    refused header pairs are 400 in the dialect's format."""
    http, calls = toy
    etag = (await http.get("/v1/collections/c/jobs/J1")).json()["etag"]
    assert (await http.get("/toy/c/jobs/J1", headers={"If-Match": f'"{etag}"'})).status_code == 200
    r = await http.get("/toy/c/jobs/J1", headers={"If-None-Match": f'"{etag}"'})
    assert (r.status_code, r.json()["Code"]) == (412, "ConditionNotMet")
    r = await http.get("/toy/c/jobs/J1", headers={"If-Match": "*", "If-None-Match": "*"})
    assert (r.status_code, r.json()["Code"]) == (400, "TooManyConditions")
    calls.clear()
    r = await http.patch("/toy/c/jobs/J1", json={"Label": "x"}, headers={"If-Match": '"stale"'})
    assert (r.status_code, r.json()["Code"]) == (412, "ConditionNotMet")
    assert calls == ["UpdateJob"]


async def test_toy_dialect_body_limit_is_the_gateways(
    toy: tuple[httpx.AsyncClient, list[str]],
) -> None:
    """Seam: a body over the gateway's limit (JOBCONTROL_MAX_BODY, 1 MiB by default) is
    413 in the dialect's format before any call."""
    http, calls = toy
    r = await http.patch("/toy/c/jobs/J1", content=b"x" * (1024 * 1024 + 1))
    assert r.status_code == 413
    assert calls == []
