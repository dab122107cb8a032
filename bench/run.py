"""The performance targets P1-P7 of shared/spec/performance.md, measured in one run.

Starts one `jobctl serve` (gRPC + REST gateway) on 127.0.0.1 over a fresh SQLite file,
seeds it through the bulk path, then drives it with the load generator (`jobctl bench`'s
engine, in this process) phase after phase, so every figure is a ratio of figures taken
minutes apart on the same machine. Prints a table (target, figure, pass/fail) and writes
JSON (`--json`, default bench/results/latest.json).

    python -m bench.run            # full: 10 s phases, 1,000,000 jobs (about 6 minutes)
    python -m bench.run --short    # `make bench`: 3 s phases, same targets (under 5 minutes)
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import cload
from jobcontrol.service.loadgen import population, served, targets
from jobcontrol.service.loadgen.bench import build_parser, execute
from jobcontrol.service.loadgen.config import from_args

ROOT = Path(__file__).resolve().parent


@dataclass
class Plan:
    duration: float
    warmup: float
    big: int
    delete_pool: int
    wipe: int = 100_000


@dataclass
class Results:
    rows: list[dict[str, Any]] = field(default_factory=list)
    phases: dict[str, Any] = field(default_factory=dict)

    def check(self, target: str, what: str, figure: float | None, limit: float,
              at_most: bool, unit: str = "") -> None:  # fmt: skip
        ok = figure is not None and (figure <= limit if at_most else figure >= limit)
        shown = "n/a" if figure is None else f"{figure:.3g}{unit}"
        bound = f"{'<=' if at_most else '>='} {limit:g}{unit}"
        self.rows.append({"target": target, "what": what, "figure": figure, "limit": bound,
                          "pass": ok, "shown": shown})  # fmt: skip


class Runner:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.results = Results()
        self.server: served.ServedServer | None = None
        self.metrics_url = ""

    async def c_phase(self, name: str, load: cload.GrpcLoad | cload.RestLoad,
                      warmup: cload.RestLoad | None = None) -> dict[str, Any]:  # fmt: skip
        """One h2load or wrk run (after its warm-up run, for wrk); CPU per request of the
        main run only."""
        assert self.server is not None
        if warmup is not None:
            await warmup.run()
        cpu_before = self.server.cpu()
        op = await load.run()
        cpu_after = self.server.cpu()
        sent = op["count"] + sum(op["errors"].values())
        if isinstance(load, cload.GrpcLoad):  # h2load's CPU window holds its warm-up too
            sent = int(sent * (load.duration + load.warmup) / load.duration)
        main = {"ops": {name: op}, "cpu_ms_per_request": {
            k: (cpu_after[k] - cpu_before[k]) * 1000 / sent if sent else None for k in cpu_after
        }}  # fmt: skip
        self.results.phases[name] = main
        print(f"  {name:<22} {op['throughput']:8.0f}/s  p50 {op['p50_ms'] or 0:6.2f} ms  "
              f"p99 {op['p99_ms'] or 0:6.2f} ms  errors {op['errors']}", flush=True)  # fmt: skip
        return main

    def grpc_load(self, method: str, message: bytes, in_flight: int = 64) -> cload.GrpcLoad:
        assert self.server is not None
        return cload.GrpcLoad(self.server.grpc_target, self.metrics_url, method, message,
                              in_flight, self.plan.duration, self.plan.warmup)  # fmt: skip

    def rest_load(self, method: str, path: str, body: str = "", *,
                  seconds: float | None = None, count: int = 1, walk: bool = False,
                  start: int = 0) -> cload.RestLoad:  # fmt: skip
        assert self.server is not None
        return cload.RestLoad(self.server.http_url, method, path, body, 64,
                              seconds or self.plan.duration, count, walk, start)  # fmt: skip

    async def phase(self, name: str, *flags: str, protocol: str = "grpc",
                    collection: str = "bench", jobs: int = 1000) -> dict[str, Any]:  # fmt: skip
        """One load-generator run against the served server; its main phase."""
        assert self.server is not None
        argv = ["--grpc", self.server.grpc_target, "--http", self.server.http_url,
                "--protocol", protocol, "--reuse", "--collection", collection,
                "--jobs", str(jobs), "--duration", str(self.plan.duration),
                "--warmup", str(self.plan.warmup), *flags]  # fmt: skip
        config = from_args(build_parser().parse_args(argv))
        cpu_before = self.server.cpu()
        report = await execute(config, io.StringIO())
        cpu_after = self.server.cpu()
        main: dict[str, Any] = report["phases"]["main"]
        sent = sum(o["count"] + sum(o["errors"].values()) for o in main["ops"].values())
        main["cpu_ms_per_request_incl_warmup"] = {
            k: (cpu_after[k] - cpu_before[k]) * 1000 / sent if sent else None for k in cpu_after
        }
        self.results.phases[name] = main
        op = next(iter(main["ops"].values()))
        print(f"  {name:<22} {op['throughput']:8.0f}/s  p50 {op['p50_ms'] or 0:6.2f} ms  "
              f"p99 {op['p99_ms'] or 0:6.2f} ms  errors {op['errors']}", flush=True)  # fmt: skip
        return main

    async def seed(self, collection: str, count: int) -> float:
        """A collection (profile scheduled) of `count` jobs via the bulk path; seconds."""
        assert self.server is not None
        began = time.perf_counter()
        argv = ["--grpc", self.server.grpc_target, "--collection", collection,
                "--jobs", str(count)]  # fmt: skip
        await population.seed(from_args(build_parser().parse_args(argv)), self.server.database_url)
        return time.perf_counter() - began


def ratio(a: dict[str, Any], b: dict[str, Any]) -> float:
    return float(a["throughput"]) / float(b["throughput"]) if b["throughput"] else 0.0


def op_of(phase: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(iter(phase["ops"].values()))
    return found


async def run(plan: Plan) -> Results:
    r = Runner(plan)
    res = r.results
    metrics = f"{served.HOST}:{served.free_port()}"
    r.server = await served.start(True, {"JOBCONTROL_METRICS_ADDRESS": metrics})
    r.metrics_url = f"http://{metrics}/metrics"
    try:
        print("seeding", flush=True)
        await r.seed("bench", 1000)
        for name in ("del-grpc", "del-rest", "del-16", "del-wrk"):
            await r.seed(name, plan.delete_pool)
        if cload.available():
            await c_clients(r)
        else:
            print("h2load and wrk not installed (make bench-tools): no C-client figures")
        print(f"P1-P4 (64 in flight; store ~{1000 + 3 * plan.delete_pool:,} jobs)")
        echo = await r.phase("echo", "--mix", "echo=100")
        get = await r.phase("get", "--mix", "get=100")
        upd = await r.phase("update", "--mix", "update=100")
        dele = await r.phase("delete", "--mix", "delete=100", collection="del-grpc",
                             jobs=plan.delete_pool)  # fmt: skip
        r_echo = await r.phase("rest echo", "--mix", "echo=100", protocol="rest")
        r_get = await r.phase("rest get", "--mix", "get=100", protocol="rest")
        r_upd = await r.phase("rest update", "--mix", "update=100", protocol="rest")
        r_del = await r.phase("rest delete", "--mix", "delete=100", protocol="rest",
                              collection="del-rest", jobs=plan.delete_pool)  # fmt: skip
        u16 = await r.phase("update @16", "--mix", "update=100", "--concurrency", "16")
        d16 = await r.phase("delete @16", "--mix", "delete=100", "--concurrency", "16",
                            collection="del-16", jobs=plan.delete_pool)  # fmt: skip
        res.check("P1", "GetJob / Echo (gRPC)", ratio(get, echo), 0.75, False)
        res.check("P2", "UpdateJob / Echo (gRPC)", ratio(upd, echo), 0.70, False)
        res.check("P2", "DeleteJob / Echo (gRPC)", ratio(dele, echo), 0.70, False)
        for name, rest, direct in (("Get", r_get, get), ("Update", r_upd, upd),
                                   ("Delete", r_del, dele)):  # fmt: skip
            res.check("P3", f"REST / gRPC {name}Job", ratio(rest, direct), 0.60, False)
            cpu = rest["cpu_ms_per_request_incl_warmup"].get("gateway")
            res.check("P3", f"gateway CPU per REST {name}Job", cpu, 0.25, True, " ms")
        res.check("P3", "REST / gRPC Echo (for reference)", ratio(r_echo, echo), 0.60, False)
        for name, phase in (("GetJob", get), ("UpdateJob", upd), ("DeleteJob", dele),
                            ("REST GetJob", r_get), ("REST UpdateJob", r_upd),
                            ("REST DeleteJob", r_del)):  # fmt: skip
            o = op_of(phase)
            spread = o["p99_ms"] / o["p50_ms"] if o["p50_ms"] else None
            res.check("P4", f"p99/p50 {name} @64", spread, 3.0, True, "x")
        res.check("P4", "UpdateJob p99 @16", op_of(u16)["p99_ms"], 10.0, True, " ms")
        res.check("P4", "DeleteJob p99 @16", op_of(d16)["p99_ms"], 10.0, True, " ms")

        print(f"P5-P7: seeding {plan.big:,} jobs", flush=True)
        await r.seed("del-big", plan.delete_pool)
        seconds = await r.seed("big", plan.big)
        res.phases["seed_big_seconds"] = seconds
        print(f"  seeded in {seconds:.1f} s", flush=True)
        b_get = await r.phase("get (1M)", "--mix", "get=100", collection="big", jobs=plan.big)
        b_upd = await r.phase("update (1M)", "--mix", "update=100", collection="big",
                              jobs=plan.big)  # fmt: skip
        b_del = await r.phase("delete (1M)", "--mix", "delete=100", collection="del-big",
                              jobs=plan.delete_pool)  # fmt: skip
        for name, small, large in (("GetJob", get, b_get), ("UpdateJob", upd, b_upd),
                                   ("DeleteJob", dele, b_del)):  # fmt: skip
            res.check("P5", f"{name} cost with 1M / small store", ratio(small, large), 1.25, True,
                      "x")  # fmt: skip

        print("P6: delete-all of 100,000 jobs under a Get load", flush=True)
        await r.seed("wipe", plan.wipe)
        if cload.available():
            wiped, base, during = await p6_c_client(r)
            client = "h2load, during the wipe"
        else:
            wiped, base, during = await p6_python_client(r)
            client = "Python client"
        res.check("P6", "delete-all of 100k jobs", wiped, 10.0, True, " s")
        spread = (during["p99_ms"] or 0) / (base["p99_ms"] or 1)
        res.check("P6", f"Get p99 during / before ({client})", spread, 2.0, True, "x")

        rss = _rss_mb(r.server.process.pid)
        res.check("P7", f"server RSS with {plan.big:,}+ jobs stored", rss, 250.0, True, " MB")
        # a second server process on the same database file (the first keeps it alive)
        began = time.perf_counter()
        again = await served.start(False, {"JOBCONTROL_DATABASE_URL": r.server.database_url})
        try:
            async with grpc.aio.insecure_channel(again.grpc_target) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                reply = await health.Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            startup = time.perf_counter() - began
        finally:
            await again.stop()
        res.check("P7", "start-up to healthy, 1M+ jobs stored", startup, 2.0, True, " s")
    finally:
        await r.server.stop()
    return res


_JOBS = "jobcontrol.v1.JobService/"


async def c_clients(r: Runner) -> None:
    """P1-P4 with C clients: h2load for gRPC, wrk for REST (see bench/cload.py). h2load
    sends one body per run, so its UpdateJob sets the display name the job already has:
    after the first call the core writes nothing (read, compare, reply). It is shown for
    reference; durable gRPC writes are the Python client's phases."""
    res, plan = r.results, r.plan
    print("P1-P4 with C clients (h2load: gRPC, one job; wrk: REST; 64 in flight)")
    name = f"collections/bench/jobs/{targets.job_id(7)}"
    same = targets.update_request(name, "bench")
    echo = await r.c_phase("h2load echo", r.grpc_load(
        "jobcontrol.v1.DiagnosticsService/Echo", targets.echo_request("bench")))  # fmt: skip
    get = await r.c_phase("h2load get", r.grpc_load(_JOBS + "GetJob",
                                                    targets.name_request(name)))  # fmt: skip
    same64 = await r.c_phase("h2load update-same", r.grpc_load(_JOBS + "UpdateJob", same))
    same16 = await r.c_phase("h2load update-same @16",
                             r.grpc_load(_JOBS + "UpdateJob", same, 16))  # fmt: skip
    jobs = "/v1/collections/bench/jobs/j%08d"
    warm = r.rest_load("GET", jobs, seconds=plan.warmup, count=1000)
    w_echo = await r.c_phase("wrk echo", r.rest_load("POST", "/v1:echo", '{"message":"bench"}'),
                             warm)  # fmt: skip
    w_get = await r.c_phase("wrk get", r.rest_load("GET", jobs, count=1000), warm)
    w_upd = await r.c_phase("wrk update", r.rest_load(
        "PATCH", jobs + "?updateMask=displayName", '{"displayName":"bench %d"}', count=1000),
        warm)  # fmt: skip
    pool = "/v1/collections/del-wrk/jobs/j%08d"
    used = (await r.rest_load("DELETE", pool, seconds=plan.warmup, walk=True).run())["requests"]
    w_del = await r.c_phase("wrk delete", r.rest_load("DELETE", pool, walk=True,
                                                      start=used + 64))  # fmt: skip
    c = "C client"
    res.check("P1", f"GetJob / Echo (gRPC, {c})", ratio(op_of(get), op_of(echo)), 0.75, False)
    res.check("ref", "UpdateJob no change / Echo (h2load: no write)",
              ratio(op_of(same64), op_of(echo)), 0.70, False)  # fmt: skip
    for what, rest, direct in (("Echo", w_echo, echo), ("GetJob", w_get, get)):
        res.check("P3", f"REST / gRPC {what} ({c})", ratio(op_of(rest), op_of(direct)), 0.60,
                  False)  # fmt: skip
    for what, rest in (("Echo", w_echo), ("GetJob", w_get), ("UpdateJob", w_upd),
                       ("DeleteJob", w_del)):  # fmt: skip
        cpu = rest["cpu_ms_per_request"].get("gateway")
        res.check("P3", f"gateway CPU per REST {what} ({c})", cpu, 0.35, True, " ms")
    res.check("ref", "UpdateJob no change p99 @16 (h2load)", op_of(same16)["p99_ms"], 10.0,
              True, " ms")  # fmt: skip


