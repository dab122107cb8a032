"""C load generators for bench/run.py: h2load (nghttp2) for gRPC, wrk for REST.

A Python client spends about as much CPU per request as the server it measures, and on two
cores the two share the machine; h2load and wrk cost a few microseconds a request, so the
server's figures are its own. Each run is bounded by its duration (`-D` / `-d`).

- **gRPC (h2load).** Every request of a run is the same framed message (h2load has one
  body per run): Echo, GetJob of one job, UpdateJob of one job. That UpdateJob sets the
  display name the job already has, so after the first call it writes nothing (the core's
  rule: no change, no write; the etag and update time stay) and measures the read and
  compare path only. h2load re-reads the body file per request, but it sends in bursts, so
  rewriting the file between requests does not make each body distinct. h2load reads only
  the HTTP status, which gRPC leaves 200 on a failure, so the gRPC outcome of every call is
  counted from the server's own `grpc_server_handled_total` before and after the run (the
  bench server runs with metrics on). A run that is not all OK is reported with its
  errors. Latency percentiles come from h2load's per-request log (main phase only).
- **REST (wrk).** A Lua script per run: the method, a path and body per request (updates
  spread over the collection's jobs, deletes walk a pool of ids never deleted before), and
  a `done` hook that prints the figures as one JSON line. Non-2xx replies are errors.
  wrk has no warm-up phase of its own; a warm-up run goes first.

Durable gRPC writes (an UpdateJob that changes something, a DeleteJob) need a different
body per request, which h2load cannot send; they stay on the Python client.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import struct
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

H2LOAD = shutil.which("h2load")
WRK = shutil.which("wrk")
_HANDLED = re.compile(
    r"^grpc_server_handled_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$", re.MULTILINE
)
_CUT = frozenset({"-1", "0"})  # h2load's log: a stream failed, or cut before its headers
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def available() -> bool:
    """Both C clients are installed (`make bench-tools` installs them on Debian)."""
    return H2LOAD is not None and WRK is not None


def _figures(latencies_ms: list[float], count: int, seconds: float,
             errors: dict[str, int]) -> dict[str, Any]:  # fmt: skip
    """The Python generator's op record shape: throughput, percentiles, errors."""
    ordered = sorted(latencies_ms)

    def pct(q: float) -> float | None:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None

    return {"count": count, "throughput": count / seconds if seconds else 0.0,
            "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
            "max_ms": ordered[-1] if ordered else None, "errors": errors}  # fmt: skip


def window(answered: list[tuple[int, float]], start: float, end: float) -> dict[str, Any]:
    """Figures of the requests of a run that started in [start, end) (epoch seconds; the
    window begins no earlier than the run's first request)."""
    start = max(start, min((began for began, _ in answered), default=0) / 1e6)
    lo, hi = start * 1e6, end * 1e6
    inside = [ms for began, ms in answered if lo <= began < hi]
    return _figures(inside, len(inside), max(end - start, 0.0), {})


def handled(metrics_url: str, method: str) -> dict[str, float]:
    """`grpc_server_handled_total` of one method (`Service/Method`), by gRPC code."""
    service, name = method.rsplit("/", 1)
    with urllib.request.urlopen(metrics_url, timeout=5) as reply:
        text = reply.read().decode()
    out: dict[str, float] = {}
    for match in _HANDLED.finditer(text):
        labels = dict(_LABEL.findall(match["labels"]))
        if labels.get("grpc_service") == service and labels.get("grpc_method") == name:
            out[labels["grpc_code"]] = float(match["value"])
    return out


