"""Driving the load in one client process (closed or open loop), and several processes
started with `spawn` whose results are merged exactly."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import multiprocessing
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

from jobcontrol.service.loadgen.config import BenchConfig
from jobcontrol.service.loadgen.stats import PhaseStats
from jobcontrol.service.loadgen.targets import Caller, IdPool, MultiTarget, Op, make_target

# seconds a spawned client process may take to import and connect
READY_TIMEOUT = 60.0
# the load of every process starts at one wall-clock instant this far ahead
START_MARGIN = 0.2


@dataclass(frozen=True)
class Phase:
    """One measured phase: its operation mix and bounds (all processes together)."""

    name: str
    mix: tuple[tuple[str, int], ...]
    warmup: float
    duration: float
    requests: int | None

    @property
    def warm_mix(self) -> tuple[tuple[str, int], ...]:
        """The warm-up mix: the phase's, without delete-all (it is meant to run once)."""
        return tuple((op, w) for op, w in self.mix if op != "delete-all")

    @property
    def effective_warmup(self) -> float:
        """Warm-up seconds actually run (none when only delete-all is in the mix)."""
        return self.warmup if self.warm_mix else 0.0


@dataclass(frozen=True)
class Shard:
    """Client process `index` of `count`."""

    index: int
    count: int

    def share(self, total: int) -> int:
        """This process's part of `total` (the parts add up to it exactly)."""
        return total * (self.index + 1) // self.count - total * self.index // self.count


def picker(mix: tuple[tuple[str, int], ...]) -> Callable[[random.Random], str]:
    """Weighted choice of an op."""
    ops = [op for op, _ in mix]
    bounds = list(itertools.accumulate(w for _, w in mix))
    total = bounds[-1] if bounds else 0

    def pick(rng: random.Random) -> str:
        return ops[bisect.bisect_right(bounds, rng.random() * total)]

    return pick


def _uses_fresh_ids(config: BenchConfig, op: str) -> bool:
    route = config.route(op)
    if route is None:
        return op == "delete"
    return route.method == "DELETE" and ("{job}" in route.path or "{job}" in (config.body or ""))


class ProcessRunner:
    """The load of one client process: one target (one channel / one session)."""

    def __init__(self, config: BenchConfig, shard: Shard) -> None:
        self.config = config
        self.shard = shard
        if config.rate is None:
            connections = shard.share(config.concurrency)
        else:
            connections = shard.share(config.max_in_flight)
        self.target: MultiTarget = make_target(config, max(1, connections))
        self.deletes = IdPool(
            config.jobs * shard.index // shard.count, config.jobs * (shard.index + 1) // shard.count
        )
        self.prefix = f"n{config.run_token}{shard.index:02x}-"
        self.created = [0]
        self.rng = random.Random()

    async def open(self) -> None:
        await self.target.open()

    async def close(self) -> None:
        await self.target.close()

    def _caller(self, pool: IdPool) -> Caller:
        return Caller(
            random.Random(self.rng.random()), pool, self.config.jobs, self.prefix, self.created
        )

    def _pools(self, phase: Phase, parts: int) -> list[IdPool]:
        if any(_uses_fresh_ids(self.config, op) for op, _ in phase.mix):
            return self.deletes.split(parts)
        return [IdPool(0, 0) for _ in range(parts)]

    async def run(self, phase: Phase, start_wall: float) -> PhaseStats:
        """Run `phase` from wall-clock `start_wall`: warm-up (not recorded), then the
        measured window, bounded by its duration and this process's share of requests."""
        limit = None if phase.requests is None else self.shard.share(phase.requests)
        if limit == 0:
            return PhaseStats()
        t0 = time.perf_counter() + (start_wall - time.time())
        await asyncio.sleep(max(0.0, t0 - time.perf_counter()))
        calls = {op: self.target.op(op) for op, _ in phase.mix}
        measure_at = t0 + phase.effective_warmup
        end_at = measure_at + phase.duration
        stats = PhaseStats(started=start_wall + (measure_at - t0))
        if self.config.rate is None:
            await self._closed(phase, calls, stats, limit, measure_at, end_at)
        else:
            await self._open(phase, calls, stats, limit, t0, measure_at, end_at)
        stats.ended = start_wall + (time.perf_counter() - t0)
        return stats

    async def _closed(
        self,
        phase: Phase,
        calls: dict[str, Op],
        stats: PhaseStats,
        limit: int | None,
        measure_at: float,
        end_at: float,
    ) -> None:
        """N workers, each with one request in flight."""
        pick, pick_warm = picker(phase.mix), picker(phase.warm_mix)
        only_fresh = all(_uses_fresh_ids(self.config, op) for op, _ in phase.mix)
        remaining = [limit]

        async def worker(caller: Caller) -> None:
            while True:
                now = time.perf_counter()
                if now >= end_at:
                    return
                measuring = now >= measure_at
                if measuring:
                    left = remaining[0]
                    if left is not None:
                        if left <= 0:
                            return
                        remaining[0] = left - 1
                    op = pick(caller.rng)
                else:
                    op = pick_warm(caller.rng)
                status = await _attempt(calls[op], caller)
                if measuring:
                    if status is None:
                        stats.op(op).latencies.append((time.perf_counter() - now) * 1000.0)
                    else:
                        stats.op(op).errors[status] += 1
                if status == "EXHAUSTED":
                    if only_fresh:
                        return
                    await asyncio.sleep(0)

        workers = self.shard.share(self.config.concurrency)
        pools = self._pools(phase, workers)
        await asyncio.gather(*(worker(self._caller(pool)) for pool in pools))

    async def _open(
        self,
        phase: Phase,
        calls: dict[str, Op],
        stats: PhaseStats,
        limit: int | None,
        t0: float,
        measure_at: float,
        end_at: float,
    ) -> None:
        """Requests sent at fixed intervals whatever the replies do; latency counts from
        the scheduled send time, so a slow server cannot hide it (no coordinated omission)."""
        assert self.config.rate is not None
        loop = asyncio.get_running_loop()
        pick, pick_warm = picker(phase.mix), picker(phase.warm_mix)
        interval = self.shard.count / self.config.rate
        offset = self.shard.index / self.config.rate
        cap = max(1, self.shard.share(self.config.max_in_flight))
        caller = self._caller(self._pools(phase, 1)[0])
        pending: set[asyncio.Task[None]] = set()
        in_flight = [0]

        async def one(op: str, scheduled: float, measuring: bool) -> None:
            try:
                status = await _attempt(calls[op], caller)
            finally:
                in_flight[0] -= 1
            if measuring:
                if status is None:
                    stats.op(op).latencies.append((time.perf_counter() - scheduled) * 1000.0)
                else:
                    stats.op(op).errors[status] += 1

        for k in itertools.count():
            scheduled = t0 + offset + k * interval
            if scheduled >= end_at:
                break
            measuring = scheduled >= measure_at
            if measuring and limit is not None:
                if limit <= 0:
                    break
                limit -= 1
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif k % 32 == 0:
                await asyncio.sleep(0)
            op = pick(caller.rng) if measuring else pick_warm(caller.rng)
            if in_flight[0] >= cap:
                if measuring:
                    stats.op(op).errors["OVERLOAD"] += 1
                continue
            in_flight[0] += 1
            task = loop.create_task(one(op, scheduled, measuring))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)


