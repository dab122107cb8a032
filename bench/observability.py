"""What observability costs: P1 (GetJob / Echo) and P2 (UpdateJob / Echo) over gRPC with
metrics on, with tracing on, and with both off, in one run (issue 16).

Starts one `jobctl serve` (gRPC only, fresh SQLite file, 1,000 jobs seeded) per mode:

- off: neither metrics nor tracing;
- metrics: `JOBCONTROL_METRICS_ADDRESS=127.0.0.1:0` (the URL is read from the server's
  `metrics` log line), scraped over HTTP every second from the start of the phases to
  their end, as a Prometheus would;
- tracing: `OTEL_EXPORTER_OTLP_ENDPOINT` set to a throwaway OTLP/HTTP receiver (bench.sink
  in a process of its own: 200 to every POST, counted), `OTEL_TRACES_SAMPLER=
  parentbased_traceidratio`, `OTEL_TRACES_SAMPLER_ARG=0.1`. A probe first: a second of
  Echo calls, then up to 10 s for an export to arrive; a server that sends nothing does
  not trace, and tracing is reported "not available" (no figure) instead of measured.

Each operation (Echo, GetJob, UpdateJob; 64 in flight) runs off, metrics, tracing,
tracing, metrics, off, off, metrics, tracing, so that a drift of the machine weighs on
every mode alike; each figure is the median of a mode's three runs. Prints raw
throughput, p99 and server CPU per request per mode, P1/P2 per mode, and each mode's cost
against off in throughput (the target's measure) and in server CPU per request (the
steadier one on a machine the load generator shares); writes JSON (`--json`, default
bench/results/observability.json).

    python -m bench.observability            # 5 s phases (about 3 minutes)
    python -m bench.observability --short    # 3 s phases
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.run import Plan, Runner, op_of
from bench.scheduler import _count, _sink_process
from jobcontrol.service.loadgen import served

ROOT = Path(__file__).resolve().parent
OPS = ("echo", "get", "update")
ORDER = ("off", "metrics", "tracing", "tracing", "metrics", "off", "off", "metrics", "tracing")
# the bounds: throughput lost with the mode on, against off
BOUNDS = {"metrics": 0.05, "tracing": 0.10}
SAMPLING = "0.1"
SCRAPE_EVERY = 1.0
PROBE_WAIT = 10.0  # the OTel batch span processor exports every 5 s by default


def _mode_env(mode: str, receiver: str) -> dict[str, str]:
    # INFO for every mode alike: the server logs its metrics URL at INFO (and nothing per call)
    env = {"JOBCONTROL_LOG_LEVEL": "INFO"}
    if mode == "metrics":
        env["JOBCONTROL_METRICS_ADDRESS"] = "127.0.0.1:0"
    elif mode == "tracing":
        env.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
            OTEL_TRACES_SAMPLER_ARG=SAMPLING,
            OTEL_SERVICE_NAME="jobcontrol-bench",
        )
    return env


def _clean_environment() -> None:
    """Nothing of the caller's own observability settings reaches the servers (they
    inherit this environment): each mode sets exactly its own."""
    for name in list(os.environ):
        if name.startswith("OTEL_") or name in (
            "JOBCONTROL_METRICS_ADDRESS",
            "JOBCONTROL_GATEWAY_METRICS_ADDRESS",
        ):
            del os.environ[name]


async def metrics_url(server: served.ServedServer) -> str:
    """The scrape URL the server logged (its `metrics` line, JSON on stderr)."""
    log = server.tmp / "serve.log"
    for _ in range(100):
        for line in log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("msg") == "metrics" and record.get("url"):
                    return str(record["url"])
        await asyncio.sleep(0.05)
    raise RuntimeError(f"no metrics URL in {log}")


async def scrape_every(url: str, stop: asyncio.Event, seen: dict[str, float]) -> None:
    """GET `url` every SCRAPE_EVERY seconds until `stop`; counts, bytes, seconds."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while not stop.is_set():
            began = time.perf_counter()
            async with session.get(url) as reply:
                body = await reply.read()
                if reply.status != 200:
                    raise RuntimeError(f"scrape of {url}: HTTP {reply.status}")
            seen["scrapes"] += 1
            seen["seconds"] += time.perf_counter() - began
            seen["bytes"] = len(body)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SCRAPE_EVERY)


async def traces_arrive(runner: Runner, receiver: str) -> bool:
    """Whether the tracing server exports anything: a second of Echo calls, then up to
    PROBE_WAIT seconds for the receiver to be called."""
    before = await _count(receiver)
    await runner.phase("tracing probe", "--mix", "echo=100", "--duration", "1", "--warmup", "0")
    deadline = time.monotonic() + PROBE_WAIT
    while time.monotonic() < deadline:
        if await _count(receiver) > before:
            return True
        await asyncio.sleep(0.5)
    return False


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


