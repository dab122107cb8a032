"""Gateway settings: one frozen object from flags and JOBCONTROL_* variables."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GatewaySettings:
    """Where to listen, which gRPC server to call, who the gateway is, request limits."""

    http_address: str = "127.0.0.1:8080"
    grpc_target: str = "127.0.0.1:50051"
    max_body: int = 1024 * 1024
    log_level: str = "WARNING"
    # HOST:PORT of this gateway's Prometheus `/metrics` listener; empty: no metrics
    metrics_address: str = ""
    # the OTLP/HTTP collector's base URL for traces; empty: off unless
    # OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set
    otel: str = ""
    # "none": serve on any address although the gateway has no identity of its own
    auth: str = ""
    # the URL clients reach the gateway at, for the links in responses (default: the
    # listening address); never the request's Host header
    public_url: str = ""
    # TLS on the HTTP listener; with a client CA, a client certificate issued by it is
    # the caller's principal on the native mapping (cert:<subject>)
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    # Azure Scheduler / Import-Export management certificates: "subscription=THUMBPRINT
    # [,...]" (SHA-1, hex) and the PEM bundle of those certificates (self-signed ones too)
    management_certs: str = ""
    management_certs_file: str = ""
    # the gateway's own identity towards the gRPC server: TLS (server CA; client
    # certificate for mTLS) and/or a bearer JWT for the calls it makes for dialect users
    grpc_tls_ca: str = ""
    grpc_tls_cert: str = ""
    grpc_tls_key: str = ""
    grpc_token_file: str = ""
    # limits of every HTTP request: header bytes and count, seconds to send the headers,
    # seconds an idle keep-alive connection stays open
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    header_timeout: float = 10.0
    idle_timeout: float = 5.0
    # Azure Batch shared-key accounts: "name=base64key[,name=base64key]"
    batch_accounts: str = ""
    # seconds a Batch request's ocp-date / Date may differ from the gateway's clock
    batch_clock_skew: float = 900.0
    # Veeam Enterprise Manager users: "user:password[,user:password]" (empty: dialect off)
    veeam_users: str = ""
    # their roles: "user=viewer|operator|administrator[,...]" (default administrator)
    veeam_roles: str = ""
    # seconds a Veeam logon session lives without a request
    veeam_session_idle: float = 900.0
    # the jobcontrol collection (profile backup) the Veeam dialect serves
    veeam_collection: str = "veeam"
    # failed Veeam logons (per user and per client address) before back-off, and the
    # first back-off in seconds (doubling, at most 15 minutes)
    veeam_logon_failures: int = 5
    veeam_logon_backoff: float = 1.0

    @property
    def secured(self) -> bool:
        """Whether the gateway proves who it is to the server (its calls for dialect users
        are then trusted only as far as the server's policy says)."""
        return bool(self.grpc_token_file or self.grpc_tls_cert)

    @property
    def base_url(self) -> str:
        """What links in responses start with."""
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{self.http_address}"


def split_address(address: str) -> tuple[str, int]:
    """HOST:PORT -> (host, port)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)
