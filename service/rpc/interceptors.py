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


class CallInterceptor(grpc.aio.ServerInterceptor):
    """Reads `x-request-id` (or makes one), echoes it in the initial metadata, exposes it
    in a ContextVar, and at DEBUG logs each unary call with its code and duration. With
    traces on, `tag` puts the request id on the call's span. With `metrics`, counts and
    times every call (streams too); it sits outside authentication, so the calls it
    refuses are counted."""

    def __init__(
        self, tag: Callable[[str], None] | None = None, metrics: GrpcMetrics | None = None
    ) -> None:
        self.tag = tag
        self.metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method
        if handler.unary_unary is None:
            return handler if self.metrics is None else self.metrics.wrap_stream(handler, method)
        inner = handler.unary_unary
        incoming = dict(details.invocation_metadata or ())
        tag = self.tag
        series = self.metrics.method(UNARY, method) if self.metrics is not None else None

        async def wrapped(request: Any, context: Any) -> Any:
            rid = str(incoming.get(HEADER) or uuid.uuid4().hex)[:128]
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


def _done(series: Any, method: str, code: grpc.StatusCode, started: float) -> None:
    seconds = time.perf_counter() - started
    if series is not None:
        series.done(code, seconds)
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "rpc", extra={"method": method, "code": code.name, "ms": round(seconds * 1000, 3)}
        )