async def _attempt(call: Op, caller: Caller) -> str | None:
    try:
        return await call(caller)
    except Exception as exc:  # a client-side failure is counted, never fatal
        return type(exc).__name__


# --- the client processes -----------------------------------------------------------------


class Clients(Protocol):
    """All client processes of a run."""

    async def open(self) -> None: ...

    margin: float

    async def run(self, phase: Phase, start: float) -> PhaseStats: ...

    async def close(self) -> None: ...


class LocalClients:
    """One client process: this one, in the caller's event loop."""

    margin = 0.0

    def __init__(self, config: BenchConfig) -> None:
        self.runner = ProcessRunner(config, Shard(0, 1))

    async def open(self) -> None:
        await self.runner.open()

    async def run(self, phase: Phase, start: float) -> PhaseStats:
        """The phase's stats; the load starts at wall-clock `start`."""
        return await self.runner.run(phase, start)

    async def close(self) -> None:
        await self.runner.close()


def _child_main(config: BenchConfig, shard: Shard, conn: Connection) -> None:
    """Entry of a spawned client process."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(_child(config, shard, conn))


async def _child(config: BenchConfig, shard: Shard, conn: Connection) -> None:
    runner = ProcessRunner(config, shard)
    loop = asyncio.get_running_loop()
    try:
        await runner.open()
    except Exception as exc:
        conn.send(("error", f"client {shard.index}: {exc!r}"))
        return
    conn.send(("ready", None))
    try:
        while True:
            message = await loop.run_in_executor(None, conn.recv)
            if message[0] != "phase":
                break
            try:
                conn.send(("done", await runner.run(message[1], message[2])))
            except Exception as exc:
                conn.send(("error", f"client {shard.index}: {exc!r}"))
    finally:
        await runner.close()


def _receive(conn: Connection, timeout: float) -> tuple[str, Any]:
    if not conn.poll(timeout):
        raise TimeoutError("a client process did not answer in time")
    kind, value = conn.recv()
    if kind == "error":
        raise RuntimeError(value)
    return kind, value


class SpawnedClients:
    """P client processes (multiprocessing, spawn), each with 1/P of the load."""

    margin = START_MARGIN

    def __init__(self, config: BenchConfig) -> None:
        self.config = config
        self.processes: list[Any] = []
        self.conns: list[Connection] = []

    async def open(self) -> None:
        context = multiprocessing.get_context("spawn")
        for index in range(self.config.processes):
            mine, theirs = context.Pipe()
            process = context.Process(
                target=_child_main,
                args=(self.config, Shard(index, self.config.processes), theirs),
                name=f"jobctl-bench-{index}",
                daemon=True,
            )
            process.start()
            theirs.close()
            self.processes.append(process)
            self.conns.append(mine)
        await self._gather(READY_TIMEOUT)

    async def _gather(self, wait_s: float) -> list[Any]:
        loop = asyncio.get_running_loop()
        replies = await asyncio.gather(
            *(loop.run_in_executor(None, _receive, conn, wait_s) for conn in self.conns)
        )
        return [value for _, value in replies]

    async def run(self, phase: Phase, start: float) -> PhaseStats:
        """Every process's stats of the phase, merged; the load starts at `start`."""
        for conn in self.conns:
            conn.send(("phase", phase, start))
        bound = (
            max(0.0, start - time.time())
            + phase.effective_warmup
            + phase.duration
            + self.config.timeout
            + 60
        )
        merged = PhaseStats()
        for stats in await self._gather(bound):
            merged.merge(stats)
        return merged

    async def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(("stop", None))
        loop = asyncio.get_running_loop()
        for process in self.processes:
            await loop.run_in_executor(None, process.join, 10)
            if process.is_alive():
                process.terminate()
                await loop.run_in_executor(None, process.join, 5)
        for conn in self.conns:
            conn.close()


def make_clients(config: BenchConfig) -> Clients:
    """In-process for one client process, spawned processes for more."""
    return LocalClients(config) if config.processes == 1 else SpawnedClients(config)
