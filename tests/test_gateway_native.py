"""The native JSON mapping over real HTTP to a real gRPC server."""

from __future__ import annotations

import re
from typing import Any

import grpc
import httpx
import pytest

from jobcontrol.gateway.app import SERVICES
from jobcontrol.gateway.errors import HTTP_STATUS
from jobcontrol.v1 import job_service_pb2, resources_pb2
from tests.conftest import Clients, RunningGateway

GATEWAY_REASONS = {"ROUTE_NOT_FOUND", "METHOD_NOT_ALLOWED"}
JOB = "/v1/collections/c1/jobs/j1"


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The AIP-193 error of a response, checked for shape."""
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == response.status_code
    assert isinstance(error["status"], str) and isinstance(error["message"], str)
    return error


def reason_of(response: httpx.Response) -> str:
    """The ErrorInfo reason in an AIP-193 error."""
    for detail in error_of(response)["details"]:
        if detail["@type"].endswith("google.rpc.ErrorInfo"):
            assert detail["domain"] == "jobcontrol.dev"
            return str(detail["reason"])
    raise AssertionError(f"no ErrorInfo in {response.text}")


@pytest.fixture
async def seeded(http: httpx.AsyncClient) -> dict[str, Any]:
    """A scheduled collection `c1` holding job `j1`."""
    r = await http.post(
        "/v1/collections", params={"collectionId": "c1"}, json={"profile": "SCHEDULED"}
    )
    assert r.status_code == 200, r.text
    r = await http.post(
        "/v1/collections/c1/jobs",
        params={"jobId": "j1"},
        json={"displayName": "first", "labels": {"env": "prod"}},
    )
    assert r.status_code == 200, r.text
    return r.json()


# --- contract -----------------------------------------------------------------------


def _concrete(path_template: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path_template)


async def test_every_rpc_is_reachable_through_the_native_mapping(
    gateway: RunningGateway, http: httpx.AsyncClient
) -> None:
    """Contract: every RPC of jobcontrol.v1 has a binding, and each binding reaches the
    gRPC server (the answer comes from the server, not from gateway routing)."""
    rpcs = {f"/{s.full_name}/{m.name}" for s in SERVICES[:3] for m in s.methods}
    bound = {b.rpc for b in gateway.app.native.bindings}
    assert rpcs <= bound
    for binding in gateway.app.native.bindings:
        template = binding.template
        parts = ["x" if seg in ("*", "**") else seg for seg in template.segments]
        path = "/" + "/".join(parts) + (f":{template.verb}" if template.verb else "")
        response = await http.request(
            binding.http_method, path, content=b"{}" if binding.body else None
        )
        if response.status_code != 200:
            assert reason_of(response) not in GATEWAY_REASONS, (binding.rpc, response.text)


@pytest.mark.parametrize("code", list(grpc.StatusCode), ids=lambda c: c.name)
def test_grpc_status_maps_to_http_status(code: grpc.StatusCode) -> None:
    """Error table: every gRPC code has its google/rpc/code.proto HTTP status."""
    expected = {
        "OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400,
        "DEADLINE_EXCEEDED": 504, "NOT_FOUND": 404, "ALREADY_EXISTS": 409,
        "PERMISSION_DENIED": 403, "UNAUTHENTICATED": 401, "RESOURCE_EXHAUSTED": 429,
        "FAILED_PRECONDITION": 400, "ABORTED": 409, "OUT_OF_RANGE": 400,
        "UNIMPLEMENTED": 501, "INTERNAL": 500, "UNAVAILABLE": 503, "DATA_LOSS": 500,
    }  # fmt: skip
    assert HTTP_STATUS[code] == expected[code.name]


async def test_server_errors_arrive_as_aip193_with_mapped_status(
    http: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    """Errors: the server's status, reason and details reach the client in AIP-193 form."""
    r = await http.get("/v1/collections/c1/jobs/none")
    assert (r.status_code, reason_of(r)) == (404, "JOB_NOT_FOUND")
    assert error_of(r)["status"] == "NOT_FOUND"
    kinds = {d["@type"].rsplit(".", 1)[-1] for d in error_of(r)["details"]}
    assert kinds == {"ErrorInfo", "ResourceInfo"}
    r = await http.post("/v1/collections/c1/jobs", params={"jobId": "j1"}, json={})
    assert (r.status_code, reason_of(r)) == (409, "JOB_ALREADY_EXISTS")
    r = await http.post(f"{JOB}:terminate", json={})
    assert (r.status_code, reason_of(r), error_of(r)["status"]) == (
        400,
        "OPERATION_NOT_SUPPORTED",
        "FAILED_PRECONDITION",
    )
    r = await http.post(
        "/v1/collections",
        params={"collectionId": "q"},
        json={"profile": "SCHEDULED", "quota": {"maxJobCount": 0}},
    )
    r = await http.post("/v1/collections/q/jobs", json={})
    assert (r.status_code, reason_of(r), error_of(r)["status"]) == (
        429,
        "QUOTA_EXCEEDED",
        "RESOURCE_EXHAUSTED",
    )


