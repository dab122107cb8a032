"""The server's traces (imported only when traces are on, see jobcontrol/tracing.py).

- gRPC: OpenTelemetry's grpc.aio server interceptor (the caller's `traceparent` metadata
  continues its trace); the request id interceptor inside it tags the span.
- SQL: OpenTelemetry's SQLAlchemy engine listener on every engine of the store, through a
  tracer that starts spans only under a traced request or attempt. The statements the
  store sends to the driver directly (its fixed hot-path SQL: sqlite3, asyncpg) get the
  same kind of span (`db.system`, `db.statement`, named by the statement's first word)
  from a proxy of the driver's connection the store's transactions use; a request not
  sampled costs that proxy one check per statement.
- Group commit: the writer runs many requests in one transaction on its own task (PostgreSQL)
  or thread (SQLite), so a batch belongs to no one request. Each request's work in its
  SAVEPOINT is a `db.write` span in the request's own trace (the request's context is
  taken when it queues and restored around its function), its SQL spans beneath it; the
  transaction (BEGIN … COMMIT) is a `db.transaction` span of its own trace, linked to the
  span of every sampled request in the batch (none when none is sampled).
- The scheduler: an occurrence's attempt is background work, so each is the root of its own
  trace (`scheduler.attempt`, never the trace of the request that created the job); its HTTP
  action carries that trace's `traceparent` and the recording of the attempt is beneath it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.propagate import inject

from jobcontrol import tracing
from jobcontrol.service.rpc.context import request_id

T = TypeVar("T")
SERVICE = "jobcontrol-server"


class Traced:
    """A queued write's function with the context of the request that queued it."""

    def __init__(self, owner: ServerTracing, fn: Callable[[Any], Awaitable[Any]]) -> None:
        self.owner = owner
        self.fn = fn
        self.captured = tracing.capture(request_id)

    async def __call__(self, tx: Any) -> Any:
        token = otel_context.attach(self.captured.context)
        rid = request_id.set(self.captured.request_id)
        try:
            with self.owner.tracer.start_as_current_span("db.write"):
                return await self.fn(tx)
        finally:
            request_id.reset(rid)
            otel_context.detach(token)


class SampledEngineTracer(EngineTracer):
    """The SQLAlchemy instrumentation's listener, skipped at once for a statement outside
    a sampled request: its tracer would make no span of it (ChildOnlyTracer), but only
    after reading the engine's URL and the database name and parsing the statement."""

    def _before_cur_exec(
        self, conn: Any, cursor: Any, statement: Any, params: Any, context: Any, many: Any
    ) -> Any:
        if not trace.get_current_span().is_recording():
            return statement, params
        return super()._before_cur_exec(  # type: ignore[no-untyped-call]
            conn, cursor, statement, params, context, many
        )


def _operation(sql: str) -> str:
    """A statement's span name: its first word (SELECT, UPDATE, WITH, ...), as the
    SQLAlchemy instrumentation names its spans."""
    return sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "SQL"


class TracedSqlite:
    """A sqlite3 connection whose `execute` is a SQL span under a sampled request (the
    statements of the store's fixed SQL); everything else is the connection's."""

    def __init__(self, dbapi: Any, tracer: trace.Tracer) -> None:
        self._dbapi = dbapi
        self._tracer = tracer

    def execute(self, sql: str, parameters: Any = ()) -> Any:
        if not trace.get_current_span().is_recording():
            return self._dbapi.execute(sql, parameters)
        with self._tracer.start_as_current_span(
            _operation(sql),
            kind=trace.SpanKind.CLIENT,
            attributes={"db.system": "sqlite", "db.statement": sql},
        ):
            return self._dbapi.execute(sql, parameters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dbapi, name)


