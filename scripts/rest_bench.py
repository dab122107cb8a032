"""REST gateway vs direct gRPC: throughput, latency and CPU per request, in one run (P3).

Starts `jobctl serve` on 127.0.0.1 (gRPC on a port chosen by the OS, the REST gateway on a
free port) over a fresh SQLite file, seeds one collection and N jobs over gRPC, then drives
Echo, GetJob and UpdateJob with a fixed number of requests in flight for a bounded time:
directly over gRPC with `h2load` and through the gateway with `wrk`. The CPU time of the
gRPC server process and of the gateway process (utime+stime from /proc/<pid>/stat) is read
before and after every phase and divided by the requests completed. Prints a table and the
REST/gRPC ratio per operation against target P3 (../shared/spec/performance.md); --json
writes the same figures to a file.

Needs `wrk` and `h2load` (Debian: apt-get install -y wrk nghttp2-client).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import math
import os
import re
import resource
import shutil
import signal
import struct
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message

from jobcontrol.service.loadgen.served import free_port
from jobcontrol.service.loadgen.stats import percentile
from jobcontrol.v1 import (
    diagnostics_service_pb2,
    diagnostics_service_pb2_grpc,
    job_service_pb2,
    job_service_pb2_grpc,
    resources_pb2,
)

HOST = "127.0.0.1"
COLLECTION = "bench"
INSTALL_HINT = "apt-get install -y wrk nghttp2-client"
CLK_TCK = os.sysconf("SC_CLK_TCK")
OPERATIONS = ("Echo", "GetJob", "UpdateJob")
# h2load cannot vary a request, so every gRPC call of an operation is the same one.
H2_GET_JOB = 1
H2_UPDATE_JOB = 2
P3_RATIO = 0.60
P3_GATEWAY_CPU_MS = 0.25


@dataclass
class Phase:
    """One measured phase: an operation over one transport."""

    operation: str
    transport: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    seconds: float
    gateway_cpu_ms_per_req: float
    server_cpu_ms_per_req: float
    gateway_cores: float
    server_cores: float
    tool_cores: float
    other_cores: float
    note: str = ""


@dataclass
class ToolRun:
    """What a load tool reported for its main (measured) run."""

    rps: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    note: str = ""


@dataclass
class Service:
    """The `jobctl serve` child, its gRPC address and its gateway child."""

    proc: asyncio.subprocess.Process
    grpc_address: str = ""
    http_port: int = 0
    gateway_pid: int = 0
    drain: asyncio.Task[None] | None = None


# --- processes --------------------------------------------------------------------------


def proc_stat(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat from field 3 (state) on; the name may hold spaces."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def children_of(pid: int) -> list[int]:
    """Pids whose parent is `pid` (scan of /proc/*/stat)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(proc_stat(int(entry.name))[1]) == pid:
                found.append(int(entry.name))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        state = proc_stat(pid)[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def jobctl_command() -> list[str]:
    script = Path(sys.executable).parent / "jobctl"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "jobcontrol.service.cli"]


async def start_service(tmp: Path) -> Service:
    """Start `jobctl serve` and return once its gRPC address is printed (the caller waits
    for /readyz)."""
    http_port = free_port()
    env = {**os.environ, "JOBCONTROL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db"}
    log = (tmp / "serve.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        *jobctl_command(), "serve",
        "--grpc-address", f"{HOST}:0", "--http-address", f"{HOST}:{http_port}",
        "--log-level", "WARNING", "--shutdown-grace", "3",
        stdout=asyncio.subprocess.PIPE, stderr=log, env=env,
    )  # fmt: skip
    log.close()
    return Service(proc=proc, http_port=http_port)


async def wait_ready(service: Service, tmp: Path) -> None:
    """gRPC address from stdout, gateway pid from /proc, then GET /readyz = 200."""
    assert service.proc.stdout is not None
    stdout = service.proc.stdout
    line = (await asyncio.wait_for(stdout.readline(), 30)).decode()
    match = re.search(r"listening on (\S+)", line)
    if not match:
        log = (tmp / "serve.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"jobctl serve did not start: {line!r}\n{log}")
    service.grpc_address = match.group(1)

    async def drain() -> None:
        while await stdout.readline():
            pass

    service.drain = asyncio.create_task(drain())
    url = f"http://{HOST}:{service.http_port}/readyz"
    deadline = time.monotonic() + 30
    while True:
        if service.proc.returncode is not None:
            raise RuntimeError(f"jobctl serve exited with {service.proc.returncode}")
        if not service.gateway_pid:
            gateways = [p for p in children_of(service.proc.pid) if "gateway" in cmdline(p)]
            service.gateway_pid = gateways[0] if gateways else 0
        if service.gateway_pid and await asyncio.to_thread(http_status, url) == 200:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"gateway not ready at {url} after 30 s")
        await asyncio.sleep(0.1)


def http_status(url: str, method: str = "GET", body: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


async def stop_service(service: Service) -> None:
    """SIGTERM (jobctl stops its gateway first), then SIGKILL; the gateway likewise."""
    proc = service.proc
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    if service.drain is not None:
        service.drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await service.drain
    pid = service.gateway_pid
    if pid and alive(pid) and "gateway" in cmdline(pid):
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not alive(pid):
                return
            await asyncio.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def run_tool(argv: list[str], limit: float) -> tuple[str, float]:
    """Run a load tool to completion (killed after `limit` s); its stdout and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(limit):
            out, err = await proc.communicate()
    except BaseException as exc:  # time limit, or the run was cancelled: stop the tool
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if isinstance(exc, TimeoutError):
            raise RuntimeError(f"{argv[0]} did not finish within {limit:.0f} s") from None
        raise
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out.decode(), cpu


# --- load tools -------------------------------------------------------------------------


def grpc_frame(message: Message) -> bytes:
    """The gRPC length-prefixed message: flag byte 0, 4-byte big-endian length, payload."""
    payload = message.SerializeToString()
    return b"\0" + struct.pack(">I", len(payload)) + payload


def _percentile(ordered: list[float], pct: float) -> float:
    """The loadgen's nearest-rank percentile, NaN without samples (for the report table)."""
    found = percentile(ordered, pct)
    return math.nan if found is None else found


def h2load_argv(
    url: str, data: Path, seconds: int, in_flight: int, connections: int, log: Path | None
) -> list[str]:
    argv = ["h2load", "-D", str(seconds), "-t", "1", "-c", str(connections),
            "-m", str(in_flight // connections), "-d", str(data),
            "-H", "content-type: application/grpc", "-H", "te: trailers"]  # fmt: skip
    if log is not None:
        argv.append(f"--log-file={log}")
    return [*argv, url]


def parse_h2load(out: str, log: Path, reply_size: tuple[int, int]) -> ToolRun:
    """req/s and counts from h2load's summary, p50/p99 from its per-request log.

    gRPC errors are HTTP 200 with a grpc-status trailer and no DATA, which h2load cannot
    see; a lower bound on them follows from the DATA bytes received and the smallest
    reply a successful call can have."""
    finished = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    counts = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed", out
    )
    data = re.search(r"\((\d+)\) data", out)
    if not (finished and counts and data):
        raise RuntimeError(f"cannot parse h2load output:\n{out}")
    done, succeeded, failed = int(counts[3]), int(counts[4]), int(counts[5])
    latencies = []
    for line in log.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[1].startswith("2"):
            latencies.append(int(parts[2]) / 1000)
    latencies.sort()
    smallest = reply_size[0]
    hidden = max(0, math.floor(succeeded - int(data[1]) / smallest)) if done else 0
    note = f"{int(data[1]) / max(done, 1):.1f} B/reply received, {reply_size[1]} B expected"
    return ToolRun(
        rps=float(finished[1]),
        requests=succeeded,
        errors=failed + hidden,
        p50_ms=_percentile(latencies, 50),
        p99_ms=_percentile(latencies, 99),
        note=note,
    )


WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%.1f,"p99_us":%.1f,' ..
    '"status":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
"""


def wrk_scripts(jobs: int) -> dict[str, str]:
    """Lua per operation: fixed Echo body; GetJob and UpdateJob rotate over the jobs."""
    base = f"/v1/collections/{COLLECTION}/jobs/j"
    return {
        "Echo": f"""
wrk.method = "POST"
wrk.path = "/v1:echo"
wrk.body = '{{"message":"x"}}'
wrk.headers["Content-Type"] = "application/json"
{WRK_DONE}""",
        "GetJob": f"""
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "{base}" .. (n % {jobs}))
end
{WRK_DONE}""",
        "UpdateJob": f"""
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  return wrk.format("PATCH", "{base}" .. (n % {jobs}), nil,
                    '{{"displayName":"w' .. n .. '"}}')
end
{WRK_DONE}""",
    }


def wrk_argv(url: str, script: Path, seconds: int, in_flight: int) -> list[str]:
    return ["wrk", "-t", "1", "-c", str(in_flight), "-d", f"{seconds}s", "--timeout", "10s",
            "-s", str(script), url]  # fmt: skip


def parse_wrk(out: str) -> ToolRun:
    match = re.search(r"^WRKJSON (\{.*\})$", out, re.MULTILINE)
    if not match:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    r = json.loads(match[1])
    socket_errors = r["connect"] + r["read"] + r["write"] + r["timeout"]
    return ToolRun(
        rps=r["requests"] / (r["duration_us"] / 1e6),
        requests=r["requests"],
        errors=r["status"] + socket_errors,
        p50_ms=r["p50_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        note=f"{r['status']} HTTP >=400, {socket_errors} socket errors",
    )


# --- phases -----------------------------------------------------------------------------


async def measure(
    operation: str,
    transport: str,
    argv: list[str],
    warmup_argv: list[str],
    parse: Callable[[str], ToolRun],
    service: Service,
    args: argparse.Namespace,
) -> Phase:
    """Warm-up run, then the measured run with CPU snapshots of both processes."""
    print(f"  {operation} over {transport}: warm-up {args.warmup} s, "
          f"{args.seconds} s measured", file=sys.stderr)  # fmt: skip
    await run_tool(warmup_argv, args.warmup + 30)
    server, gateway = service.proc.pid, service.gateway_pid
    server_before, gateway_before = cpu_seconds(server), cpu_seconds(gateway)
    busy_before = busy_seconds()
    began = time.perf_counter()
    out, tool_cpu = await run_tool(argv, args.seconds + 30)
    wall = time.perf_counter() - began
    server_cpu = cpu_seconds(server) - server_before
    gateway_cpu = cpu_seconds(gateway) - gateway_before
    other_cpu = max(0.0, busy_seconds() - busy_before - server_cpu - gateway_cpu - tool_cpu)
    result = parse(out)
    n = max(result.requests, 1)
    return Phase(
        operation=operation,
        transport=transport,
        rps=result.rps,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        requests=result.requests,
        errors=result.errors,
        seconds=wall,
        gateway_cpu_ms_per_req=gateway_cpu * 1000 / n,
        server_cpu_ms_per_req=server_cpu * 1000 / n,
        gateway_cores=gateway_cpu / wall,
        server_cores=server_cpu / wall,
        tool_cores=tool_cpu / wall,
        other_cores=other_cpu / wall,
        note=result.note,
    )


async def seed(channel: grpc.aio.Channel, jobs: int) -> None:
    stub = job_service_pb2_grpc.JobServiceStub(channel)
    await stub.CreateCollection(
        job_service_pb2.CreateCollectionRequest(
            collection_id=COLLECTION,
            collection=resources_pb2.Collection(profile=resources_pb2.SCHEDULED),
        )
    )
    spec = resources_pb2.ScheduledSpec(
        action=resources_pb2.JobAction(
            type=resources_pb2.JobAction.HTTP,
            request=resources_pb2.HttpRequest(uri="http://example.invalid/", method="GET"),
        )
    )
    for start in range(0, jobs, 200):
        await asyncio.gather(
            *(
                stub.CreateJob(
                    job_service_pb2.CreateJobRequest(
                        parent=f"collections/{COLLECTION}",
                        job_id=f"j{i}",
                        job=resources_pb2.Job(scheduled=spec),
                    )
                )
                for i in range(start, min(jobs, start + 200))
            )
        )


def job_name(i: int) -> str:
    return f"collections/{COLLECTION}/jobs/j{i}"


@dataclass
class Operation:
    """One operation: its gRPC method and request, a Python call that checks it works, and
    the REST request that checks it through the gateway."""

    name: str
    method: str
    request: Message
    check: Callable[[], Awaitable[Message]]
    rest: tuple[str, str, bytes | None]
    size_slack: int = 0  # how much smaller than the checked reply a good reply can be


def operations(channel: grpc.aio.Channel) -> list[Operation]:
    jobs = job_service_pb2_grpc.JobServiceStub(channel)
    diag = diagnostics_service_pb2_grpc.DiagnosticsServiceStub(channel)
    echo = diagnostics_service_pb2.EchoRequest(message="x")
    get = job_service_pb2.GetJobRequest(name=job_name(H2_GET_JOB))
    update = job_service_pb2.UpdateJobRequest(
        job=resources_pb2.Job(name=job_name(H2_UPDATE_JOB), display_name="h2")
    )
    rest_job = f"/v1/{job_name(0)}"
    return [
        Operation("Echo", "/jobcontrol.v1.DiagnosticsService/Echo", echo,
                  lambda: diag.Echo(echo), ("POST", "/v1:echo", b'{"message":"x"}')),
        Operation("GetJob", "/jobcontrol.v1.JobService/GetJob", get,
                  lambda: jobs.GetJob(get), ("GET", rest_job, None)),
        # timestamps in the reply vary by a byte or two in their encoded length
        Operation("UpdateJob", "/jobcontrol.v1.JobService/UpdateJob", update,
                  lambda: jobs.UpdateJob(update),
                  ("PATCH", rest_job, b'{"displayName":"check"}'), size_slack=4),
    ]  # fmt: skip


async def run(service: Service, tmp: Path, args: argparse.Namespace) -> list[Phase]:
    phases: list[Phase] = []
    http = f"http://{HOST}:{service.http_port}"
    lua = wrk_scripts(args.jobs)
    connections = args.h2_connections
    if connections < 1 or args.in_flight % connections:
        connections = args.h2_connections = 1  # the JSON reports what was used
    async with grpc.aio.insecure_channel(service.grpc_address) as channel:
        print(f"seeding {args.jobs} jobs", file=sys.stderr)
        await seed(channel, args.jobs)
        for op in operations(channel):
            # direct gRPC, h2load
            data = tmp / f"{op.name}.bin"
            data.write_bytes(grpc_frame(op.request))
            log = tmp / f"{op.name}.h2log"
            url = f"http://{service.grpc_address}{op.method}"
            warm = h2load_argv(url, data, args.warmup, args.in_flight, connections, None)
            main = h2load_argv(url, data, args.seconds, args.in_flight, connections, log)
            reply = await op.check()  # before, so the first reply size is known
            size = 5 + reply.ByteSize()
            phase = await measure(
                op.name, "gRPC", main, warm,
                functools.partial(
                    parse_h2load, log=log, reply_size=(size - op.size_slack, size)
                ),
                service, args,
            )  # fmt: skip
            await op.check()  # raises if the operation fails over gRPC
            phases.append(phase)
            # REST through the gateway, wrk
            script = tmp / f"{op.name}.lua"
            script.write_text(lua[op.name])
            phase = await measure(
                op.name, "REST", wrk_argv(http, script, args.seconds, args.in_flight),
                wrk_argv(http, script, args.warmup, args.in_flight), parse_wrk, service, args,
            )  # fmt: skip
            method, path, body = op.rest
            status = await asyncio.to_thread(http_status, http + path, method, body)
            if status != 200:
                phase.note += f"; check {method} {path} -> {status}"
                phase.errors = max(phase.errors, 1)
            phases.append(phase)
    return phases


# --- report -----------------------------------------------------------------------------


def report(phases: list[Phase], args: argparse.Namespace) -> dict[str, Any]:
    print(
        f"\n{args.in_flight} in flight, {args.warmup} s warm-up + {args.seconds} s per phase, "
        f"{args.jobs} jobs stored, {os.cpu_count()} CPUs; gRPC: h2load, "
        "REST: wrk -> gateway -> gRPC"
    )
    header = (
        f"{'operation':<10} {'transport':<9} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'errors':>6} {'gw ms/req':>9} {'srv ms/req':>10} {'gw core':>7} {'srv core':>8} "
        f"{'tool core':>9} {'other':>5}"
    )
    print(header)
    print("-" * len(header))
    for p in phases:
        gw = f"{p.gateway_cpu_ms_per_req:9.3f}" if p.transport == "REST" else f"{'-':>9}"
        print(
            f"{p.operation:<10} {p.transport:<9} {p.rps:7.0f} {p.p50_ms:7.2f} {p.p99_ms:7.2f} "
            f"{p.errors:6d} {gw} {p.server_cpu_ms_per_req:10.3f} {p.gateway_cores:7.2f} "
            f"{p.server_cores:8.2f} {p.tool_cores:9.2f} {p.other_cores:5.2f}"
        )
    by = {(p.operation, p.transport): p for p in phases}
    ratios: dict[str, dict[str, Any]] = {}
    print(f"\n{'operation':<10} {'REST/gRPC':>9} {'gw ms/req':>9}  P3 (>= 60%, <= 0.25 ms)")
    for name in OPERATIONS:
        g, r = by.get((name, "gRPC")), by.get((name, "REST"))
        if g is None or r is None:
            continue
        ratio = r.rps / g.rps if g.rps else math.nan
        ok_ratio, ok_cpu = ratio >= P3_RATIO, r.gateway_cpu_ms_per_req <= P3_GATEWAY_CPU_MS
        verdict = "met" if ok_ratio and ok_cpu else "NOT met"
        misses = [m for m, ok in (("ratio", ok_ratio), ("gateway CPU", ok_cpu)) if not ok]
        detail = f" ({', '.join(misses)})" if misses else ""
        print(f"{name:<10} {ratio:9.0%} {r.gateway_cpu_ms_per_req:9.3f}  {verdict}{detail}")
        ratios[name] = {
            "rest_over_grpc": ratio,
            "gateway_cpu_ms_per_req": r.gateway_cpu_ms_per_req,
            "p3_ratio_met": ok_ratio,
            "p3_gateway_cpu_met": ok_cpu,
        }
    print("\nnotes:")
    print(
        f"- h2load repeats one request per operation: gRPC GetJob reads j{H2_GET_JOB} and "
        f"gRPC UpdateJob rewrites j{H2_UPDATE_JOB} every time; wrk (REST) rotates GetJob and "
        f"UpdateJob over all {args.jobs} jobs."
    )
    print(
        "- gRPC errors: h2load failures + a lower bound on grpc-status errors (HTTP 200 "
        "without a reply message) from DATA bytes; each operation is also called once with "
        "the Python gRPC client after its phase and once over REST after its REST phase."
    )
    print("- REST errors: wrk responses with status >= 400 + socket errors.")
    print(
        "- CPU: utime+stime of the process from /proc/<pid>/stat over the measured run; "
        "'core' = CPU seconds / wall seconds; tool = the load generator (rusage of children); "
        "other = the rest of the machine's busy time (/proc/stat), i.e. noise from elsewhere."
    )
    for p in phases:
        print(f"- {p.operation} {p.transport}: {p.requests} requests; {p.note}")
    return {
        "in_flight": args.in_flight,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "jobs": args.jobs,
        "cpus": os.cpu_count(),
        "h2load_connections": args.h2_connections,
        "phases": [dataclasses.asdict(p) for p in phases],
        "ratios": ratios,
    }


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=5, help="measured seconds per phase")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up seconds per phase")
    parser.add_argument("--in-flight", type=int, default=64, help="requests in flight")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs seeded")
    parser.add_argument(
        "--h2-connections", type=int, default=4,
        help="h2load connections (in-flight / connections streams each; must divide it)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.seconds < 1 or args.warmup < 1 or args.in_flight < 1 or args.jobs < 3:
        parser.error("--seconds, --warmup and --in-flight must be >= 1, --jobs >= 3")
    missing = [tool for tool in ("wrk", "h2load") if shutil.which(tool) is None]
    if missing:
        print(
            f"missing load tool(s): {', '.join(missing)}\ninstall them with: {INSTALL_HINT}",
            file=sys.stderr,
        )
        return 2
    task = asyncio.current_task()
    assert task is not None
    # SIGTERM cancels the run like Ctrl-C does, so the finally below still stops the service
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    tmp = Path(tempfile.mkdtemp(prefix="jobcontrol-rest-bench-"))
    service: Service | None = None
    try:
        service = await start_service(tmp)
        await wait_ready(service, tmp)
        print(
            f"jobctl pid {service.proc.pid} (gRPC {service.grpc_address}), gateway pid "
            f"{service.gateway_pid} (http://{HOST}:{service.http_port})",
            file=sys.stderr,
        )
        phases = await run(service, tmp, args)
    finally:
        if service is not None:
            await stop_service(service)
        shutil.rmtree(tmp, ignore_errors=True)
    result = report(phases, args)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nJSON written to {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; service stopped", file=sys.stderr)
        sys.exit(130)
