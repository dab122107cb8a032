"""Server plumbing: reflection, health, request ids, the idempotency window."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from google.longrunning import operations_proto_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from jobcontrol.service.rpc.diagnostics import DiagnosticsServicer
from jobcontrol.service.server import SERVICE_NAMES, GenericOnly, RunningServer, start_server
from jobcontrol.v1 import (
    diagnostics_service_pb2,
    diagnostics_service_pb2_grpc,
    job_service_pb2,
    job_service_pb2_grpc,
    operator_service_pb2,
    resources_pb2,
    session_service_pb2,
    worker_service_pb2,
)
from tests.conftest import Clients, MakeCollection, make_settings
from tests.helpers import expect_error

pytestmark = pytest.mark.backends


async def test_reflection_lists_every_service(server: RunningServer, clients: Clients) -> None:
    """Server reflection answers `list` (what grpcurl uses) with every service."""
    stub = reflection_pb2_grpc.ServerReflectionStub(clients.channel)
    call = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = set()
    async for reply in call:
        names |= {s.name for s in reply.list_services_response.service}
    assert set(SERVICE_NAMES) | {"grpc.health.v1.Health"} <= names


def test_services_are_added_as_generic_handlers_only() -> None:
    """GenericOnly hands the server each service's generic handler and drops its
    registered-method handlers (grpc.aio waits on one future per registered method for
    every call it accepts; see GenericOnly)."""
    seen: list[str] = []

    class Recorder:
        def add_generic_rpc_handlers(self, handlers: Any) -> None:
            seen.extend(h.service_name() for h in handlers)

        def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
            seen.append(f"registered {service}")

    generic = GenericOnly(cast(grpc.aio.Server, Recorder()))
    diagnostics_service_pb2_grpc.add_DiagnosticsServiceServicer_to_server(
        DiagnosticsServicer(), generic
    )
    assert seen == ["jobcontrol.v1.DiagnosticsService"]


_FILES = (
    job_service_pb2,
    operator_service_pb2,
    diagnostics_service_pb2,
    session_service_pb2,
    worker_service_pb2,
    operations_proto_pb2,
)


async def test_every_unary_method_of_every_service_is_dispatched(clients: Clients) -> None:
    """Through the generic handlers alone, every unary method of every service (health
    too) reaches a servicer: an empty request gets its method's own answer (a refusal, a
    reply, or a long poll cut short by the deadline), never UNIMPLEMENTED."""
    methods = [
        f"/{service.full_name}/{method.name}"
        for file in _FILES
        for service in file.DESCRIPTOR.services_by_name.values()
        for method in service.methods
        if not method.client_streaming and not method.server_streaming
    ]
    methods.append(f"/{health.SERVICE_NAME}/Check")
    assert len(methods) > 30
    for path in methods:
        call: Any = clients.channel.unary_unary(path)(b"", timeout=1.0)
        try:
            await call
        except grpc.aio.AioRpcError as exc:
            assert exc.code() is not grpc.StatusCode.UNIMPLEMENTED, (path, exc.details())


async def test_health_reports_serving(clients: Clients) -> None:
    """grpc.health.v1: the server and each service are SERVING."""
    stub = health_pb2_grpc.HealthStub(clients.channel)
    for name in ("", *SERVICE_NAMES):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=name))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_request_id_is_echoed_or_generated(clients: Clients) -> None:
    """x-request-id: echoed in the initial metadata, or a fresh one when absent."""
    request = diagnostics_service_pb2.EchoRequest(message="hi")
    call = clients.diag.Echo(request, metadata=(("x-request-id", "abc-123"),))
    assert (await call).message == "hi"
    assert dict(await call.initial_metadata())["x-request-id"] == "abc-123"
    call = clients.diag.Echo(request)
    await call
    assert re.fullmatch(r"[0-9a-f]{32}", dict(await call.initial_metadata())["x-request-id"])


async def test_request_id_is_echoed_on_errors(clients: Clients) -> None:
    """x-request-id is echoed on refused calls too, beside the rich status."""
    call = clients.jobs.GetJob(
        job_service_pb2.GetJobRequest(name="collections/none/jobs/none"),
        metadata=(("x-request-id", "req-9"),),
    )
    await expect_error(call, grpc.StatusCode.NOT_FOUND, "COLLECTION_NOT_FOUND")
    assert dict(await call.initial_metadata())["x-request-id"] == "req-9"


async def test_c14_replay_window_is_configurable(tmp_path: Path) -> None:
    """C14: past the idempotency window a request_id is not replayed (window 0 here)."""
    running = await start_server(make_settings(tmp_path, idempotency_window=0.0))
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            jobs = job_service_pb2_grpc.JobServiceStub(channel)
            await jobs.CreateCollection(
                job_service_pb2.CreateCollectionRequest(
                    collection_id="c",
                    collection=resources_pb2.Collection(profile=resources_pb2.SCHEDULED),
                )
            )
            request = job_service_pb2.CreateJobRequest(
                parent="collections/c", job_id="j", job=resources_pb2.Job(), request_id="r1"
            )
            await jobs.CreateJob(request)
            await expect_error(
                jobs.CreateJob(request), grpc.StatusCode.ALREADY_EXISTS, "JOB_ALREADY_EXISTS"
            )
    finally:
        await running.stop(grace=1.0)


async def test_c14_request_id_is_scoped_to_its_method(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C14: the same request_id on another method is another request."""
    coll = await make_collection(resources_pb2.SCHEDULED)
    job = await clients.jobs.CreateJob(
        job_service_pb2.CreateJobRequest(
            parent=coll.name, job_id="j", job=resources_pb2.Job(), request_id="same"
        )
    )
    paused = await clients.jobs.PauseJob(
        job_service_pb2.PauseJobRequest(name=job.name, request_id="same")
    )
    assert paused.state == resources_pb2.DISABLED and paused.etag != job.etag
