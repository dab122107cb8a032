"""`jobctl bench` options: the argparse flags and their validation into one frozen config."""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BUILTIN_OPS = ("echo", "create", "get", "list", "update", "delete", "delete-all")
PROFILES = ("scheduled", "batch", "transfer", "backup")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
MAX_DURATION = 600.0
MAX_JOBS = 100_000_000
_ROUTE_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,39}")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,127}")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_LOOPBACK = "127.0.0.1"


class UsageError(Exception):
    """A bad option value; the CLI prints it and exits 2."""


@dataclass(frozen=True)
class Route:
    """An extra HTTP operation (any dialect): method and path template."""

    name: str
    method: str
    path: str


@dataclass(frozen=True)
class BenchConfig:
    """Everything one `jobctl bench` run needs (picklable: it goes to client processes)."""

    grpc_target: str = f"{_LOOPBACK}:50051"
    http_url: str = f"http://{_LOOPBACK}:8080"
    protocol: str = "grpc"
    serve: bool = False
    serve_env: tuple[tuple[str, str], ...] = ()
    mix: tuple[tuple[str, int], ...] = (("get", 100),)
    routes: tuple[Route, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    # a bearer JWT (from --token FILE) for a secured server: gRPC metadata and HTTP header
    token: str = field(default="", repr=False)
    body: str | None = None
    concurrency: int = 64
    rate: float | None = None
    max_in_flight: int = 4096
    warmup: float = 2.0
    duration: float = 10.0
    requests: int | None = None
    timeout: float = 30.0
    processes: int = 1
    collection: str = "bench"
    profile: str = "scheduled"
    jobs: int = 1000
    seed_database: str | None = None
    reuse: bool = False
    baseline: str | None = None
    json_out: str | None = None
    run_token: str = field(default="", compare=False)

    @property
    def ops(self) -> tuple[str, ...]:
        """The operations of the mix, in the order given."""
        return tuple(op for op, _ in self.mix)

    @property
    def needs_http(self) -> bool:
        """Whether any operation goes over HTTP (REST protocol or a --route op)."""
        route_names = {r.name for r in self.routes}
        return self.protocol == "rest" or any(op in route_names for op in self.ops)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        """The gRPC metadata of every call (None: none)."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else None

    def route(self, name: str) -> Route | None:
        """The --route called `name`, if any."""
        return next((r for r in self.routes if r.name == name), None)

    def public(self) -> dict[str, Any]:
        """The config as JSON-ready values for the report."""
        out = asdict(self)
        out["mix"] = dict(self.mix)
        out["serve_env"] = dict(self.serve_env)
        out["headers"] = dict(self.headers)
        out["routes"] = {r.name: f"{r.method} {r.path}" for r in self.routes}
        out.pop("run_token")
        out["token"] = bool(self.token)  # whether one was sent, never the secret
        return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `jobctl bench` flags."""
    target = parser.add_argument_group("target")
    target.add_argument(
        "--grpc", metavar="HOST:PORT", help=f"gRPC server (default {_LOOPBACK}:50051)"
    )
    target.add_argument(
        "--http", metavar="URL", help=f"REST gateway base URL (default http://{_LOOPBACK}:8080)"
    )
    target.add_argument(
        "--protocol",
        default="grpc",
        metavar="grpc|rest",
        help="grpc or rest (the native JSON mapping) [grpc]",
    )
    target.add_argument(
        "--serve",
        action="store_true",
        help="start `jobctl serve` (and its gateway for REST) on 127.0.0.1 with free ports "
        "and a fresh temp database, run, stop it; reports server/gateway CPU ms per request",
    )
    target.add_argument(
        "--serve-env",
        action="append",
        default=[],
        metavar="K=V",
        help="setting for the served server, e.g. JOBCONTROL_MAX_BATCH=64 (repeatable)",
    )
    ops = parser.add_argument_group("operations")
    ops.add_argument(
        "--mix",
        default="get=100",
        help="weighted operations, e.g. get=70,update=20,delete=10; ops: "
        + ", ".join(BUILTIN_OPS)
        + " and --route names [get=100]",
    )
    ops.add_argument(
        "--route",
        action="append",
        default=[],
        metavar="NAME='METHOD /path'",
        help="an extra HTTP op for --mix; the path may use {collection} and {job} "
        "(a random seeded id; a never-deleted one for DELETE) (repeatable)",
    )
    ops.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'K: V'",
        help="header sent with every HTTP request (repeatable)",
    )
    ops.add_argument(
        "--token",
        metavar="FILE",
        help="file holding a bearer JWT for a secured server (e.g. from `jobctl token`): "
        "sent with every gRPC call and HTTP request, seeding included",
    )
    ops.add_argument(
        "--body", help="JSON body of --route requests; may contain {job} and {collection}"
    )
    load = parser.add_argument_group("load")
    load.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        default=64,
        help="closed loop: requests in flight [64]",
    )
    load.add_argument(
        "--rate",
        type=float,
        metavar="R",
        help="open loop: requests per second at fixed intervals over all processes; "
        "latency counts from the scheduled send time",
    )
    load.add_argument(
        "--max-in-flight",
        type=int,
        metavar="N",
        default=4096,
        help="open loop: most outstanding requests; the rest count as OVERLOAD [4096]",
    )
    load.add_argument(
        "--processes",
        type=int,
        metavar="P",
        default=1,
        help="client processes sharing the load [1]",
    )
    bounds = parser.add_argument_group("bounds")
    bounds.add_argument(
        "--warmup", type=float, metavar="S", default=2.0, help="seconds not recorded [2]"
    )
    bounds.add_argument(
        "--duration",
        type=float,
        metavar="S",
        default=10.0,
        help=f"seconds measured per phase, at most {MAX_DURATION:.0f} [10]",
    )
    bounds.add_argument(
        "--requests", type=int, metavar="N", help="stop a phase after N recorded requests"
    )
    bounds.add_argument(
        "--timeout", type=float, metavar="S", default=30.0, help="per-request deadline [30]"
    )
    pop = parser.add_argument_group("population")
    pop.add_argument("--collection", default="bench", metavar="ID", help="collection id [bench]")
    pop.add_argument(
        "--profile",
        default="scheduled",
        metavar="PROFILE",
        help="profile of the collection if it is created: " + ", ".join(PROFILES) + " [scheduled]",
    )
    pop.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        default=1000,
        help="jobs seeded as j00000000, j00000001, ... [1000]",
    )
    pop.add_argument(
        "--seed-database",
        metavar="URL",
        help="seed by copying the first job straight into this SQLite database "
        "(implied by --serve)",
    )
    pop.add_argument(
        "--reuse",
        action="store_true",
        help="the collection and its jobs exist already (from an earlier run): "
        "create and seed nothing",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--baseline",
        metavar="echo",
        help="echo: first run the same load with op echo; report ratios to its throughput",
    )
    out.add_argument("--json", dest="json_out", metavar="FILE", help="write JSON here (- stdout)")


