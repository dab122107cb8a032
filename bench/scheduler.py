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
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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


async def _background_load(target: str, sink: Target) -> None:
    """100 jobs each firing every second: about 100 actions a second."""
    await _collection(target, "load")
    spec = R.ScheduledSpec(
        action=_action(f"{sink.url}/ok"),
        recurrence=R.Recurrence(frequency=R.Recurrence.SECOND, interval=1),
    )
    async with grpc.aio.insecure_channel(target) as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        for i in range(100):
            await stub.CreateJob(J.CreateJobRequest(parent="collections/load", job_id=f"l{i}",
                                                    job=R.Job(scheduled=spec)))  # fmt: skip


async def api_cost(sink: Target, duration: float) -> dict[str, float]:
    """GetJob and UpdateJob at 64 in flight on a server whose engine is idle, then on one
    whose engine runs ~100 actions/s (order idle busy busy idle)."""
    plan = Plan(duration=duration, warmup=1, big=0, delete_pool=0)
    idle, busy = Runner(plan), Runner(plan)
    try:
        idle.server = await served.start(False, ENGINE)
        busy.server = await served.start(False, ENGINE)
        for server in (idle.server, busy.server):
            server.http_url = "http://127.0.0.1:9"  # gRPC only
            argv = ["--grpc", server.grpc_target, "--collection", "bench", "--jobs", "300"]
            await population.seed(from_args(build_parser().parse_args(argv)), None)
        await _background_load(busy.server.grpc_target, sink)
        await asyncio.sleep(2)
        fired_before = len(sink.seen)
        began = time.monotonic()
        runs: dict[str, list[float]] = {}
        for op in ("get", "update"):
            for name in ("idle", "busy", "busy", "idle"):
                runner = idle if name == "idle" else busy
                phase = await runner.phase(f"{op} engine {name}", "--mix", f"{op}=100", jobs=300)
                runs.setdefault(f"{op} {name}", []).append(float(op_of(phase)["throughput"]))
        rate = (len(sink.seen) - fired_before) / (time.monotonic() - began)
    finally:
        for runner in (idle, busy):
            if runner.server is not None:
                await runner.server.stop()
    mean = {k: sum(v) / len(v) for k, v in runs.items()}
    return {
        **{f"{k} /s": v for k, v in mean.items()},
        "actions/s during the busy phases": rate,
        "GetJob busy / idle": mean["get busy"] / mean["get idle"],
        "UpdateJob busy / idle": mean["update busy"] / mean["update idle"],
    }


async def run(duration: float) -> dict[str, Any]:
    figures: dict[str, Any] = {}
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
        sink.seen.clear()
        figures["api with the engine busy"] = await api_cost(sink, duration)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per API phase")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    figures = asyncio.run(run(args.duration))
    for group, values in figures.items():
        print(group)
        for name, value in values.items():
            print(f"  {name:<36} {value:10.3f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
