"""What authentication costs: the same calls against an open and a secured server, in one run.

Starts two `jobctl serve` processes (gRPC and the REST gateway) on 127.0.0.1, each over a
fresh SQLite file: one open (the development mode), one secured as the README shows (ES256
JWTs verified against a JWKS file, a policy binding the bench's principal to `admin` and the
gateway's to `impersonator`, the gateway calling with its own token). Both are seeded alike
and driven with the same load-generator phases, alternating open/secured per operation so
that both halves of each ratio are taken seconds apart (open, secured, secured, open; each
figure is the mean of its two runs). Prints secured/open throughput and
p99 per operation and protocol; writes JSON (`--json`, default bench/results/auth.json).

    python -m bench.auth            # 5 s phases (about 4 minutes; `make bench-auth`)
    python -m bench.auth --short    # 3 s phases
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.run import Plan, Runner, op_of, ratio
from jobcontrol.service.loadgen import population, served
from jobcontrol.service.loadgen.bench import build_parser
from jobcontrol.service.loadgen.config import from_args

ROOT = Path(__file__).resolve().parent
JOBCTL = [sys.executable, "-m", "jobcontrol.service.cli"]
POLICY = """\
[[bindings]]
principals = ["user:bench"]
role = "admin"

[[bindings]]
principals = ["user:gateway"]
role = "impersonator"
"""
PHASES = (("echo", "grpc"), ("get", "grpc"), ("update", "grpc"), ("echo", "rest"),
          ("get", "rest"), ("update", "rest"))  # fmt: skip


def secured_env(directory: Path) -> tuple[dict[str, str], Path]:
    """Keys, a policy and two tokens in `directory`: the server's environment and the
    bench's token file."""
    subprocess.run([*JOBCTL, "keygen", str(directory / "keys")], check=True,
                   capture_output=True)  # fmt: skip
    (directory / "policy.toml").write_text(POLICY)
    key = str(directory / "keys" / "signing-key.pem")
    for sub in ("bench", "gateway"):
        token = subprocess.run([*JOBCTL, "token", "--key", key, "--sub", sub, "--ttl", "7200"],
                               check=True, capture_output=True, text=True).stdout  # fmt: skip
        (directory / f"{sub}.jwt").write_text(token.strip() + "\n")
    env = {
        "JOBCONTROL_AUTH_JWKS": str(directory / "keys" / "jwks.json"),
        "JOBCONTROL_AUTH_POLICY": str(directory / "policy.toml"),
        "JOBCONTROL_GRPC_TOKEN_FILE": str(directory / "gateway.jwt"),
    }
    return env, directory / "bench.jwt"


async def run(plan: Plan, directory: Path) -> dict[str, Any]:
    env, token = secured_env(directory)
    open_run, secured_run = Runner(plan), Runner(plan)
    open_run.server = await served.start(True, {})
    try:
        secured_run.server = await served.start(True, env)
        try:
            await open_run.seed("bench", 1000)
            await seed_secured(secured_run, token)
            figures: dict[str, Any] = {}
            for op, protocol in PHASES:
                name = f"{protocol} {op}"
                flags = ("--mix", f"{op}=100")
                runs: dict[str, list[dict[str, Any]]] = {"open": [], "secured": []}
                # open, secured, secured, open: a drift of the machine weighs on both alike
                for mode in ("open", "secured", "secured", "open"):
                    if mode == "open":
                        phase = await open_run.phase(f"open {name}", *flags, protocol=protocol)
                    else:
                        phase = await secured_run.phase(f"secured {name}", *flags, "--token",
                                                        str(token), protocol=protocol)  # fmt: skip
                    runs[mode].append(op_of(phase))
                opened, secured = (mean(runs["open"]), mean(runs["secured"]))
                figures[name] = {
                    "open_per_s": opened["throughput"],
                    "secured_per_s": secured["throughput"],
                    "throughput_secured_over_open": ratio(secured, opened),
                    "open_p99_ms": opened["p99_ms"],
                    "secured_p99_ms": secured["p99_ms"],
                }
            return figures
        finally:
            await secured_run.server.stop()
    finally:
        await open_run.server.stop()


def mean(ops: list[dict[str, Any]]) -> dict[str, float]:
    """The mean throughput and p99 of the runs of one operation."""
    return {
        key: sum(float(o[key] or 0) for o in ops) / len(ops) for key in ("throughput", "p99_ms")
    }


async def seed_secured(runner: Runner, token: Path) -> None:
    """The secured server's collection of 1,000 jobs, seeded as the bench's principal (the
    first job through gRPC with the token, the rest copied into its database)."""
    assert runner.server is not None
    argv = ["--grpc", runner.server.grpc_target, "--collection", "bench", "--jobs", "1000",
            "--token", str(token)]  # fmt: skip
    await population.seed(from_args(build_parser().parse_args(argv)), runner.server.database_url)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--short", action="store_true", help="3 s phases")
    parser.add_argument("--json", default=str(ROOT / "results" / "auth.json"))
    args = parser.parse_args()
    plan = Plan(duration=3 if args.short else 5, warmup=1, big=0, delete_pool=0)
    with tempfile.TemporaryDirectory(prefix="jobctl-auth-bench-") as directory:
        figures = asyncio.run(run(plan, Path(directory)))
    print(f"\n{'phase':<14} {'open/s':>9} {'secured/s':>10} {'ratio':>7} "
          f"{'p99 open':>9} {'p99 secured':>12}")  # fmt: skip
    for name, f in figures.items():
        print(f"{name:<14} {f['open_per_s']:9.0f} {f['secured_per_s']:10.0f} "
              f"{f['throughput_secured_over_open']:7.3f} {f['open_p99_ms'] or 0:8.2f}ms "
              f"{f['secured_p99_ms'] or 0:10.2f}ms")  # fmt: skip
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"plan": plan.__dict__, "figures": figures},
                                          indent=2) + "\n")  # fmt: skip
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
