"""One server factory for the CLI and the tests: storage, core, gRPC services."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import grpc
from google.longrunning import operations_grpc_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from prometheus_client import CollectorRegistry

from jobcontrol.metrics import MetricsServer, start_metrics_server
from jobcontrol.runtime import settle_heap
from jobcontrol.service import auth_config
from jobcontrol.service.config import Settings
from jobcontrol.service.core.profiles import WORK_KINDS
from jobcontrol.service.core.service import Core, build_core
from jobcontrol.service.health import HealthMonitor, check_interval
from jobcontrol.service.http_actions import HttpActionRunner
from jobcontrol.service.metrics import Backlog, ServerMetrics
from jobcontrol.service.rpc.auth import AuthInterceptor
from jobcontrol.service.rpc.authn import Authenticator
from jobcontrol.service.rpc.diagnostics import DiagnosticsServicer
from jobcontrol.service.rpc.dialect_state import DialectStateServicer
from jobcontrol.service.rpc.interceptors import CallInterceptor
from jobcontrol.service.rpc.jobs import JobServicer
from jobcontrol.service.rpc.metrics import GrpcMetrics
from jobcontrol.service.rpc.operations import OperationsServicer
from jobcontrol.service.rpc.operator import OperatorServicer
from jobcontrol.service.rpc.worker import WorkerServicer
from jobcontrol.service.storage.database import PostgresStore, SqliteStore, open_store
from jobcontrol.settings import ENV_PREFIX, otel_enabled
from jobcontrol.v1 import (
    diagnostics_service_pb2,
    diagnostics_service_pb2_grpc,
    job_service_pb2,
    job_service_pb2_grpc,
    operator_service_pb2,
    operator_service_pb2_grpc,
    session_service_pb2,
    session_service_pb2_grpc,
    worker_service_pb2,
    worker_service_pb2_grpc,
)

log = logging.getLogger("jobcontrol.server")
# the module `jobctl serve` runs its gateway process as (`python -m ...`)
GATEWAY_MODULE = "jobcontrol.gateway"
SERVICE_NAMES = (
    job_service_pb2.DESCRIPTOR.services_by_name["JobService"].full_name,
    operator_service_pb2.DESCRIPTOR.services_by_name["OperatorService"].full_name,
    diagnostics_service_pb2.DESCRIPTOR.services_by_name["DiagnosticsService"].full_name,
    session_service_pb2.DESCRIPTOR.services_by_name["DialectStateService"].full_name,
    worker_service_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name,
    "google.longrunning.Operations",
)


class GenericOnly:
    """The server as the generated `add_*Servicer_to_server` functions see it: each
    service goes in as its generic handler only, never as registered methods. grpc.aio
    keeps one pending request per registered method, and its accept loop `asyncio.wait`s
    on all of them for every call it accepts (30-odd futures here, each given and
    relieved of a done-callback per call): with them, an Echo cost 0.19-0.22 ms of the
    server's main thread; generic only, 0.14-0.15 ms (h2load, bench/README "Generic
    handlers"). Dispatch stays a dict lookup by method name."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Pass the service's generic handler through."""
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        """Dropped: the same handlers came through `add_generic_rpc_handlers`."""


@dataclass
class RunningServer:
    """A started server: its bound address and how to stop it."""

    server: grpc.aio.Server
    address: str
    core: Core
    store: SqliteStore | PostgresStore
    health: health.aio.HealthServicer
    runner: HttpActionRunner
    # this server's own metrics (never the process-global registry) and their listener
    registry: CollectorRegistry
    metrics: MetricsServer | None = None
    monitor: HealthMonitor | None = None
    # the work queue's depth and the occurrences due, counted when metrics are on
    backlog: Backlog | None = None
    # traces (service/tracing.py); None: off
    tracing: Any = None

    async def stop(self, grace: float) -> None:
        """Stop accepting, let in-flight calls finish for `grace` seconds, then close
        the reaper and the store (queued writes are committed first)."""
        if self.monitor is not None:
            await self.monitor.stop()
        if self.backlog is not None:
            await self.backlog.stop()
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(grace)
        await self.core.scheduler.stop()
        await self.core.reaper.stop()
        await self.runner.close()
        await self.store.close()
        if self.metrics is not None:
            await self.metrics.aclose()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)


def _options(settings: Settings) -> list[tuple[str, int]]:
    """Connection limits: idle connections are closed, keepalive pings kept in bounds."""
    return [
        ("grpc.max_connection_idle_ms", int(settings.grpc_idle_timeout * 1000)),
        ("grpc.keepalive_time_ms", int(settings.grpc_keepalive * 1000)),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.max_metadata_size", 64 * 1024),
        ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    ]


