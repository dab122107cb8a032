"""schemathesis against /openapi.json of a real `jobctl serve` (gRPC server and gateway
in their own processes, as in production): no generated request gets a 5xx."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from jobcontrol.gateway import transcode
from jobcontrol.gateway.app import SERVICES
from tests.test_process import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    server = ServerProcess(tmp_path / "jobs.db", with_gateway=True)
    await server.start()
    try:
        yield server
    finally:
        await server.terminate()


async def test_serve_runs_grpc_and_gateway_together(served: ServerProcess) -> None:
    """`jobctl serve` starts the gateway beside the gRPC server; /readyz reaches it."""
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        for _ in range(100):  # the gateway process may still be starting (bounded)
            try:
                r = await http.get("/readyz")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        assert (r.status_code, r.json()) == (200, {"status": "ok"})


async def test_schemathesis_finds_no_server_error(served: ServerProcess) -> None:
    """Fuzzing (bounded: 5 examples per operation, fixed seed, 180 s): every generated
    request is answered without a 5xx."""
    await served.wait_http()
    schemathesis = Path(sys.executable).parent / "schemathesis"
    proc = await asyncio.create_subprocess_exec(
        str(schemathesis), "run", f"{served.base_url}/openapi.json",
        "--checks", "not_a_server_error", "--max-examples", "5", "--seed", "7",
        "--workers", "1", "--request-timeout", "10", "--suppress-health-check", "all",
        "--no-color",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 180)
    finally:
        if proc.returncode is None:
            proc.kill()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-4000:]
    operations = len(transcode.bindings(SERVICES))  # every HTTP binding was exercised
    assert f"Tested: {operations}" in text, text[-2000:]
