"""Prometheus metrics: each process (server, gateway) serves its own registry at
/metrics on --metrics-address, scraped here over real HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import CollectorRegistry, generate_latest

from jobcontrol.service.core.ports import WorkDepth
from jobcontrol.service.loadgen.served import free_port
from jobcontrol.service.metrics import Backlog
from jobcontrol.service.rpc.metrics import GO_CODES
from jobcontrol.service.server import RunningServer, start_server
from jobcontrol.v1 import (
    diagnostics_service_pb2,
    job_service_pb2,
    job_service_pb2_grpc,
    resources_pb2,
)
from jobcontrol.v1 import resources_pb2 as res
from jobcontrol.v1 import worker_service_pb2 as worker_pb
from tests.conftest import Clients, make_settings, secured_settings, start_gateway
from tests.http_target import serving_target
from tests.test_process import ServerProcess
from tests.test_scheduler_engine import (
    action,
    collection_c,
    create,
    eventually,
    scheduling,
    state_is,
)
from tests.test_worker import add_task, batch_job, lease, seconds

ECHO = {"grpc_service": "jobcontrol.v1.DiagnosticsService", "grpc_method": "Echo"}
GET_JOB = {"grpc_service": "jobcontrol.v1.JobService", "grpc_method": "GetJob"}
GET_COLLECTION = {"grpc_service": "jobcontrol.v1.JobService", "grpc_method": "GetCollection"}


def sample(name: str, value: str, labels: dict[str, str], **more: str) -> str:
    """One sample line as the exposition writes it (labels in name order)."""
    pairs = sorted({"grpc_type": "unary", **labels, **more}.items())
    rendered = ",".join(f'{k}="{v}"' for k, v in pairs)
    return f"{name}{{{rendered}}} {value}"


async def scrape(url: str) -> list[str]:
    async with httpx.AsyncClient(timeout=10) as client:
        reply = await client.get(url)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    return reply.text.splitlines()


@pytest.fixture
async def server(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[RunningServer]:
    """A server with its metrics listener on a free loopback port (more settings: an
    indirect parameter, see FAST_BACKLOG)."""
    overrides = getattr(request, "param", {})
    settings = make_settings(tmp_path, metrics_address="127.0.0.1:0", **overrides)
    running = await start_server(settings)
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


async def test_grpc_server_metrics(server: RunningServer, clients: Clients) -> None:
    assert server.metrics is not None
    await clients.diag.Echo(diagnostics_service_pb2.EchoRequest(message="hi"))
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await clients.jobs.GetJob(job_service_pb2.GetJobRequest(name="collections/no/jobs/no"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    lines = await scrape(server.metrics.url)
    for line in (
        sample("grpc_server_started_total", "1.0", ECHO),
        sample("grpc_server_handled_total", "1.0", ECHO, grpc_code="OK"),
        sample("grpc_server_started_total", "1.0", GET_JOB),
        sample("grpc_server_handled_total", "1.0", GET_JOB, grpc_code="NotFound"),
        sample("grpc_server_handling_seconds_count", "1.0", ECHO),
        sample("grpc_server_handling_seconds_bucket", "1.0", ECHO, le="+Inf"),
        sample("grpc_server_handling_seconds_count", "1.0", GET_JOB),
        "# TYPE grpc_server_handling_seconds histogram",
    ):
        assert line in lines, "\n".join(lines)
    # go-grpc-prometheus's buckets (the Go client's DefBuckets), nothing else
    echo_bucket = sample("grpc_server_handling_seconds_bucket", "", ECHO, le="").split("le=")[0]
    buckets = [
        line.split('le="')[1].split('"')[0] for line in lines if line.startswith(echo_bucket)
    ]
    assert buckets == [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0",
        "+Inf",
    ]  # fmt: skip
    assert not [line for line in lines if "_created" in line]
    assert not [line for line in lines if 'grpc_code="OK"' in line and "GetJob" in line]


async def test_streaming_calls_are_counted_as_bidi_stream(
    server: RunningServer, clients: Clients
) -> None:
    """A streaming call (server reflection, what grpcurl uses) is counted with
    go-grpc-prometheus's `grpc_type` for it."""
    assert server.metrics is not None
    stub = reflection_pb2_grpc.ServerReflectionStub(clients.channel)
    call = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    assert [reply async for reply in call]
    reflection = {
        "grpc_type": "bidi_stream",
        "grpc_service": "grpc.reflection.v1alpha.ServerReflection",
        "grpc_method": "ServerReflectionInfo",
    }
    lines = await scrape(server.metrics.url)
    for line in (
        sample("grpc_server_started_total", "1.0", reflection),
        sample("grpc_server_handled_total", "1.0", reflection, grpc_code="OK"),
        sample("grpc_server_handling_seconds_count", "1.0", reflection),
    ):
        assert line in lines, "\n".join(lines)