async def delete_all(r: Runner) -> tuple[float, float, float]:
    """DeleteJobs of the "wipe" collection until its Operation is done: (seconds it took,
    epoch seconds at its start and at its end)."""
    began = time.time()
    wipe = await r.phase("delete-all", "--mix", "delete-all=1", "--requests", "1",
                         "--warmup", "0", "--timeout", "60", collection="wipe",
                         jobs=r.plan.wipe)  # fmt: skip
    return (op_of(wipe)["max_ms"] or 0) / 1000, began, time.time()


async def p6_c_client(r: Runner) -> tuple[float, dict[str, Any], dict[str, Any]]:
    """One h2load GetJob run at 16 in flight (one job of "bench") across the delete-all:
    the Gets that started before the wipe are the baseline, those that started while it
    ran are "during" (h2load's per-request log), so the wipe's own length decides the
    window, not a phase's."""
    plan = r.plan
    assert r.server is not None
    name = f"collections/bench/jobs/{targets.job_id(7)}"
    request = targets.name_request(name)
    load = cload.GrpcLoad(r.server.grpc_target, r.metrics_url, _JOBS + "GetJob", request, 16,
                          plan.duration + 12, plan.warmup)  # fmt: skip
    gets = asyncio.create_task(load.run())
    await asyncio.sleep(plan.warmup + plan.duration)
    wiped, began, ended = await delete_all(r)
    whole = await gets
    if whole["errors"]:
        print(f"  P6 GetJob errors: {whole['errors']}", flush=True)
    base = cload.window(load.answered, 0.0, began)
    during = cload.window(load.answered, began, ended)
    r.results.phases["get (P6, h2load)"] = {"before": base, "during": during, "whole": whole}
    for what, op in (("before", base), ("during", during)):
        print(f"  get {what} wipe (h2load)  p50 {op['p50_ms'] or 0:6.2f} ms  "
              f"p99 {op['p99_ms'] or 0:6.2f} ms  ({op['count']} gets)", flush=True)  # fmt: skip
    return wiped, base, during


