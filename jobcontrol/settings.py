"""Settings from defaults, JOBCONTROL_* environment variables and flags: the one loader of
every process's frozen settings object (server, gateway), and what both check of them."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from typing import Any, TypeVar

ENV_PREFIX = "JOBCONTROL_"
S = TypeVar("S")


def load_settings(cls: type[S], env: Mapping[str, str] | None = None, **overrides: object) -> S:
    """`cls` (a frozen dataclass) from its defaults, then JOBCONTROL_<FIELD> variables,
    then explicit overrides (flags; None means "not given"). A malformed number ends the
    process with a message naming the variable."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        raw = env.get(ENV_PREFIX + f.name.upper())
        if raw is not None:
            values[f.name] = _parse(f.type, raw, f.name)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**values)


# the standard variables naming an OTLP collector: any of them turns traces on
OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def otel_enabled(flag: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether a process traces (jobcontrol/tracing.py): `--otel URL` given, or a standard
    OTLP endpoint variable set. Off, OpenTelemetry is never imported."""
    env = os.environ if env is None else env
    return bool(flag or any(env.get(name) for name in OTLP_ENDPOINT_VARIABLES))


def is_loopback(address: str) -> bool:
    """Whether HOST:PORT (or HOST) names a loopback interface."""
    host = address.rpartition(":")[0].strip("[]") if ":" in address else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse(kind: object, raw: str, name: str) -> object:
    try:
        if kind in (float, "float"):
            return float(raw)
        if kind in (int, "int"):
            return int(raw)
    except ValueError as exc:
        raise SystemExit(f"{ENV_PREFIX}{name.upper()}: not a number: {raw!r}") from exc
    return raw
