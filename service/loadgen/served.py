"""`--serve`: `jobctl serve` (and its gateway) as a child process on 127.0.0.1 over a fresh
temp database, and the CPU time the server and the gateway processes use."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from jobcontrol.service.server import GATEWAY_MODULE

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
_READY = re.compile(r"listening on (\S+)")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def children_of(pid: int) -> list[int]:
    """Child pids of `pid` from /proc/<pid>/task/*/children."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found.extend(int(p) for p in (task / "children").read_text().split())
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def free_port() -> int:
    """A loopback port nothing listens on (bound and released)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class ServedServer:
    """A running `jobctl serve`: where it listens, its database, its pids."""

    process: asyncio.subprocess.Process
    tmp: Path
    grpc_target: str
    http_url: str
    database_url: str
    gateway_pid: int | None

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by the server and (if any) the gateway."""
        out = {"server": cpu_seconds(self.process.pid)}
        if self.gateway_pid is not None:
            with contextlib.suppress(OSError):
                out["gateway"] = cpu_seconds(self.gateway_pid)
        return out

    async def stop(self) -> None:
        """SIGTERM (it stops its gateway first), wait, kill if it hangs; remove the temp
        directory."""
        try:
            if self.process.returncode is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
                except TimeoutError:
                    self.process.kill()
                    await self.process.wait()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


async def start(with_gateway: bool, env_overrides: dict[str, str]) -> ServedServer:
    """Start the server (and gateway) and wait until healthy (bounded)."""
    tmp = Path(tempfile.mkdtemp(prefix="jobctl-bench-"))
    database_url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    env = {
        **os.environ,
        "JOBCONTROL_DATABASE_URL": database_url,
        "JOBCONTROL_LOG_LEVEL": "WARNING",
        **env_overrides,
    }
    database_url = env["JOBCONTROL_DATABASE_URL"]
    http_address = f"{HOST}:{free_port()}" if with_gateway else ""
    log = (tmp / "serve.log").open("wb")
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "jobcontrol.service.cli",
            "serve",
            "--grpc-address",
            f"{HOST}:0",
            "--http-address",
            http_address,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env=env,
        )
    finally:
        log.close()
    served = ServedServer(process, tmp, "", f"http://{http_address}", database_url, None)
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)).decode()
        match = _READY.search(line)
        if not match:
            tail = (tmp / "serve.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"jobctl serve did not start: {line!r}\n{tail}")
        served.grpc_target = match.group(1)
        if with_gateway:
            served.gateway_pid = await _find_gateway(process.pid)
            await _wait_ready(served.http_url)
        return served
    except BaseException:
        await served.stop()
        raise


async def _find_gateway(pid: int) -> int:
    for _ in range(int(START_TIMEOUT / 0.05)):
        for child in children_of(pid):
            if GATEWAY_MODULE in _cmdline(child):
                return child
        await asyncio.sleep(0.05)
    raise RuntimeError("the gateway process of jobctl serve did not appear")


async def _wait_ready(base_url: str) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        for _ in range(int(START_TIMEOUT / 0.05)):
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{base_url}/readyz") as reply:
                    if reply.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the gateway at {base_url} did not become ready")