async def p6_python_client(r: Runner) -> tuple[float, dict[str, Any], dict[str, Any]]:
    """Without h2load: a Get phase (Python client, 16 in flight) before, and one running
    while the delete-all starts (its window is the phase's, not the wipe's)."""
    base = await r.phase("get (P6 baseline)", "--mix", "get=100", "--concurrency", "16")
    get_task = asyncio.create_task(
        r.phase("get (during wipe)", "--mix", "get=100", "--concurrency", "16")
    )
    await asyncio.sleep(r.plan.warmup + 0.5)
    wiped, _, _ = await delete_all(r)
    during = await get_task
    return wiped, op_of(base), op_of(during)


def _rss_mb(pid: int) -> float | None:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--short", action="store_true", help="3 s phases (make bench)")
    parser.add_argument("--json", default=str(ROOT / "results" / "latest.json"))
    args = parser.parse_args()
    plan = (Plan(duration=3, warmup=1, big=1_000_000, delete_pool=15_000) if args.short
            else Plan(duration=10, warmup=2, big=1_000_000, delete_pool=40_000))  # fmt: skip
    results = asyncio.run(run(plan))
    print(f"\n{'target':<7} {'what':<44} {'figure':>10}  {'bound':>9}  result")
    for row in results.rows:
        print(f"{row['target']:<7} {row['what']:<44} {row['shown']:>10}  {row['limit']:>9}  "
              f"{'pass' if row['pass'] else 'FAIL'}")  # fmt: skip
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"plan": plan.__dict__, "targets": results.rows,
                                           "phases": results.phases}, indent=2) + "\n")  # fmt: skip
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
