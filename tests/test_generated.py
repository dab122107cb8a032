"""The committed generated package and the dependency pins that produce and run it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "jobcontrol" / "v1"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _requirements() -> dict[str, str]:
    """`name -> operator+version` for every requirement of the project and its dev extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found: dict[str, str] = {}
    for req in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*((?:==|>=)[0-9.]+)", req)
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def _stamped(pattern: str, suffix: str) -> set[tuple[int, ...]]:
    stamps = set()
    for path in GENERATED.glob(f"*{suffix}"):
        match = re.search(pattern, path.read_text(), re.S)
        assert match, f"{path.name} carries no generator stamp"
        stamps.add(_version(".".join(match.groups())))
    return stamps


def test_generated_code_grpc_stamp_is_the_pinned_generator_and_within_the_grpcio_floor() -> None:
    reqs = _requirements()
    stamps = _stamped(r"GRPC_GENERATED_VERSION = '(\d+)\.(\d+)\.(\d+)'", "_pb2_grpc.py")
    assert len(stamps) == 1, stamps
    (stamp,) = stamps
    assert reqs["grpcio-tools"] == "==" + ".".join(map(str, stamp))
    assert reqs["grpcio"].startswith(">=")
    assert _version(reqs["grpcio"][2:]) >= stamp


def test_generated_code_protobuf_gencode_is_within_the_protobuf_floor() -> None:
    reqs = _requirements()
    stamps = _stamped(
        r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+),",
        "_pb2.py",
    )
    assert len(stamps) == 1, stamps
    (stamp,) = stamps
    assert reqs["protobuf"].startswith(">=")
    assert _version(reqs["protobuf"][2:]) >= stamp
