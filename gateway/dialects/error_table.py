"""The one lookup from a failed request (gRPC code, ErrorInfo reason) to a dialect's error
row: HTTP status, the dialect's error code and its message. Each dialect only declares its
table; the order of lookup is written here once."""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import grpc

from jobcontrol.gateway.errors import HTTP_STATUS, GatewayError


@dataclass(frozen=True)
class ErrorRow:
    """A dialect's answer to one kind of failure. `message` is a template filled from the
    route's path parameters and `{message}` (the server's message); empty: the server's
    message as it is."""

    status: int
    code: str = ""
    message: str = ""


NONE: Mapping[str, ErrorRow] = MappingProxyType({})


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


_FORMATTER = string.Formatter()


@dataclass(frozen=True)
class ErrorTable:
    """Rows by ErrorInfo reason (a key `REASON@field` is more specific: the ErrorInfo's
    `field`), then by gRPC code, then `fallback`; without one, the standard code -> HTTP
    table with no dialect code."""

    by_reason: Mapping[str, ErrorRow] = field(default_factory=lambda: MappingProxyType({}))
    by_code: Mapping[grpc.StatusCode, ErrorRow] = field(
        default_factory=lambda: MappingProxyType({})
    )
    fallback: ErrorRow | None = None

    def row(self, error: GatewayError, overrides: Mapping[str, ErrorRow] = NONE) -> ErrorRow:
        """The row for `error`: the route's overrides, then the table by reason, then a
        gateway-level status (404 route, 405, 413), then by code, then the fallback."""
        keys = (f"{error.reason}@{error.metadata.get('field', '')}", error.reason)
        for table in (overrides, self.by_reason):
            for key in keys:
                found = table.get(key)
                if found is not None:
                    return found
        if error.http_status is not None:
            return ErrorRow(error.http_status)
        found = self.by_code.get(error.code)
        if found is not None:
            return found
        return self.fallback or ErrorRow(HTTP_STATUS.get(error.code, 500))

    @staticmethod
    def message(row: ErrorRow, error: GatewayError, params: Mapping[str, str]) -> str:
        """The row's message with the route's parameters filled in (unknown names empty)."""
        if not row.message:
            return error.message
        values = _Blank(params)
        values["message"] = error.message
        return _FORMATTER.vformat(row.message, (), values)