class TracedAsyncpg:
    """An asyncpg connection whose `execute`, `fetch`, `fetchrow` and `fetchval` are SQL
    spans under a sampled request; everything else is the connection's."""

    def __init__(self, raw: Any, tracer: trace.Tracer) -> None:
        self._raw = raw
        self._tracer = tracer

    async def _run(self, method: str, sql: str, args: tuple[Any, ...]) -> Any:
        call = getattr(self._raw, method)
        if not trace.get_current_span().is_recording():
            return await call(sql, *args)
        with self._tracer.start_as_current_span(
            _operation(sql),
            kind=trace.SpanKind.CLIENT,
            attributes={"db.system": "postgresql", "db.statement": sql},
        ):
            return await call(sql, *args)

    async def execute(self, sql: str, *args: Any) -> Any:
        return await self._run("execute", sql, args)

    async def fetch(self, sql: str, *args: Any) -> Any:
        return await self._run("fetch", sql, args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        return await self._run("fetchrow", sql, args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._run("fetchval", sql, args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class ServerTracing:
    """The server's provider and what the server, store and scheduler use of it."""

    def __init__(self, flag: str) -> None:
        self.provider = tracing.Provider(SERVICE, flag, request_id.get)
        self.tracer = self.provider.get_tracer("jobcontrol.service")
        self._sql = tracing.ChildOnlyTracer(
            self.provider.get_tracer("opentelemetry.instrumentation.sqlalchemy")
        )
        # the store's fixed SQL, sent to the driver without SQLAlchemy
        self._driver_sql = self.provider.get_tracer("jobcontrol.storage")
        # the listener also counts connections; traces only here, so to no meter
        self._usage = (
            NoOpMeterProvider()
            .get_meter("jobcontrol")
            .create_up_down_counter("db.client.connections.usage")
        )

    def interceptor(self) -> grpc.aio.ServerInterceptor:
        """The gRPC server span of every call (the caller's trace context continued)."""
        made: grpc.aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
            tracer_provider=self.provider
        )
        return made

    @staticmethod
    def tag_request_id(rid: str) -> None:
        """The request id on the call's span (it is decided inside the span)."""
        trace.get_current_span().set_attribute(tracing.REQUEST_ID, rid)

    def instrument(self, engine: Any) -> None:
        """SQL spans of `engine` (sync, or an AsyncEngine's sync_engine)."""
        sync = getattr(engine, "sync_engine", engine)
        SampledEngineTracer(self._sql, sync, self._usage)  # type: ignore[no-untyped-call]

    def sqlite(self, dbapi: Any) -> TracedSqlite:
        """`dbapi` (sqlite3) with a span per statement of a sampled request."""
        return TracedSqlite(dbapi, self._driver_sql)

    def asyncpg(self, raw: Any) -> TracedAsyncpg:
        """`raw` (asyncpg) with a span per statement of a sampled request."""
        return TracedAsyncpg(raw, self._driver_sql)

    def write(self, fn: Callable[[Any], Awaitable[T]]) -> Callable[[Any], Awaitable[T]]:
        """`fn` running under the queuing request's context (see the module docstring);
        a write outside any sampled request or attempt (one not sampled, a health probe,
        the scheduler's claims, the reaper) as it is: nothing of it would be recorded."""
        if not trace.get_current_span().is_recording():
            return fn
        return Traced(self, fn)

    @contextlib.contextmanager
    def transaction(self, fns: Sequence[object]) -> Iterator[None]:
        """The writer's transaction of one batch, linked to its sampled requests. The span
        is never the current one: each sampled request's work runs in its own context
        (`Traced`), and a request not sampled must not record its SQL under this span."""
        links = tracing.links(iter(f.captured for f in fns if isinstance(f, Traced)))
        if not links:
            yield
            return
        span = self.tracer.start_span(
            "db.transaction",
            context=otel_context.Context(),
            links=links,
            attributes={"jobcontrol.batch_size": len(fns)},
        )
        try:
            yield
        finally:
            span.end()

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        """A read of a sampled request (no span outside one)."""
        if not trace.get_current_span().is_recording():
            yield
            return
        with self.tracer.start_as_current_span("db.read"):
            yield

    @contextlib.contextmanager
    def attempt(self, attributes: dict[str, str]) -> Iterator[None]:
        """A scheduled occurrence's attempt: the root span of its own trace."""
        with self.tracer.start_as_current_span(
            "scheduler.attempt",
            context=otel_context.Context(),
            kind=trace.SpanKind.INTERNAL,
            attributes=attributes,
        ):
            yield

    @contextlib.contextmanager
    def action(self, headers: dict[str, str]) -> Iterator[None]:
        """The HTTP action's client span; its `traceparent` (and `tracestate`) is added to
        the action's `headers`."""
        with self.tracer.start_as_current_span("scheduler.action", kind=trace.SpanKind.CLIENT):
            inject(headers)
            yield

    def shutdown(self) -> None:
        """Export what is queued (at most 2 s more), then stop."""
        self.provider.close()