async def run(plan: Plan) -> dict[str, Any]:
    runners = {mode: Runner(plan) for mode in ("off", "metrics", "tracing")}
    notes: dict[str, Any] = {}
    async with _sink_process() as receiver:
        stop, scraped = asyncio.Event(), {"scrapes": 0.0, "seconds": 0.0, "bytes": 0.0}
        scraper: asyncio.Task[None] | None = None
        try:
            for mode, runner in runners.items():
                runner.server = await served.start(False, _mode_env(mode, receiver))
                runner.server.http_url = "http://127.0.0.1:9"  # gRPC only
                await runner.seed("bench", 1000)
            assert runners["metrics"].server is not None
            url = await metrics_url(runners["metrics"].server)
            notes["metrics_url"] = url
            traced = await traces_arrive(runners["tracing"], receiver)
            modes = ["off", "metrics", "tracing"]
            if not traced:
                notes["tracing"] = (
                    "not available: the server sent nothing to OTEL_EXPORTER_OTLP_ENDPOINT "
                    "(tracing is off or its export fails)"
                )
                print(f"tracing: {notes['tracing']}", flush=True)
                modes.remove("tracing")
                tracing = runners.pop("tracing")
                assert tracing.server is not None
                await tracing.server.stop()
            exports_before = await _count(receiver)
            scraper = asyncio.create_task(scrape_every(url, stop, scraped))
            runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for op in OPS:
                for mode in (m for m in ORDER if m in modes):
                    phase = await runners[mode].phase(f"{op} {mode}", "--mix", f"{op}=100")
                    figures = dict(op_of(phase))
                    figures["server_cpu_ms"] = phase["cpu_ms_per_request_incl_warmup"]["server"]
                    runs.setdefault((op, mode), []).append(figures)
            stop.set()
            await scraper
            if traced:
                notes["otlp_exports_during_phases"] = await _count(receiver) - exports_before
        finally:
            stop.set()
            if scraper is not None and not scraper.done():
                scraper.cancel()
            for runner in runners.values():
                if runner.server is not None:
                    await runner.server.stop()
    notes["scrapes"] = int(scraped["scrapes"])
    notes["scrape_ms_mean"] = 1000 * scraped["seconds"] / max(scraped["scrapes"], 1)
    notes["scrape_bytes"] = int(scraped["bytes"])
    return {"notes": notes, "figures": figures_of(runs, modes)}


def figures_of(runs: dict[tuple[str, str], list[dict[str, Any]]], modes: list[str]) -> Any:
    """Per mode: each op's mean throughput, p99 and server CPU per request; P1 and P2;
    each op's throughput cost against off and whether it is within the bound."""
    out: dict[str, Any] = {}
    for mode in modes:
        ops = {
            op: {
                key: _median([r[key] for r in runs[(op, mode)]])
                for key in ("throughput", "p99_ms", "server_cpu_ms")
            }
            for op in OPS
        }
        per_s = {op: float(ops[op]["throughput"] or 0) for op in OPS}
        entry: dict[str, Any] = {
            "ops": ops,
            "P1_get_over_echo": per_s["get"] / per_s["echo"] if per_s["echo"] else None,
            "P2_update_over_echo": per_s["update"] / per_s["echo"] if per_s["echo"] else None,
        }
        if mode != "off":
            off = {op: float(out["off"]["ops"][op]["throughput"] or 0) for op in OPS}
            cost = {op: 1 - per_s[op] / off[op] if off[op] else None for op in OPS}
            entry["throughput_cost"] = cost
            cpu_off = {op: out["off"]["ops"][op]["server_cpu_ms"] for op in OPS}
            entry["cpu_cost"] = {
                op: ops[op]["server_cpu_ms"] / cpu_off[op] - 1
                if cpu_off[op] and ops[op]["server_cpu_ms"] is not None
                else None
                for op in OPS
            }
            entry["bound"] = BOUNDS[mode]
            entry["within_bound"] = {
                op: c is not None and c <= BOUNDS[mode] for op, c in cost.items()
            }
        out[mode] = entry
    return out


def report(result: dict[str, Any]) -> None:
    figures, notes = result["figures"], result["notes"]
    print(f"\n{'op':<8} {'mode':<8} {'req/s':>8} {'p99 ms':>8} {'cpu ms/req':>11} "
          f"{'req/s cost':>10} {'cpu cost':>9}")  # fmt: skip
    for op in OPS:
        for mode, entry in figures.items():
            o = entry["ops"][op]
            costs = [entry.get(k, {}).get(op) for k in ("throughput_cost", "cpu_cost")]
            shown = ["" if c is None else f"{100 * c:.1f}%" for c in costs]
            print(f"{op:<8} {mode:<8} {o['throughput']:8.0f} {o['p99_ms'] or 0:8.1f} "
                  f"{o['server_cpu_ms'] or 0:11.3f} {shown[0]:>10} {shown[1]:>9}")  # fmt: skip
    for mode, entry in figures.items():
        print(
            f"{mode:<8} P1 {entry['P1_get_over_echo']:.3f}  P2 {entry['P2_update_over_echo']:.3f}"
        )
    if "tracing" not in figures:
        print(f"tracing: {notes.get('tracing')}")
    print(f"scrapes: {notes['scrapes']} ({notes['scrape_ms_mean']:.1f} ms, "
          f"{notes['scrape_bytes']:,} bytes each)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--short", action="store_true", help="3 s phases")
    parser.add_argument("--json", default=str(ROOT / "results" / "observability.json"))
    args = parser.parse_args()
    plan = Plan(duration=3 if args.short else 5, warmup=1, big=0, delete_pool=0)
    _clean_environment()
    result = asyncio.run(run(plan))
    report(result)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"plan": plan.__dict__, **result}, indent=2) + "\n")
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
