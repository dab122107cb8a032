"""Health: gRPC health per service and the gateway's /readyz follow the store (reads, the
writer, the schema revision); /livez only the process. Faults are real: another
connection holding SQLite's write lock, a PostgreSQL database that refuses connections
and whose backends are terminated, an alembic_version row that is not this code's."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from sqlalchemy import make_url

from jobcontrol.service.health import HealthMonitor
from jobcontrol.service.server import SERVICE_NAMES, RunningServer, start_server
from jobcontrol.service.storage import migrate
from tests.conftest import make_settings, postgres_server, start_gateway

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# generous: the monitor probes every 0.2 s here, each probe bounded by 2 s
BOUND = 30.0


@pytest.fixture
async def fast(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A server probing its store every 0.2 s."""
    running = await start_server(make_settings(tmp_path, health_interval=0.2))
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


async def wait_for_status(server: RunningServer, want: int) -> None:
    """Poll Health.Check("") until it answers `want` (bounded); then every service
    answers the same."""
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BOUND
        while (await stub.Check(health_pb2.HealthCheckRequest(service=""))).status != want:
            assert loop.time() < deadline, (want, server.monitor and server.monitor.reason)
            await asyncio.sleep(0.05)
        for name in SERVICE_NAMES:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=name))
            assert reply.status == want, name


def _psql(command: str) -> None:
    postgres_server().psql(command)


async def psql(command: str) -> None:
    """Run `command` with psql on the session's PostgreSQL (database `postgres`)."""
    await asyncio.to_thread(_psql, command)


@contextlib.contextmanager
def sqlite_write_lock(server: RunningServer) -> Iterator[None]:
    """Another connection holds the database's write lock (BEGIN IMMEDIATE), as a
    `sqlite3` shell or a backup tool would: the server's writer cannot commit."""
    other = sqlite3.connect(str(server.store.url.database), isolation_level=None, timeout=5)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
        other.execute("ROLLBACK")
    finally:
        other.close()


@contextlib.asynccontextmanager
async def postgres_refusing(server: RunningServer) -> AsyncIterator[None]:
    """The server's database refuses new connections and its backends are terminated."""
    name = server.store.url.database
    await psql(
        f"ALTER DATABASE {name} ALLOW_CONNECTIONS false;\n"
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE datname = '{name}';"
    )
    try:
        yield
    finally:
        await psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true;")


@contextlib.asynccontextmanager
async def store_fault(server: RunningServer, backend: str) -> AsyncIterator[None]:
    """The real fault of `backend` (see above), removed on exit."""
    if backend == "sqlite":
        with sqlite_write_lock(server):
            yield
    else:
        async with postgres_refusing(server):
            yield


def not_serving_logs(caplog: pytest.LogCaptureFixture) -> list[Any]:
    return [
        r
        for r in caplog.records
        if r.name == "jobcontrol.health" and r.getMessage() == "health: not serving"
    ]


