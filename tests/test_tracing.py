"""OpenTelemetry traces: `jobctl serve` and its gateway as real processes exporting OTLP/HTTP
to a real receiver on 127.0.0.1 (the protobuf export decoded here), one REST request with a
client's `traceparent` one trace from the gateway through gRPC into SQL, a scheduled
action's attempt its own trace sent on as `traceparent`, off by default."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from aiohttp import web
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from jobcontrol import logs, tracing
from jobcontrol.service.loadgen.served import free_port
from jobcontrol.service.server import start_server
from jobcontrol.v1 import job_service_pb2 as JS
from jobcontrol.v1 import job_service_pb2_grpc, resources_pb2
from tests.conftest import make_settings
from tests.http_target import listening, serving_target
from tests.test_process import READY
from tests.test_scheduler_engine import action, state_is

WAIT = 20.0
SERVER_KIND = ProtoSpan.SPAN_KIND_SERVER
CLIENT_KIND = ProtoSpan.SPAN_KIND_CLIENT


@dataclass
class Exported:
    """One span as received: its service, name, ids (hex), kind, attributes and links."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent: str
    kind: int
    attributes: dict[str, Any]
    links: list[tuple[str, str]]
    scope: str


@dataclass
class Collector:
    """An OTLP/HTTP receiver: POST /v1/traces, protobuf bodies decoded into `spans`."""

    url: str = ""
    spans: list[Exported] = field(default_factory=list)
    posts: int = 0

    def of(self, trace_id: str) -> list[Exported]:
        return [s for s in self.spans if s.trace_id == trace_id]

    async def wait(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if check():
                return
            await asyncio.sleep(0.05)
        names = [(s.service, s.name, s.trace_id[:8]) for s in self.spans]
        raise AssertionError(f"not {what} after {WAIT} s; spans: {names}")


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


@contextlib.asynccontextmanager
async def collector() -> AsyncIterator[Collector]:
    """The receiver on 127.0.0.1 (any free port) while the block runs."""
    got = Collector()

    async def traces(request: web.Request) -> web.Response:
        assert request.headers["content-type"] == "application/x-protobuf"
        export = ExportTraceServiceRequest.FromString(await request.read())
        got.posts += 1
        for resource_spans in export.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    got.spans.append(
                        Exported(
                            resource.get("service.name", ""),
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            span.kind,
                            {a.key: _value(a.value) for a in span.attributes},
                            [(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                            scope_spans.scope.name,
                        )
                    )
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    async with listening(app) as url:
        got.url = url
        yield got


@dataclass
class Served:
    """`jobctl serve` with its gateway, as child processes."""

    address: str
    base_url: str
    log: Path


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return {**env, **extra}


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, env: dict[str, str], *flags: str) -> AsyncIterator[Served]:
    """`jobctl serve` (DEBUG logs to a file) and its gateway, ready; stopped with SIGTERM
    (so each exports what it still holds)."""
    http_address = f"127.0.0.1:{free_port()}"
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "jobcontrol.service.cli",
            "serve",
            "--grpc-address",
            "127.0.0.1:0",
            "--http-address",
            http_address,
            "--log-level",
            "DEBUG",
            "--database-url",
            f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}",
            "--scheduler-min-interval",
            "1",
            *flags,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            env=env,
        )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        match = READY.search(line.decode())
        assert match, f"no ready line: {line!r}"
        served = Served(match.group(1), f"http://{http_address}", log)
        async with httpx.AsyncClient(base_url=served.base_url) as http:
            for _ in range(200):
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
        yield served
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def _traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def _one(spans: list[Exported], match: Callable[[Exported], bool], what: str) -> Exported:
    found = [s for s in spans if match(s)]
    assert len(found) == 1, (what, [(s.service, s.name, s.kind) for s in spans])
    return found[0]


def _env(got: Collector, **extra: str) -> dict[str, str]:
    return _clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=got.url, OTEL_BSP_SCHEDULE_DELAY="100", **extra)


