"""The SQL store: concurrent readers and one writer that group-commits queued requests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from service.core.errors import DomainError, Reason
from service.core.ports import Tx
from service.storage.migrate import upgrade
from service.storage.repository import SqlTx

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
    except (OperationalError, DBAPIError) as exc:
        log.error("storage unavailable: %s", exc)
        raise DomainError(Reason.STORAGE_UNAVAILABLE, "storage is unavailable; retry") from exc
    except SQLAlchemyError as exc:
        log.exception("storage error")
        raise DomainError(Reason.INTERNAL_ERROR, "internal storage error") from exc


def _sqlite_setup(engine: AsyncEngine, *, writer: bool) -> None:
    """WAL, synchronous=FULL, foreign keys, busy timeout; BEGIN issued by us so that
    SAVEPOINTs work (pysqlite's implicit transactions do not nest)."""

    @event.listens_for(engine.sync_engine, "connect")
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

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")


class SqlStore:
    """`service.core.ports.Store` over SQLAlchemy 2 async. All writes go through one
    connection: requests queue, the writer runs whatever has queued in one transaction
    (each request in its own SAVEPOINT, so one failure does not fail its neighbours),
    commits once, then answers each. Reads use their own pool and never queue behind
    writes (SQLite WAL)."""

    def __init__(self, url: str, read_pool_size: int = 4, max_batch: int = 256) -> None:
        self.url: URL = make_url(url)
        self.max_batch = max_batch
        self.read_pool_size = read_pool_size
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        self._write_engine: AsyncEngine | None = None
        self._read_engine: AsyncEngine | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    async def open(self) -> None:
        """Create engines, apply migrations, start the writer."""
        if self.is_sqlite and self.url.database and self.url.database != ":memory:":
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        self._write_engine = create_async_engine(self.url, pool_size=1, max_overflow=0)
        self._read_engine = create_async_engine(
            self.url, pool_size=self.read_pool_size, max_overflow=self.read_pool_size
        )
        if self.is_sqlite:
            _sqlite_setup(self._write_engine, writer=True)
            _sqlite_setup(self._read_engine, writer=False)
        with translate_errors():
            async with self._write_engine.begin() as conn:
                await conn.run_sync(upgrade)
        self._writer_task = asyncio.create_task(self._write_loop(), name="writer")

    async def close(self) -> None:
        """Finish queued writes, stop the writer, dispose of the engines."""
        if self._writer_task is not None:
            await self._queue.put(None)
            await self._writer_task
        for engine in (self._write_engine, self._read_engine):
            if engine is not None:
                await engine.dispose()

    async def read(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """Run `fn` in a read transaction on a pooled connection."""
        assert self._read_engine is not None, "store not open"
        with translate_errors():
            async with self._read_engine.connect() as conn, conn.begin():
                return await fn(SqlTx(conn))

    async def write(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """Queue `fn` for the writer; resolves after its transaction has committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._queue.put((fn, future))
        return await future

    async def _write_loop(self) -> None:
        assert self._write_engine is not None
        async with self._connection() as conn:
            while True:
                first = await self._queue.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < self.max_batch and not self._queue.empty():
                    item = self._queue.get_nowait()
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                await self._commit(conn, batch)
                if stop:
                    return

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        assert self._write_engine is not None
        async with self._write_engine.connect() as conn:
            yield conn

    async def _commit(self, conn: AsyncConnection, batch: list[_Item]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            with translate_errors():
                async with conn.begin():
                    for fn, _future in batch:
                        outcomes.append(await self._run_one(conn, fn))
        except DomainError as exc:  # the commit itself failed: nothing was written
            for _fn, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_fn, future), (ok, value) in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    @staticmethod
    async def _run_one(
        conn: AsyncConnection, fn: Callable[[Tx], Awaitable[Any]]
    ) -> tuple[bool, Any]:
        savepoint = await conn.begin_nested()
        try:
            with translate_errors():
                value = await fn(SqlTx(conn))
        except Exception as exc:
            await savepoint.rollback()
            return False, exc
        await savepoint.commit()
        return True, value
