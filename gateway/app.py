"""The gateway's ASGI application: dialect dispatch, health, readiness, OpenAPI."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from cryptography import x509
from google.longrunning import operations_pb2
from grpc_health.v1 import health_pb2
from prometheus_client import CollectorRegistry

from jobcontrol.gateway import openapi
from jobcontrol.gateway.config import GatewaySettings
from jobcontrol.gateway.dialects.base import Dialect
from jobcontrol.gateway.dialects.batch import BatchDialect, parse_accounts
from jobcontrol.gateway.dialects.importexport import ImportExportDialect
from jobcontrol.gateway.dialects.native import NativeDialect
from jobcontrol.gateway.dialects.scheduler import SchedulerDialect
from jobcontrol.gateway.dialects.veeam import VeeamDialect
from jobcontrol.gateway.errors import GatewayError
from jobcontrol.gateway.http import Receive, Request, Response, Scope, Send
from jobcontrol.gateway.metrics import BUILTIN, HttpMetrics
from jobcontrol.gateway.upstream import Channel, Upstream
from jobcontrol.metrics import MetricsServer, start_metrics_server
from jobcontrol.settings import otel_enabled
from jobcontrol.v1 import (
    diagnostics_service_pb2,
    job_service_pb2,
    operator_service_pb2,
    worker_service_pb2,
)

log = logging.getLogger("jobcontrol.gateway")
SERVICES = [
    job_service_pb2.DESCRIPTOR.services_by_name["JobService"],
    operator_service_pb2.DESCRIPTOR.services_by_name["OperatorService"],
    diagnostics_service_pb2.DESCRIPTOR.services_by_name["DiagnosticsService"],
    operations_pb2.DESCRIPTOR.services_by_name["Operations"],
    worker_service_pb2.DESCRIPTOR.services_by_name["WorkerService"],
]
HEALTH_CHECK = "/grpc.health.v1.Health/Check"


class GatewayApp:
    """An ASGI app: the first dialect that claims a path handles it; the native mapping
    answers for paths nobody claims."""

    def __init__(self, settings: GatewaySettings, extra: list[Dialect] | None = None) -> None:
        self.settings = settings
        self.upstream = Upstream(
            Channel(
                settings.grpc_target,
                settings.grpc_tls_ca,
                settings.grpc_tls_cert,
                settings.grpc_tls_key,
                settings.grpc_token_file,
            )
        )
        client_ca = (
            x509.load_pem_x509_certificate(Path(settings.tls_client_ca).read_bytes())
            if settings.tls_client_ca
            else None
        )
        self.native = NativeDialect(SERVICES, client_ca)
        self.dialects: list[Dialect] = [self.native, *(extra or [])]
        for dialect in self.dialects:
            # the gateway's limit applies to every dialect; one may document a smaller one
            documented = dialect.documented_max_body or settings.max_body
            dialect.max_body = min(documented, settings.max_body)
            dialect.base_url = settings.base_url
        spec = openapi.document(self.native.bindings, "jobcontrol native REST mapping", "v1")
        self.openapi_json = orjson.dumps(spec)
        # this gateway's own metrics (never the process-global registry); off: not measured
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_metrics = HttpMetrics(self.registry) if settings.metrics_address else None
        self.metrics: MetricsServer | None = None
        # traces (gateway/tracing.py); None: off, and OpenTelemetry is never imported
        self.tracing: Any = None
        if otel_enabled(settings.otel):
            from jobcontrol import logs
            from jobcontrol import tracing as otel
            from jobcontrol.gateway import tracing
            from jobcontrol.gateway.dialects import base

            self.tracing = tracing.GatewayTracing(settings.otel)
            self.upstream.interceptors = self.tracing.client_interceptors()
            base.on_request_id = tracing.tag_request_id
            logs.trace_fields = otel.log_fields

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope, receive)
            started = time.perf_counter()
            response = await self.dispatch(request)
            await response.send(send, head_only=request.method == "HEAD")
            if self.http_metrics is not None:
                self.http_metrics.observe(response, request.method, request.path, started)
            if log.isEnabledFor(logging.DEBUG):
                self._log(request, response, started)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    @staticmethod
    def _log(request: Request, response: Response, started: float) -> None:
        """One DEBUG line per request (with its request id and, traced, its trace id),
        the counterpart of the server's `rpc` line."""
        log.debug(
            "http",
            extra={
                "method": request.method,
                "dialect": response.extra.get("dialect", BUILTIN),
                "route": response.extra.get("route", request.path),
                "status": response.status,
                "ms": round((time.perf_counter() - started) * 1000, 3),
            },
        )

    async def dispatch(self, request: Request) -> Response:
        """Built-in endpoints, else the claiming dialect, else a native 404."""
        builtin = self._builtin(request.path)
        if builtin is not None and request.method in ("GET", "HEAD"):
            return await builtin()
        for dialect in self.dialects:
            if dialect.claims(request):
                return await dialect.handle(request, self.upstream)
        return await self.native.handle(request, self.upstream)

    def _builtin(self, path: str) -> Callable[[], Awaitable[Response]] | None:
        return {
            "/livez": self._livez,
            "/healthz": self._livez,
            "/readyz": self._readyz,
            "/openapi.json": self._openapi,
        }.get(path)

    async def _livez(self) -> Response:
        """The process serves HTTP (nothing upstream is asked); `/healthz` is its alias."""
        return Response(200, b'{"status":"ok"}')

    async def _readyz(self) -> Response:
        """200 while the server's overall health ("") is SERVING; 503 when it is anything
        else (its store failing, its schema not this code's, shutting down) or cannot be
        asked within 2 s."""
        try:
            reply = await self.upstream.call(
                HEALTH_CHECK,
                health_pb2.HealthCheckRequest(),
                health_pb2.HealthCheckResponse,
                deadline=2.0,
            )
        except GatewayError as exc:
            reason = f"the gRPC server cannot be reached: {exc.message}"
            return Response(503, orjson.dumps({"status": "unavailable", "reason": reason}))
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            reason = f"the gRPC server reports {status}"
            return Response(503, orjson.dumps({"status": "unavailable", "reason": reason}))
        return Response(200, b'{"status":"ok"}')

    async def _openapi(self) -> Response:
        return Response(200, self.openapi_json)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.upstream.open()
                    if self.settings.metrics_address:
                        address = self.settings.metrics_address
                        self.metrics = start_metrics_server(address, self.registry)
                except (Exception, SystemExit) as exc:  # report, do not crash the server loop
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.upstream.close()
                if self.metrics is not None:
                    await self.metrics.aclose()
                if self.tracing is not None:
                    await asyncio.to_thread(self.tracing.shutdown)
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: GatewaySettings) -> GatewayApp:
    """The gateway application for `settings` (dialects register here)."""
    dialects: list[Dialect] = []
    # Batch first: its root collections (`/jobs/operations`) would otherwise look like
    # Scheduler's `/{subscription}/operations/…` (subscription ids are GUIDs, job ids are not)
    if settings.batch_accounts:
        accounts = parse_accounts(settings.batch_accounts)
        dialects.append(BatchDialect(accounts, clock_skew=settings.batch_clock_skew))
    dialects += [SchedulerDialect(settings), ImportExportDialect(settings)]
    if settings.veeam_users:
        dialects.append(VeeamDialect.from_settings(settings))
    return GatewayApp(settings, extra=dialects)


__all__ = ["GatewayApp", "create_app"]
