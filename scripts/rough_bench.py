"""Rough throughput of Echo, GetJob and UpdateJob against one server process, in one run.

Starts `jobctl serve` on 127.0.0.1 (port chosen by the OS) over a fresh SQLite file, seeds
jobs, then drives each operation with N calls in flight for a bounded time and prints
req/s, p50/p99 and the ratio to Echo. The load generator proper (`jobctl bench`) is a
later issue; this is the first figure only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from jobcontrol.v1 import (
    diagnostics_service_pb2,
    diagnostics_service_pb2_grpc,
    job_service_pb2,
    job_service_pb2_grpc,
    resources_pb2,
)

Call = Callable[[int], Awaitable[Any]]


async def drive(call: Call, in_flight: int, seconds: float, max_calls: int) -> dict[str, float]:
    """Keep `in_flight` calls going for `seconds` (or `max_calls`); latencies in ms."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    counter = iter(range(max_calls))

    async def worker(w: int) -> None:
        nonlocal errors
        for i in counter:
            if time.perf_counter() >= stop_at:
                return
            started = time.perf_counter()
            try:
                await call(w * 1_000_000 + i)
            except grpc.aio.AioRpcError:
                errors += 1
            latencies.append((time.perf_counter() - started) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(in_flight)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
        "errors": errors,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--jobs", type=int, default=1000)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="jobcontrol-bench-")
    env = {**os.environ, "JOBCONTROL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.cli", "serve", "--grpc-address", "127.0.0.1:0",
        "--log-level", "WARNING", stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
    match = re.search(r"listening on (\S+)", line)
    assert match, line
    try:
        async with grpc.aio.insecure_channel(match.group(1)) as channel:
            await run(channel, args)
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()


async def run(channel: grpc.aio.Channel, args: argparse.Namespace) -> None:
    jobs = job_service_pb2_grpc.JobServiceStub(channel)
    diag = diagnostics_service_pb2_grpc.DiagnosticsServiceStub(channel)
    await jobs.CreateCollection(
        job_service_pb2.CreateCollectionRequest(
            collection_id="bench",
            collection=resources_pb2.Collection(profile=resources_pb2.SCHEDULED),
        )
    )
    spec = resources_pb2.ScheduledSpec(
        action=resources_pb2.JobAction(
            type=resources_pb2.JobAction.HTTP,
            request=resources_pb2.HttpRequest(uri="http://example.invalid/", method="GET"),
        )
    )
    await asyncio.gather(
        *(
            jobs.CreateJob(
                job_service_pb2.CreateJobRequest(
                    parent="collections/bench",
                    job_id=f"j{i}",
                    job=resources_pb2.Job(scheduled=spec),
                )
            )
            for i in range(args.jobs)
        )
    )
    names = [f"collections/bench/jobs/j{i}" for i in range(args.jobs)]

    async def echo(i: int) -> Any:
        return await diag.Echo(diagnostics_service_pb2.EchoRequest(message="x"))

    async def get(i: int) -> Any:
        return await jobs.GetJob(job_service_pb2.GetJobRequest(name=names[i % len(names)]))

    async def update(i: int) -> Any:
        job = resources_pb2.Job(name=names[i % len(names)], display_name=f"v{i}")
        return await jobs.UpdateJob(job_service_pb2.UpdateJobRequest(job=job))

    results = {}
    for label, call in (("Echo", echo), ("GetJob", get), ("UpdateJob", update), ("Echo#2", echo)):
        await drive(call, args.in_flight, 1.0, 100_000)  # warm-up
        results[label] = await drive(call, args.in_flight, args.seconds, 1_000_000)
    base = (results["Echo"]["rps"] + results["Echo#2"]["rps"]) / 2
    print(f"{args.in_flight} in flight, {args.seconds:.0f} s each, {args.jobs} jobs stored")
    print(
        f"{'operation':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'vs echo':>8}"
    )
    for label, r in results.items():
        print(
            f"{label:<10} {r['rps']:8.0f} {r['p50']:8.2f} {r['p99']:8.2f} "
            f"{r['errors']:6.0f} {r['rps'] / base:8.0%}"
        )


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
