"""Gateway settings: one frozen object from flags and JOBCONTROL_* variables."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

ENV_PREFIX = "JOBCONTROL_"


@dataclass(frozen=True)
class GatewaySettings:
    """Where to listen, which gRPC server to call, request limits."""

    http_address: str = "127.0.0.1:8080"
    grpc_target: str = "127.0.0.1:50051"
    max_body: int = 1024 * 1024
    log_level: str = "WARNING"
    # Azure Batch shared-key accounts: "name=base64key[,name=base64key]"
    batch_accounts: str = ""
    # Veeam Enterprise Manager users: "user:password[,user:password]" (empty: dialect off)
    veeam_users: str = ""
    # their roles: "user=viewer|operator|administrator[,...]" (default administrator)
    veeam_roles: str = ""
    # seconds a Veeam logon session lives without a request
    veeam_session_idle: float = 900.0
    # the jobcontrol collection (profile backup) the Veeam dialect serves
    veeam_collection: str = "veeam"


def from_env(env: Mapping[str, str] | None = None, **overrides: object) -> GatewaySettings:
    """Defaults, then JOBCONTROL_* variables, then explicit overrides."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    for f in dataclasses.fields(GatewaySettings):
        raw = env.get(ENV_PREFIX + f.name.upper())
        if raw is not None:
            try:
                kind = {"int": int, "float": float}.get(str(f.type), str)
                values[f.name] = kind(raw)
            except ValueError as exc:
                raise SystemExit(f"{ENV_PREFIX}{f.name.upper()}: not a number: {raw!r}") from exc
    values.update({k: v for k, v in overrides.items() if v is not None})
    return GatewaySettings(**values)  # type: ignore[arg-type]


def split_address(address: str) -> tuple[str, int]:
    """HOST:PORT -> (host, port)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)
