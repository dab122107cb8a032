"""asyncpg against psycopg 3 on the writer's own write path, in one run (issue 14: the
driver choice).

One embedded PostgreSQL, a 300-row table shaped like `jobs` (key, version, JSON body),
and per driver one connection doing exactly what `PostgresStore`'s writer does for a batch
of 64 UpdateJobs: `BEGIN; SAVEPOINT item`, then per item a prepared SELECT of the row by
key, a prepared compare-and-set UPDATE (`WHERE key = $1 AND version = $2`) and
`RELEASE item; SAVEPOINT item`, then `RELEASE item; COMMIT` (synchronous_commit on: one
WAL flush per batch). Also a read figure: 64 prepared SELECTs by key, autocommit. Each
figure is items per second, the mean of two runs in the order asyncpg psycopg psycopg
asyncpg, so drift of a shared machine falls on both.

    python -m bench.drivers               # about 30 seconds
    python -m bench.drivers --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import psycopg
from psycopg.types.json import Jsonb

from bench.postgres import embedded_postgres

ROWS = 300
BATCH = 64
SELECT = "SELECT key, version, body FROM t WHERE key = {}"
UPDATE = "UPDATE t SET version = version + 1, body = {} WHERE key = {} AND version = {}"
SETUP = (
    "DROP TABLE IF EXISTS t; CREATE TABLE t (key text PRIMARY KEY, version int NOT NULL, "
    "body jsonb NOT NULL); INSERT INTO t SELECT 'job-' || g, 0, "
    "jsonb_build_object('labels', jsonb_build_object('env', 'prod'), 'n', g) "
    "FROM generate_series(0, 299) g"
)


Step = Callable[[int], Awaitable[None]]
Driver = tuple[Step, Step, Callable[[], Awaitable[None]]]  # write, read, close


def _key(i: int) -> str:
    return f"job-{i % ROWS}"


async def _asyncpg(url: str) -> Driver:
    conn = await asyncpg.connect(url)
    await conn.execute(SETUP)  # the one table both drivers use
    select = await conn.prepare(SELECT.format("$1"))
    update = await conn.prepare(UPDATE.format("$1", "$2", "$3"))

    async def write(start: int) -> None:
        await conn.execute("BEGIN; SAVEPOINT item")
        for i in range(start, start + BATCH):
            row = await select.fetchrow(_key(i))
            await update.fetch(row["body"], row["key"], row["version"])
            await conn.execute("RELEASE item; SAVEPOINT item")
        await conn.execute("RELEASE item; COMMIT")

    async def read(start: int) -> None:
        for i in range(start, start + BATCH):
            await select.fetchrow(_key(i))

    return write, read, conn.close


async def _psycopg(url: str) -> Driver:
    # autocommit (transaction control by hand, as the writer does); prepare_threshold=0:
    # every parameterised statement is prepared on its first use
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True, prepare_threshold=0)
    select, update = SELECT.format("%s"), UPDATE.format("%s", "%s", "%s")

    async def write(start: int) -> None:
        await conn.execute("BEGIN; SAVEPOINT item", prepare=False)
        for i in range(start, start + BATCH):
            cur = await conn.execute(select, (_key(i),))
            key, version, body = (await cur.fetchone()) or ("", 0, {})
            await conn.execute(update, (Jsonb(body), key, version))
            await conn.execute("RELEASE item; SAVEPOINT item", prepare=False)
        await conn.execute("RELEASE item; COMMIT", prepare=False)

    async def read(start: int) -> None:
        for i in range(start, start + BATCH):
            await (await conn.execute(select, (_key(i),))).fetchone()

    return write, read, conn.close


async def _rate(step: Step, duration: float) -> float:
    """Items per second of `step` (BATCH items a call) run back to back for `duration`."""
    await step(0)  # warm: statements prepared
    items, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < duration:
        await step(items)
        items += BATCH
    return items / elapsed


async def run(pg: Any, duration: float) -> dict[str, float]:
    base = pg.get_uri("postgres")
    drivers = {"asyncpg": await _asyncpg(base), "psycopg": await _psycopg(base)}
    figures: dict[str, list[float]] = {}
    try:
        for kind in ("write", "read"):
            for name in ("asyncpg", "psycopg", "psycopg", "asyncpg"):
                write, read, _close = drivers[name]
                rate = await _rate(write if kind == "write" else read, duration)
                figures.setdefault(f"{name} {kind}", []).append(rate)
    finally:
        for _write, _read, close in drivers.values():
            await close()
    return {key: sum(runs) / len(runs) for key, runs in figures.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    with embedded_postgres() as pg:
        figures = asyncio.run(run(pg, args.duration))
    for key, per_s in figures.items():
        print(f"{key:<16} {per_s:8.0f} items/s")
    for kind in ("write", "read"):
        ratio = figures[f"psycopg {kind}"] / figures[f"asyncpg {kind}"]
        print(f"psycopg / asyncpg {kind}: {ratio:.3f}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
