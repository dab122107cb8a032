"""The health monitor: every interval, the store's check (`Store.check`: the writer alive,
a read and a no-op write within a bound, the schema at this code's revision) sets every
gRPC service, and the server as a whole (""), SERVING or NOT_SERVING; each change is
logged once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from grpc_health.v1 import health, health_pb2

from jobcontrol.service.core.ports import Store

log = logging.getLogger("jobcontrol.health")
# the least time each probe (the read, the write) is given, however short the interval
PROBE_TIMEOUT = 2.0


def check_interval(interval: float) -> None:
    """Refuse an interval that would make the monitor spin."""
    if not interval > 0:
        raise SystemExit(f"--health-interval {interval:g}: expected a positive number")


class HealthMonitor:
    """Probes `store` every `interval` seconds and reports the outcome to `servicer` for
    `names` (and "")."""

    def __init__(
        self,
        store: Store,
        servicer: health.aio.HealthServicer,
        names: Sequence[str],
        interval: float,
    ) -> None:
        self.store = store
        self.servicer = servicer
        self.names = ("", *names)
        self.interval = interval
        self.timeout = max(interval, PROBE_TIMEOUT)
        # the last outcome: "" serving, else why not; None before the first probe
        self.reason: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def probe(self) -> str:
        """Check the store once and publish the outcome; returns it ("": serving)."""
        try:
            reason = await self.store.check(self.timeout)
        except Exception as exc:  # a check that itself failed is not serving either
            reason = f"the health check failed: {type(exc).__name__}: {exc}"
        if reason != self.reason:
            was_serving = self.reason is None or not self.reason
            self.reason = reason
            status = health_pb2.HealthCheckResponse.NOT_SERVING
            if reason:
                log.warning("health: not serving", extra={"reason": reason})
            else:
                status = health_pb2.HealthCheckResponse.SERVING
                if not was_serving:
                    log.info("health: serving again")
            for name in self.names:
                await self.servicer.set(name, status)
        return reason

    def start(self) -> None:
        """Probe every interval from now on (the caller has probed once already)."""
        self._task = asyncio.create_task(self._loop(), name="health-monitor")

    async def _loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.interval)
            await self.probe()

    async def stop(self) -> None:
        """Stop probing (the caller then reports NOT_SERVING for the shutdown). The flag
        as well as the cancel: on Python 3.11 `asyncio.wait_for` (the store's check) drops
        a cancel that arrives as its awaitable completes, and the loop would go on."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