async def test_one_request_is_one_trace(tmp_path: Path) -> None:
    """O1: a REST request with a client's `traceparent` is one trace: the gateway's HTTP
    server span (child of the client's span), its gRPC client span, the server's gRPC
    server span (child of that), the request's write in its SAVEPOINT and SQL beneath it;
    every span carries the request id and both processes' log lines the trace id. The writer's
    transaction is a trace of its own, linked to the request."""
    async with collector() as got, serving(tmp_path, _env(got)) as served:
        header, trace_id, client_span = _traceparent()
        async with httpx.AsyncClient(base_url=served.base_url) as http:
            reply = await http.post(
                "/v1/collections?collectionId=nightly",
                json={"profile": "SCHEDULED"},
                headers={"traceparent": header, "x-request-id": "req-o1"},
            )
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-request-id"] == "req-o1"

        def complete() -> bool:
            names = {(s.service, s.name) for s in got.of(trace_id)}
            return ("jobcontrol-server", "db.write") in names and any(
                s.service == "jobcontrol-gateway" and s.kind == SERVER_KIND
                for s in got.of(trace_id)
            )

        await got.wait(complete, "the request's trace exported")
        spans = got.of(trace_id)
        http_server = _one(
            spans,
            lambda s: s.service == "jobcontrol-gateway" and s.kind == SERVER_KIND,
            "the gateway's HTTP server span",
        )
        assert http_server.parent == client_span
        assert http_server.scope == "opentelemetry.instrumentation.asgi"
        grpc_client = _one(
            spans,
            lambda s: s.service == "jobcontrol-gateway" and s.kind == CLIENT_KIND,
            "the gateway's gRPC client span",
        )
        assert grpc_client.parent == http_server.span_id
        assert grpc_client.name == "/jobcontrol.v1.JobService/CreateCollection"
        grpc_server = _one(
            spans,
            lambda s: s.service == "jobcontrol-server" and s.kind == SERVER_KIND,
            "the server's gRPC server span",
        )
        assert grpc_server.parent == grpc_client.span_id
        assert grpc_server.name == "/jobcontrol.v1.JobService/CreateCollection"
        write = _one(spans, lambda s: s.name == "db.write", "the request's write")
        assert write.parent == grpc_server.span_id
        ids = {s.span_id: s for s in spans}
        sql = [s for s in spans if s.scope == "opentelemetry.instrumentation.sqlalchemy"]
        assert sql, [(s.name, s.scope) for s in spans]
        for statement in sql:
            assert statement.kind == CLIENT_KIND
            assert statement.attributes.get("db.system") == "sqlite"
            assert statement.parent in ids  # beneath a span of this trace
        # the store's fixed SQL (straight to sqlite3) has its spans too, under the write
        fixed = [s for s in spans if s.scope == "jobcontrol.storage"]
        assert any(
            s.parent == write.span_id
            and s.kind == CLIENT_KIND
            and s.attributes.get("db.system") == "sqlite"
            and str(s.attributes.get("db.statement", "")).startswith(s.name)
            for s in fixed
        ), [(s.name, s.scope, s.parent) for s in spans]
        for span in (http_server, grpc_client, grpc_server, write, *sql, *fixed):
            assert span.attributes.get(tracing.REQUEST_ID) == "req-o1", span
        # the batch's transaction: its own trace, linked to the request's span
        await got.wait(
            lambda: any((trace_id, grpc_server.span_id) in s.links for s in got.spans),
            "the writer's transaction linked",
        )
        transaction = next(s for s in got.spans if (trace_id, grpc_server.span_id) in s.links)
        assert transaction.name == "db.transaction" and transaction.trace_id != trace_id
        assert transaction.parent == ""
        assert transaction.attributes["jobcontrol.batch_size"] >= 1
    lines = [json.loads(x) for x in served.log.read_text().splitlines() if x.startswith("{")]
    access = [x for x in lines if x.get("msg") == "rpc" and x.get("request_id") == "req-o1"]
    assert access and access[0]["trace_id"] == trace_id, lines[-5:]
    assert access[0]["span_id"] == grpc_server.span_id
    # the gateway's line of the request too, with its HTTP server span
    (http_line,) = [x for x in lines if x.get("msg") == "http" and x["request_id"] == "req-o1"]
    assert (http_line["trace_id"], http_line["span_id"]) == (trace_id, http_server.span_id)