# --- path templates -----------------------------------------------------------------


async def test_escaped_slash_in_an_id_is_the_servers_invalid_argument(
    http: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    """Templates: %2F inside a segment stays inside the variable (decoded), and the
    server refuses the resulting name: 400, not a route miss."""
    r = await http.get("/v1/collections/c1/jobs/a%2Fb")
    assert (r.status_code, reason_of(r)) == (400, "INVALID_FIELD")


async def test_custom_verbs_route_and_unknown_verbs_are_404(
    http: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    """Templates: `:pause` reaches PauseJob; an unknown verb or a verb on the wrong
    resource is 404 ROUTE_NOT_FOUND."""
    r = await http.post(f"{JOB}:pause", json={})
    assert r.status_code == 200 and r.json()["state"] == "DISABLED"
    for path in (f"{JOB}:explode", "/v1/collections/c1:pause"):
        r = await http.post(path, json={})
        assert (r.status_code, reason_of(r)) == (404, "ROUTE_NOT_FOUND")


async def test_wrong_method_is_405_with_allow(http: httpx.AsyncClient) -> None:
    """Templates: a known path with another method is 405 and lists what is allowed."""
    r = await http.put(JOB, json={})
    assert (r.status_code, reason_of(r)) == (405, "METHOD_NOT_ALLOWED")
    assert set(r.headers["allow"].split(", ")) == {"GET", "PATCH", "DELETE"}


@pytest.mark.parametrize(
    "path",
    [
        "/nothing",
        "/v1/nothing",
        "/v1/collections/c1/jobs/j1/x",
        "/v1/collections/",
        "/v2/collections",
    ],
)
async def test_unknown_path_is_404(http: httpx.AsyncClient, path: str) -> None:
    """Templates: paths no template matches are 404 in the AIP-193 format."""
    r = await http.get(path)
    assert (r.status_code, reason_of(r)) == (404, "ROUTE_NOT_FOUND")


# --- bodies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "MALFORMED_JSON"),
        (b'{"displayName": 5}', "INVALID_BODY"),
        (b'{"noSuchField": 1}', "INVALID_BODY"),
        (b'{"labels": ["a"]}', "INVALID_BODY"),
        (b'{"state": "PURPLE"}', "INVALID_BODY"),
        (b"[1, 2]", "INVALID_BODY"),
    ],
)
async def test_bad_bodies_are_400_and_change_nothing(
    http: httpx.AsyncClient, seeded: dict[str, Any], body: bytes, reason: str
) -> None:
    """Bodies: malformed JSON, wrong types and unknown fields are 400; nothing changed."""
    r = await http.patch(JOB, content=body)
    assert (r.status_code, reason_of(r)) == (400, reason)
    assert (await http.get(JOB)).json()["etag"] == seeded["etag"]


