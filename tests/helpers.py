"""Assertions on rich gRPC errors and small waiting helpers shared by the tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import grpc
from google.longrunning import operations_pb2
from google.rpc import error_details_pb2, status_pb2

DOMAIN = "jobcontrol.dev"


@dataclass
class RichError:
    """A failed call's code plus the decoded google.rpc.Status details."""

    code: grpc.StatusCode
    message: str
    status: status_pb2.Status
    info: error_details_pb2.ErrorInfo | None
    bad_request: error_details_pb2.BadRequest | None
    precondition: error_details_pb2.PreconditionFailure | None
    resource: error_details_pb2.ResourceInfo | None
    quota: error_details_pb2.QuotaFailure | None

    @property
    def reason(self) -> str:
        return self.info.reason if self.info else ""


def decode(exc: grpc.aio.AioRpcError) -> RichError:
    """Decode the `grpc-status-details-bin` trailer of a failed call."""
    status = status_pb2.Status()
    for key, value in exc.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status.ParseFromString(value)
    found: dict[str, Any] = {}
    kinds: dict[str, Any] = {
        "info": error_details_pb2.ErrorInfo,
        "bad_request": error_details_pb2.BadRequest,
        "precondition": error_details_pb2.PreconditionFailure,
        "resource": error_details_pb2.ResourceInfo,
        "quota": error_details_pb2.QuotaFailure,
    }
    for detail in status.details:
        for key, cls in kinds.items():
            if detail.Is(cls.DESCRIPTOR):
                msg = cls()
                detail.Unpack(msg)
                found[key] = msg
    return RichError(
        code=exc.code(),
        message=exc.details() or "",
        status=status,
        info=found.get("info"),
        bad_request=found.get("bad_request"),
        precondition=found.get("precondition"),
        resource=found.get("resource"),
        quota=found.get("quota"),
    )


async def expect_error(
    call: Awaitable[Any], code: grpc.StatusCode, reason: str | None = None
) -> RichError:
    """Await a call that must fail with `code` and (if given) ErrorInfo `reason`."""
    try:
        result = await call
    except grpc.aio.AioRpcError as exc:
        err = decode(exc)
        assert err.code == code, f"expected {code}, got {err.code}: {err.message}"
        assert err.status.code == code.value[0], "google.rpc.Status code differs"
        if reason is not None:
            assert err.info is not None, f"no ErrorInfo in {err.status}"
            assert err.info.reason == reason, f"expected {reason}, got {err.info.reason}"
            assert err.info.domain == DOMAIN
        return err
    raise AssertionError(f"expected {code} {reason}, call succeeded with {result!r}")


async def wait_done(operations: Any, name: str, within: float = 10.0) -> operations_pb2.Operation:
    """Poll GetOperation until the operation is done (bounded by `timeout`)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        op = await operations.GetOperation(operations_pb2.GetOperationRequest(name=name))
        if op.done:
            return op
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"operation {name} not done after {within}s")
        await asyncio.sleep(0.02)
