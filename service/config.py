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
    # most requests the writer commits in one transaction
    max_batch: int = 256
    # read connections beside the single writer
    read_pool_size: int = 4
    # seconds SIGTERM waits for in-flight calls
    shutdown_grace: float = 10.0
    log_level: str = "INFO"