async def test_oversized_body_is_413_and_changes_nothing(
    http: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    """Bodies: over the 1 MiB default limit is 413 BODY_TOO_LARGE."""
    r = await http.patch(JOB, content=b'{"displayName": "' + b"x" * (1024 * 1024) + b'"}')
    assert (r.status_code, reason_of(r)) == (413, "BODY_TOO_LARGE")
    assert (await http.get(JOB)).json()["etag"] == seeded["etag"]


async def test_proto3_json_out_is_lower_camel_case(
    http: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    """JSON: lowerCamelCase names, enums by name, timestamps in RFC 3339."""
    body = (await http.get(JOB)).json()
    assert {"displayName", "createTime", "updateTime", "stateTransitionTime"} <= set(body)
    assert body["state"] == "ENABLED" and body["createTime"].endswith("Z")
    r = await http.post("/v1/collections/c1/jobs:batchDelete", json={})
    assert r.json()["response"] == {
        "@type": "type.googleapis.com/jobcontrol.v1.DeleteJobsResponse",
        "deletedCount": 1,
    }


# --- PATCH and its mask -------------------------------------------------------------


async def test_patch_without_mask_writes_exactly_the_body_fields(
    http: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    """PATCH without updateMask: fields present in the body are written, including an
    explicit empty value; fields absent keep their value."""
    r = await http.patch(JOB, json={"displayName": ""})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "displayName" not in body and body["labels"] == {"env": "prod"}


async def test_patch_with_update_mask_query_uses_it(
    http: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    """PATCH with ?updateMask=: only the masked fields are written (FieldMask from the
    query string)."""
    r = await http.patch(
        JOB, params={"updateMask": "labels"}, json={"displayName": "ignored", "labels": {"a": "b"}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["displayName"] == "first" and r.json()["labels"] == {"a": "b"}


async def test_patch_of_output_only_field_is_refused(
    http: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    """PATCH: an output-only field in the body is the server's FORBIDDEN_FIELD."""
    r = await http.patch(JOB, json={"status": {"executionCount": 3}})
    assert (r.status_code, reason_of(r)) == (400, "FORBIDDEN_FIELD")


# --- query parameters ---------------------------------------------------------------


async def test_query_parameters_bind_nested_fields_and_well_known_types(
    http: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    """Query: nested fields (preconditions.ifUnmodifiedSince, a Timestamp), booleans and
    proto or JSON names."""
    r = await http.delete(JOB, params={"preconditions.ifUnmodifiedSince": "2000-01-01T00:00:00Z"})
    assert (r.status_code, reason_of(r)) == (409, "CONDITION_NOT_MET")
    r = await http.delete("/v1/collections/c1/jobs/none", params={"allow_missing": "true"})
    assert r.status_code == 200 and r.json()["done"] is True
    r = await http.get(
        "/v1/collections/c1/jobs", params={"pageSize": "1", "filter": 'labels.env = "prod"'}
    )
    assert [j["name"] for j in r.json()["jobs"]] == ["collections/c1/jobs/j1"]


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"pageSize": "many"}, "INVALID_PARAMETER"),
        ({"colour": "red"}, "UNKNOWN_PARAMETER"),
        ({"pageSize.x": "1"}, "UNKNOWN_FIELD"),
    ],
)
async def test_bad_query_parameters_are_400(
    http: httpx.AsyncClient, seeded: dict[str, Any], params: dict[str, str], reason: str
) -> None:
    """Query: unknown parameters and values of the wrong type are 400."""
    r = await http.get("/v1/collections/c1/jobs", params=params)
    assert (r.status_code, reason_of(r)) == (400, reason)


def test_query_values_convert_enums_repeated_and_durations() -> None:
    """Query: enums by name or number, repeated scalars, Duration in JSON form."""
    from jobcontrol.gateway.transcode import set_value

    pause = job_service_pb2.PauseJobRequest()
    set_value(pause, "disableTasks", ["WAIT"])
    assert pause.disable_tasks == job_service_pb2.WAIT
    set_value(pause, "disable_tasks", ["2"])
    assert pause.disable_tasks == job_service_pb2.TERMINATE
    schedule = resources_pb2.Schedule()
    set_value(schedule, "minutes", ["5", "35"])
    assert list(schedule.minutes) == [5, 35]
    policy = resources_pb2.RetryPolicy()
    set_value(policy, "retryInterval", ["1.5s"])
    assert policy.retry_interval.ToMilliseconds() == 1500


# --- headers ------------------------------------------------------------------------


async def test_if_match_is_the_etag(http: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    """Headers: If-Match becomes the request's etag: stale is 409 ABORTED, current wins;
    replies carry the new ETag."""
    r = await http.patch(JOB, json={"displayName": "x"}, headers={"If-Match": '"stale"'})
    assert (r.status_code, reason_of(r), error_of(r)["status"]) == (409, "ETAG_MISMATCH", "ABORTED")
    r = await http.patch(
        JOB, json={"displayName": "x"}, headers={"If-Match": f'"{seeded["etag"]}"'}
    )
    assert r.status_code == 200
    assert r.headers["etag"] == f'"{r.json()["etag"]}"'
    r = await http.post(f"{JOB}:pause", json={}, headers={"If-Match": seeded["etag"]})
    assert (r.status_code, reason_of(r)) == (409, "ETAG_MISMATCH")


async def test_idempotency_key_is_the_request_id(
    http: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    """Headers: Idempotency-Key becomes request_id: a replay returns the first reply."""
    first = await http.post(
        "/v1/collections/c1/jobs",
        params={"jobId": "k"},
        json={},
        headers={"Idempotency-Key": "key-1"},
    )
    again = await http.post(
        "/v1/collections/c1/jobs",
        params={"jobId": "k"},
        json={},
        headers={"Idempotency-Key": "key-1"},
    )
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()


async def test_request_id_and_deadline_are_forwarded(
    http: httpx.AsyncClient, clients: Clients, seeded: dict[str, Any]
) -> None:
    """Headers: x-request-id is echoed; grpc-timeout / X-Request-Timeout set the deadline
    (a 1 ns deadline expires: 504), malformed ones are 400."""
    r = await http.get(JOB, headers={"x-request-id": "req-42"})
    assert r.headers["x-request-id"] == "req-42"
    r = await http.get(JOB, headers={"grpc-timeout": "1n"})
    assert (r.status_code, error_of(r)["status"]) == (504, "DEADLINE_EXCEEDED")
    assert (await http.get(JOB, headers={"X-Request-Timeout": "5"})).status_code == 200
    for header in ({"grpc-timeout": "soon"}, {"X-Request-Timeout": "-1"}):
        r = await http.get(JOB, headers=header)
        assert (r.status_code, reason_of(r)) == (400, "INVALID_TIMEOUT")


# --- built-in endpoints -------------------------------------------------------------


async def test_healthz_and_readyz(http: httpx.AsyncClient) -> None:
    """/healthz (as /livez): the process is up; /readyz: the upstream health check is
    SERVING."""
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    assert (await http.get("/livez")).json() == {"status": "ok"}
    r = await http.get("/readyz")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})


async def test_readyz_is_503_without_upstream() -> None:
    """/readyz: 503 when the gRPC server cannot be reached."""
    from tests.conftest import start_gateway

    with socket_closed_port() as port:
        gateway, stop = await start_gateway(f"127.0.0.1:{port}")
    try:
        async with httpx.AsyncClient(base_url=gateway.base_url) as http:
            r = await http.get("/readyz")
            assert r.status_code == 503 and r.json()["status"] == "unavailable"
            assert r.json()["reason"].startswith("the gRPC server cannot be reached")
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/livez")).status_code == 200
    finally:
        await stop()


def socket_closed_port() -> Any:
    """A context manager yielding a loopback port with nothing listening."""
    import contextlib
    import socket

    @contextlib.contextmanager
    def closed() -> Any:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        yield port

    return closed()


async def test_openapi_document_is_valid_and_covers_every_binding(
    gateway: RunningGateway, http: httpx.AsyncClient
) -> None:
    """/openapi.json: a valid OpenAPI 3.1 document with one operation per binding."""
    from openapi_spec_validator import validate

    document = (await http.get("/openapi.json")).json()
    validate(document)
    assert document["openapi"] == "3.1.0"
    operations = [op for item in document["paths"].values() for op in item.values()]
    assert len(operations) == len(gateway.app.native.bindings)
    assert "/v1/collections/{collection}/jobs/{job}:pause" in document["paths"]
