"""The server's call interceptor: every call's request id, its access-log line and its
gRPC metrics, from one measurement of the call (its status and duration)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from jobcontrol.service.rpc.context import request_id
from jobcontrol.service.rpc.metrics import UNARY, GrpcMetrics, status_of

log = logging.getLogger("jobcontrol.access")
HEADER = "x-request-id"


class MethodInterceptor(grpc.aio.ServerInterceptor):
    """An interceptor whose wrapping depends on the method alone, built once per method:
    grpc.aio runs interceptors on every call, and building closures and a method handler
    for each was about a tenth of a GetJob's samples on the event loop (bench/README,
    "Generic handlers"). A wrapper reads what is per call from its context
    (`context.invocation_metadata()`). Unknown methods (no handler) are not kept, so the
    cache holds at most the server's methods."""

    def __init__(self) -> None:
        self._built: dict[str, Any] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        method = details.method
        built = self._built.get(method)
        if built is None:
            handler = await continuation(details)
            if handler is None:
                return None
            built = self._built[method] = self.wrap(handler, method)
        return built

    def wrap(self, handler: Any, method: str) -> Any:
        """The handler served for `method` in place of `handler`."""
        raise NotImplementedError


class CallInterceptor(MethodInterceptor):
    """Reads `x-request-id` (or makes one), echoes it in the initial metadata, exposes it
    in a ContextVar, and at DEBUG logs each unary call with its code and duration. With
    traces on, `tag` puts the request id on the call's span. With `metrics`, counts and
    times every call (streams too); it sits outside authentication, so the calls it
    refuses are counted."""

    def __init__(
        self, tag: Callable[[str], None] | None = None, metrics: GrpcMetrics | None = None
    ) -> None:
        super().__init__()
        self.tag = tag
        self.metrics = metrics

    def wrap(self, handler: Any, method: str) -> Any:
        if handler.unary_unary is None:
            return handler if self.metrics is None else self.metrics.wrap_stream(handler, method)
        inner = handler.unary_unary
        tag = self.tag
        series = self.metrics.method(UNARY, method) if self.metrics is not None else None

        async def wrapped(request: Any, context: Any) -> Any:
            rid = _request_id(context.invocation_metadata())
            token = request_id.set(rid)
            if tag is not None:
                tag(rid)
            if series is not None:
                series.started.inc()
            started, failed = time.perf_counter(), None
            try:
                await context.send_initial_metadata(((HEADER, rid),))
                return await inner(request, context)
            except BaseException as exc:
                failed = exc
                raise
            finally:
                if series is not None or log.isEnabledFor(logging.DEBUG):
                    _done(series, method, status_of(context, failed), started)
                request_id.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _request_id(metadata: Any) -> str:
    """The caller's `x-request-id` (at most 128 characters), or a new one."""
    for key, value in metadata or ():
        if key == HEADER and value:
            return str(value)[:128]
    return uuid.uuid4().hex


def _done(series: Any, method: str, code: grpc.StatusCode, started: float) -> None:
    seconds = time.perf_counter() - started
    if series is not None:
        series.done(code, seconds)
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "rpc", extra={"method": method, "code": code.name, "ms": round(seconds * 1000, 3)}
        )