async def test_a_scheduled_attempt_is_its_own_trace_sent_as_traceparent(tmp_path: Path) -> None:
    """O2: an occurrence's attempt is the root of a trace of its own (not the trace of the
    request that created the job): its HTTP action is a client span beneath it whose
    `traceparent` the target receives, and the attempt's record is written beneath it."""
    async with (
        collector() as got,
        serving_target() as target,
        serving(tmp_path, _env(got)) as served,
        grpc.aio.insecure_channel(served.address) as channel,
    ):
        jobs = job_service_pb2_grpc.JobServiceStub(channel)
        header, creating, _ = _traceparent()
        await jobs.CreateCollection(
            JS.CreateCollectionRequest(
                collection_id="c",
                collection=resources_pb2.Collection(profile=resources_pb2.Profile.SCHEDULED),
            )
        )
        await jobs.CreateJob(
            JS.CreateJobRequest(
                parent="collections/c",
                job_id="once",
                job=resources_pb2.Job(
                    scheduled=resources_pb2.ScheduledSpec(
                        action=action(f"{target.url}/ok", none=True)
                    )
                ),
            ),
            metadata=(("traceparent", header),),
        )
        seen = await target.wait_for(1, "/ok")
        await state_is(jobs, "once", resources_pb2.State.COMPLETED)
        sent = seen[0].headers.get("traceparent") or seen[0].headers.get("Traceparent")
        assert sent, seen[0].headers
        version, trace_id, parent_id, flags = sent.split("-")
        assert version == "00" and int(flags, 16) & 1  # sampled
        assert trace_id != creating

        def recorded() -> bool:
            names = {s.name for s in got.of(trace_id)}
            return {"scheduler.attempt", "scheduler.action", "db.write"} <= names

        await got.wait(recorded, "the attempt's trace exported")
        spans = got.of(trace_id)
        attempt = _one(spans, lambda s: s.name == "scheduler.attempt", "the attempt")
        assert attempt.parent == "" and attempt.service == "jobcontrol-server"
        assert attempt.attributes["jobcontrol.job"] == "c/once"
        assert attempt.attributes["jobcontrol.phase"] == "MAIN"
        sent_by = _one(spans, lambda s: s.name == "scheduler.action", "the action's span")
        assert sent_by.kind == CLIENT_KIND and sent_by.parent == attempt.span_id
        assert sent_by.span_id == parent_id
        write = _one(spans, lambda s: s.name == "db.write", "the attempt's record")
        assert write.parent == attempt.span_id
        # the job's creation continued its caller's trace, apart from the attempt's
        await got.wait(lambda: bool(got.of(creating)), "the creation's trace")
        assert not [s for s in got.of(creating) if s.name.startswith("scheduler.")]


