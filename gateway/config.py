"""Gateway settings: one frozen object from flags and JOBCONTROL_* variables."""

from __future__ import annotations

from dataclasses import dataclass


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


def split_address(address: str) -> tuple[str, int]:
    """HOST:PORT -> (host, port)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)