def _positive(name: str, value: float | None, allow_zero: bool = False) -> None:
    if value is None:
        return
    if value != value or value < 0 or (value == 0 and not allow_zero):  # NaN or negative
        raise UsageError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def parse_mix(text: str, extra_ops: tuple[str, ...] = ()) -> tuple[tuple[str, int], ...]:
    """`get=70,update=20` into ((op, weight), ...); unknown ops, bad or zero weights and
    repeats are refused."""
    known = (*BUILTIN_OPS, *extra_ops)
    mix: list[tuple[str, int]] = []
    if not text.strip():
        raise UsageError("--mix is empty")
    for part in text.split(","):
        op, sep, raw = part.strip().partition("=")
        op = op.strip()
        if not sep:
            raise UsageError(f"--mix: {part.strip()!r} is not OP=WEIGHT")
        if op not in known:
            raise UsageError(f"--mix: unknown operation {op!r} (known: {', '.join(known)})")
        try:
            weight = int(raw.strip())
        except ValueError:
            raise UsageError(f"--mix: weight of {op} is not an integer: {raw.strip()!r}") from None
        if weight <= 0:
            raise UsageError(f"--mix: weight of {op} must be > 0, got {weight}")
        if any(op == seen for seen, _ in mix):
            raise UsageError(f"--mix: {op} given twice")
        mix.append((op, weight))
    return tuple(mix)