def _bind(server: grpc.aio.Server, settings: Settings) -> int:
    """Listen, with TLS when a certificate is configured (client certificates required and
    verified when a client CA is)."""
    if not settings.tls_cert:
        if settings.tls_client_ca:
            raise SystemExit("--tls-client-ca needs --tls-cert and --tls-key")
        return server.add_insecure_port(settings.grpc_address)
    ca = Path(settings.tls_client_ca).read_bytes() if settings.tls_client_ca else None
    key, cert = Path(settings.tls_key).read_bytes(), Path(settings.tls_cert).read_bytes()
    credentials = grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )
    return server.add_secure_port(settings.grpc_address, credentials)


def _action_runner(settings: Settings) -> HttpActionRunner:
    """The scheduler's HTTP runner; an unreadable `--action-ca-file` stops the start."""
    try:
        return HttpActionRunner(ca_file=settings.action_ca_file)
    except (OSError, ValueError, ssl.SSLError) as exc:
        raise SystemExit(f"--action-ca-file {settings.action_ca_file}: {exc}") from exc


def _tracing(settings: Settings) -> Any:
    """The server's traces when on (`--otel` or an OTLP endpoint variable); None: off, and
    nothing of OpenTelemetry is imported."""
    if not otel_enabled(settings.otel):
        return None
    from jobcontrol import logs, tracing
    from jobcontrol.service.tracing import ServerTracing

    made = ServerTracing(settings.otel)
    logs.trace_fields = tracing.log_fields
    return made


def default_poll(store: SqliteStore | PostgresStore) -> float:
    """A waiting LeaseWork's poll when unset: on PostgreSQL, notices wake it and the poll
    is a safety net (and finds expired leases); SQLite has no other writer."""
    return 5.0 if isinstance(store, PostgresStore) else 0.5


def _watch(
    measured: ServerMetrics, core: Core, store: SqliteStore | PostgresStore, interval: float
) -> Backlog:
    """The engine reports to `measured`; gauges read the store and the scheduler; the
    backlog (not started yet) is counted every `interval` seconds."""
    core.ctx.metrics = measured
    backlog = Backlog(store, interval, WORK_KINDS)
    measured.registry.register(backlog)
    measured.gauge(
        "jobcontrol_writer_queue_depth", "Writes queued for the writer.", store.queue_depth
    )
    measured.gauge(
        "jobcontrol_scheduler_attempts_in_flight",
        "Attempts of scheduled actions running (or claimed ahead) on this server.",
        core.scheduler.in_flight,
    )
    if isinstance(store, PostgresStore):
        measured.gauge(
            "jobcontrol_db_read_pool_in_use",
            "Read connections checked out of the pool.",
            store.pool_in_use,
        )
        measured.gauge(
            "jobcontrol_db_read_pool_size",
            "Read connections the pool may hold (--read-pool-size).",
            lambda: float(store.read_pool_size),
        )
    return backlog


