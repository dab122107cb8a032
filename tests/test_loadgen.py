"""`jobctl bench`: option checks, closed and open loop, several processes, REST (native and
a dialect route), seeding, bounds and error accounting, against real servers. Runs are
tiny and nothing here asserts on a time or a throughput value, only on counts and shapes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jobcontrol.gateway.dialects.scheduler import SchedulerDialect
from jobcontrol.service.cli import build_parser
from jobcontrol.service.loadgen import config as bench_config
from jobcontrol.service.loadgen import targets
from jobcontrol.service.loadgen.bench import run_bench
from jobcontrol.service.loadgen.config import UsageError, parse_mix, parse_route
from jobcontrol.service.server import RunningServer
from jobcontrol.v1 import job_service_pb2, resources_pb2
from tests.conftest import Clients, RunningGateway, start_gateway
from tests.test_auth_server import secured_server

OP_KEYS = {"count", "throughput", "p50_ms", "p90_ms", "p99_ms", "max_ms", "errors"}
PHASE_KEYS = {"duration_s", "throughput", "ops", "cpu_ms_per_request"}
SHORT = ["--warmup", "0", "--duration", "0.5", "--concurrency", "4"]


async def bench(tmp_path: Path, *argv: str) -> dict[str, Any]:
    """Run `jobctl bench ARGV --json FILE` in this event loop; the report."""
    out = tmp_path / "report.json"
    assert await run_bench([*argv, "--json", str(out)]) == 0
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def against(server: RunningServer) -> list[str]:
    return ["--grpc", server.address]


def assert_op_shape(stats: dict[str, Any], ok: bool = True) -> None:
    """An op summary: every key; with successes, ordered positive percentiles."""
    assert set(stats) == OP_KEYS
    if ok:
        assert stats["count"] > 0 and stats["throughput"] > 0
        assert 0 < stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"] <= stats["max_ms"]


async def list_ids(clients: Clients, collection: str) -> list[str]:
    reply = await clients.jobs.ListJobs(
        job_service_pb2.ListJobsRequest(parent=f"collections/{collection}", page_size=1000)
    )
    return [job.name.rsplit("/", 1)[1] for job in reply.jobs]


# --- options ---------------------------------------------------------------------------


def test_mix_parsing() -> None:
    """--mix: OP=WEIGHT pairs in order; route names become ops."""
    assert parse_mix("get=70, update=20,delete=10") == (
        ("get", 70),
        ("update", 20),
        ("delete", 10),
    )
    assert parse_mix("delete-all=1") == (("delete-all", 1),)
    assert parse_mix("echo=1,peek=3", ("peek",)) == (("echo", 1), ("peek", 3))
    for bad in ("", "get", "get=0", "get=-1", "get=x", "fetch=1", "get=1,get=2"):
        with pytest.raises(UsageError):
            parse_mix(bad)
    route = parse_route("peek=get /v1/collections/{collection}/jobs/{job}")
    assert (route.name, route.method, route.path) == (
        "peek",
        "GET",
        "/v1/collections/{collection}/jobs/{job}",
    )
    for bad in ("peek", "get=GET /x", "peek=FETCH /x", "peek=GET x", "peek=GET /{nope}"):
        with pytest.raises(UsageError):
            parse_route(bad)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mix", "get=0"], "weight of get must be > 0"),
        (["--mix", "fetch=5"], "unknown operation 'fetch'"),
        (["--mix", "get"], "is not OP=WEIGHT"),
        (["--duration", "601"], "at most 600"),
        (["--duration", "0"], "--duration must be > 0"),
        (["--concurrency", "0"], "--concurrency must be"),
        (["--rate", "-5"], "--rate must be > 0"),
        (["--requests", "0"], "--requests must be >= 1"),
        (["--processes", "0"], "--processes must be"),
        (["--protocol", "soap"], "--protocol must be grpc or rest"),
        (["--profile", "cron"], "--profile must be one of"),
        (["--baseline", "get"], "only echo"),
        (["--grpc", "nowhere"], "is not HOST:PORT"),
        (["--http", "ftp://x"], "is not an http(s):// URL"),
        (["--jobs", "0", "--mix", "get=1"], "need seeded jobs"),
        (["--route", "peek=GET x"], "is not 'METHOD /path'"),
        (["--header", "novalue"], "is not 'Name: value'"),
        (["--serve", "--grpc", "127.0.0.1:1"], "do not give --grpc"),
        (["--body", "{nope"], "is not JSON"),
    ],
)
async def test_bad_values_are_refused_with_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every bad value: exit 2 and a message naming the problem; nothing runs."""
    assert await run_bench(argv) == 2
    err = capsys.readouterr().err
    assert "jobctl bench: error:" in err and message in err