def test_grpc_code_and_type_values_are_go_grpc_prometheus_values() -> None:
    """Every status has the spelling of Go's codes.Code.String(), which the dashboards and
    alerts written for go-grpc-prometheus select on."""
    assert set(GO_CODES) == set(grpc.StatusCode)
    assert [GO_CODES[c] for c in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED)] == [
        "OK",
        "Canceled",
    ]
    assert GO_CODES[grpc.StatusCode.DEADLINE_EXCEEDED] == "DeadlineExceeded"
    assert len(set(GO_CODES.values())) == len(GO_CODES)


async def test_servers_keep_their_own_registries(
    server: RunningServer, clients: Clients, tmp_path: Path
) -> None:
    other = await start_server(make_settings(tmp_path / "b", metrics_address="127.0.0.1:0"))
    try:
        assert other.metrics is not None and server.metrics is not None
        await clients.diag.Echo(diagnostics_service_pb2.EchoRequest(message="hi"))
        assert sample("grpc_server_started_total", "1.0", ECHO) in await scrape(server.metrics.url)
        assert not [line for line in await scrape(other.metrics.url) if "Echo" in line]
    finally:
        await other.stop(grace=1.0)


async def test_metrics_off_by_default(tmp_path: Path) -> None:
    running = await start_server(make_settings(tmp_path))
    try:
        assert running.metrics is None
        assert running.backlog is None  # nothing counts the backlog: no query at all
    finally:
        await running.stop(grace=1.0)


async def test_refusals_of_auth_are_counted(tmp_path: Path) -> None:
    settings, _ = secured_settings(tmp_path)
    running = await start_server(dataclasses.replace(settings, metrics_address="127.0.0.1:0"))
    try:
        assert running.metrics is not None
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.GetJob(job_service_pb2.GetJobRequest(name="collections/a/jobs/b"))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        lines = await scrape(running.metrics.url)
        assert (
            sample("grpc_server_handled_total", "1.0", GET_JOB, grpc_code="Unauthenticated")
            in lines
        )
    finally:
        await running.stop(grace=1.0)


async def test_gateway_http_metrics(server: RunningServer) -> None:
    gateway, stop = await start_gateway(server.address, metrics_address="127.0.0.1:0")
    try:
        metrics = gateway.app.metrics
        assert metrics is not None
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
            created = await http.post("/v1/collections?collectionId=c1", json={"profile": "BATCH"})
            assert created.status_code == 200, created.text
            assert (await http.get("/v1/collections/c1")).status_code == 200
            assert (await http.get("/v1/collections/nope")).status_code == 404
            assert (await http.get("/no/such/route")).status_code == 404
            assert (await http.get("/healthz")).status_code == 200
            # a legacy dialect: Azure Scheduler's Get Job Collection of a missing one
            legacy = "/sub1/cloudServices/cs1/resources/scheduler/jobCollections/jc1"
            missing = await http.get(legacy, headers={"x-ms-version": "2013-06-01"})
            assert missing.status_code == 404, missing.text
        lines = await scrape(metrics.url)
        native = {"dialect": "native"}
        get = "/v1/{name=collections/*}"
        for line in (
            http_sample("1.0", native, route="/v1/collections", method="POST", status="200"),
            http_sample("1.0", native, route=get, method="GET", status="200"),
            http_sample("1.0", native, route=get, method="GET", status="404"),
            http_sample("1.0", native, route="unmatched", method="GET", status="404"),
            http_sample(
                "1.0", {"dialect": "gateway"}, route="/healthz", method="GET", status="200"
            ),
            sample_of(
                "http_request_duration_seconds_count", "2.0", native, route=get, method="GET"
            ),
            "# TYPE http_request_duration_seconds histogram",
            http_sample(
                "1.0",
                {"dialect": "scheduler"},
                route="/{sub}/cloudServices/{cs}/resources/scheduler/jobCollections/{jc}",
                method="GET",
                status="404",
            ),
        ):
            assert line in lines, "\n".join(lines)
        raw = ("nope", "/no/such", "sub1", "jc1")
        assert not [line for line in lines if any(path in line for path in raw)]
    finally:
        await stop()
    assert gateway.app.metrics is not None
    with pytest.raises(httpx.TransportError):  # the listener stopped with the gateway
        await scrape(gateway.app.metrics.url)