def parse_route(text: str) -> Route:
    """NAME='METHOD /path' into a Route."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not _ROUTE_NAME.fullmatch(name):
        raise UsageError(f"--route: {text!r} is not NAME='METHOD /path' (name: [a-z][a-z0-9_.-]*)")
    if name in BUILTIN_OPS:
        raise UsageError(f"--route: {name!r} is a built-in operation")
    parts = rest.strip().split()
    if len(parts) != 2 or parts[0].upper() not in HTTP_METHODS or not parts[1].startswith("/"):
        raise UsageError(f"--route {name}: {rest.strip()!r} is not 'METHOD /path'")
    for placeholder in _PLACEHOLDER.findall(parts[1]):
        if placeholder not in ("job", "collection"):
            raise UsageError(f"--route {name}: unknown placeholder {{{placeholder}}}")
    return Route(name, parts[0].upper(), parts[1])


def _parse_header(text: str) -> tuple[str, str]:
    key, sep, value = text.partition(":")
    if not sep or not key.strip() or any(c.isspace() for c in key.strip()):
        raise UsageError(f"--header: {text!r} is not 'Name: value'")
    return key.strip(), value.strip()


def _read_token(path: str | None) -> str:
    if path is None:
        return ""
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise UsageError(f"--token: cannot read {path}: {exc.strerror}") from None
    if not token or any(c.isspace() for c in token):
        raise UsageError(f"--token: {path} does not hold one token")
    return token


def _parse_env(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--serve-env: {text!r} is not K=V")
    return key, value


def _check_host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--grpc: {value!r} is not HOST:PORT")
    return value


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--http: {value!r} is not an http(s):// URL")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise UsageError(f"--http: bad port in {value!r}") from None
    return value.rstrip("/")


def from_args(args: argparse.Namespace) -> BenchConfig:
    """Validate parsed flags into a BenchConfig; UsageError says what is wrong."""
    protocol = str(args.protocol).lower()
    if protocol not in ("grpc", "rest"):
        raise UsageError(f"--protocol must be grpc or rest, got {args.protocol!r}")
    if args.serve and (args.grpc or args.http):
        raise UsageError("--serve starts its own server: do not give --grpc or --http")
    routes = tuple(parse_route(r) for r in args.route)
    if len({r.name for r in routes}) != len(routes):
        raise UsageError("--route: a name is given twice")
    mix = parse_mix(args.mix, tuple(r.name for r in routes))
    if args.concurrency is None or args.concurrency < 1 or args.concurrency > 100_000:
        raise UsageError(f"--concurrency must be 1..100000, got {args.concurrency}")
    _positive("--rate", args.rate)
    if args.max_in_flight < 1:
        raise UsageError(f"--max-in-flight must be >= 1, got {args.max_in_flight}")
    if not 1 <= args.processes <= 64:
        raise UsageError(f"--processes must be 1..64, got {args.processes}")
    if args.rate is None and args.concurrency < args.processes:
        raise UsageError("--concurrency must be at least --processes")
    if args.rate is not None and args.max_in_flight < args.processes:
        raise UsageError("--max-in-flight must be at least --processes")
    _positive("--warmup", args.warmup, allow_zero=True)
    _positive("--duration", args.duration)
    if args.duration > MAX_DURATION:
        raise UsageError(f"--duration is at most {MAX_DURATION:.0f} s, got {args.duration}")
    if args.warmup > MAX_DURATION:
        raise UsageError(f"--warmup is at most {MAX_DURATION:.0f} s, got {args.warmup}")
    if args.requests is not None and args.requests < 1:
        raise UsageError(f"--requests must be >= 1, got {args.requests}")
    _positive("--timeout", args.timeout)
    if not _ID.fullmatch(args.collection):
        raise UsageError(f"--collection: {args.collection!r} is not a valid collection id")
    profile = str(args.profile).lower()
    if profile not in PROFILES:
        raise UsageError(f"--profile must be one of {', '.join(PROFILES)}, got {args.profile!r}")
    if not 0 <= args.jobs <= MAX_JOBS:
        raise UsageError(f"--jobs must be 0..{MAX_JOBS}, got {args.jobs}")
    needs_jobs = {"get", "update", "delete"} & set(op for op, _ in mix)
    if any(r.name in dict(mix) and "{job}" in r.path for r in routes):
        needs_jobs.add("route")
    if args.body is not None and "{job}" in args.body:
        needs_jobs.add("body")
    if needs_jobs and args.jobs == 0:
        raise UsageError(f"--jobs 0: {', '.join(sorted(needs_jobs))} need seeded jobs")
    if args.body is not None:
        try:
            json.loads(args.body.replace("{job}", "x").replace("{collection}", "x"))
        except ValueError:
            raise UsageError(f"--body is not JSON: {args.body!r}") from None
    if args.baseline is not None and args.baseline != "echo":
        raise UsageError(f"--baseline: only echo is supported, got {args.baseline!r}")
    if args.seed_database is not None and args.serve:
        raise UsageError("--serve picks its own database: do not give --seed-database")
    return BenchConfig(
        grpc_target=_check_host_port(args.grpc) if args.grpc else f"{_LOOPBACK}:50051",
        http_url=_check_url(args.http) if args.http else f"http://{_LOOPBACK}:8080",
        protocol=protocol,
        serve=bool(args.serve),
        serve_env=tuple(_parse_env(e) for e in args.serve_env),
        mix=mix,
        routes=routes,
        headers=tuple(_parse_header(h) for h in args.header),
        token=_read_token(args.token),
        body=args.body,
        concurrency=args.concurrency,
        rate=args.rate,
        max_in_flight=args.max_in_flight,
        warmup=args.warmup,
        duration=args.duration,
        requests=args.requests,
        timeout=args.timeout,
        processes=args.processes,
        collection=args.collection,
        profile=profile,
        jobs=args.jobs,
        seed_database=args.seed_database,
        reuse=bool(args.reuse),
        baseline=args.baseline,
        json_out=args.json_out,
    )
