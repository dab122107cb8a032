"""Gateway errors: one gRPC-status -> HTTP-status table, and the error every dialect
formats in its own way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2

DOMAIN = "jobcontrol.dev"
DETAILS_KEY = "grpc-status-details-bin"

# google/rpc/code.proto's HTTP mapping, the one table for every dialect's defaults.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}


@dataclass
class GatewayError(Exception):
    """A failed request: the gRPC code and ErrorInfo reason decide each dialect's answer;
    `http_status` overrides the table for gateway-level refusals (404 route, 405, 413)."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    details: list[dict[str, Any]] = field(default_factory=list)
    http_status: int | None = None
    allow: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def status(self) -> int:
        """The HTTP status by the standard table (or the override)."""
        return self.http_status or HTTP_STATUS.get(self.code, 500)


def from_rpc_error(exc: grpc.aio.AioRpcError) -> GatewayError:
    """Decode a failed call's google.rpc.Status (ErrorInfo reason, details as JSON)."""
    status = status_pb2.Status()
    for key, value in exc.trailing_metadata() or ():
        if key == DETAILS_KEY and isinstance(value, bytes):
            status.ParseFromString(value)
    reason, metadata = "", {}
    details: list[dict[str, Any]] = []
    for detail in status.details:
        if detail.TypeName() == "google.rpc.ErrorInfo":
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        details.append(json_format.MessageToDict(detail))
    return GatewayError(
        code=exc.code(),
        message=exc.details() or exc.code().name,
        reason=reason,
        metadata=metadata,
        details=details,
    )


def gateway_error(
    code: grpc.StatusCode,
    reason: str,
    message: str,
    http_status: int | None = None,
    metadata: dict[str, str] | None = None,
) -> GatewayError:
    """An error raised by the gateway itself, with an ErrorInfo like the server's."""
    info: dict[str, Any] = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": DOMAIN,
    }
    if metadata:
        info["metadata"] = metadata
    return GatewayError(code, message, reason, dict(metadata or {}), [info], http_status)


def not_found(path: str) -> GatewayError:
    """No route for the path."""
    return gateway_error(
        grpc.StatusCode.NOT_FOUND, "ROUTE_NOT_FOUND", f"no route for {path}", None, {"path": path}
    )


def method_not_allowed(method: str, allowed: tuple[str, ...]) -> GatewayError:
    """The path exists, not for this method."""
    err = gateway_error(
        grpc.StatusCode.UNIMPLEMENTED,
        "METHOD_NOT_ALLOWED",
        f"{method} is not allowed here; allowed: {', '.join(allowed)}",
        http_status=405,
    )
    err.allow = allowed
    return err


def too_large(limit: int) -> GatewayError:
    """The body is over the limit."""
    return gateway_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        "BODY_TOO_LARGE",
        f"request body over {limit} bytes",
        http_status=413,
    )


def internal_error() -> GatewayError:
    """An unexpected failure inside the gateway."""
    return gateway_error(grpc.StatusCode.INTERNAL, "INTERNAL_ERROR", "internal gateway error")


def bad_request(reason: str, message: str, **metadata: str) -> GatewayError:
    """Malformed input found by the gateway (JSON, query, headers)."""
    return gateway_error(grpc.StatusCode.INVALID_ARGUMENT, reason, message, None, metadata)