def sample_of(name: str, value: str, labels: dict[str, str], **more: str) -> str:
    pairs = sorted({**labels, **more}.items())
    rendered = ",".join(f'{k}="{v}"' for k, v in pairs)
    return f"{name}{{{rendered}}} {value}"


def http_sample(value: str, labels: dict[str, str], **more: str) -> str:
    return sample_of("http_requests_total", value, labels, **more)


async def test_writer_and_scheduler_metrics(tmp_path: Path) -> None:
    """A one-shot job whose main and error actions fail (no retries): two failed attempts,
    one faulted occurrence, their lateness; the writer's batches and queue."""
    async with (
        serving_target() as target,
        scheduling(tmp_path, metrics_address="127.0.0.1:0") as running,
        collection_c(running) as jobs,
    ):
        assert running.metrics is not None
        act = action(f"{target.url}/fail", none=True)
        act.error_action.CopyFrom(action(f"{target.url}/fail", none=True))
        await create(jobs, "bad", resources_pb2.ScheduledSpec(action=act))
        await state_is(jobs, "bad", resources_pb2.State.FAULTED)
        url = running.metrics.url
        wanted = {
            'jobcontrol_scheduler_attempts_total{outcome="failed",phase="MAIN"} 1.0',
            'jobcontrol_scheduler_attempts_total{outcome="failed",phase="ERROR"} 1.0',
            'jobcontrol_scheduler_occurrences_total{outcome="faulted"} 1.0',
            "jobcontrol_scheduler_lateness_seconds_count 2.0",
            "jobcontrol_scheduler_attempts_in_flight 0.0",
            "jobcontrol_writer_queue_depth 0.0",
        }

        async def recorded() -> bool:
            return wanted <= set(await scrape(url))

        await eventually(recorded, "metrics recorded")
        lines = await scrape(url)
        batches = [x for x in lines if x.startswith("jobcontrol_writer_batch_size_count ")]
        commits = [x for x in lines if x.startswith("jobcontrol_writer_commit_seconds_count ")]
        # the collection, the job, the claim, two attempts' records at least
        assert batches and float(batches[0].split()[1]) >= 5, lines
        assert commits and commits[0].split()[1] == batches[0].split()[1]
        assert 'jobcontrol_writer_batch_size_bucket{le="1.0"}' in "\n".join(lines)
        assert not [x for x in lines if x.startswith("jobcontrol_db_read_pool")]  # SQLite


async def test_expired_leases_are_counted(
    server: RunningServer, clients: Clients, worker: Any, make_collection: Any
) -> None:
    """An item leased again after its lease expired counts; one given back does not."""
    assert server.metrics is not None
    job = await batch_job(make_collection, clients)
    await add_task(clients, job, "t1")
    [first] = await lease(worker, lease_duration=seconds(1))
    await asyncio.sleep(1.2)
    [second] = await lease(worker, who="w2")
    assert second.attempt == 2
    await worker.ReleaseWork(worker_pb.ReleaseWorkRequest(lease_token=second.lease_token))
    [third] = await lease(worker, who="w3")
    assert third.work_id == first.work_id
    lines = await scrape(server.metrics.url)
    assert 'jobcontrol_work_leases_expired_total{kind="batch.task"} 1.0' in lines, lines
    assert "jobcontrol_reaper_overdue_ended_total 0.0" in lines


# the backlog is counted every --health-interval: 50 ms here, and scrapes poll for it
FAST_BACKLOG = pytest.mark.parametrize(
    "server", [{"health_interval": 0.05}], indirect=True, ids=["interval-50ms"]
)


def depth(kind: str, queued: int, leased: int) -> set[str]:
    """The two samples of a kind in jobcontrol_work_queue_depth."""
    return {
        f'jobcontrol_work_queue_depth{{kind="{kind}",state="queued"}} {float(queued)}',
        f'jobcontrol_work_queue_depth{{kind="{kind}",state="leased"}} {float(leased)}',
    }


async def scraped(url: str, wanted: set[str]) -> None:
    """`wanted` are lines of the scrape within WAIT seconds (the count is periodic)."""

    async def found() -> bool:
        return wanted <= set(await scrape(url))

    try:
        await eventually(found, f"scraped {sorted(wanted)}")
    except AssertionError:
        lines = [x for x in await scrape(url) if "backlog" in x or "_depth" in x or "_due" in x]
        raise AssertionError(f"{sorted(wanted)} not in {lines}") from None


