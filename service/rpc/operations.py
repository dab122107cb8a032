"""google.longrunning.Operations for the service's deletions."""

from __future__ import annotations

from typing import Any

from google.longrunning import operations_grpc_pb2, operations_pb2
from google.protobuf import empty_pb2

from jobcontrol.service.core.service import Core
from jobcontrol.service.rpc import convert
from jobcontrol.service.rpc.guard import guarded

Ctx = Any


class OperationsServicer(operations_grpc_pb2.OperationsServicer):  # type: ignore[misc]
    """Get, List, Cancel, Delete and Wait."""

    def __init__(self, core: Core) -> None:
        self.core = core

    @guarded
    async def GetOperation(self, request: Any, context: Ctx) -> Any:
        return convert.operation_to_proto(await self.core.operations.get(request.name))

    @guarded
    async def ListOperations(self, request: Any, context: Ctx) -> Any:
        page = await self.core.operations.list_page(
            request.page_size, request.page_token, request.filter
        )
        return operations_pb2.ListOperationsResponse(
            operations=[convert.operation_to_proto(op) for op in page.operations],
            next_page_token=page.next_page_token,
        )

    @guarded
    async def CancelOperation(self, request: Any, context: Ctx) -> Any:
        await self.core.operations.cancel(request.name)
        return empty_pb2.Empty()

    @guarded
    async def DeleteOperation(self, request: Any, context: Ctx) -> Any:
        await self.core.operations.delete(request.name)
        return empty_pb2.Empty()

    @guarded
    async def WaitOperation(self, request: Any, context: Ctx) -> Any:
        convert.check_values(request, "")  # a timeout beyond +-10,000 years is no timedelta
        timeout = (
            request.timeout.ToTimedelta().total_seconds() if request.HasField("timeout") else None
        )
        remaining = context.time_remaining()
        if remaining is not None:
            timeout = min(timeout or remaining, max(remaining - 0.05, 0.0))
        return convert.operation_to_proto(await self.core.operations.wait(request.name, timeout))