async def test_argparse_refusals_exit_2_too(capsys: pytest.CaptureFixture[str]) -> None:
    """Malformed numbers are argparse's refusals, also exit 2."""
    assert await run_bench(["--duration", "soon"]) == 2
    assert "invalid float value" in capsys.readouterr().err


def test_cli_has_the_bench_subcommand() -> None:
    """`jobctl bench` is a subcommand of the CLI, beside serve and gateway."""
    args = build_parser().parse_args(["bench", "--mix", "echo=1", "--rate", "5"])
    assert (args.command, args.mix, args.rate) == ("bench", "echo=1", 5.0)


def test_pre_serialised_requests_match_protobuf() -> None:
    """The hand-encoded requests are exactly what protobuf would send."""
    name = "collections/bench/jobs/j00000007"
    assert targets.name_request(name) == (
        job_service_pb2.GetJobRequest(name=name).SerializeToString()
    )
    assert (
        targets.list_request("collections/bench", 50)
        == (
            job_service_pb2.ListJobsRequest(parent="collections/bench", page_size=50)
        ).SerializeToString()
    )
    update = job_service_pb2.UpdateJobRequest(
        job=resources_pb2.Job(name=name, display_name="bench 12")
    )
    update.update_mask.paths.append("display_name")
    assert targets.update_request(name, "bench 12") == update.SerializeToString()
    job = targets.job_template("batch")
    assert (
        targets.create_request("collections/b", "n1", job.SerializeToString())
        == (
            job_service_pb2.CreateJobRequest(parent="collections/b", job_id="n1", job=job)
        ).SerializeToString()
    )
    long_name = "x" * 300  # a two-byte length
    assert targets.name_request(long_name) == (
        job_service_pb2.GetJobRequest(name=long_name).SerializeToString()
    )


# --- gRPC -------------------------------------------------------------------------------


async def test_closed_loop_mix_report_shape(server: RunningServer, tmp_path: Path) -> None:
    """Closed loop over gRPC: each op of the mix has counts and ordered percentiles; the
    JSON carries config, phases (no baseline) and empty ratios."""
    report = await bench(
        tmp_path,
        *against(server),
        *SHORT,
        "--jobs", "30",
        "--mix", "get=60,update=20,list=10,create=10",
    )  # fmt: skip
    assert set(report) == {"config", "phases", "ratios"}
    assert report["phases"]["baseline"] is None and report["ratios"] == {}
    main = report["phases"]["main"]
    assert set(main) == PHASE_KEYS and main["cpu_ms_per_request"] is None
    assert main["duration_s"] > 0 and main["throughput"] > 0
    assert list(main["ops"]) == ["get", "update", "list", "create"]
    for stats in main["ops"].values():
        assert_op_shape(stats)
        assert stats["errors"] == {}
    config = report["config"]
    assert config["mix"] == {"get": 60, "update": 20, "list": 10, "create": 10}
    assert config["concurrency"] == 4 and config["rate"] is None


async def test_open_loop_rate(server: RunningServer, tmp_path: Path) -> None:
    """Open loop (--rate): requests at fixed intervals, counted with percentiles."""
    report = await bench(
        tmp_path, *against(server), "--warmup", "0.1", "--duration", "0.5",
        "--rate", "200", "--jobs", "10", "--mix", "get=1",
    )  # fmt: skip
    get = report["phases"]["main"]["ops"]["get"]
    assert_op_shape(get)
    assert get["errors"] == {}
    assert report["config"]["rate"] == 200