@pytest.mark.backends
@FAST_BACKLOG
async def test_work_queue_depth_counts_items_by_kind_and_lease(
    server: RunningServer, clients: Clients, worker: Any, make_collection: Any
) -> None:
    """jobcontrol_work_queue_depth{kind,state}: a batch job's tasks are queued until
    leased; leased ones count as leased until completed (they go), or until their lease
    expires on the database's clock (queued again); every kind reads 0 when it has no
    items, the kinds no item was ever made of included."""
    assert server.metrics is not None
    url = server.metrics.url
    await scraped(url, depth("batch.task", 0, 0) | depth("backup.run", 0, 0))
    job = await batch_job(make_collection, clients)
    for i in range(3):
        await add_task(clients, job, f"t{i}")
    await scraped(url, depth("batch.task", 3, 0) | depth("backup.run", 0, 0))
    taken = await lease(worker, 2)
    assert len(taken) == 2
    await scraped(url, depth("batch.task", 1, 2))
    # long enough to be seen leased, however slow the machine; then it expires
    [last] = await lease(worker, lease_duration=seconds(3))
    await scraped(url, depth("batch.task", 0, 3))
    # its lease expires (the task stays RUNNING): waiting for a worker again
    await scraped(url, depth("batch.task", 1, 2))
    for item in taken:
        done = await worker.CompleteWork(
            worker_pb.CompleteWorkRequest(lease_token=item.lease_token)
        )
        assert done.done
    await scraped(url, depth("batch.task", 1, 0))
    [again] = await lease(worker, who="w2")
    assert again.work_id == last.work_id and again.attempt == 2
    await scraped(url, depth("batch.task", 0, 1))
    await worker.CompleteWork(worker_pb.CompleteWorkRequest(lease_token=again.lease_token))
    await scraped(url, depth("batch.task", 0, 0) | depth("backup.run", 0, 0))
    lines = await scrape(url)
    assert "# TYPE jobcontrol_work_queue_depth gauge" in lines
    assert len([x for x in lines if x.startswith("jobcontrol_work_queue_depth{")]) == 4, lines


@pytest.mark.backends
@FAST_BACKLOG
async def test_occurrences_due_counts_the_unclaimed(
    server: RunningServer, clients: Clients, make_collection: Any
) -> None:
    """jobcontrol_scheduler_occurrences_due: a scheduled job due now that no scheduler
    claims (this server runs none: scheduler_concurrency 0) is due until it is paused
    (its occurrence is unplanned)."""
    assert server.metrics is not None
    url = server.metrics.url
    await scraped(url, {"jobcontrol_scheduler_occurrences_due 0.0"})
    collection = await make_collection(res.SCHEDULED)
    act = action("http://127.0.0.1:9/never", none=True)
    job = await clients.jobs.CreateJob(
        job_service_pb2.CreateJobRequest(
            parent=collection.name,
            job_id="now",
            job=res.Job(scheduled=res.ScheduledSpec(action=act)),
        )
    )
    await scraped(url, {"jobcontrol_scheduler_occurrences_due 1.0"})
    await clients.jobs.PauseJob(job_service_pb2.PauseJobRequest(name=job.name))
    await scraped(url, {"jobcontrol_scheduler_occurrences_due 0.0"})


class CountingStore:
    """A store whose reads answer from `tx` (a count's), fail, or never end."""

    def __init__(self) -> None:
        self.depth: dict[str, WorkDepth] = {}
        self.due = 0
        self.broken: str = ""  # "", "fails" or "hangs"
        # when set, a read waits for it through asyncio.wait_for (see the stop test)
        self.gate: asyncio.Future[None] | None = None
        self.entered = asyncio.Event()

    async def work_depth(self) -> dict[str, WorkDepth]:
        return dict(self.depth)

    async def occurrences_due(self) -> int:
        return self.due

    async def read(self, fn: Any) -> Any:
        if self.broken == "fails":
            raise RuntimeError("no database")
        if self.broken == "hangs":
            await asyncio.sleep(60)
        if self.gate is not None:
            self.entered.set()
            await asyncio.wait_for(self.gate, 5)
        return await fn(self)


def exposed(registry: CollectorRegistry) -> list[str]:
    page = generate_latest(registry).decode()
    return [x for x in page.splitlines() if x.startswith("jobcontrol_")]


