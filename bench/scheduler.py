"""The scheduler's figures in one run (issue 15): lateness of 1,000 one-shot jobs due in the
same second, on one server (SQLite) and on three servers of one PostgreSQL; and the API's
own GetJob / UpdateJob throughput with the engine idle against the engine running about
100 actions a second.

Lateness = the attempt's actual start (its history StartTime) - the occurrence's expected
time; also from the target's side: when the target (a recording HTTP server in this
process, on 127.0.0.1, sharing the CPUs) handled the request - the
x-ms-scheduler-expected-execution-time header. Every wait is bounded.

    python -m bench.scheduler            # about 2 minutes
    python -m bench.scheduler --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from google.protobuf import timestamp_pb2

from bench.postgres import embedded_postgres
from bench.run import Plan, Runner, op_of
from jobcontrol.service.loadgen import population, served
from jobcontrol.service.loadgen.bench import build_parser
from jobcontrol.service.loadgen.config import from_args
from jobcontrol.v1 import job_service_pb2, job_service_pb2_grpc, resources_pb2
from tests.http_target import Target, serving_target

R, J = resources_pb2, job_service_pb2
JOBS = 1000
LEAD = 8  # seconds between the last create and the second they are all due
ENGINE = {"JOBCONTROL_SCHEDULER_MIN_INTERVAL": "1"}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _action(url: str) -> R.JobAction:
    act = R.JobAction(type=R.JobAction.HTTP, request=R.HttpRequest(uri=url, method="POST"))
    act.retry_policy.retry_type = R.RetryPolicy.NONE
    return act


async def _collection(target: str, cid: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        await job_service_pb2_grpc.JobServiceStub(channel).CreateCollection(
            J.CreateCollectionRequest(
                collection_id=cid, collection=R.Collection(profile=R.Profile.SCHEDULED)
            )
        )


async def lateness(targets: list[str], sink: Target, cid: str) -> dict[str, float]:
    """1,000 one-shot jobs due at one whole second, created round-robin over `targets`."""
    await _collection(targets[0], cid)
    sink.seen.clear()
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=LEAD + 4)
    start = timestamp_pb2.Timestamp()
    start.FromDatetime(due)
    spec = R.ScheduledSpec(start_time=start, action=_action(f"{sink.url}/ok"))
    channels = [grpc.aio.insecure_channel(t) for t in targets]
    try:
        stubs = [job_service_pb2_grpc.JobServiceStub(c) for c in channels]
        limit = asyncio.Semaphore(64)

        async def create(i: int) -> None:
            async with limit:
                await stubs[i % len(stubs)].CreateJob(
                    J.CreateJobRequest(
                        parent=f"collections/{cid}", job_id=f"j{i}", job=R.Job(scheduled=spec)
                    )
                )

        await asyncio.gather(*(create(i) for i in range(JOBS)))
    finally:
        for channel in channels:
            await channel.close()
    if datetime.now(UTC) >= due:
        raise SystemExit("creating the jobs took longer than the lead; raise LEAD")
    await sink.wait_for(JOBS, within=LEAD + 60)
    header = "x-ms-scheduler-expected-execution-time"
    late = [s.at - datetime.fromisoformat(s.headers[header]).timestamp() for s in sink.seen[:JOBS]]
    ids = {s.headers["x-ms-client-request-id"] for s in sink.seen}
    started = await _history_lateness(targets[0], cid)
    return {
        "start p50_s": _percentile(started, 0.50),
        "start p99_s": _percentile(started, 0.99),
        "start max_s": max(started),
        "received p50_s": _percentile(late, 0.50),
        "received p99_s": _percentile(late, 0.99),
        "received max_s": max(late),
        "requests": float(len(sink.seen)),
        "distinct_occurrences": float(len(ids)),
    }


async def _history_lateness(target: str, cid: str) -> list[float]:
    """Per job, the attempt's recorded StartTime - its ExpectedExecutionTime (seconds)."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        limit = asyncio.Semaphore(32)

        async def one(i: int) -> float:
            async with limit:
                reply = await stub.ListJobHistory(
                    J.ListJobHistoryRequest(parent=f"collections/{cid}/jobs/j{i}")
                )
            (entry,) = reply.entries
            start, expected = entry.start_time, entry.expected_execution_time
            return (start.ToMicroseconds() - expected.ToMicroseconds()) / 1e6

        deadline = time.monotonic() + 30
        while True:  # the last attempts' records may still be in the writer's queue
            try:
                return list(await asyncio.gather(*(one(i) for i in range(JOBS))))
            except ValueError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)