async def start_server(settings: Settings) -> RunningServer:
    """Open storage (migrations applied), start the reaper and the gRPC server."""
    auth_config.check_exposure(settings)
    check_interval(settings.health_interval)
    policy, rules = auth_config.load_policy(settings), auth_config.token_rules(settings)
    runner = _action_runner(settings)
    store = open_store(settings.database_url, settings.read_pool_size, settings.max_batch)
    registry = CollectorRegistry(auto_describe=True)
    measured = ServerMetrics(registry) if settings.metrics_address else None
    if measured is not None:
        store.metrics = measured
    traced = _tracing(settings)
    store.tracing = traced
    await store.open()
    core = build_core(
        store,
        idempotency_window=settings.idempotency_window,
        purge_chunk=settings.purge_chunk,
        reaper_interval=settings.reaper_interval,
        policy=policy,
        lease_duration=settings.lease_duration,
        replica=settings.replica_id,
        runner=runner,
        scheduler_min_interval=settings.scheduler_min_interval,
        action_timeout=settings.action_timeout,
        scheduler_concurrency=settings.scheduler_concurrency,
        work_poll_interval=settings.work_poll_interval or default_poll(store),
    )
    backlog = None if measured is None else _watch(measured, core, store, settings.health_interval)
    core.ctx.tracing = traced
    # other replicas' notices of work wake this server's waiting LeaseWorks
    store.on_work(core.ctx.work_signal.notify)
    core.reaper.start()
    core.scheduler.start()
    auth = AuthInterceptor(Authenticator(rules, core.authorizer), core.authorizer)
    tag = traced.tag_request_id if traced is not None else None
    # outside authentication, so that the calls it refuses are logged and counted too
    grpc_metrics = GrpcMetrics(registry) if settings.metrics_address else None
    interceptors: list[grpc.aio.ServerInterceptor] = [CallInterceptor(tag, grpc_metrics), auth]
    if traced is not None:  # the call's span is current inside, where the request id is
        interceptors.insert(0, traced.interceptor())
    server = grpc.aio.server(interceptors=interceptors, options=_options(settings))
    # what the generated functions call of a server, and only that (see GenericOnly)
    generic = cast(grpc.aio.Server, GenericOnly(server))
    job_service_pb2_grpc.add_JobServiceServicer_to_server(JobServicer(core), generic)
    operator_service_pb2_grpc.add_OperatorServiceServicer_to_server(OperatorServicer(core), generic)
    diagnostics_service_pb2_grpc.add_DiagnosticsServiceServicer_to_server(
        DiagnosticsServicer(), generic
    )
    operations_grpc_pb2.add_OperationsServicer_to_server(OperationsServicer(core), generic)
    session_service_pb2_grpc.add_DialectStateServiceServicer_to_server(
        DialectStateServicer(core), generic
    )
    worker_service_pb2_grpc.add_WorkerServiceServicer_to_server(WorkerServicer(core), generic)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, generic)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        reflection.aio.ReflectionServicer(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME)
        ),
        generic,
    )
    port = _bind(server, settings)
    if port == 0:
        await core.scheduler.stop()
        await core.reaper.stop()
        await runner.close()
        await store.close()
        raise SystemExit(f"cannot listen on {settings.grpc_address}")
    await server.start()
    # SERVING or not from the first probe on, then every --health-interval
    monitor = HealthMonitor(store, health_servicer, SERVICE_NAMES, settings.health_interval)
    await monitor.probe()
    monitor.start()
    if backlog is not None:  # counted before the first scrape can come
        await backlog.refresh()
        backlog.start()
    host = settings.grpc_address.rsplit(":", 1)[0]
    address = f"{host}:{port}"
    log.info("listening", extra={"address": address, "database": store.url.render_as_string()})
    running = RunningServer(
        server,
        address,
        core,
        store,
        health_servicer,
        runner,
        registry,
        monitor=monitor,
        backlog=backlog,
        tracing=traced,
    )
    if settings.metrics_address:
        try:
            running.metrics = start_metrics_server(settings.metrics_address, registry)
        except SystemExit:  # the address is taken or malformed: stop what started
            await running.stop(0)
            raise
        log.info("metrics", extra={"url": running.metrics.url})
    return running


async def start_gateway(settings: Settings, grpc_target: str) -> asyncio.subprocess.Process:
    """The REST gateway in its own process (so it has a core of its own); secrets travel
    in its environment, not on its command line. It inherits every JOBCONTROL_* variable
    (its own settings: the public URL, its token, the dialects' users) and listens with
    the server's TLS settings; `auth` none carries over to it."""
    env = {**os.environ, "JOBCONTROL_BATCH_ACCOUNTS": settings.batch_accounts}
    for name in ("auth", "tls_cert", "tls_key", "tls_client_ca"):
        if getattr(settings, name):
            env[ENV_PREFIX + name.upper()] = getattr(settings, name)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        GATEWAY_MODULE,
        "--grpc-target",
        grpc_target,
        "--http-address",
        settings.http_address,
        "--log-level",
        settings.log_level,
        # the server's own listener is not the gateway's (it inherits the environment)
        "--metrics-address",
        settings.gateway_metrics_address,
        "--otel",
        settings.otel,
        env=env,
    )


async def serve(settings: Settings) -> None:
    """Run the gRPC server (and the gateway) until SIGTERM or SIGINT, then shut down
    gracefully: the gateway first, so no new calls arrive, then gRPC drains."""
    running = await start_server(settings)
    gateway = await start_gateway(settings, running.address) if settings.http_address else None
    settle_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"jobcontrol gRPC listening on {running.address}", flush=True)
    if gateway is not None:
        print(f"jobcontrol REST gateway on http://{settings.http_address}", flush=True)
    await stop.wait()
    log.info("shutting down", extra={"grace": settings.shutdown_grace})
    if gateway is not None and gateway.returncode is None:
        gateway.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(gateway.wait(), settings.shutdown_grace)
        except TimeoutError:
            gateway.kill()
    await running.stop(settings.shutdown_grace)
