"""Every servicer method runs under `guarded`: domain errors become rich statuses."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from jobcontrol.service.core.errors import DomainError, Reason
from jobcontrol.service.rpc.errors import abort

log = logging.getLogger("jobcontrol.rpc")
R = TypeVar("R")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[R]]


def guarded(fn: Handler[R]) -> Handler[R]:
    """Translate DomainError (and, as INTERNAL_ERROR, anything unexpected) once; a call
    whose deadline has passed before it starts does no work (DEADLINE_EXCEEDED)."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> R:
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline has passed")
        try:
            return await fn(self, request, context)
        except DomainError as exc:
            await abort(context, exc)
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("unhandled error in %s", fn.__qualname__)
            await abort(context, DomainError(Reason.INTERNAL_ERROR, "internal error"))
        raise AssertionError("unreachable: abort raises")

    return wrapper
