"""jobcontrol.v1.DiagnosticsService: a trivial call on the same stack, for baselines."""

from __future__ import annotations

from typing import Any

from jobcontrol.v1 import diagnostics_service_pb2 as pb
from jobcontrol.v1 import diagnostics_service_pb2_grpc


class DiagnosticsServicer(diagnostics_service_pb2_grpc.DiagnosticsServiceServicer):
    """Echo touches no storage."""

    async def Echo(self, request: pb.EchoRequest, context: Any) -> pb.EchoResponse:
        return pb.EchoResponse(message=request.message)
