"""One frozen settings object per process, from flags and JOBCONTROL_* variables."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
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


ENV_PREFIX = "JOBCONTROL_"


def from_env(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from defaults, then JOBCONTROL_* variables, then explicit overrides."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    for f in dataclasses.fields(Settings):
        raw = env.get(ENV_PREFIX + f.name.upper())
        if raw is not None:
            values[f.name] = _parse(f.type, raw, f.name)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)  # type: ignore[arg-type]


def _parse(kind: object, raw: str, name: str) -> object:
    try:
        if kind in (float, "float"):
            return float(raw)
        if kind in (int, "int"):
            return int(raw)
    except ValueError as exc:
        raise SystemExit(f"{ENV_PREFIX}{name.upper()}: not a number: {raw!r}") from exc
    return raw