async def test_open_loop_overload_is_counted(server: RunningServer, tmp_path: Path) -> None:
    """Open loop: requests that cannot start under --max-in-flight count as OVERLOAD."""
    report = await bench(
        tmp_path, *against(server), "--warmup", "0", "--duration", "0.3",
        "--rate", "5000", "--max-in-flight", "1", "--jobs", "0", "--mix", "echo=1",
    )  # fmt: skip
    echo = report["phases"]["main"]["ops"]["echo"]
    assert echo["count"] > 0 and echo["errors"]["OVERLOAD"] > 0


async def test_baseline_echo_gives_ratios(server: RunningServer, tmp_path: Path) -> None:
    """--baseline echo: an echo phase first, and a ratio for every op of the mix."""
    report = await bench(
        tmp_path, *against(server), "--warmup", "0", "--duration", "0.3",
        "--concurrency", "4", "--jobs", "10", "--mix", "get=1,update=1",
        "--baseline", "echo",
    )  # fmt: skip
    baseline = report["phases"]["baseline"]
    assert set(baseline) == PHASE_KEYS and list(baseline["ops"]) == ["echo"]
    assert_op_shape(baseline["ops"]["echo"])
    assert set(report["ratios"]) == {"get", "update"}
    assert all(ratio > 0 for ratio in report["ratios"].values())


async def test_two_processes_merge_counts(server: RunningServer, tmp_path: Path) -> None:
    """--processes 2: both client processes' samples are merged, exactly --requests."""
    report = await bench(
        tmp_path, *against(server), "--warmup", "0", "--duration", "20",
        "--processes", "2", "--requests", "60", "--jobs", "10", "--mix", "get=2,echo=1",
    )  # fmt: skip
    ops = report["phases"]["main"]["ops"]
    assert sum(s["count"] for s in ops.values()) == 60
    assert all(s["errors"] == {} for s in ops.values())
    assert_op_shape(ops["get"])


async def test_requests_bound_stops_early(server: RunningServer, tmp_path: Path) -> None:
    """--requests N stops the phase after N recorded requests, long before --duration."""
    report = await bench(
        tmp_path, *against(server), "--warmup", "0", "--duration", "300",
        "--requests", "25", "--jobs", "5", "--mix", "get=1",
    )  # fmt: skip
    assert report["phases"]["main"]["ops"]["get"]["count"] == 25


async def test_jobs_are_seeded_through_grpc(
    server: RunningServer, clients: Clients, tmp_path: Path
) -> None:
    """--jobs N creates the collection with its profile and jobs j00000000..; --reuse
    then creates nothing."""
    await bench(
        tmp_path, *against(server), *SHORT, "--requests", "1", "--collection", "seeded",
        "--profile", "batch", "--jobs", "25", "--mix", "list=1",
    )  # fmt: skip
    collection = await clients.jobs.GetCollection(
        job_service_pb2.GetCollectionRequest(name="collections/seeded")
    )
    assert collection.profile == resources_pb2.BATCH
    assert await list_ids(clients, "seeded") == [f"j{i:08d}" for i in range(25)]
    await bench(
        tmp_path, *against(server), *SHORT, "--requests", "1", "--collection", "seeded",
        "--jobs", "40", "--reuse", "--mix", "list=1",
    )  # fmt: skip
    assert len(await list_ids(clients, "seeded")) == 25


