"""Server interceptors: request id and access log, one concern each."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from jobcontrol.service.rpc.context import request_id

log = logging.getLogger("jobcontrol.access")
HEADER = "x-request-id"


class RequestIdInterceptor(grpc.aio.ServerInterceptor):
    """Reads `x-request-id` (or makes one), echoes it in the initial metadata, exposes it
    in a ContextVar, and logs each unary call with its code and duration. With traces on,
    `tag` puts the request id on the call's span."""

    def __init__(self, tag: Callable[[str], None] | None = None) -> None:
        self.tag = tag

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        method = details.method
        incoming = dict(details.invocation_metadata or ())
        tag = self.tag

        async def wrapped(request: Any, context: Any) -> Any:
            rid = str(incoming.get(HEADER) or uuid.uuid4().hex)[:128]
            token = request_id.set(rid)
            if tag is not None:
                tag(rid)
            started = time.perf_counter()
            try:
                await context.send_initial_metadata(((HEADER, rid),))
                return await inner(request, context)
            finally:
                if log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "rpc",
                        extra={
                            "method": method,
                            "code": str(context.code() or "OK"),
                            "ms": round((time.perf_counter() - started) * 1000, 3),
                        },
                    )
                request_id.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
