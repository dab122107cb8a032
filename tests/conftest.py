"""Fixtures: a real jobcontrol gRPC server on 127.0.0.1:0 over a temp-file database."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import uvicorn
from google.longrunning import operations_pb2_grpc

from jobcontrol.gateway.app import GatewayApp, create_app
from jobcontrol.gateway.config import GatewaySettings
from jobcontrol.service.config import Settings
from jobcontrol.service.server import RunningServer, start_server
from jobcontrol.v1 import (
    diagnostics_service_pb2_grpc,
    job_service_pb2,
    job_service_pb2_grpc,
    operator_service_pb2_grpc,
    resources_pb2,
)


@dataclass
class Clients:
    """Stubs of every service, on one channel."""

    channel: grpc.aio.Channel
    jobs: job_service_pb2_grpc.JobServiceAsyncStub
    operator: operator_service_pb2_grpc.OperatorServiceAsyncStub
    operations: Any  # google.longrunning ships no typed async stub
    diag: diagnostics_service_pb2_grpc.DiagnosticsServiceAsyncStub


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test server: port 0, a database file under tmp_path, fast reaper."""
    base: dict[str, Any] = {
        "grpc_address": "127.0.0.1:0",
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}",
        "reaper_interval": 0.02,
    }
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A running server in this test's event loop."""
    running = await start_server(make_settings(tmp_path))
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


@pytest.fixture
async def clients(server: RunningServer) -> AsyncIterator[Clients]:
    """Stubs connected to `server`."""
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield Clients(
            channel=channel,
            jobs=job_service_pb2_grpc.JobServiceStub(channel),
            operator=operator_service_pb2_grpc.OperatorServiceStub(channel),
            operations=operations_pb2_grpc.OperationsStub(channel),
            diag=diagnostics_service_pb2_grpc.DiagnosticsServiceStub(channel),
        )


_ids = itertools.count(1)
MakeCollection = Callable[..., Awaitable[resources_pb2.Collection]]


@pytest.fixture
def make_collection(clients: Clients) -> MakeCollection:
    """Create a collection with a profile (a Profile value) and optional quota fields."""

    async def make(profile: Any, **quota: Any) -> resources_pb2.Collection:
        collection = resources_pb2.Collection(
            profile=profile,
            quota=resources_pb2.Quota(**quota),
        )
        return await clients.jobs.CreateCollection(
            job_service_pb2.CreateCollectionRequest(
                collection_id=f"c{next(_ids)}", collection=collection
            )
        )

    return make


@dataclass
class RunningGateway:
    """The REST gateway under uvicorn on 127.0.0.1, in front of `server`."""

    base_url: str
    app: GatewayApp


async def start_gateway(grpc_target: str, **overrides: Any) -> tuple[RunningGateway, Any]:
    """Start uvicorn on a socket bound to 127.0.0.1:0; returns the gateway and a stopper."""
    settings = GatewaySettings(grpc_target=grpc_target, http_address="127.0.0.1:0", **overrides)
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = sock.getsockname()[1]

    async def stop() -> None:
        server.should_exit = True
        await task
        sock.close()

    return RunningGateway(f"http://127.0.0.1:{port}", app), stop


@pytest.fixture
async def gateway(server: RunningServer) -> AsyncIterator[RunningGateway]:
    """The gateway in front of the test's gRPC server."""
    running, stop = await start_gateway(server.address)
    try:
        yield running
    finally:
        await stop()


@pytest.fixture
async def http(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the gateway (real HTTP/1.1 over loopback)."""
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as client:
        yield client


def record_rpcs(app: GatewayApp) -> list[str]:
    """From now on, the method name of every call the gateway makes upstream is appended
    to the returned list (so a test can assert one RPC per request)."""
    calls: list[str] = []
    upstream = app.upstream
    real = upstream.call

    async def recorded(method: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(method.rsplit("/", 1)[-1])
        return await real(method, *args, **kwargs)

    upstream.call = recorded  # type: ignore[method-assign]
    return calls
