"""Fixtures: a real jobcontrol gRPC server on 127.0.0.1:0 over a temp-file database."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2_grpc

from jobcontrol.v1 import (
    diagnostics_service_pb2_grpc,
    job_service_pb2,
    job_service_pb2_grpc,
    operator_service_pb2_grpc,
    resources_pb2,
)
from service.config import Settings
from service.server import RunningServer, start_server


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
