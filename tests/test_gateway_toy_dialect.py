"""A toy dialect built only from the seam's parts (a route table, a codec, an error
formatter), served over real HTTP: what the legacy dialects will be made of."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any, ClassVar

import httpx
import orjson
import pytest

from jobcontrol.gateway import conditional
from jobcontrol.gateway.dialects.base import Codec, Dialect, Exchange
from jobcontrol.gateway.errors import GatewayError
from jobcontrol.gateway.http import Response
from jobcontrol.service.server import RunningServer
from jobcontrol.v1 import job_service_pb2, resources_pb2
from tests.conftest import start_gateway

GET_JOB = "/jobcontrol.v1.JobService/GetJob"


class JsonCodec(Codec):
    def encode(self, value: Any) -> bytes:
        return orjson.dumps(value)


class ToyDialect(Dialect):
    """`/toy/{collection}/jobs/{job}`: GET only; errors as {"Code", "Message"}."""

    name = "toy"
    case_insensitive = True
    request_id_header: ClassVar[str] = "toy-request-id"
    condition_rules = conditional.ConditionRules(read_not_modified=False)
    codes: ClassVar[dict[str, tuple[int, str]]] = {
        "JOB_NOT_FOUND": (404, "JobNotFound"),
        "COLLECTION_NOT_FOUND": (404, "JobNotFound"),
        "ROUTE_NOT_FOUND": (404, "NoSuchRoute"),
        "METHOD_NOT_ALLOWED": (405, "BadMethod"),
        "MULTIPLE_CONDITION_HEADERS": (400, "TooManyConditions"),
    }

    def __init__(self) -> None:
        self.codec = JsonCodec()
        super().__init__(
            [
                self.route("GET", "/toy/{c}/jobs/{j}", self.get_job),
                self.route("GET", "/toy/boom", self.boom),
            ]
        )  # fmt: skip

    def claims(self, path: str) -> bool:
        return path.lower().startswith("/toy/")

    def format_error(self, error: GatewayError, exchange: Exchange) -> Response:
        status, code = self.codes.get(error.reason, (error.status, "Other"))
        return Response(status, self.codec.encode({"Code": code, "Message": error.message}))

    async def boom(self, exchange: Exchange) -> Response:
        raise RuntimeError("a bug")

    async def get_job(self, exchange: Exchange) -> Response:
        conditions = exchange.conditions()
        name = f"collections/{exchange.params['c']}/jobs/{exchange.params['j']}"
        job = await exchange.upstream.call(
            GET_JOB, job_service_pb2.GetJobRequest(name=name), resources_pb2.Job,
            metadata=exchange.metadata(),
        )  # fmt: skip
        modified = job.update_time.ToDatetime().replace(tzinfo=UTC)
        verdict = conditional.outcome(conditions, "GET", job.etag, modified, self.condition_rules)
        if verdict is not None:
            return Response(verdict.value, b"", None)
        return Response(200, self.codec.encode({"Id": job.name, "State": "on"}))


@pytest.fixture
async def toy(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    gateway, stop = await start_gateway(server.address)
    gateway.app.dialects.insert(0, ToyDialect())
    try:
        async with httpx.AsyncClient(base_url=gateway.base_url) as http:
            r = await http.post(
                "/v1/collections", params={"collectionId": "c"}, json={"profile": "SCHEDULED"}
            )
            assert r.status_code == 200
            r = await http.post("/v1/collections/c/jobs", params={"jobId": "J1"}, json={})
            assert r.status_code == 200
            yield http
    finally:
        await stop()


async def test_toy_dialect_routes_case_insensitively_and_keeps_id_case(
    toy: httpx.AsyncClient,
) -> None:
    """Seam: fixed segments match in any case, ids keep theirs, responses carry the
    dialect's request-id header."""
    r = await toy.get("/TOY/c/JOBS/J1")
    assert (r.status_code, r.json()) == (200, {"Id": "collections/c/jobs/J1", "State": "on"})
    assert r.headers["toy-request-id"]


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("GET", "/toy/c/jobs/nope", 404, "JobNotFound"),
        ("GET", "/toy/c/other", 404, "NoSuchRoute"),
        ("DELETE", "/toy/c/jobs/J1", 405, "BadMethod"),
        ("GET", "/toy/boom", 500, "Other"),
    ],
)
async def test_toy_dialect_answers_errors_in_its_own_format(
    toy: httpx.AsyncClient, method: str, path: str, status: int, body: str
) -> None:
    """Seam: upstream errors, unknown routes, wrong methods and even gateway bugs come
    back in the dialect's error body (not AIP-193, not a traceback)."""
    r = await toy.request(method, path)
    assert r.status_code == status and r.json()["Code"] == body and "error" not in r.json()
    if status == 405:
        assert r.headers["allow"] == "GET"


async def test_toy_dialect_conditions(toy: httpx.AsyncClient) -> None:
    """Seam: the dialect's condition rules decide: an unmet read condition is 412 here,
    and refused header pairs are 400 in the dialect's format."""
    etag = (await toy.get("/v1/collections/c/jobs/J1")).json()["etag"]
    assert (await toy.get("/toy/c/jobs/J1", headers={"If-Match": f'"{etag}"'})).status_code == 200
    r = await toy.get("/toy/c/jobs/J1", headers={"If-None-Match": f'"{etag}"'})
    assert r.status_code == 412
    r = await toy.get("/toy/c/jobs/J1", headers={"If-Match": "*", "If-None-Match": "*"})
    assert (r.status_code, r.json()["Code"]) == (400, "TooManyConditions")
