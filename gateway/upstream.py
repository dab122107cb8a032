"""The one long-lived grpc.aio channel to the jobcontrol server, and cached callables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message

from jobcontrol.gateway.errors import from_rpc_error


@dataclass(frozen=True)
class Channel:
    """How the gateway reaches the server: TLS (the server's CA; the gateway's client
    certificate for mTLS) and the gateway's own bearer token."""

    target: str
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    token_file: str = ""


def _connect(
    config: Channel, interceptors: Sequence[Any] | None = None
) -> tuple[grpc.aio.Channel, str]:
    """The channel of `config` (with the traces' `interceptors` when on) and the gateway's
    `Bearer` authorization ("" without)."""
    options = [("grpc.keepalive_time_ms", 30_000)]
    token = Path(config.token_file).read_text().strip() if config.token_file else ""
    authorization = f"Bearer {token}" if token else ""
    if not config.tls_ca and not config.tls_cert:
        channel = grpc.aio.insecure_channel(
            config.target, options=options, interceptors=interceptors
        )
        return channel, authorization

    def read(path: str) -> bytes | None:
        return Path(path).read_bytes() if path else None

    credentials = grpc.ssl_channel_credentials(
        read(config.tls_ca), read(config.tls_key), read(config.tls_cert)
    )
    channel = grpc.aio.secure_channel(
        config.target, credentials, options=options, interceptors=interceptors
    )
    return channel, authorization


class Upstream:
    """Unary calls by full method path, with metadata and deadline."""

    def __init__(self, channel: Channel | str) -> None:
        self.config = channel if isinstance(channel, Channel) else Channel(channel)
        self.target = self.config.target
        self._channel: grpc.aio.Channel | None = None
        self._callables: dict[str, Any] = {}
        # "Bearer <the gateway's token>", sent on the calls it makes for dialect users
        self.authorization = ""
        # the traces' client interceptors (gateway/tracing.py); None: off
        self.interceptors: list[Any] | None = None

    async def open(self) -> None:
        """Open the channel (lazy connect) and read the gateway's token."""
        self._channel, self.authorization = _connect(self.config, self.interceptors)

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
        """The call of a dialect's route row (at most one per request): `unary`."""
        return await self.unary(method, request, response_type, metadata, deadline)

    async def unary(
        self,
        method: str,
        request: Message,
        response_type: type[Message],
        metadata: Sequence[tuple[str, str]] = (),
        deadline: float | None = None,
    ) -> Any:
        """Call `method` (`deadline` in seconds); a failure is raised as GatewayError with
        decoded details. The dialects' state calls (gateway/dialect_state.py) come here
        directly, beside their row's `call`."""
        try:
            return await self._callable(method, response_type)(
                request, metadata=metadata, timeout=deadline
            )
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
