"""The server's authentication settings turned into what the core and the rpc layer use: the
policy file (TOML or YAML), the token rules, and the protected mode (no authentication
configured: loopback addresses only, unless `--auth none`)."""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from jobcontrol.service.config import Settings
from jobcontrol.service.core.access import GLOBAL, ROLES, Binding, Policy
from jobcontrol.service.rpc.authn import TokenRules
from jobcontrol.settings import is_loopback

log = logging.getLogger("jobcontrol.auth")
ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
     "HS256", "HS384", "HS512", "EdDSA"}
)  # fmt: skip


def configured(settings: Settings) -> bool:
    """Whether callers are authenticated (bearer tokens or client certificates)."""
    return bool(settings.auth_jwks or settings.tls_client_ca)


def token_rules(settings: Settings) -> TokenRules | None:
    """How bearer JWTs are verified (None: they are not accepted)."""
    if not settings.auth_jwks:
        return None
    algorithms = tuple(a.strip() for a in settings.auth_algorithms.split(",") if a.strip())
    unknown = sorted(set(algorithms) - ALGORITHMS)
    if not algorithms or unknown:
        raise SystemExit(f"--auth-algorithms: unknown or none: {unknown or algorithms}")
    return TokenRules(settings.auth_jwks, algorithms, settings.auth_issuer, settings.auth_audience)


def load_policy(settings: Settings) -> Policy:
    """The policy file's bindings; open (everyone an administrator) when no authentication
    is configured."""
    if settings.auth not in ("", "none"):
        raise SystemExit(f"--auth: only `none` is a value, not {settings.auth!r}")
    if not configured(settings):
        if settings.auth_policy:
            raise SystemExit("--auth-policy needs --auth-jwks or --tls-client-ca (who is who)")
        return Policy(open=True)
    if not settings.auth_policy:
        log.warning("authentication is on and there is no --auth-policy: nobody may do anything")
        return Policy()
    return Policy(bindings=parse_policy(settings.auth_policy))


def parse_policy(path: str) -> tuple[Binding, ...]:
    """`[[bindings]]` of `principals`, `role` and `collections` (default every one), from a
    .toml, .yaml or .yml file; SystemExit naming the problem otherwise."""
    text = Path(path).read_text()
    try:
        data: Any = (
            yaml.safe_load(text) if path.endswith((".yaml", ".yml")) else tomllib.loads(text)
        )
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise SystemExit(f"--auth-policy {path}: {exc}") from exc
    if not isinstance(data, Mapping) or not isinstance(data.get("bindings", []), list):
        raise SystemExit(f"--auth-policy {path}: expected a list `bindings`")
    return tuple(_binding(item, path, i) for i, item in enumerate(data.get("bindings", []), 1))


def _binding(item: Any, path: str, index: int) -> Binding:
    where = f"--auth-policy {path}: binding {index}"
    if not isinstance(item, Mapping):
        raise SystemExit(f"{where}: not a table")
    principals, role = item.get("principals"), item.get("role")
    collections = item.get("collections", [GLOBAL])
    if not isinstance(principals, list) or not all(isinstance(p, str) and p for p in principals):
        raise SystemExit(f"{where}: `principals` must be a list of principal ids")
    if role not in ROLES:
        raise SystemExit(f"{where}: `role` must be one of {', '.join(ROLES)}")
    if not isinstance(collections, list) or not all(isinstance(c, str) and c for c in collections):
        raise SystemExit(f"{where}: `collections` must be a list of names or globs")
    return Binding(frozenset(principals), str(role), tuple(collections))


def check_exposure(settings: Settings) -> None:
    """Protected mode: without authentication, refuse any address but loopback (the gRPC
    listener and the gateway it starts) unless `--auth none` says so; warn either way."""
    if configured(settings):
        return
    addresses = [a for a in (settings.grpc_address, settings.http_address) if a]
    exposed = [a for a in addresses if not is_loopback(a)]
    if exposed and settings.auth != "none":
        raise SystemExit(
            f"refusing to listen on {', '.join(exposed)} without authentication: configure "
            "--auth-jwks or --tls-client-ca, bind a loopback address, or pass --auth none"
        )
    log.warning(
        "serving without authentication: every caller may do everything",
        extra={"addresses": ",".join(addresses), "auth": settings.auth or "unset"},
    )