@dataclass
class GrpcLoad:
    """One h2load run of one unary method with one request message."""

    target: str  # HOST:PORT
    metrics_url: str
    method: str  # "jobcontrol.v1.JobService/GetJob"
    message: bytes  # the serialised request
    in_flight: int
    duration: float
    warmup: float
    token: str | None = None
    # after run(): the main phase's answered requests, (start in µs since the epoch,
    # latency in ms), for figures over a window of the run (P6: during a delete-all)
    answered: list[tuple[int, float]] = field(default_factory=list, repr=False)

    async def run(self) -> dict[str, Any]:
        assert H2LOAD is not None
        with tempfile.TemporaryDirectory(prefix="jobctl-h2load-") as tmp:
            body = Path(tmp) / "request"
            body.write_bytes(b"\0" + struct.pack(">I", len(self.message)) + self.message)
            log = Path(tmp) / "log"
            auth = ["-H", f"authorization: Bearer {self.token}"] if self.token else []
            before = handled(self.metrics_url, self.method)
            out = await _run([H2LOAD, "-c", "1", "-m", str(self.in_flight),
                              "-D", f"{self.duration:g}", "--warm-up-time", f"{self.warmup:g}",
                              "-d", str(body), "-H", "content-type: application/grpc",
                              "-H", "te: trailers", *auth, f"--log-file={log}",
                              f"http://{self.target}/{self.method}"],
                             self.duration + self.warmup + 30)  # fmt: skip
            after = handled(self.metrics_url, self.method)
            rows = [line.split("\t") for line in log.read_text().splitlines() if line]
        if "finished in" not in out:
            raise RuntimeError(f"h2load printed no result:\n{out[-2000:]}")
        codes = {k: int(after.get(k, 0.0) - before.get(k, 0.0)) for k in after}
        # h2load resets the streams still in flight when the run ends (status -1 or 0 in
        # its log; the server counts them Canceled): the stop's, not the server's errors
        reset = sum(1 for row in rows if row[1] in _CUT)
        cut = min(codes.get("Canceled", 0), self.in_flight)
        if cut:
            codes["Canceled"] -= cut
        errors = {code: n for code, n in codes.items() if code != "OK" and n}
        other = sum(1 for row in rows if row[1] != "200" and row[1] not in _CUT)
        if reset > self.in_flight or other:
            errors["HTTP"] = other + max(0, reset - self.in_flight)
        # the log's rows are the main phase's (`duration`), warm-up excluded
        self.answered = [(int(row[0]), int(row[2]) / 1000) for row in rows if row[1] == "200"]
        latencies = [ms for _, ms in self.answered]
        failed = sum(n for code, n in errors.items() if code != "HTTP")
        figures = _figures(latencies, max(len(latencies) - failed, 0), self.duration, errors)
        figures["reset_at_stop"] = reset
        return figures


# wrk's Lua: one request per call, the figures as one JSON line at the end
_WRK_SCRIPT = """
local paths, bodies, method = {paths}, {bodies}, "{method}"
local start, count = {start}, {count}
local i = start
wrk.headers["Content-Type"] = "application/json"
{auth}
request = function()
  local path = string.format(paths[1], i % count)
  if {walk} then path = string.format(paths[1], i) end
  local body = nil
  if bodies[1] ~= "" then body = string.format(bodies[1], i) end
  i = i + 1
  return wrk.format(method, path, nil, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{{"requests": %d, "us": %d, "p50": %d, "p90": %d, "p99": %d, ' ..
    '"max": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass
class RestLoad:
    """One wrk run: `path` is a printf pattern of the request number (`%d` / `%08d`);
    `walk` takes numbers start, start+1, … (ids never used before), else start+i modulo
    `count` (spread over a collection)."""

    base_url: str
    method: str
    path: str
    body: str  # printf pattern of the request number, or ""
    in_flight: int
    duration: float
    count: int = 1
    walk: bool = False
    start: int = 0
    token: str | None = None

    async def run(self) -> dict[str, Any]:
        assert WRK is not None
        auth = f'wrk.headers["Authorization"] = "Bearer {self.token}"' if self.token else ""
        script = _WRK_SCRIPT.format(paths=_lua_list(self.path), bodies=_lua_list(self.body),
                                    method=self.method, start=self.start, count=self.count,
                                    walk="true" if self.walk else "false", auth=auth)  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="jobctl-wrk-") as tmp:
            lua = Path(tmp) / "load.lua"
            lua.write_text(script)
            out = await _run([WRK, "-t", "1", "-c", str(self.in_flight),
                              "-d", f"{self.duration:g}s", "--timeout", "10s", "-s", str(lua),
                              self.base_url], self.duration + 30)  # fmt: skip
        line = next((x for x in out.splitlines() if x.startswith('{"requests"')), None)
        if line is None:
            raise RuntimeError(f"wrk printed no result:\n{out[-2000:]}")
        f = json.loads(line)
        errors = {k: f[k] for k in ("connect", "read", "write", "status", "timeout") if f[k]}
        ok = f["requests"] - f["status"]
        seconds = f["us"] / 1e6
        return {"count": ok, "throughput": ok / seconds if seconds else 0.0,
                "p50_ms": f["p50"] / 1000, "p90_ms": f["p90"] / 1000, "p99_ms": f["p99"] / 1000,
                "max_ms": f["max"] / 1000, "errors": errors, "requests": f["requests"]}  # fmt: skip


def _lua_list(value: str) -> str:
    return "{" + json.dumps(value) + "}"


async def _run(argv: list[str], bound: float) -> str:
    """Run a load generator to its end (bounded), its stdout; a failure raises."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    began = time.monotonic()
    try:
        out, _ = await asyncio.wait_for(process.communicate(), bound)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError(f"{argv[0]} ran past {bound:.0f} s") from None
    if process.returncode != 0:
        seconds = time.monotonic() - began
        raise RuntimeError(f"{argv[0]} exited {process.returncode} after {seconds:.1f} s:\n"
                           f"{out.decode()[-2000:]}")  # fmt: skip
    return out.decode()
