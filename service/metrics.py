"""The server's own metrics beside the gRPC ones (service/rpc/metrics.py): the writer,
the scheduler and the read pool, on the server's registry. The core and the storage see
only the `Metrics` port (service/core/ports.py); gauges are read when scraped."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from jobcontrol.metrics import DEFAULT_BUCKETS

# requests per group commit: powers of two up to past the largest --max-batch default
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServerMetrics:
    """`service.core.ports.Metrics` on a prometheus_client registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.batch_size = Histogram(
            "jobcontrol_writer_batch_size",
            "Write requests committed in one transaction (group commit).",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "jobcontrol_writer_commit_seconds",
            "Seconds the writer took to run and commit one batch.",
            buckets=DEFAULT_BUCKETS,
            registry=registry,
        )
        self.attempts = Counter(
            "jobcontrol_scheduler_attempts_total",
            "Attempts of scheduled actions recorded, by phase (MAIN, ERROR) and outcome "
            "(succeeded, failed, skipped, lease_lost).",
            ("phase", "outcome"),
            registry=registry,
        )
        self.occurrences = Counter(
            "jobcontrol_scheduler_occurrences_total",
            "Occurrences of scheduled jobs that ended, by outcome (completed, faulted, skipped).",
            ("outcome",),
            registry=registry,
        )
        self.late = Histogram(
            "jobcontrol_scheduler_lateness_seconds",
            "Seconds an attempt of a scheduled action started after it was due.",
            buckets=DEFAULT_BUCKETS,
            registry=registry,
        )

        self.expired = Counter(
            "jobcontrol_work_leases_expired_total",
            "Work items leased again after their last lease expired, by kind.",
            ("kind",),
            registry=registry,
        )
        self.overdue = Counter(
            "jobcontrol_reaper_overdue_ended_total",
            "Tasks and jobs the reaper ended past their wall-clock limits.",
            registry=registry,
        )

    def gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge read from `read` at every scrape (nothing on the hot paths)."""
        Gauge(name, documentation, registry=self.registry).set_function(read)

    def write_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.commit_seconds.observe(seconds)

    def attempt(self, phase: str, outcome: str) -> None:
        self.attempts.labels(phase, outcome).inc()

    def occurrence(self, outcome: str) -> None:
        self.occurrences.labels(outcome).inc()

    def lateness(self, seconds: float) -> None:
        self.late.observe(max(seconds, 0.0))

    def lease_expired(self, kind: str) -> None:
        self.expired.labels(kind).inc()

    def overdue_ended(self, count: int) -> None:
        self.overdue.inc(count)


__all__ = ["ServerMetrics"]
