"""Run the gateway under uvicorn (uvloop + httptools), alone or beside `jobctl serve`: with
request limits, optional TLS (client certificates requested, never required, so that
clients without one can still use the native mapping and the dialects that authenticate
otherwise), and protected mode."""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import logging
import os
import ssl
import sys
import tempfile
from pathlib import Path
from typing import Any

import uvicorn

from jobcontrol import logs
from jobcontrol.gateway.app import create_app
from jobcontrol.gateway.config import GatewaySettings, split_address
from jobcontrol.gateway.dialects.base import request_id
from jobcontrol.gateway.protocol import Limits, guarded_protocol
from jobcontrol.runtime import settle_heap
from jobcontrol.settings import ENV_PREFIX, is_loopback, load_settings

log = logging.getLogger("jobcontrol.gateway")
_HELP = {
    "http_address": "HOST:PORT to serve HTTP on",
    "grpc_target": "HOST:PORT of the jobcontrol gRPC server",
    "max_body": "largest request body in bytes, larger is 413 (every dialect)",
    "log_level": "log level (JSON lines on stderr; DEBUG: one line per request)",
    "metrics_address": "HOST:PORT serving Prometheus metrics at /metrics (empty: off)",
    "otel": "OTLP/HTTP collector base URL for traces, e.g. http://127.0.0.1:4318 (empty: off "
    "unless OTEL_EXPORTER_OTLP_ENDPOINT is set)",
    "auth": "`none`: serve on a non-loopback address without a gateway identity",
    "public_url": "URL clients reach the gateway at, for links (default: http(s)://ADDRESS)",
    "tls_cert": "PEM certificate of the HTTP listener (TLS)",
    "tls_key": "PEM private key of the HTTP listener",
    "tls_client_ca": "PEM CA whose client certificates are principals on the native mapping",
    "management_certs": "Azure management certificates: subscription=SHA1THUMBPRINT[,...]",
    "management_certs_file": "PEM bundle of those certificates (self-signed ones too)",
    "grpc_tls_ca": "PEM CA of the gRPC server (TLS to it)",
    "grpc_tls_cert": "PEM client certificate of the gateway (mTLS to the server)",
    "grpc_tls_key": "PEM private key of that certificate",
    "grpc_token_file": "file holding the gateway's bearer JWT for the calls it makes",
    "max_header_bytes": "most bytes of request line and headers",
    "max_headers": "most request headers",
    "header_timeout": "seconds a client may take to send its request headers",
    "idle_timeout": "seconds an idle keep-alive connection stays open",
    "batch_accounts": "Azure Batch shared-key accounts, name=base64key[,name=key]",
    "batch_clock_skew": "seconds a Batch request's ocp-date/Date may be off",
    "veeam_users": "Veeam Enterprise Manager users, user:password[,...] (secret!)",
    "veeam_roles": "their roles, user=viewer|operator|administrator[,...]",
    "veeam_session_idle": "seconds a Veeam logon session lives idle",
    "veeam_collection": "collection (profile backup) behind /api",
    "veeam_logon_failures": "failed Veeam logons (per user, per address) before back-off",
    "veeam_logon_backoff": "first back-off in seconds after those failures (doubling)",
}


def uvicorn_config(settings: GatewaySettings, **bind: Any) -> uvicorn.Config:
    """The uvicorn configuration of the gateway (`bind`: host/port, or none for sockets)."""
    limits = Limits(settings.max_header_bytes, settings.max_headers, settings.header_timeout)
    tls: dict[str, Any] = {}
    if settings.tls_cert:
        bundle = _client_ca_bundle(settings)
        tls = {
            "ssl_certfile": settings.tls_cert,
            "ssl_keyfile": settings.tls_key,
            "ssl_ca_certs": bundle,
            "ssl_cert_reqs": ssl.CERT_OPTIONAL if bundle else ssl.CERT_NONE,
        }
    app = create_app(settings)
    return uvicorn.Config(
        app.tracing.middleware(app) if app.tracing is not None else app,
        loop="uvloop",
        http=guarded_protocol(limits),
        lifespan="on",
        access_log=False,
        # logging is jobcontrol.logs' (JSON lines with the request id), not uvicorn's
        log_config=None,
        log_level=settings.log_level.lower(),
        server_header=False,
        # links come from --public-url, so no X-Forwarded-* rewriting on the hot path
        proxy_headers=False,
        timeout_keep_alive=int(max(settings.idle_timeout, 1)),
        **tls,
        **bind,
    )


def _client_ca_bundle(settings: GatewaySettings) -> str | None:
    """One PEM file of the client CA and the management certificates (Python's TLS trusts
    a client certificate only through its trust store; the thumbprints decide later)."""
    parts = [p for p in (settings.tls_client_ca, settings.management_certs_file) if p]
    if not parts:
        return None
    fd, path = tempfile.mkstemp(prefix="jobcontrol-client-ca-", suffix=".pem")
    with os.fdopen(fd, "wb") as out:
        for part in parts:
            out.write(Path(part).read_bytes().rstrip() + b"\n")
    atexit.register(lambda: Path(path).unlink(missing_ok=True))
    return path


def check_exposure(settings: GatewaySettings) -> None:
    """Protected mode: a gateway without an identity of its own serves loopback only
    (unless --auth none), and says so."""
    if settings.auth not in ("", "none"):
        raise SystemExit(f"--auth: only `none` is a value, not {settings.auth!r}")
    if settings.secured:
        return
    if not is_loopback(settings.http_address) and settings.auth != "none":
        raise SystemExit(
            f"refusing to listen on {settings.http_address}: the gateway has no identity "
            "towards the server (--grpc-token-file or --grpc-tls-cert); bind a loopback "
            "address or pass --auth none"
        )
    log.warning("the gateway calls the server without an identity of its own")


def run(settings: GatewaySettings) -> None:
    """Serve until SIGTERM/SIGINT (uvicorn drains open connections first)."""
    logs.configure(settings.log_level, request_id.get)
    check_exposure(settings)
    host, port = split_address(settings.http_address)
    config = uvicorn_config(settings, host=host, port=port)
    settle_heap()
    uvicorn.Server(config).run()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The gateway's flags (each also a JOBCONTROL_* variable)."""
    defaults = GatewaySettings()
    for f in dataclasses.fields(GatewaySettings):
        kind = float if f.type in (float, "float") else int if f.type in (int, "int") else str
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=kind,
            help=f"{_HELP[f.name]} [env {ENV_PREFIX}{f.name.upper()}; "
            f"default {getattr(defaults, f.name)!r}]",
        )


def main(argv: list[str] | None = None) -> int:
    """`python -m jobcontrol.gateway`: the gateway alone, in front of any jobcontrol gRPC
    server."""
    parser = argparse.ArgumentParser(prog="jobctl gateway", description=run.__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    run(load_settings(GatewaySettings, **vars(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