@pytest.mark.backends
async def test_failing_store_is_not_serving_then_serving(
    fast: RunningServer, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    """H1: a store that cannot serve (SQLite: another connection holds the write lock;
    PostgreSQL: the database refuses connections, its backends terminated) turns every
    service and "" NOT_SERVING within seconds, logged with the reason once per change;
    SERVING again once the fault is gone."""
    caplog.set_level(logging.INFO, logger="jobcontrol.health")
    await wait_for_status(fast, SERVING)
    async with store_fault(fast, backend):
        await wait_for_status(fast, NOT_SERVING)
        await asyncio.sleep(0.5)  # a few more probes, the same outcome: no more lines
    await wait_for_status(fast, SERVING)
    records = not_serving_logs(caplog)
    assert records and all(r.reason for r in records)
    reasons = [r.reason for r in records]
    assert all(a != b for a, b in itertools.pairwise(reasons)), reasons
    if backend == "sqlite":
        assert "a write did not commit" in reasons[0]
    assert [r.getMessage() for r in caplog.records if r.name == "jobcontrol.health"][
        -1
    ] == "health: serving again"


@contextlib.asynccontextmanager
async def schema_revision(
    server: RunningServer, backend: str, revision: str
) -> AsyncIterator[None]:
    """The database's alembic_version row says `revision` (another jobcontrol migrated
    it, or it was restored from elsewhere); the head again on exit."""
    head = migrate.head()

    async def put(value: str) -> None:
        update = f"UPDATE alembic_version SET version_num = '{value}';"
        if backend == "sqlite":
            with contextlib.closing(
                sqlite3.connect(str(server.store.url.database), isolation_level=None)
            ) as other:
                other.execute(update)
        else:
            await psql(f"\\c {make_url(str(server.store.url)).database}\n{update}")

    await put(revision)
    try:
        yield
    finally:
        await put(head)


@pytest.mark.backends
async def test_schema_not_at_head_is_not_serving(
    fast: RunningServer, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    """H2: a database whose alembic_version is not this code's head (a newer jobcontrol
    migrated it while this one runs) is NOT_SERVING, the revisions named in the logged
    reason; SERVING again when it is back at the head."""
    caplog.set_level(logging.INFO, logger="jobcontrol.health")
    await wait_for_status(fast, SERVING)
    async with schema_revision(fast, backend, "0000feedbeef"):
        await wait_for_status(fast, NOT_SERVING)
    await wait_for_status(fast, SERVING)
    reasons = [r.reason for r in not_serving_logs(caplog)]
    assert reasons == [
        f"the database schema is at revision 0000feedbeef, this code's is {migrate.head()}"
    ]


async def test_readyz_follows_the_store_livez_the_process(fast: RunningServer) -> None:
    """H3, H4: the gateway's /readyz is 503 {"status": "unavailable", "reason": ...} while
    the server's health is NOT_SERVING (its store failing) and 200 {"status": "ok"} again
    after; /livez (and its alias /healthz) is 200 {"status": "ok"} throughout."""
    gateway, stop = await start_gateway(fast.address)
    try:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:

            async def until(code: int) -> httpx.Response:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + BOUND
                while (r := await http.get("/readyz")).status_code != code:
                    assert loop.time() < deadline, f"/readyz never {code}"
                    assert (await http.get("/livez")).json() == {"status": "ok"}
                    await asyncio.sleep(0.05)
                return r

            assert (await until(200)).json() == {"status": "ok"}
            with sqlite_write_lock(fast):
                r = await until(503)
                assert r.json() == {
                    "status": "unavailable",
                    "reason": "the gRPC server reports NOT_SERVING",
                }
                for path in ("/livez", "/healthz"):
                    live = await http.get(path)
                    assert (live.status_code, live.json()) == (200, {"status": "ok"})
            assert (await until(200)).json() == {"status": "ok"}
    finally:
        await stop()


async def test_stopping_server_stops_the_monitor(tmp_path: Path) -> None:
    """H1: at shutdown the monitor stops first, so NOT_SERVING stays (no probe turns it
    back to SERVING while the server drains)."""
    running = await start_server(make_settings(tmp_path, health_interval=0.05))
    assert running.monitor is not None
    await running.stop(grace=0.5)
    assert running.monitor._task is not None and running.monitor._task.done()


class GatedStore:
    """A store whose check waits, through `asyncio.wait_for` as `check_store` does, for
    `gate`."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def check(self, within: float) -> str:
        self.entered.set()
        await asyncio.wait_for(self.gate, within)
        return ""


async def test_stop_ends_the_monitor_when_a_probe_drops_the_cancel() -> None:
    """H1: stopping while a probe's check completes ends the monitor: on Python 3.11
    `asyncio.wait_for` returns the completed result and drops the cancel, and the monitor
    must not go on probing (its stop, and the server's, would never return)."""
    store = GatedStore()
    monitor = HealthMonitor(store, health.aio.HealthServicer(), (), 0.01)
    monitor.start()
    await asyncio.wait_for(store.entered.wait(), BOUND)
    store.gate.set_result(None)  # completes in the same turn as the cancel
    stopping = asyncio.ensure_future(monitor.stop())
    # asyncio.wait, not wait_for: its timeout would cancel the monitor once more
    done, _ = await asyncio.wait({stopping}, timeout=5)
    if not done:
        assert monitor._task is not None
        monitor._task.cancel()
        await stopping
    assert done, "the monitor went on probing after stop"


async def test_health_interval_must_be_positive(tmp_path: Path) -> None:
    """H1: `--health-interval` 0 or less is refused at start (the monitor would spin)."""
    with pytest.raises(SystemExit, match="health-interval"):
        await start_server(make_settings(tmp_path, health_interval=0.0))