async def test_the_backlog_serves_its_last_count_and_zero_for_drained_kinds() -> None:
    """Before a first count: no samples. A kind seen once (a known one or not) reads 0
    once it drains, never its last value; a count that fails or outlasts its bound keeps
    the last count served."""
    store = CountingStore()
    backlog = Backlog(store, 0.05, ["batch.task"])
    registry = CollectorRegistry(auto_describe=True)
    registry.register(backlog)
    assert exposed(registry) == []
    store.depth = {"batch.task": WorkDepth(3, 1), "odd.kind": WorkDepth(2, 0)}
    store.due = 4
    assert await backlog.refresh()
    counted = [
        'jobcontrol_work_queue_depth{kind="batch.task",state="queued"} 3.0',
        'jobcontrol_work_queue_depth{kind="batch.task",state="leased"} 1.0',
        'jobcontrol_work_queue_depth{kind="odd.kind",state="queued"} 2.0',
        'jobcontrol_work_queue_depth{kind="odd.kind",state="leased"} 0.0',
        "jobcontrol_scheduler_occurrences_due 4.0",
    ]
    assert exposed(registry) == counted
    backlog.timeout = 0.1
    for broken in ("fails", "hangs"):
        store.broken = broken
        assert not await backlog.refresh()
        assert exposed(registry) == counted
    store.broken, store.depth, store.due = "", {}, 0
    assert await backlog.refresh()
    assert exposed(registry) == [x.rsplit(" ", 1)[0] + " 0.0" for x in counted]


async def test_stopping_the_backlog_ends_it_when_a_read_drops_the_cancel() -> None:
    """Stopping while a count's read completes ends the counting task, even when the
    read (as Python 3.11's asyncio.wait_for does) drops the cancel."""
    store = CountingStore()
    store.gate = asyncio.get_running_loop().create_future()
    backlog = Backlog(store, 0.01, ["batch.task"])
    backlog.start()
    await asyncio.wait_for(store.entered.wait(), 10)
    store.gate.set_result(None)  # completes in the same turn as the cancel
    stopping = asyncio.ensure_future(backlog.stop())
    done, _ = await asyncio.wait({stopping}, timeout=5)  # wait_for would cancel it again
    if not done:
        assert backlog._task is not None
        backlog._task.cancel()
        await stopping
    assert done, "the backlog went on counting after stop"


@pytest.mark.slow
async def test_jobctl_serve_and_its_gateway_each_serve_their_own_metrics(
    tmp_path: Path,
) -> None:
    """Real processes: `jobctl serve` with JOBCONTROL_METRICS_ADDRESS and
    JOBCONTROL_GATEWAY_METRICS_ADDRESS; the gateway child does not inherit the server's
    address (it would not start), and each process's /metrics has its own series."""
    server_metrics = f"127.0.0.1:{free_port()}"
    gateway_metrics = f"127.0.0.1:{free_port()}"
    env = {
        "JOBCONTROL_METRICS_ADDRESS": server_metrics,
        "JOBCONTROL_GATEWAY_METRICS_ADDRESS": gateway_metrics,
    }
    process = ServerProcess(tmp_path / "jobs.db", with_gateway=True, env=env)
    try:
        await process.start()
        await process.wait_http()
        async with httpx.AsyncClient(base_url=process.base_url, timeout=10) as http:
            assert (await http.get("/v1/collections/nope")).status_code == 404
        served = await scrape(f"http://{server_metrics}/metrics")
        proxied = await scrape(f"http://{gateway_metrics}/metrics")
        assert (
            sample("grpc_server_handled_total", "1.0", GET_COLLECTION, grpc_code="NotFound")
            in served
        )
        assert not [line for line in served if line.startswith("http_requests_total")]
        route = {"route": "/v1/{name=collections/*}", "method": "GET", "status": "404"}
        assert sample_of("http_requests_total", "1.0", {"dialect": "native"}, **route) in proxied
        assert not [line for line in proxied if line.startswith("grpc_server_")]
        assert await process.terminate() == 0
    finally:
        if process.proc is not None and process.proc.returncode is None:
            process.proc.kill()
            await process.proc.wait()


async def test_a_taken_metrics_address_stops_the_start(
    server: RunningServer, tmp_path: Path
) -> None:
    assert server.metrics is not None
    taken = make_settings(tmp_path / "b", metrics_address=server.metrics.address)
    with pytest.raises(SystemExit, match="--metrics-address"):
        await start_server(taken)
