"""The one table from domain errors to google.rpc.Status (with rich details)."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from jobcontrol.service.core.errors import Code, DomainError

DOMAIN = "jobcontrol.dev"
STATUS_OF: dict[Code, grpc.StatusCode] = {
    Code.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    Code.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Code.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    Code.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    Code.ABORTED: grpc.StatusCode.ABORTED,
    Code.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Code.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    Code.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Code.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Code.INTERNAL: grpc.StatusCode.INTERNAL,
}
DETAILS_KEY = "grpc-status-details-bin"


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_status(error: DomainError) -> tuple[grpc.StatusCode, status_pb2.Status]:
    """The gRPC code and google.rpc.Status (ErrorInfo first, then the kind's detail)."""
    code = STATUS_OF[error.code]
    details = [
        _pack(
            error_details_pb2.ErrorInfo(
                reason=error.reason.value, domain=DOMAIN, metadata=error.metadata
            )
        )
    ]
    if error.violations:
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description
                        )
                        for v in error.violations
                    ]
                )
            )
        )
    if error.resource and error.code in (Code.NOT_FOUND, Code.ALREADY_EXISTS):
        details.append(
            _pack(
                error_details_pb2.ResourceInfo(
                    resource_type=_resource_type(error.resource),
                    resource_name=error.resource,
                    description=error.message,
                )
            )
        )
    if error.code in (Code.FAILED_PRECONDITION, Code.ABORTED):
        details.append(
            _pack(
                error_details_pb2.PreconditionFailure(
                    violations=[
                        error_details_pb2.PreconditionFailure.Violation(
                            type=error.reason.value,
                            subject=error.resource,
                            description=error.message,
                        )
                    ]
                )
            )
        )
    if error.code is Code.RESOURCE_EXHAUSTED:
        details.append(
            _pack(
                error_details_pb2.QuotaFailure(
                    violations=[
                        error_details_pb2.QuotaFailure.Violation(
                            subject=error.resource, description=error.message
                        )
                    ]
                )
            )
        )
    status = status_pb2.Status(code=code.value[0], message=error.message, details=details)
    return code, status


_KINDS = {"collections": "Collection", "jobs": "Job", "tasks": "Task"}
# the dialects' state (`dialects/…`, session_service.proto)
_DIALECT_KINDS = {"logonSessions": "LogonSession", "tasks": "SessionTask",
                  "outcomes": "RequestOutcome"}  # fmt: skip


def _resource_type(name: str) -> str:
    parts = name.split("/")
    kinds = _DIALECT_KINDS if parts[0] == "dialects" else _KINDS
    kind = kinds.get(parts[-2] if len(parts) >= 2 else "", "Operation")
    return f"jobcontrol.dev/{kind}"


async def abort(context: grpc.aio.ServicerContext[object, object], error: DomainError) -> None:
    """End the call with the rich status of `error`."""
    code, status = to_status(error)
    await context.abort(
        code, status.message, trailing_metadata=((DETAILS_KEY, status.SerializeToString()),)
    )
