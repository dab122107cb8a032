"""jobcontrol.v1.WorkerService: work done outside the service, leased by workers."""

from __future__ import annotations

from typing import Any

from google.protobuf import duration_pb2, struct_pb2

from jobcontrol.service.core.errors import bad_field
from jobcontrol.service.core.service import Core
from jobcontrol.service.core.work import LeaseRequest
from jobcontrol.service.core.work_records import Lease
from jobcontrol.service.rpc import convert
from jobcontrol.service.rpc.guard import guarded
from jobcontrol.v1 import worker_service_pb2 as pb
from jobcontrol.v1 import worker_service_pb2_grpc

Ctx = Any


def _seconds(request: Any, field: str) -> float | None:
    """A Duration field in seconds (None: unset); out-of-range values are refused."""
    if not request.HasField(field):
        return None
    value: duration_pb2.Duration = getattr(request, field)
    convert.check_values(request, "")
    return value.seconds + value.nanos / 1e9


def item_to_proto(lease: Lease) -> pb.WorkItem:
    """A leased item as the WorkItem message."""
    payload = struct_pb2.Struct()
    payload.update(lease.payload)
    return pb.WorkItem(
        work_id=lease.work_id,
        kind=lease.kind,
        target=lease.target,
        attempt=lease.attempt,
        lease_token=lease.lease_token,
        lease_expires_at=convert.timestamp(lease.lease_expire_time),
        payload=payload,
    )


class WorkerServicer(worker_service_pb2_grpc.WorkerServiceServicer):
    """Leases, heartbeats and outcomes of work items."""

    def __init__(self, core: Core) -> None:
        self.core = core

    @guarded
    async def LeaseWork(self, request: pb.LeaseWorkRequest, context: Ctx) -> Any:
        lease = LeaseRequest(
            worker_id=request.worker_id,
            kinds=tuple(request.kinds),
            max_items=request.max_items,
            lease_duration=_seconds(request, "lease_duration"),
            wait_timeout=_seconds(request, "wait_timeout"),
        )
        taken = await self.core.work.lease(lease, context.time_remaining())
        return pb.LeaseWorkResponse(items=[item_to_proto(item) for item in taken])

    @guarded
    async def Heartbeat(self, request: pb.HeartbeatRequest, context: Ctx) -> Any:
        expire, cancel = await self.core.work.heartbeat(request.lease_token, request.progress)
        return pb.HeartbeatResponse(
            lease_expires_at=convert.timestamp(expire), cancel_requested=cancel
        )

    @guarded
    async def CompleteWork(self, request: pb.CompleteWorkRequest, context: Ctx) -> Any:
        convert.check_values(request, "")
        result = request.result.fields.get("result")
        if result is not None and result.WhichOneof("kind") != "string_value":
            raise bad_field("result.result", "a string: SUCCESS, WARNING or FAILED")
        done = await self.core.work.complete(
            request.lease_token,
            request.exit_code,
            result.string_value if result is not None else "",
            request.message,
        )
        return pb.CompleteWorkResponse(done=done)

    @guarded
    async def FailWork(self, request: pb.FailWorkRequest, context: Ctx) -> Any:
        will_retry = await self.core.work.fail(
            request.lease_token, request.retryable, request.error
        )
        return pb.FailWorkResponse(will_retry=will_retry)

    @guarded
    async def ReleaseWork(self, request: pb.ReleaseWorkRequest, context: Ctx) -> Any:
        await self.core.work.release(request.lease_token)
        return pb.ReleaseWorkResponse()