async def test_sampling_is_parent_based_at_the_configured_ratio(tmp_path: Path) -> None:
    """O3: OTEL_TRACES_SAMPLER=parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG=0: a
    request without a sampled caller is not traced, one whose `traceparent` is sampled is
    (the caller decided)."""
    async with collector() as got:
        env = _env(got, OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0")
        async with (
            serving(tmp_path, env) as served,
            httpx.AsyncClient(base_url=served.base_url) as http,
        ):
            untraced = await http.get("/v1/collections/none", headers={"x-request-id": "r-0"})
            assert untraced.status_code == 404
            header, trace_id, _ = _traceparent()
            traced = await http.get("/v1/collections/none", headers={"traceparent": header})
            assert traced.status_code == 404
            await got.wait(
                lambda: (
                    {"jobcontrol-gateway", "jobcontrol-server"}
                    <= {s.service for s in got.of(trace_id)}
                ),
                "the sampled caller's trace",
            )
            read = [s for s in got.of(trace_id) if s.name == "db.read"]
            assert read and read[0].attributes.get(tracing.REQUEST_ID), got.of(trace_id)
            # a sampled write: the transaction that commits it is kept too (linked)
            header, written, _ = _traceparent()
            created = await http.post(
                "/v1/collections?collectionId=kept",
                json={"profile": "SCHEDULED"},
                headers={"traceparent": header},
            )
            assert created.status_code == 200, created.text
            await got.wait(
                lambda: any(link[0] == written for s in got.spans for link in s.links),
                "the sampled write's transaction",
            )
        # stopped: everything either process held has been exported
        assert not [s for s in got.spans if s.attributes.get(tracing.REQUEST_ID) == "r-0"]
        linked = {s.trace_id for s in got.spans if s.name == "db.transaction"}
        assert {s.trace_id for s in got.spans} == {trace_id, written, *linked}
        for span in got.spans:
            if span.trace_id in linked:
                assert {t for t, _ in span.links} == {written}


async def test_a_request_not_sampled_records_nothing_in_a_sampled_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O6: writes of requests not sampled that commit in the same group-commit batch as a
    sampled one record no span: not their SQL under the batch's `db.transaction` (which
    links the sampled request only), nor anything else."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    monkeypatch.setattr(logs, "trace_fields", None)
    async with collector() as got:
        running = await start_server(make_settings(tmp_path, otel=got.url))
        try:
            header, sampled, _ = _traceparent()
            async with grpc.aio.insecure_channel(running.address) as channel:
                jobs = job_service_pb2_grpc.JobServiceStub(channel)

                def create(name: str, metadata: tuple[tuple[str, str], ...]) -> Any:
                    return jobs.CreateCollection(
                        JS.CreateCollectionRequest(
                            collection_id=name,
                            collection=resources_pb2.Collection(profile=resources_pb2.BATCH),
                        ),
                        metadata=metadata,
                    )

                await asyncio.gather(
                    *(create(f"u{i}", (("x-request-id", f"unsampled-{i}"),)) for i in range(10)),
                    create("s", (("traceparent", header), ("x-request-id", "sampled"))),
                    *(create(f"v{i}", (("x-request-id", f"unsampled-{i}"),)) for i in range(10)),
                )
        finally:
            await running.stop(grace=1.0)
        transactions = {s.span_id for s in got.spans if s.name == "db.transaction"}
        assert transactions, [(s.name, s.trace_id) for s in got.spans]
        assert not [s for s in got.spans if s.parent in transactions]
        rids = {s.attributes.get(tracing.REQUEST_ID) for s in got.spans}
        assert not {r for r in rids if str(r).startswith("unsampled")}, rids
        assert {s.trace_id for s in got.spans if s.name != "db.transaction"} == {sampled}


def test_sampler_from_the_standard_variables() -> None:
    """O3: the sampler the standard variables name; parent-based always on by default; a
    name or ratio not understood stops the start."""
    assert "ParentBased{root:AlwaysOnSampler" in tracing.sampler({}).get_description()
    ratio = tracing.sampler(
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
    )
    assert ratio.get_description().startswith("ParentBased{root:TraceIdRatioBased{0.1}")
    # a root linked to a sampled span (the writer's transaction) is kept even at ratio 0
    never = tracing.sampler(
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}
    )
    sampled = trace.SpanContext(1, 2, is_remote=False, trace_flags=trace.TraceFlags(1))
    kept = never.should_sample(None, 3, "db.transaction", links=[trace.Link(sampled)])
    assert kept.decision.is_sampled()
    assert not never.should_sample(None, 3, "anything").decision.is_sampled()
    for bad in (
        {"OTEL_TRACES_SAMPLER": "sometimes"},
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "x"},
    ):
        with pytest.raises(SystemExit):
            tracing.sampler(bad)


