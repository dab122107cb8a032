"""The gateway's HTTP metrics: requests and their duration per dialect and route template
(the row's template, e.g. `/v1/{name=collections/*/jobs/*}`, never the raw path: bounded
cardinality; "unmatched" when no row matched), method and status."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram

from jobcontrol.gateway.http import Response
from jobcontrol.metrics import DEFAULT_BUCKETS

UNMATCHED = "unmatched"
# the gateway's own endpoints (/healthz, /readyz, /openapi.json): no dialect's
BUILTIN = "gateway"


class HttpMetrics:
    """`http_requests_total{dialect,route,method,status}` and
    `http_request_duration_seconds{dialect,route,method}`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests answered by the gateway.",
            ("dialect", "route", "method", "status"),
            registry=registry,
        )
        self.seconds = Histogram(
            "http_request_duration_seconds",
            "Seconds from a request's arrival to its response's last byte handed to the server.",
            ("dialect", "route", "method"),
            buckets=DEFAULT_BUCKETS,
            registry=registry,
        )

    def observe(self, response: Response, method: str, path: str, started: float) -> None:
        """Count one answered request (its dialect and route as the seam marked them)."""
        dialect = response.extra.get("dialect")
        route = response.extra.get("route", UNMATCHED)
        if dialect is None:  # answered by the gateway itself, on its fixed paths
            dialect, route = BUILTIN, path
        self.seconds.labels(dialect, route, method).observe(time.perf_counter() - started)
        self.requests.labels(dialect, route, method, str(response.status)).inc()


def mark(response: Response, dialect: str, route: str | None) -> Response:
    """Note on `response` which dialect and route template answered it."""
    response.extra["dialect"] = dialect
    response.extra["route"] = route or UNMATCHED
    return response


__all__ = ["BUILTIN", "UNMATCHED", "HttpMetrics", "mark"]
