"""Helpers shared by the tests: rich gRPC error assertions, waiting, and job calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import orjson
from google.longrunning import operations_pb2
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2, status_pb2

from jobcontrol.v1 import job_service_pb2 as jobs_pb
from jobcontrol.v1 import operator_service_pb2 as operator_pb
from jobcontrol.v1 import resources_pb2 as res
from tests.conftest import Clients

DOMAIN = "jobcontrol.dev"
Call = Callable[[], Awaitable[Any]]


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


def json_error(raw: str | bytes) -> str:
    """What the gateway says of a body that is not JSON (or nested deeper than the JSON
    parser takes)."""
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return f"The body is not valid JSON: {exc}"
    raise AssertionError(f"{raw[:40]!r}... is JSON")


def state_name(state: int) -> str:
    """The enum name of a job `state` (for messages and parametrize ids)."""
    return res.State.Name(state)


def call_of(method: Callable[[Any], Awaitable[Any]], request: Any) -> Call:
    """A deferred call: the RPC starts only when the factory is called."""
    return lambda: method(request)


async def get_job(clients: Clients, name: str) -> res.Job:
    """GetJob by resource name."""
    job: res.Job = await clients.jobs.GetJob(jobs_pb.GetJobRequest(name=name))
    return job


async def update(clients: Clients, job: res.Job, paths: list[str] | None = None) -> res.Job:
    """UpdateJob: merge when `paths` is None, else with that mask."""
    req = jobs_pb.UpdateJobRequest(job=job)
    if paths is not None:
        req.update_mask.CopyFrom(field_mask_pb2.FieldMask(paths=paths))
    updated: res.Job = await clients.jobs.UpdateJob(req)
    return updated


async def operator_to(clients: Clients, name: str, state: int) -> res.Job:
    """An operator transition (TransitionJob) of the job to `state`."""
    job: res.Job = await clients.operator.TransitionJob(
        operator_pb.TransitionJobRequest(name=name, state=state)
    )
    return job


async def delete(clients: Clients, name: str, *, force: bool = False) -> operations_pb2.Operation:
    """DeleteJob; a successful call must return a named Operation."""
    op: operations_pb2.Operation = await clients.jobs.DeleteJob(
        jobs_pb.DeleteJobRequest(name=name, force=force)
    )
    assert op.name
    return op


async def get_operation(clients: Clients, name: str) -> operations_pb2.Operation:
    """GetOperation by operation name."""
    op: operations_pb2.Operation = await clients.operations.GetOperation(
        operations_pb2.GetOperationRequest(name=name)
    )
    return op


async def refused(
    clients: Clients, name: str, call: Call, code: grpc.StatusCode, reason: str, label: str = ""
) -> RichError:
    """`call()` must fail with code/reason and leave the job exactly as it was."""
    before = await get_job(clients, name)
    try:
        err = await expect_error(call(), code, reason)
    except AssertionError as exc:
        raise AssertionError(f"{label}: {exc}") from exc
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        assert err.precondition is not None, f"{label}: no PreconditionFailure detail"
    after = await get_job(clients, name)
    assert after.etag == before.etag, f"{label}: etag changed"
    assert after.state == before.state, f"{label}: state changed"
    assert after == before, f"{label}: job changed"
    return err


async def assert_unchanged(clients: Clients, before: res.Job) -> None:
    """The job reads back exactly as before (etag, state, every field)."""
    after = await get_job(clients, before.name)
    assert after.etag == before.etag
    assert after.state == before.state
    assert after == before


async def assert_gone(clients: Clients, name: str) -> RichError:
    """GetJob is NOT_FOUND / JOB_NOT_FOUND, with a ResourceInfo detail."""
    err = await expect_error(get_job(clients, name), grpc.StatusCode.NOT_FOUND, "JOB_NOT_FOUND")
    assert err.resource is not None
    return err


async def assert_deleted_ok(clients: Clients, name: str) -> None:
    """DeleteJob completes at once without error, and the job is then gone."""
    op = await clients.jobs.DeleteJob(jobs_pb.DeleteJobRequest(name=name))
    assert op.done
    assert not op.HasField("error")
    await assert_gone(clients, name)