async def _background_load(target: str, sink_url: str) -> None:
    """100 jobs each firing every second: about 100 actions a second."""
    await _collection(target, "load")
    spec = R.ScheduledSpec(
        action=_action(f"{sink_url}/ok"),
        recurrence=R.Recurrence(frequency=R.Recurrence.SECOND, interval=1),
    )
    async with grpc.aio.insecure_channel(target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        for i in range(100):
            await stub.CreateJob(J.CreateJobRequest(parent="collections/load", job_id=f"l{i}",
                                                    job=R.Job(scheduled=spec)))  # fmt: skip


@contextlib.asynccontextmanager
async def _sink_process() -> AsyncIterator[str]:
    """bench.sink in a process of its own (not this load generator's loop); its URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.sink", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        yield line.decode().strip()
    finally:
        proc.terminate()
        await proc.wait()


async def _count(sink_url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{sink_url}/_count") as reply:
        return int(await reply.text())


async def api_cost(duration: float) -> dict[str, float]:
    """P1 (GetJob / Echo) and P2 (UpdateJob / Echo), 64 in flight, on a server whose engine
    is idle and on one whose engine runs ~100 actions/s against a target in another
    process (order idle busy busy idle); also each op's throughput busy / idle."""
    plan = Plan(duration=duration, warmup=1, big=0, delete_pool=0)
    idle, busy = Runner(plan), Runner(plan)
    async with _sink_process() as sink_url:
        try:
            idle.server = await served.start(False, ENGINE)
            busy.server = await served.start(False, ENGINE)
            for server in (idle.server, busy.server):
                server.http_url = "http://127.0.0.1:9"  # gRPC only
                argv = ["--grpc", server.grpc_target, "--collection", "bench", "--jobs", "300"]
                await population.seed(from_args(build_parser().parse_args(argv)), None)
            await _background_load(busy.server.grpc_target, sink_url)
            await asyncio.sleep(2)
            fired_before = await _count(sink_url)
            began = time.monotonic()
            runs: dict[str, list[float]] = {}
            for op in ("echo", "get", "update"):
                for name in ("idle", "busy", "busy", "idle"):
                    runner = idle if name == "idle" else busy
                    phase = await runner.phase(f"{op} engine {name}", "--mix", f"{op}=100",
                                               jobs=300)  # fmt: skip
                    runs.setdefault(f"{op} {name}", []).append(float(op_of(phase)["throughput"]))
            rate = (await _count(sink_url) - fired_before) / (time.monotonic() - began)
        finally:
            for runner in (idle, busy):
                if runner.server is not None:
                    await runner.server.stop()
    mean = {k: sum(v) / len(v) for k, v in runs.items()}
    p1 = {n: mean[f"get {n}"] / mean[f"echo {n}"] for n in ("idle", "busy")}
    p2 = {n: mean[f"update {n}"] / mean[f"echo {n}"] for n in ("idle", "busy")}
    return {
        **{f"{k} /s": v for k, v in mean.items()},
        "actions/s during the busy phases": rate,
        "P1 GetJob/Echo idle": p1["idle"],
        "P1 GetJob/Echo busy": p1["busy"],
        "P2 UpdateJob/Echo idle": p2["idle"],
        "P2 UpdateJob/Echo busy": p2["busy"],
        "P1 busy / idle": p1["busy"] / p1["idle"],
        "P2 busy / idle": p2["busy"] / p2["idle"],
        "GetJob throughput busy / idle": mean["get busy"] / mean["get idle"],
        "UpdateJob throughput busy / idle": mean["update busy"] / mean["update idle"],
    }


async def run(duration: float, api_only: bool = False) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    if api_only:
        return {"api with the engine busy": await api_cost(duration)}
    async with serving_target() as sink:
        one = await served.start(False, ENGINE)
        try:
            figures["one server (SQLite)"] = await lateness([one.grpc_target], sink, "late1")
        finally:
            await one.stop()
        with embedded_postgres() as pg:
            pg.psql("CREATE DATABASE sched;")
            url = pg.get_uri("sched").replace("postgresql://", "postgresql+asyncpg://", 1)
            three = [await served.start(False, {**ENGINE, "JOBCONTROL_DATABASE_URL": url})
                     for _ in range(3)]  # fmt: skip
            try:
                targets = [s.grpc_target for s in three]
                figures["three servers (PostgreSQL)"] = await lateness(targets, sink, "late3")
            finally:
                for server in three:
                    await server.stop()
    figures["api with the engine busy"] = await api_cost(duration)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per API phase")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--api-only", action="store_true", help="only the API-cost figures")
    args = parser.parse_args()
    figures = asyncio.run(run(args.duration, args.api_only))
    for group, values in figures.items():
        print(group)
        for name, value in values.items():
            print(f"  {name:<36} {value:10.3f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
