"""A `jobctl bench` run: serve (optionally), seed, baseline and main phases, report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import secrets
import sys
import time
from typing import Any, TextIO

from jobcontrol.service.loadgen import population, served
from jobcontrol.service.loadgen.config import BenchConfig, UsageError, add_arguments, from_args
from jobcontrol.service.loadgen.driver import Clients, Phase, make_clients
from jobcontrol.service.loadgen.report import ratios, table
from jobcontrol.service.loadgen.stats import PhaseStats


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser with the `jobctl bench` flags (the CLI adds the same)."""
    parser = argparse.ArgumentParser(prog="jobctl bench")
    add_arguments(parser)
    return parser


async def execute(config: BenchConfig, out: TextIO | None = None) -> dict[str, Any]:
    """Run the benchmark described by `config`; print the table (and JSON if asked) to
    `out` (default stdout) and return the report."""
    out = sys.stdout if out is None else out
    config = dataclasses.replace(config, run_token=secrets.token_hex(3))
    server: served.ServedServer | None = None
    phases: dict[str, Any] = {"baseline": None, "main": None}
    try:
        database_url = config.seed_database
        if config.serve:
            server = await served.start(config.needs_http, dict(config.serve_env))
            config = dataclasses.replace(
                config,
                grpc_target=server.grpc_target,
                http_url=server.http_url if config.needs_http else config.http_url,
            )
            database_url = server.database_url
        if not config.reuse and any(op != "echo" for op in config.ops):
            await population.seed(config, database_url)
        clients = make_clients(config)
        try:
            await clients.open()
            if config.baseline:
                echo = Phase("baseline", (("echo", 1),), config.warmup, config.duration,
                             config.requests)  # fmt: skip
                phases["baseline"] = await _run_phase(clients, echo, server)
            main = Phase("main", config.mix, config.warmup, config.duration, config.requests)
            phases["main"] = await _run_phase(clients, main, server)
        finally:
            await clients.close()
    finally:
        if server is not None:
            await server.stop()
    report = {"config": config.public(), "phases": phases, "ratios": ratios(phases)}
    print(table(report, config), file=out, flush=True)
    if config.json_out == "-":
        print(json.dumps(report, indent=2), file=out, flush=True)
    elif config.json_out:
        _write_json(config.json_out, report)
    return report


def _write_json(path: str, report: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2)
        fh.write("\n")


async def _run_phase(
    clients: Clients, phase: Phase, server: served.ServedServer | None
) -> dict[str, Any]:
    """One phase, with the served processes' CPU sampled over its measured window."""
    start = time.time() + clients.margin
    before: dict[str, float] = {}

    async def sample_at_measure_start() -> None:
        await asyncio.sleep(max(0.0, start + phase.effective_warmup - time.time()))
        assert server is not None
        before.update(server.cpu())

    sampler = asyncio.create_task(sample_at_measure_start()) if server is not None else None
    try:
        stats: PhaseStats = await clients.run(phase, start)
    finally:
        if sampler is not None and not sampler.done():
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
    summary = stats.summary(tuple(op for op, _ in phase.mix))
    if server is not None and before and stats.sent:
        after = server.cpu()
        summary["cpu_ms_per_request"] = {
            "server": (after["server"] - before["server"]) * 1000 / stats.sent,
            "gateway": (after["gateway"] - before["gateway"]) * 1000 / stats.sent
            if "gateway" in before and "gateway" in after
            else None,
        }
    return summary


def _fail(message: str, code: int) -> int:
    print(f"jobctl bench: error: {message}", file=sys.stderr, flush=True)
    return code


async def main_async(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """The command on parsed flags, in the running event loop: 0, 1 (the run failed)
    or 2 (a bad option)."""
    try:
        config = from_args(args)
    except UsageError as exc:
        return _fail(str(exc), 2)
    try:
        await execute(config, out)
    except (population.SeedError, RuntimeError, OSError, TimeoutError) as exc:
        return _fail(str(exc) or type(exc).__name__, 1)
    return 0


async def run_bench(argv: list[str], out: TextIO | None = None) -> int:
    """`jobctl bench ARGV...` in the running event loop (for tests and embedding)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed the message
        return int(exc.code or 0)
    return await main_async(args, out)


def main(args: argparse.Namespace) -> int:
    """The `jobctl bench` subcommand: its own event loop (uvloop when available)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional off Linux
        return asyncio.run(main_async(args))
    return uvloop.run(main_async(args))
