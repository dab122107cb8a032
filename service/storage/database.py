"""The SQL stores: concurrent readers and one writer that group-commits queued requests.

`SqliteStore` (the embedded default) runs SQLAlchemy Core statements on synchronous
connections: a read runs at once on the event loop (a primary-key read takes microseconds;
an await per statement through a driver thread would cost far more), and the writer is one
thread that runs a whole batch — every request in its SAVEPOINT, one COMMIT and one fsync —
per hop. `PostgresStore` is the same design on asyncpg, for PostgreSQL. Both run `SqlTx`
(each with its hot statements as fixed SQL on the driver: `SqliteTx`, `PgTx`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

import asyncpg
import orjson
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from jobcontrol.service.core.errors import DomainError, Reason
from jobcontrol.service.core.ports import NO_METRICS, Metrics, Tx
from jobcontrol.service.storage import migrate
from jobcontrol.service.storage.migrate import upgrade
from jobcontrol.service.storage.repository import Contention, PgTx, SqliteTx, SqlTx

T = TypeVar("T")
log = logging.getLogger("jobcontrol.storage")
_Item = tuple[Callable[[Tx], Awaitable[Any]], "asyncio.Future[Any]"]


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """The one place storage exceptions become domain errors."""
    try:
        yield
    except DomainError:
        raise
    except (OperationalError, DBAPIError, sqlite3.OperationalError) as exc:
        log.error("storage unavailable: %s", exc)
        raise DomainError(Reason.STORAGE_UNAVAILABLE, "storage is unavailable; retry") from exc
    except (SQLAlchemyError, sqlite3.Error) as exc:
        log.exception("storage error")
        raise DomainError(Reason.INTERNAL_ERROR, "internal storage error") from exc


def _sqlite_setup(engine: AsyncEngine | Engine, *, writer: bool, begin: bool = True) -> None:
    """WAL, synchronous=FULL, foreign keys, busy timeout; BEGIN issued by us so that
    SAVEPOINTs work (pysqlite's implicit transactions do not nest)."""
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

    @event.listens_for(sync_engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",
            "foreign_keys=ON",
            "busy_timeout=10000",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        if not writer:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    if begin:

        @event.listens_for(sync_engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")


async def next_batch(
    queue: asyncio.Queue[_Item | None], max_batch: int
) -> tuple[list[_Item], bool]:
    """Wait for one queued write, then take whatever else has queued (up to `max_batch`);
    and whether the stop marker (None) was reached."""
    batch: list[_Item] = []
    item = await queue.get()
    while item is not None:
        batch.append(item)
        if len(batch) >= max_batch or queue.empty():
            return batch, False
        item = queue.get_nowait()
    return batch, True


async def _revisions(tx: Tx) -> list[str]:
    rows = await cast(SqlTx, tx).conn.execute(text("SELECT version_num FROM alembic_version"))
    return sorted(str(row[0]) for row in rows)


async def _nothing(_tx: Tx) -> None:
    """The health probe's write: an empty request in the writer's next batch (a SAVEPOINT
    and its RELEASE; BEGIN and COMMIT when nothing else is queued)."""


def _why(exc: DomainError) -> str:
    cause = f" ({exc.__cause__})" if exc.__cause__ is not None else ""
    return f"{exc.message}{cause}"[:300]


async def check_store(
    store: SqliteStore | PostgresStore,
    writer: asyncio.Task[None] | None,
    head: str,
    within: float,
) -> str:
    """`Store.check`: the writer task is alive; the schema revision, read through the read
    path (a statement that reads the database, not a bare `SELECT 1`) within `within`
    seconds, is `head`; an empty write through the group-commit writer commits within
    `within` seconds."""
    if writer is None or writer.done():
        died = writer is not None and not writer.cancelled() and writer.exception()
        return f"the writer has stopped: {died!r}" if died else "the writer has stopped"
    try:
        revisions = await asyncio.wait_for(store.read(_revisions), within)
    except TimeoutError:
        return f"a read took longer than {within:g} s"
    except DomainError as exc:
        return f"a read failed: {_why(exc)}"
    if revisions != [head]:
        found = ", ".join(revisions) or "none"
        return f"the database schema is at revision {found}, this code's is {head}"
    try:
        await asyncio.wait_for(store.write(_nothing), within)
    except TimeoutError:
        return f"a write did not commit within {within:g} s"
    except DomainError as exc:
        return f"a write failed: {_why(exc)}"
    return ""


# SQLSTATEs of a lost race with another transaction: serialization failure, deadlock,
# unique violation (two replicas inserting one key), lock not available
_CONTENTION = frozenset({"40001", "40P01", "23505", "55P03"})
# runs of a request that keeps losing races before it fails (UNAVAILABLE: retry)
RETRIES = 5
# How long a writer's statement waits for a row another replica's batch holds. Past it
# the request loses the race (55P03) and runs again in a later batch, instead of two
# batches that each hold a row the other wants waiting out deadlock_timeout (1 s).
WRITER_LOCK_TIMEOUT = "50ms"


# The channel a commit that made work available notifies (`Tx.announce_work`), and the
# listener's keepalive: a query this often (answered within the timeout) tells a live
# connection from one that died without a word; after a drop, reconnects back off from
# 0.1 s to at most LISTEN_BACKOFF
WORK_CHANNEL = "jobcontrol_work"
LISTEN_KEEPALIVE = 30.0
LISTEN_BACKOFF = 5.0


def _sqlstate(exc: BaseException) -> str:
    for candidate in (exc, getattr(exc, "orig", None), getattr(exc, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if code:
            return str(code)
    return ""


@contextlib.contextmanager
def pg_errors() -> Iterator[None]:
    """`translate_errors` for PostgreSQL, raw asyncpg errors included; a lost race is
    `Contention` (the request runs again)."""
    with translate_errors():
        try:
            yield
        except (DBAPIError, asyncpg.PostgresError) as exc:
            if _sqlstate(exc) in _CONTENTION:
                raise Contention(str(exc)) from exc
            if isinstance(exc, asyncpg.PostgresError):
                raise DBAPIError(None, None, exc) from exc
            raise
        except (OSError, asyncpg.InterfaceError) as exc:
            raise OperationalError(None, None, exc) from exc


async def retried(run: Callable[[], Awaitable[T]]) -> T:
    """`run` again while it loses races (Contention), at most RETRIES times."""
    for attempt in range(RETRIES - 1):
        try:
            return await run()
        except Contention:  # jittered back-off, so two racing replicas part ways
            await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
    try:
        return await run()
    except Contention as exc:
        raise DomainError(
            Reason.STORAGE_UNAVAILABLE, "too much contention on this resource; retry"
        ) from exc


class PostgresStore:
    """`service.core.ports.Store` on PostgreSQL (asyncpg under SQLAlchemy's asyncio
    engine), the same design as `SqliteStore`: reads run at once on a pooled connection,
    in autocommit (at READ COMMITTED a transaction would add two round trips and no
    consistency); all writes go through one connection, where whatever has queued runs in
    one transaction, each request in its SAVEPOINT (one failure does not fail its
    neighbours), with one COMMIT. Transaction control goes straight to asyncpg as simple
    queries, one round trip per request (`RELEASE item; SAVEPOINT item`). Races with
    other replicas are settled by the database: updates name the version they read, and a
    request that loses a race (`Contention`) runs again in a later transaction.

    A batch in which a kept request announced work (`Tx.announce_work`) sends one NOTIFY
    in its COMMIT (nothing for a request whose SAVEPOINT rolled back, nothing if the
    commit fails). `on_work` keeps one more connection that LISTENs, on every replica."""

    def __init__(self, url: str, read_pool_size: int = 4, max_batch: int = 256) -> None:
        self.url: URL = make_url(url)
        self.max_batch = max_batch
        self.read_pool_size = read_pool_size
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        self._write_engine: AsyncEngine | None = None
        self._read_engine: AsyncEngine | None = None
        self._listen_engine: AsyncEngine | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._work_callbacks: list[Callable[[], None]] = []
        self._listen_delay = 0.1
        # batch sizes and commit seconds of the writer (the server sets it before `open`)
        self.metrics: Metrics = NO_METRICS
        # traces (service/tracing.py; the server sets it before `open`); None: off
        self.tracing: Any = None
        self._head = migrate.head()

    def _engine(self, pool_size: int, max_overflow: int) -> AsyncEngine:
        engine = create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            isolation_level="AUTOCOMMIT",
            json_serializer=lambda value: orjson.dumps(value).decode(),
            json_deserializer=orjson.loads,
        )
        if self.tracing is not None:
            self.tracing.instrument(engine)
        return engine

    async def open(self) -> None:
        """Create engines, apply migrations (once across replicas, see migrate.py), start
        the writer."""
        self._write_engine = self._engine(1, 0)
        self._read_engine = self._engine(self.read_pool_size, self.read_pool_size)
        with pg_errors():
            async with self._write_engine.connect() as conn:
                raw = await self._raw(conn)
                await raw.execute("BEGIN")
                try:
                    await conn.run_sync(upgrade)
                except BaseException:
                    await raw.execute("ROLLBACK")
                    raise
                await raw.execute("COMMIT")
        self._writer_task = asyncio.create_task(self._write_loop(), name="writer")

    async def check(self, within: float) -> str:
        """`service.core.ports.Store.check` (see `check_store`)."""
        return await check_store(self, self._writer_task, self._head, within)

    async def close(self) -> None:
        """Finish queued writes, stop the writer and the listener, dispose of the
        engines."""
        if self._writer_task is not None:
            await self._queue.put(None)
            await self._writer_task
        if self._listen_task is not None:
            self._listen_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listen_task
        for engine in (self._write_engine, self._read_engine, self._listen_engine):
            if engine is not None:
                await engine.dispose()

    def queue_depth(self) -> int:
        """Writes queued for the writer, not yet in a transaction."""
        return self._queue.qsize()

    def pool_in_use(self) -> int:
        """Read connections checked out of the pool now."""
        engine = self._read_engine
        return 0 if engine is None else int(engine.sync_engine.pool.checkedout())  # type: ignore[attr-defined]

    def on_work(self, callback: Callable[[], None]) -> None:
        """Call `callback` on every NOTIFY of work (from any replica, this one included),
        and once each time the listening connection is (re)established: a notice sent
        while it was down is lost, so waiters look again. The first call starts the
        listener: one connection, reconnected with back-off, never raising."""
        self._work_callbacks.append(callback)
        if self._listen_task is None:
            self._listen_engine = self._engine(1, 0)
            self._listen_task = asyncio.create_task(self._listen_loop(), name="work-listener")

    def _work_notified(self, *_args: Any) -> None:
        for callback in self._work_callbacks:
            try:
                callback()
            except Exception:
                log.exception("work callback failed")

    async def _listen_loop(self) -> None:
        """Listen until closed; a lost connection is made again after a jittered delay
        that doubles per failed attempt (reset once listening)."""
        while True:
            try:
                await self._listen_once()
                why = "the connection closed"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                why = f"{type(exc).__name__}: {exc}"
            delay = self._listen_delay * random.uniform(0.5, 1.0)
            log.warning("work listener: %s; reconnecting in %.1f s", why, delay)
            await asyncio.sleep(delay)
            self._listen_delay = min(self._listen_delay * 2, LISTEN_BACKOFF)

    async def _listen_once(self) -> None:
        """LISTEN on a connection of its own until it is gone (terminated, or silent
        past a keepalive query's timeout)."""
        assert self._listen_engine is not None
        async with self._listen_engine.connect() as conn:
            try:
                raw = await self._raw(conn)
                lost = asyncio.Event()
                raw.add_termination_listener(lambda _conn: lost.set())
                await raw.add_listener(WORK_CHANNEL, self._work_notified)
                self._listen_delay = 0.1
                self._work_notified()  # what was announced while not listening
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), LISTEN_KEEPALIVE)
                        break
                    await asyncio.wait_for(raw.execute("SELECT 1"), LISTEN_KEEPALIVE)
            finally:  # never back to the pool: the next attempt connects afresh
                with contextlib.suppress(Exception):
                    await conn.invalidate()

    @staticmethod
    async def _raw(conn: AsyncConnection) -> Any:
        return (await conn.get_raw_connection()).driver_connection

    def _traced(self, raw: Any) -> Any:
        """`raw` for a transaction: its statements traced when traces are on."""
        return raw if self.tracing is None else self.tracing.asyncpg(raw)

    async def read(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """Run `fn` on a pooled connection (autocommit: each statement sees what is
        committed when it starts)."""
        assert self._read_engine is not None, "store not open"

        async def run() -> T:
            assert self._read_engine is not None
            with pg_errors():
                async with self._read_engine.connect() as conn:
                    return await fn(PgTx(conn, self._traced(await self._raw(conn)), writer=False))

        if self.tracing is not None:
            with self.tracing.read():
                return await retried(run)
        return await retried(run)

    async def write(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """Queue `fn` for the writer; resolves after its transaction has committed."""
        if self.tracing is not None:
            fn = self.tracing.write(fn)

        async def run() -> T:
            future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            await self._queue.put((fn, future))
            return await future

        return await retried(run)

    async def _write_loop(self) -> None:
        assert self._write_engine is not None
        while True:
            connected = False
            try:
                with pg_errors():
                    async with self._write_engine.connect() as conn:
                        try:
                            raw = await self._raw(conn)
                            await raw.execute(f"SET lock_timeout = '{WRITER_LOCK_TIMEOUT}'")
                            connected = True
                            while True:
                                batch, stop = await next_batch(self._queue, self.max_batch)
                                if batch:
                                    started = time.perf_counter()
                                    try:
                                        await self._commit(conn, raw, batch)
                                    finally:
                                        self.metrics.write_batch(
                                            len(batch), time.perf_counter() - started
                                        )
                                if stop:
                                    return
                        except (DomainError, Contention):
                            # never back to the pool: its errors came through the driver,
                            # so the pool would hand the dead connection out again
                            with contextlib.suppress(Exception):
                                await conn.invalidate()
                            raise
            except (DomainError, Contention) as exc:
                # the connection is gone: the next batch gets a new one; while none can
                # be made, what has queued fails (UNAVAILABLE: retry) rather than wait
                if not connected and self._fail_queued(exc):
                    return
                await asyncio.sleep(0.1)

    def _fail_queued(self, exc: Exception) -> bool:
        """Fail every queued write with `exc`; whether the stop marker was among them."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                return True
            if not item[1].done():
                item[1].set_exception(exc)
        return False

    async def _commit(self, conn: AsyncConnection, raw: Any, batch: list[_Item]) -> None:
        if self.tracing is None:
            return await self._commit_batch(conn, raw, batch)
        with self.tracing.transaction([fn for fn, _ in batch]):
            return await self._commit_batch(conn, raw, batch)

    async def _commit_batch(self, conn: AsyncConnection, raw: Any, batch: list[_Item]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        announced = False
        try:
            with pg_errors():
                await raw.execute("BEGIN; SAVEPOINT item")
                for fn, _future in batch:
                    tx = PgTx(conn, self._traced(raw), writer=True)
                    try:
                        with pg_errors():
                            value = await fn(tx)
                    except Exception as exc:
                        await raw.execute("ROLLBACK TO item; RELEASE item; SAVEPOINT item")
                        outcomes.append((False, exc))
                    else:
                        await raw.execute("RELEASE item; SAVEPOINT item")
                        outcomes.append((True, value))
                        announced = announced or tx.announced
                # the NOTIFY is part of the transaction: delivered on commit only
                notify = f"SELECT pg_notify('{WORK_CHANNEL}', ''); " if announced else ""
                await raw.execute(f"RELEASE item; {notify}COMMIT")
        except (DomainError, Contention) as exc:  # the commit itself failed: nothing written
            with contextlib.suppress(Exception):
                await raw.execute("ROLLBACK")
            for _fn, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, DomainError) and exc.reason is Reason.STORAGE_UNAVAILABLE:
                raise
            return
        for (_fn, future), (ok, value) in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


class SyncConnection:
    """An AsyncConnection-shaped face on a synchronous Connection, for `SqlTx`: its
    coroutines finish without ever suspending."""

    def __init__(self, sync: Connection) -> None:
        self.sync = sync

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return self.sync.execute(statement, parameters)

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(self.sync, *args)


def drive(awaitable: Awaitable[T]) -> T:
    """Run a storage coroutine to completion here and now (it awaits only
    `SyncConnection`, which never suspends)."""
    coroutine = cast(Coroutine[Any, Any, T], awaitable)
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("a storage function awaited something other than storage")


class SqliteStore:
    """`service.core.ports.Store` over SQLite: reads on the event loop, one writer thread
    with group commit (see the module docstring)."""

    def __init__(self, url: str, read_pool_size: int = 1, max_batch: int = 256) -> None:
        self.url: URL = make_url(url)
        self.max_batch = max_batch
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._engines: list[Engine] = []
        self._reader: Connection | None = None
        self._writer: Connection | None = None
        # batch sizes and commit seconds of the writer (the server sets it before `open`)
        self.metrics: Metrics = NO_METRICS
        # traces (service/tracing.py; the server sets it before `open`); None: off
        self.tracing: Any = None
        self._head = migrate.head()

    def on_work(self, callback: Callable[[], None]) -> None:
        """Nothing to listen to: one server per file, and its use-cases wake their own
        waiters."""

    def queue_depth(self) -> int:
        """Writes queued for the writer, not yet in a transaction."""
        return self._queue.qsize()

    def _engine(self, writer: bool) -> Engine:
        engine = create_engine(self.url.set(drivername="sqlite+pysqlite"), poolclass=NullPool)
        # transactions are begun on the driver (see read and _commit)
        _sqlite_setup(engine, writer=writer, begin=False)
        if self.tracing is not None:
            self.tracing.instrument(engine)
        self._engines.append(engine)
        return engine

    async def open(self) -> None:
        """Connect, apply migrations (on the writer), start the writer."""
        if self.url.database and self.url.database != ":memory:":
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        with translate_errors():
            await loop.run_in_executor(self._thread, self._open_writer)
            self._reader = self._engine(writer=False).connect()
        self._writer_task = asyncio.create_task(self._write_loop(), name="writer")

    def _open_writer(self) -> None:
        self._writer = conn = self._engine(writer=True).connect()
        dbapi = conn.connection.driver_connection
        assert isinstance(dbapi, sqlite3.Connection)
        dbapi.execute("BEGIN IMMEDIATE")
        try:
            upgrade(conn)
        except BaseException:
            self._finish(conn, dbapi, commit=False)
            raise
        self._finish(conn, dbapi, commit=True)

    async def check(self, within: float) -> str:
        """`service.core.ports.Store.check` (see `check_store`; the read runs on the loop
        and cannot be cut short, but a WAL read waits for no lock)."""
        return await check_store(self, self._writer_task, self._head, within)

    async def close(self) -> None:
        """Finish queued writes, stop the writer, close the connections."""
        if self._writer_task is not None:
            await self._queue.put(None)
            await self._writer_task
        if self._writer is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._writer.close)
        self._thread.shutdown()
        if self._reader is not None:
            self._reader.close()
        for engine in self._engines:
            engine.dispose()

    def _tx(self, conn: Connection) -> SqliteTx:
        dbapi = conn.connection.driver_connection
        assert isinstance(dbapi, sqlite3.Connection)
        if self.tracing is not None:  # its statements traced (service/tracing.py)
            return SqliteTx(SyncConnection(conn), self.tracing.sqlite(dbapi))
        return SqliteTx(SyncConnection(conn), dbapi)

    async def read(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """Run `fn` in a read transaction (one snapshot), at once, on the loop's
        connection; BEGIN and ROLLBACK go straight to the driver."""
        assert self._reader is not None, "store not open"
        reader = self._reader
        dbapi = reader.connection.driver_connection
        assert isinstance(dbapi, sqlite3.Connection)
        if self.tracing is not None:
            with self.tracing.read():
                return self._read(reader, dbapi, fn)
        return self._read(reader, dbapi, fn)

    def _read(
        self, reader: Connection, dbapi: sqlite3.Connection, fn: Callable[[Tx], Awaitable[T]]
    ) -> T:
        with translate_errors():
            dbapi.execute("BEGIN")
            try:
                return drive(fn(self._tx(reader)))
            finally:
                self._finish(reader, dbapi, commit=False)

    async def write(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """Queue `fn` for the writer; resolves after its transaction has committed."""
        if self.tracing is not None:
            fn = self.tracing.write(fn)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._queue.put((fn, future))
        return await future

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch, stop = await next_batch(self._queue, self.max_batch)
            if not batch:
                return
            started = time.perf_counter()
            outcomes = await loop.run_in_executor(
                self._thread, self._commit, [fn for fn, _ in batch]
            )
            self.metrics.write_batch(len(batch), time.perf_counter() - started)
            for index, (_fn, future) in enumerate(batch):
                if future.done():
                    continue
                if isinstance(outcomes, DomainError):
                    future.set_exception(outcomes)
                elif outcomes[index][0]:
                    future.set_result(outcomes[index][1])
                else:
                    future.set_exception(outcomes[index][1])
            if stop:
                return

    def _commit(
        self, fns: list[Callable[[Tx], Awaitable[Any]]]
    ) -> list[tuple[bool, Any]] | DomainError:
        """On the writer thread: the batch in one transaction, each request in its
        SAVEPOINT; a failed COMMIT fails them all (nothing was written). Transaction
        control goes straight to the driver (see `_finish`)."""
        if self.tracing is None:
            return self._commit_batch(fns)
        with self.tracing.transaction(fns):
            return self._commit_batch(fns)

    def _commit_batch(
        self, fns: list[Callable[[Tx], Awaitable[Any]]]
    ) -> list[tuple[bool, Any]] | DomainError:
        assert self._writer is not None
        conn = self._writer
        dbapi = conn.connection.driver_connection
        assert isinstance(dbapi, sqlite3.Connection)
        outcomes: list[tuple[bool, Any]] = []
        try:
            with translate_errors():
                dbapi.execute("BEGIN IMMEDIATE")
                for fn in fns:
                    dbapi.execute("SAVEPOINT item")
                    try:
                        with translate_errors():
                            value = drive(fn(self._tx(conn)))
                    except Exception as exc:
                        dbapi.execute("ROLLBACK TO item")
                        outcomes.append((False, exc))
                    else:
                        outcomes.append((True, value))
                    dbapi.execute("RELEASE item")
                self._finish(conn, dbapi, commit=True)
        except DomainError as exc:
            with contextlib.suppress(Exception):
                self._finish(conn, dbapi, commit=False)
            return exc
        return outcomes

    @staticmethod
    def _finish(conn: Connection, dbapi: sqlite3.Connection, commit: bool) -> None:
        """End the driver's transaction, and SQLAlchemy's if a statement made it
        autobegin (its engines issue no BEGIN of their own here)."""
        if conn.in_transaction():
            conn.commit() if commit else conn.rollback()
        if dbapi.in_transaction:
            dbapi.execute("COMMIT" if commit else "ROLLBACK")


def open_store(
    url: str, read_pool_size: int = 4, max_batch: int = 256
) -> SqliteStore | PostgresStore:
    """The store for a database URL: `SqliteStore` for `sqlite+…`, `PostgresStore` for
    `postgresql+asyncpg://…`; anything else is refused with a message."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return SqliteStore(url, read_pool_size, max_batch)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "asyncpg":
        return PostgresStore(url, read_pool_size, max_batch)
    raise SystemExit(
        f"--database-url {parsed.render_as_string()}: expected sqlite+aiosqlite:///FILE "
        "or postgresql+asyncpg://USER@HOST/DB"
    )
