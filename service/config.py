"""One frozen settings object per process, from flags and JOBCONTROL_* variables."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///data/jobcontrol.db"


@dataclass(frozen=True)
class Settings:
    """Server settings; every field is also readable from JOBCONTROL_<FIELD>."""

    grpc_address: str = "127.0.0.1:50051"
    # the REST gateway, run as a child process by `jobctl serve`; empty: no gateway
    http_address: str = "127.0.0.1:8080"
    # Azure Batch shared-key accounts for the gateway: "name=base64key[,name=key]"
    batch_accounts: str = ""
    database_url: str = DEFAULT_DATABASE_URL
    # seconds a request_id's reply is replayed
    idempotency_window: float = 24 * 3600.0
    # seconds between reaper passes when nothing wakes it
    reaper_interval: float = 1.0
    # rows purged per reaper transaction
    purge_chunk: int = 500
    # seconds a replica holds a unit of background work (a deletion to finish) without
    # renewing it; after that another replica may take it over
    lease_duration: float = 30.0
    # this process's name as a lease owner; empty: <host>-<pid>-<random>
    replica_id: str = ""
    # scheduled jobs: the shortest recurrence period and retry interval accepted (seconds;
    # Azure Scheduler's documented minimum is a minute), one action's timeout, and the most
    # attempts in flight on this server
    scheduler_min_interval: float = 60.0
    action_timeout: float = 60.0
    scheduler_concurrency: int = 1024
    # a PEM CA bundle HTTPS actions trust besides the system's CAs (a private PKI); empty:
    # the system's only
    action_ca_file: str = ""
    # seconds between a waiting LeaseWork's looks when nothing wakes it (expired leases; a
    # lost notice); 0: 0.5 on SQLite, 5 on PostgreSQL (where replicas notify each other)
    work_poll_interval: float = 0.0
    # most requests the writer commits in one transaction
    max_batch: int = 256
    # read connections beside the single writer
    read_pool_size: int = 4
    # seconds between health probes of the store (a read, a no-op write, the schema
    # revision), each bounded by the interval or 2 s, whichever is longer; with metrics on,
    # also how often the backlog gauges are counted (service/metrics.py, Backlog)
    health_interval: float = 2.0
    # seconds SIGTERM waits for in-flight calls
    shutdown_grace: float = 10.0
    log_level: str = "INFO"
    # HOST:PORT of this process's Prometheus `/metrics` listener; empty: no metrics
    metrics_address: str = ""
    # the same for the gateway `jobctl serve` runs (its own process, its own registry)
    gateway_metrics_address: str = ""
    # the OTLP/HTTP collector's base URL (e.g. http://127.0.0.1:4318) for traces; empty:
    # traces are off unless OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set
    otel: str = ""
    # "none": serve without authentication on any address (else, with no authentication
    # configured, only loopback addresses may be bound)
    auth: str = ""
    # verification of bearer JWTs: a JWKS file or URL, the issuer and audience required,
    # the algorithms accepted (never the token's own choice)
    auth_jwks: str = ""
    auth_issuer: str = ""
    auth_audience: str = ""
    auth_algorithms: str = "RS256,ES256"
    # the policy binding principals to roles on collections (TOML or YAML)
    auth_policy: str = ""
    # TLS on the gRPC listener; with a client CA, client certificates are required and
    # their subjects are principals (`cert:<subject>`)
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    # seconds an idle gRPC connection is kept, and between keepalive pings
    grpc_idle_timeout: float = 300.0
    grpc_keepalive: float = 60.0
