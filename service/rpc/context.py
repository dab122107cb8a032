"""The request id of the current call, for logs and for the x-request-id echo."""

from __future__ import annotations

from contextvars import ContextVar

request_id: ContextVar[str] = ContextVar("request_id", default="-")
