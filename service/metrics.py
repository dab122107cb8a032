"""The server's own metrics beside the gRPC ones (service/rpc/metrics.py): the writer,
the scheduler and the read pool, on the server's registry. The core and the storage see
only the `Metrics` port (service/core/ports.py); gauges are read when scraped. The backlog
(work queue depth, occurrences due) is counted in the database on the event loop and
served from its last count (`Backlog`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jobcontrol.metrics import DEFAULT_BUCKETS
from jobcontrol.service.core.ports import Store, Tx, WorkDepth
from jobcontrol.service.health import PROBE_TIMEOUT

log = logging.getLogger("jobcontrol.metrics")

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


# the states of jobcontrol_work_queue_depth
QUEUED, LEASED = "queued", "leased"
# the backlog is counted again no sooner than this many times the last count took, so that
# counting a long backlog takes at most 1/SPACING of the time (on SQLite, reads run on
# the event loop)
SPACING = 20
GLOBAL = (
    " Counted in the database, so every replica reports the same figure: aggregate "
    "replicas with max(), not sum()."
)


async def _count(tx: Tx) -> tuple[dict[str, WorkDepth], int]:
    return await tx.work_depth(), await tx.occurrences_due()


class Backlog(Collector):
    """`jobcontrol_work_queue_depth{kind,state}` (work items waiting for a worker or
    leased to one) and `jobcontrol_scheduler_occurrences_due` (occurrences due and under
    no live lease): figures of the whole database, not of this replica.

    A task on the server's event loop counts them every `interval` seconds (one read: a
    count of work items grouped by kind, a count of due occurrences) and keeps the last
    count; a scrape, in prometheus_client's HTTP thread, yields that count and touches
    neither the database nor the loop. A count that fails or takes longer than the
    interval or 2 s (whichever is longer) is logged at DEBUG and the last one stays.

    A task of its own rather than a step of the health monitor (service/health.py): the
    monitor's probes decide readiness, and must neither wait behind a metric's query nor
    fail with it; this task exists only when metrics are on, so with them off nothing is
    counted. It keeps the monitor's cadence (`--health-interval`), the server's one
    setting of how often it looks at its database in the background.

    Every kind in `kinds` (and any other the database held since the start) has both
    states from the first count on, 0 when it has no items: a kind that drains reads 0,
    not its last value. Before a first count succeeds the families have no samples."""

    def __init__(self, store: Store, interval: float, kinds: Iterable[str]) -> None:
        self.store = store
        self.interval = interval
        self.timeout = max(interval, PROBE_TIMEOUT)
        # replaced whole, never changed in place: the scrape thread reads them unlocked
        self._kinds: tuple[str, ...] = tuple(kinds)
        self._last: tuple[dict[str, WorkDepth], int] | None = None
        self._took = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def refresh(self) -> bool:
        """Count once; whether the count succeeded (else the last one stays)."""
        started = time.monotonic()
        try:
            # not asyncio.wait_for: on Python 3.11 it drops a cancel (stop) that arrives as
            # the read completes
            async with asyncio.timeout(self.timeout):
                depth, due = await self.store.read(_count)
        except Exception as exc:  # TimeoutError, a storage error: keep the last count
            log.debug("backlog not counted", extra={"reason": f"{type(exc).__name__}: {exc}"})
            return False
        finally:
            self._took = time.monotonic() - started
        new = [kind for kind in depth if kind not in self._kinds]
        if new:
            self._kinds = (*self._kinds, *sorted(new))
        self._last = (depth, due)
        return True

    def start(self) -> None:
        """Count every interval from now on (the caller may have counted once already)."""
        self._task = asyncio.create_task(self._loop(), name="backlog")

    async def _loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(max(self.interval, SPACING * self._took))
            await self.refresh()

    async def stop(self) -> None:
        """Stop counting (the flag as well as the cancel, as HealthMonitor.stop)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def collect(self) -> Iterator[Metric]:
        last, kinds = self._last, self._kinds
        depth = GaugeMetricFamily(
            "jobcontrol_work_queue_depth",
            "Work items of workers by kind and state: queued (no live lease: none taken, "
            "given back, or expired on the database's clock) or leased (under a live lease)."
            + GLOBAL,
            labels=("kind", "state"),
        )
        due = GaugeMetricFamily(
            "jobcontrol_scheduler_occurrences_due",
            "Occurrences of scheduled jobs due now and under no live lease (not yet "
            "claimed by any replica's scheduler)." + GLOBAL,
        )
        if last is not None:
            counted, occurrences = last
            for kind in kinds:
                found = counted.get(kind, WorkDepth())
                depth.add_metric((kind, QUEUED), found.queued)
                depth.add_metric((kind, LEASED), found.leased)
            due.add_metric((), occurrences)
        yield depth
        yield due


__all__ = ["Backlog", "ServerMetrics"]
