"""The gateway's traces (imported only when traces are on, see jobcontrol/tracing.py):
OpenTelemetry's ASGI middleware makes the server span of every HTTP request (a client's
`traceparent` continues its trace), its grpc.aio client interceptors the span of each call
upstream, whose `traceparent` metadata the server continues. The request id the dialect
decides is put on the request's span and on every span started after it."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from jobcontrol import tracing
from jobcontrol.gateway.dialects.base import request_id

SERVICE = "jobcontrol-gateway"


def tag_request_id(rid: str) -> None:
    """The request's id, decided by its dialect, on its span (and, through `request_id`,
    on those after it)."""
    trace.get_current_span().set_attribute(tracing.REQUEST_ID, rid)


class GatewayTracing:
    """The gateway's provider, middleware and client interceptors."""

    def __init__(self, flag: str) -> None:
        self.provider = tracing.Provider(SERVICE, flag, request_id.get)

    def middleware(self, app: Any) -> Any:
        """`app` inside the HTTP server span (no spans of its own per receive and send)."""
        return OpenTelemetryMiddleware(
            app, tracer_provider=self.provider, exclude_spans=["receive", "send"]
        )

    def client_interceptors(self) -> list[Any]:
        """The span of each call upstream, its context sent as `traceparent` metadata."""
        return list(aio_client_interceptors(tracer_provider=self.provider))  # type: ignore[no-untyped-call]

    def shutdown(self) -> None:
        """Export what is queued (at most 2 s more), then stop."""
        self.provider.close()
