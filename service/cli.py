"""`jobctl`: the command line (serve, gateway, bench)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys

from jobcontrol.gateway import config as gateway_config
from jobcontrol.gateway import server as gateway_server
from jobcontrol.service import logs
from jobcontrol.service.config import Settings
from jobcontrol.service.loadgen import config as bench_config
from jobcontrol.service.server import serve
from jobcontrol.settings import ENV_PREFIX, load_settings

_HELP = {
    "grpc_address": "HOST:PORT the gRPC server listens on (port 0: any free port)",
    "http_address": "HOST:PORT of the REST gateway, run in its own process (empty: none)",
    "batch_accounts": "Azure Batch shared-key accounts for the gateway, name=base64key[,...]",
    "database_url": "SQLAlchemy URL; SQLite via aiosqlite is the default "
    "(e.g. sqlite+aiosqlite:///data/jobcontrol.db)",
    "idempotency_window": "seconds a request_id's first reply is replayed",
    "reaper_interval": "seconds between deletion-reaper passes when idle",
    "purge_chunk": "rows purged per reaper transaction",
    "max_batch": "most write requests committed in one transaction (group commit)",
    "read_pool_size": "read connections beside the single writer (PostgreSQL only)",
    "shutdown_grace": "seconds SIGTERM waits for in-flight calls",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `jobctl` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        from jobcontrol.service.loadgen import bench

        return bench.main(args)
    options = {k: v for k, v in vars(args).items() if k != "command"}
    if args.command == "gateway":
        gateway_server.run(load_settings(gateway_config.GatewaySettings, **options))
        return 0
    settings = load_settings(Settings, **options)
    logs.configure(settings.log_level)
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
