"""OpenTelemetry traces of one process (server or gateway): off unless an OTLP endpoint is
configured (`--otel URL` or OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
`jobcontrol.settings.otel_enabled`). When off this module is never imported: no interceptor,
no middleware, no engine listener.

Each process has its own TracerProvider (service.name jobcontrol-server or
jobcontrol-gateway), passed explicitly to the instrumentations (never the global one), a
BatchSpanProcessor exporting OTLP/HTTP protobuf, the standard sampler variables
(OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG; default parentbased_always_on) and W3C trace
context propagation. Every span started while a request id is known carries it as
`jobcontrol.request_id`; log lines carry `trace_id` and `span_id`."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)

REQUEST_ID = "jobcontrol.request_id"


def sampler(env: Mapping[str, str] | None = None) -> Sampler:
    """The sampler the standard variables name (parent-based by default: a sampled caller's
    trace is always continued, roots are sampled at the ratio); a name not known stops the
    start."""
    env = os.environ if env is None else env
    name = (env.get("OTEL_TRACES_SAMPLER") or "parentbased_always_on").strip().lower()
    raw = env.get("OTEL_TRACES_SAMPLER_ARG") or "1.0"
    try:
        ratio = float(raw)
    except ValueError as exc:
        raise SystemExit(f"OTEL_TRACES_SAMPLER_ARG: not a number: {raw!r}") from exc
    if name.endswith("traceidratio") and not 0.0 <= ratio <= 1.0:
        raise SystemExit(f"OTEL_TRACES_SAMPLER_ARG: {ratio} is not between 0 and 1")
    known: dict[str, Callable[[], Sampler]] = {
        "always_on": lambda: ALWAYS_ON,
        "always_off": lambda: ALWAYS_OFF,
        "traceidratio": lambda: TraceIdRatioBased(ratio),
        "parentbased_always_on": lambda: ParentBased(ALWAYS_ON),
        "parentbased_always_off": lambda: ParentBased(ALWAYS_OFF),
        "parentbased_traceidratio": lambda: ParentBased(TraceIdRatioBased(ratio)),
    }
    if name not in known:
        raise SystemExit(f"OTEL_TRACES_SAMPLER: {name!r} is not one of {', '.join(known)}")
    return LinkedSampler(known[name]())


class LinkedSampler(Sampler):
    """`inner`, except that a root span linked to a sampled span (the writer's transaction,
    linked to the requests it commits) is sampled: it is kept whenever one of its requests
    is, whatever the ratio."""

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: trace.SpanKind | None = None,
        attributes: Any = None,
        links: Sequence[trace.Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        root = not trace.get_current_span(parent_context).get_span_context().is_valid
        if links and root and any(link.context.trace_flags.sampled for link in links):
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        return self.inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return self.inner.get_description()


class RequestIdProcessor(SpanProcessor):
    """Puts the request id known when a span starts (`current`) on it."""

    def __init__(self, current: Callable[[], str]) -> None:
        self.current = current

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        rid = self.current()
        if rid and rid != "-":  # "-": none (the server's default outside a call)
            span.set_attribute(REQUEST_ID, rid)

    def on_end(self, span: ReadableSpan) -> None:
        return None


def _exporter(flag: str) -> OTLPSpanExporter:
    """`--otel URL` is the collector's base (`/v1/traces` appended, as the standard base
    variable is); else the exporter reads the OTEL_EXPORTER_OTLP_* variables itself."""
    if flag:
        return OTLPSpanExporter(endpoint=flag.rstrip("/") + "/v1/traces")
    return OTLPSpanExporter()


class Provider(TracerProvider):
    """This process's TracerProvider, exporting to the configured collector (the batch
    processor reads the standard OTEL_BSP_* variables)."""

    def __init__(self, service_name: str, flag: str, request_id: Callable[[], str]) -> None:
        super().__init__(sampler=sampler(), resource=Resource.create({SERVICE_NAME: service_name}))
        self.exporter = _exporter(flag)
        self.add_span_processor(RequestIdProcessor(request_id))
        self.add_span_processor(BatchSpanProcessor(self.exporter))

    def close(self) -> None:
        """Export what is queued, waiting at most 2 s (a collector that is down, retried
        with back-off, would hold the stop for the exporter's whole timeout), then stop."""
        # force_flush exports in the caller's thread, retrying past any timeout it is given
        flushing = threading.Thread(target=self.force_flush, daemon=True)
        flushing.start()
        flushing.join(2.0)
        self.exporter.shutdown()  # type: ignore[no-untyped-call]  # ends a retry in progress: what is left is dropped
        self.shutdown()


def log_fields() -> dict[str, str]:
    """The trace and span ids of the current span, for a log line ({} outside any)."""
    found = trace.get_current_span().get_span_context()
    if not found.is_valid:
        return {}
    return {"trace_id": f"{found.trace_id:032x}", "span_id": f"{found.span_id:016x}"}


class ChildOnlyTracer(trace.Tracer):
    """A tracer that starts spans only inside a sampled request or attempt: SQL of the
    reaper's passes, the health probes and the scheduler's claims makes no root span of its
    own (each would be a trace every second), and SQL of a request not sampled costs no
    span either (the sampler would drop it; nothing goes out of SQL to carry its context)."""

    def __init__(self, inner: trace.Tracer) -> None:
        self.inner = inner

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        if not trace.get_current_span().is_recording():
            return trace.INVALID_SPAN
        return self.inner.start_span(name, *args, **kwargs)

    def start_as_current_span(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if not trace.get_current_span().is_recording():
            return trace.use_span(trace.INVALID_SPAN)
        return self.inner.start_as_current_span(name, *args, **kwargs)


@dataclass
class Captured:
    """A request's trace context and request id, taken where it queued work that runs in
    another task or thread (the group-commit writer)."""

    context: otel_context.Context
    link: trace.SpanContext
    request_id: str


def capture(rid: ContextVar[str]) -> Captured:
    """The current trace context and request id."""
    return Captured(
        otel_context.get_current(), trace.get_current_span().get_span_context(), rid.get()
    )


def links(captured: Iterator[Captured]) -> list[trace.Link]:
    """Links to the sampled requests among `captured`."""
    return [trace.Link(c.link) for c in captured if c.link.is_valid and c.link.trace_flags.sampled]
