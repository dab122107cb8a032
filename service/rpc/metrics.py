"""gRPC server metrics with go-grpc-prometheus's names, labels and label values, for
grpc.aio (which py-grpc-prometheus does not support): `grpc_server_started_total`,
`grpc_server_handled_total` and the `grpc_server_handling_seconds` histogram, labelled
`grpc_type` (unary, client_stream, server_stream, bidi_stream), `grpc_service`,
`grpc_method`, and on the handled counter `grpc_code` as Go spells it (OK, NotFound,
InvalidArgument, Canceled, ...).

Decision: go-grpc-prometheus defined these names, and the dashboards and alert rules
operators already run (the kube-prometheus and etcd mixins, Grafana's gRPC dashboards)
select on its values, e.g. `grpc_type="unary"` and
`grpc_code=~"Unknown|Internal|Unavailable|DataLoss|DeadlineExceeded"`; py-grpc-prometheus's
UNARY / NOT_FOUND would match none of them."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from jobcontrol.metrics import DEFAULT_BUCKETS

UNARY, CLIENT_STREAMING = "unary", "client_stream"
SERVER_STREAMING, BIDI_STREAMING = "server_stream", "bidi_stream"
# each status as Go's codes.Code.String() spells it
GO_CODES = {
    grpc.StatusCode.OK: "OK",
    grpc.StatusCode.CANCELLED: "Canceled",
    grpc.StatusCode.UNKNOWN: "Unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.ABORTED: "Aborted",
    grpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.DATA_LOSS: "DataLoss",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}
_LABELS = ("grpc_type", "grpc_service", "grpc_method")


class MethodSeries:
    """One method's bound series (labels resolved once, not per call)."""

    def __init__(self, metrics: GrpcMetrics, kind: str, full: str) -> None:
        service, _, method = full.lstrip("/").rpartition("/")
        self.labels = (kind, service, method)
        self.started = metrics.started.labels(*self.labels)
        self.seconds = metrics.seconds.labels(*self.labels)
        self._handled = metrics.handled
        self._codes: dict[grpc.StatusCode, Any] = {}

    def done(self, code: grpc.StatusCode, seconds: float) -> None:
        self.seconds.observe(seconds)
        child = self._codes.get(code)
        if child is None:
            child = self._codes[code] = self._handled.labels(*self.labels, GO_CODES[code])
        child.inc()


def status_of(context: Any, failed: BaseException | None) -> grpc.StatusCode:
    """A call's status: the one the handler set (abort, set_code), else OK, CANCELLED
    for a call the client or the server's stop cancelled, or UNKNOWN for an exception grpc
    turns into UNKNOWN."""
    code = context.code()
    if code is None:
        if failed is None:
            return grpc.StatusCode.OK
        if isinstance(failed, asyncio.CancelledError):
            return grpc.StatusCode.CANCELLED
        return grpc.StatusCode.UNKNOWN
    if isinstance(code, grpc.StatusCode):
        return code
    for member in grpc.StatusCode:  # grpc.aio may hold the integer value
        if member.value[0] == code:
            return member
    return grpc.StatusCode.UNKNOWN


class GrpcMetrics:
    """The three series on `registry`, and each method's bound children. The server's
    call interceptor (service/rpc/interceptors.py) feeds them: unary calls from the
    measurement its access log already takes, streams through `wrap_stream`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter(
            "grpc_server_started_total",
            "Total number of RPCs started on the server.",
            _LABELS,
            registry=registry,
        )
        self.handled = Counter(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            (*_LABELS, "grpc_code"),
            registry=registry,
        )
        self.seconds = Histogram(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level "
            "handled by the server.",
            _LABELS,
            buckets=DEFAULT_BUCKETS,
            registry=registry,
        )
        self._methods: dict[tuple[str, str], MethodSeries] = {}

    def method(self, kind: str, full: str) -> MethodSeries:
        found = self._methods.get((kind, full))
        if found is None:
            found = self._methods[(kind, full)] = MethodSeries(self, kind, full)
        return found

    def wrap_stream(self, handler: Any, full: str) -> Any:
        """`handler` (a streaming one) counted and timed."""
        if handler.unary_stream is not None:
            kind, inner = SERVER_STREAMING, handler.unary_stream
            wrap = grpc.unary_stream_rpc_method_handler
        elif handler.stream_unary is not None:
            kind, inner = CLIENT_STREAMING, handler.stream_unary
            wrap = grpc.stream_unary_rpc_method_handler
        else:
            kind, inner = BIDI_STREAMING, handler.stream_stream
            wrap = grpc.stream_stream_rpc_method_handler
        series = self.method(kind, full)
        streams = kind in (SERVER_STREAMING, BIDI_STREAMING)
        # a streaming reply is an async generator, or a coroutine writing with context.write
        wrapped = _generator(inner, series) if streams and not _is_coroutine(inner) else None
        return wrap(
            wrapped or _coroutine(inner, series),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _is_coroutine(function: Any) -> bool:
    return inspect.iscoroutinefunction(function)


def _coroutine(inner: Any, series: MethodSeries) -> Callable[[Any, Any], Awaitable[Any]]:
    async def wrapped(request: Any, context: Any) -> Any:
        series.started.inc()
        started, failed = time.perf_counter(), None
        try:
            return await inner(request, context)
        except BaseException as exc:
            failed = exc
            raise
        finally:
            series.done(status_of(context, failed), time.perf_counter() - started)

    return wrapped


def _generator(inner: Any, series: MethodSeries) -> Callable[[Any, Any], AsyncIterator[Any]]:
    async def wrapped(request: Any, context: Any) -> AsyncIterator[Any]:
        series.started.inc()
        started, failed = time.perf_counter(), None
        try:
            async for reply in inner(request, context):
                yield reply
        except BaseException as exc:
            failed = exc
            raise
        finally:
            series.done(status_of(context, failed), time.perf_counter() - started)

    return wrapped


__all__ = ["GO_CODES", "UNARY", "GrpcMetrics", "MethodSeries", "status_of"]
