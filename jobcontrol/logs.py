"""Structured (JSON lines) logging of one process, server or gateway: every line carries
the current request id and, when traces are on, the current span's `trace_id` and
`span_id`, so a line, a span and the client's `x-request-id` find each other."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable

# the current span's trace_id and span_id for each line (set when traces are on)
trace_fields: Callable[[], dict[str, str]] | None = None
# record attributes that are not a line's extras (uvicorn's ANSI-coloured copy included)
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    def __init__(self, request_id: Callable[[], str]) -> None:
        super().__init__()
        self.request_id = request_id

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": self.request_id(),
        }
        if trace_fields is not None:
            out.update(trace_fields())
        out.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure(level: str, request_id: Callable[[], str]) -> None:
    """Send JSON logs to stderr at `level`, each with `request_id()` (every logger, the
    libraries' too: uvicorn's and grpc's lines are JSON as well)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(request_id))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