async def test_off_by_default(tmp_path: Path) -> None:
    """O4: without --otel or an OTLP endpoint variable nothing is exported (the receiver
    gets no request) and neither process imports OpenTelemetry."""
    async with collector() as got:
        env = _clean_env(OTEL_BSP_SCHEDULE_DELAY="100")
        async with (
            serving(tmp_path, env) as served,
            httpx.AsyncClient(base_url=served.base_url) as http,
        ):
            header, _, _ = _traceparent()
            reply = await http.get("/v1/collections/none", headers={"traceparent": header})
            assert reply.status_code == 404
            await asyncio.sleep(0.5)
        assert got.posts == 0
    probe = (
        "import asyncio, sys, tempfile\n"
        "from jobcontrol.gateway.app import create_app\n"
        "from jobcontrol.gateway.config import GatewaySettings\n"
        "from jobcontrol.service.config import Settings\n"
        "from jobcontrol.service.server import start_server\n"
        "async def main():\n"
        "    d = tempfile.mkdtemp()\n"
        "    s = await start_server(Settings(grpc_address='127.0.0.1:0', http_address='',"
        " database_url=f'sqlite+aiosqlite:///{d}/j.db'))\n"
        "    assert s.tracing is None and s.store.tracing is None\n"
        "    assert create_app(GatewaySettings()).tracing is None\n"
        "    await s.stop(0)\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        probe,
        env=_clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0, err.decode()
    assert out.decode().strip() == "[]", err.decode()


async def test_the_otel_flag_turns_traces_on(tmp_path: Path) -> None:
    """O4: `--otel URL` alone (no variable) turns traces on in the server and in the
    gateway it runs, exporting to URL/v1/traces."""
    async with collector() as got:
        env = _clean_env(OTEL_BSP_SCHEDULE_DELAY="100")
        async with (
            serving(tmp_path, env, "--otel", got.url) as served,
            httpx.AsyncClient(base_url=served.base_url) as http,
        ):
            header, trace_id, _ = _traceparent()
            await http.get("/v1/collections/none", headers={"traceparent": header})
            await got.wait(
                lambda: (
                    {"jobcontrol-gateway", "jobcontrol-server"}
                    <= {s.service for s in got.of(trace_id)}
                ),
                "both processes' spans",
            )


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_postgres_writes_and_reads_are_traced(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O1: on PostgreSQL too (a server in this process, its own provider): a call's write is
    a `db.write` beneath its gRPC span, the group commit a `db.transaction` linked to it,
    a read a `db.read`; stopping the server exports what it held."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.setattr(logs, "trace_fields", None)  # restored after: set by the server
    async with collector() as got:
        running = await start_server(make_settings(tmp_path, otel=got.url))
        assert type(running.store).__name__ == "PostgresStore"
        try:
            header, trace_id, client_span = _traceparent()
            metadata = (("traceparent", header), ("x-request-id", "req-pg"))
            async with grpc.aio.insecure_channel(running.address) as channel:
                jobs = job_service_pb2_grpc.JobServiceStub(channel)
                await jobs.CreateCollection(
                    JS.CreateCollectionRequest(
                        collection_id="pg",
                        collection=resources_pb2.Collection(profile=resources_pb2.BATCH),
                    ),
                    metadata=metadata,
                )
                await jobs.GetCollection(
                    JS.GetCollectionRequest(name="collections/pg"), metadata=metadata
                )
        finally:
            await running.stop(grace=1.0)
        spans = got.of(trace_id)
        calls = [s for s in spans if s.kind == SERVER_KIND]
        assert [s.parent for s in calls] == [client_span, client_span], spans
        assert {s.attributes.get(tracing.REQUEST_ID) for s in calls} == {"req-pg"}
        write = _one(spans, lambda s: s.name == "db.write", "the write")
        read = _one(spans, lambda s: s.name == "db.read", "the read")
        assert write.parent == calls[0].span_id and read.parent == calls[1].span_id
        assert write.attributes.get(tracing.REQUEST_ID) == "req-pg"
        # the fixed SQL sent to asyncpg directly: a span per statement, under the read
        fixed = [s for s in spans if s.scope == "jobcontrol.storage"]
        assert [s.name for s in fixed if s.parent == read.span_id] == ["SELECT"], spans
        assert {s.attributes.get("db.system") for s in fixed} == {"postgresql"}
        linked = [s for s in got.spans if (trace_id, calls[0].span_id) in s.links]
        assert [s.name for s in linked] == ["db.transaction"]


async def test_a_collector_that_is_down_fails_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O5: a collector that cannot be reached fails no request, and stopping waits for it
    about 2 s at most (the exporter's retries are cut short; their spans are dropped)."""
    monkeypatch.setattr(logs, "trace_fields", None)
    down = f"http://127.0.0.1:{free_port()}"
    running = await start_server(make_settings(tmp_path, otel=down))
    try:
        header, _, _ = _traceparent()
        async with grpc.aio.insecure_channel(running.address) as channel:
            jobs = job_service_pb2_grpc.JobServiceStub(channel)
            created = await jobs.CreateCollection(
                JS.CreateCollectionRequest(
                    collection_id="down",
                    collection=resources_pb2.Collection(profile=resources_pb2.BATCH),
                ),
                metadata=(("traceparent", header),),
            )
            assert created.name == "collections/down"
    finally:
        began = time.monotonic()
        await running.stop(grace=1.0)
    assert time.monotonic() - began < 5.0