async def test_bulk_seeding_through_the_database(
    server: RunningServer, clients: Clients, tmp_path: Path
) -> None:
    """--seed-database: the first job through gRPC, the rest copied into the database."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}"  # the `server` fixture's file
    report = await bench(
        tmp_path, *against(server), *SHORT, "--requests", "20", "--collection", "bulk",
        "--jobs", "120", "--seed-database", url, "--mix", "get=1",
    )  # fmt: skip
    assert report["phases"]["main"]["ops"]["get"]["errors"] == {}
    assert await list_ids(clients, "bulk") == [f"j{i:08d}" for i in range(120)]


async def test_delete_exhausts_its_slice(
    server: RunningServer, clients: Clients, tmp_path: Path
) -> None:
    """delete takes each seeded job once (each worker its own slice); then EXHAUSTED."""
    report = await bench(
        tmp_path, *against(server), "--warmup", "0", "--duration", "5",
        "--concurrency", "2", "--jobs", "6", "--mix", "delete=1",
    )  # fmt: skip
    delete = report["phases"]["main"]["ops"]["delete"]
    assert delete["count"] == 6
    assert delete["errors"] == {"EXHAUSTED": 2}
    remaining = await clients.jobs.ListJobs(
        job_service_pb2.ListJobsRequest(parent="collections/bench", page_size=100)
    )
    assert all(job.state == resources_pb2.DELETING for job in remaining.jobs)


async def test_errors_are_counted_by_grpc_status(server: RunningServer, tmp_path: Path) -> None:
    """Failed calls count under their gRPC code: get in a missing collection."""
    report = await bench(
        tmp_path, *against(server), *SHORT, "--requests", "12", "--collection", "missing",
        "--reuse", "--mix", "get=1",
    )  # fmt: skip
    get = report["phases"]["main"]["ops"]["get"]
    assert get["count"] == 0 and get["errors"] == {"NOT_FOUND": 12}
    assert get["p50_ms"] is None and get["max_ms"] is None


async def test_delete_all_runs_once_end_to_end(
    server: RunningServer, clients: Clients, tmp_path: Path
) -> None:
    """delete-all: DeleteJobs then its Operation polled until done, one timed request."""
    report = await bench(
        tmp_path, *against(server), "--warmup", "2", "--duration", "20",
        "--requests", "1", "--jobs", "40", "--mix", "delete-all=1",
    )  # fmt: skip
    delete_all = report["phases"]["main"]["ops"]["delete-all"]
    assert delete_all["count"] == 1 and delete_all["errors"] == {}
    assert delete_all["p50_ms"] == delete_all["max_ms"] > 0
    assert await list_ids(clients, "bench") == []


# --- REST -------------------------------------------------------------------------------


async def test_rest_native_ops(
    server: RunningServer, gateway: RunningGateway, tmp_path: Path
) -> None:
    """--protocol rest: every op through the native JSON mapping of the gateway."""
    report = await bench(
        tmp_path, *against(server), "--http", gateway.base_url, "--protocol", "rest",
        "--warmup", "0", "--duration", "0.6", "--concurrency", "4", "--jobs", "200",
        "--mix", "get=30,update=20,list=10,create=10,delete=10,echo=10",
        "--baseline", "echo",
    )  # fmt: skip
    ops = report["phases"]["main"]["ops"]
    assert list(ops) == ["get", "update", "list", "create", "delete", "echo"]
    for stats in ops.values():
        assert_op_shape(stats)
        # a get or update may meet a job deleted (and purged) earlier in the run
        assert set(stats["errors"]) <= {"404"}
    assert set(report["ratios"]) == set(ops)


async def test_rest_delete_all(
    server: RunningServer, gateway: RunningGateway, clients: Clients, tmp_path: Path
) -> None:
    """REST delete-all: :batchDelete, then GET of its Operation until done."""
    report = await bench(
        tmp_path, *against(server), "--http", gateway.base_url, "--protocol", "rest",
        *SHORT, "--requests", "1", "--jobs", "15", "--mix", "delete-all=1",
    )  # fmt: skip
    assert report["phases"]["main"]["ops"]["delete-all"]["count"] == 1
    assert await list_ids(clients, "bench") == []


async def test_dialect_route_op(
    server: RunningServer, gateway: RunningGateway, tmp_path: Path
) -> None:
    """--route: a dialect's path as an op (Azure Scheduler's Get Job, with its version
    header); HTTP failures count by status (a missing job is 404)."""
    collection = SchedulerDialect.collection_id("sub", "cs", "jc")
    base = "/sub/cloudServices/cs/resources/scheduler/~/jobCollections/jc/jobs"
    report = await bench(
        tmp_path, *against(server), "--http", gateway.base_url, *SHORT,
        "--collection", collection, "--jobs", "20",
        "--route", f"sched-get=GET {base}/{{job}}",
        "--route", f"sched-miss=GET {base}/none-{{job}}",
        "--header", "x-ms-version: 2013-06-01",
        "--mix", "sched-get=3,sched-miss=1",
    )  # fmt: skip
    ops = report["phases"]["main"]["ops"]
    assert_op_shape(ops["sched-get"])
    assert ops["sched-get"]["errors"] == {}
    assert ops["sched-miss"]["count"] == 0 and ops["sched-miss"]["errors"]["404"] > 0
    assert report["config"]["routes"]["sched-get"] == f"GET {base}/{{job}}"


# --- the command as a process -----------------------------------------------------------


def test_jobctl_bench_serve_as_a_process(tmp_path: Path) -> None:
    """`jobctl bench --serve` in a subprocess: starts its own server and gateway on free
    loopback ports, seeds (bulk), runs, stops them, reports CPU ms per request."""
    out = tmp_path / "serve.json"
    jobctl = Path(sys.executable).with_name("jobctl")
    result = subprocess.run(
        [
            str(jobctl), "bench", "--serve", "--protocol", "rest", "--warmup", "0",
            "--duration", "0.5", "--concurrency", "4", "--jobs", "50",
            "--mix", "get=3,update=1", "--json", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=50,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "p99 ms" in result.stdout and "CPU ms per request" in result.stdout
    report = json.loads(out.read_text())
    main = report["phases"]["main"]
    assert_op_shape(main["ops"]["get"])
    assert main["ops"]["get"]["errors"] == {}
    cpu = main["cpu_ms_per_request"]
    assert set(cpu) == {"server", "gateway"}
    assert cpu["server"] > 0 and cpu["gateway"] > 0
    assert report["config"]["grpc_target"].startswith("127.0.0.1:")
    assert report["config"]["http_url"].startswith("http://127.0.0.1:")


async def test_token_authenticates_every_call_against_a_secured_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--token FILE: the bench seeds and runs with the bearer JWT over gRPC and REST (the
    report says a token was sent, never which); without it a secured server refuses the
    seeding and the run fails with UNAUTHENTICATED."""
    secured = await secured_server(tmp_path)
    gateway, stop = await start_gateway(secured.server.address)
    token = tmp_path / "admin.jwt"
    token.write_text(secured.token("admin") + "\n")
    try:
        for protocol in ("grpc", "rest"):
            report = await bench(
                tmp_path, *against(secured.server), "--http", gateway.base_url,
                "--protocol", protocol, *SHORT, "--jobs", "5", "--mix", "get=1,echo=1",
                "--token", str(token),
            )  # fmt: skip
            assert report["config"]["token"] is True
            for stats in report["phases"]["main"]["ops"].values():
                assert_op_shape(stats)
                assert stats["errors"] == {}
        argv = [*against(secured.server), *SHORT, "--jobs", "5", "--collection", "other"]
        assert await run_bench([*argv, "--json", str(tmp_path / "r.json")]) == 1
        assert "CreateCollection other: UNAUTHENTICATED" in capsys.readouterr().err
    finally:
        await stop()
        await secured.server.stop(grace=1.0)


def test_token_file_must_hold_one_token(tmp_path: Path) -> None:
    """--token: an unreadable file or one that is not a single token is a usage error."""
    parser = build_parser()
    for path, text in [(tmp_path / "missing", None), (tmp_path / "two", "a b")]:
        if text is not None:
            path.write_text(text)
        args = parser.parse_args(["bench", "--token", str(path)])
        with pytest.raises(UsageError, match="--token"):
            bench_config.from_args(args)
