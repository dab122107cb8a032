"""The one long-lived grpc.aio channel to the jobcontrol server, and cached callables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf.message import Message

from jobcontrol.gateway.errors import from_rpc_error


class Upstream:
    """Unary calls by full method path, with metadata and deadline."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._channel: grpc.aio.Channel | None = None
        self._callables: dict[str, Any] = {}

    async def open(self) -> None:
        """Open the channel (lazy connect)."""
        self._channel = grpc.aio.insecure_channel(
            self.target, options=[("grpc.keepalive_time_ms", 30_000)]
        )

    async def close(self) -> None:
        """Close the channel."""
        if self._channel is not None:
            await self._channel.close()

    def _callable(self, method: str, response_type: type[Message]) -> Any:
        found = self._callables.get(method)
        if found is None:
            assert self._channel is not None, "upstream not open"
            found = self._channel.unary_unary(
                method,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response_type.FromString,
            )
            self._callables[method] = found
        return found

    async def call(
        self,
        method: str,
        request: Message,
        response_type: type[Message],
        metadata: Sequence[tuple[str, str]] = (),
        deadline: float | None = None,
    ) -> Any:
        """Call `method` (`deadline` in seconds); a failure is raised as GatewayError with
        decoded details."""
        try:
            return await self._callable(method, response_type)(
                request, metadata=metadata, timeout=deadline
            )
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
