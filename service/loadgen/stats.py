"""Latency samples per operation, merged exactly across client processes."""

from __future__ import annotations

import math
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class OpStats:
    """One operation's successful latencies (ms, raw samples) and errors by status."""

    latencies: array[float] = field(default_factory=lambda: array("d"))
    errors: Counter[str] = field(default_factory=Counter)

    def merge(self, other: OpStats) -> None:
        """Add another process's samples and errors (exact)."""
        self.latencies.extend(other.latencies)
        self.errors.update(other.errors)

    @property
    def sent(self) -> int:
        """Requests that got an answer (successes plus error replies), not EXHAUSTED or
        OVERLOAD, which never left the client."""
        unsent = self.errors.get("EXHAUSTED", 0) + self.errors.get("OVERLOAD", 0)
        return len(self.latencies) + sum(self.errors.values()) - unsent

    def summary(self, duration: float) -> dict[str, Any]:
        """count, throughput and percentiles of the successes; errors by status."""
        ordered = sorted(self.latencies)
        count = len(ordered)
        return {
            "count": count,
            "throughput": count / duration if duration > 0 else 0.0,
            "p50_ms": percentile(ordered, 50),
            "p90_ms": percentile(ordered, 90),
            "p99_ms": percentile(ordered, 99),
            "max_ms": ordered[-1] if ordered else None,
            "errors": dict(sorted(self.errors.items())),
        }


def percentile(ordered: list[float], pct: float) -> float | None:
    """The nearest-rank percentile of sorted samples (None when there are none)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class PhaseStats:
    """What one process (or the merge of all) measured in one phase."""

    ops: dict[str, OpStats] = field(default_factory=dict)
    # wall-clock (time.time()) bounds of the measured window
    started: float = math.inf
    ended: float = 0.0

    def op(self, name: str) -> OpStats:
        """The stats of `name`, created on first use."""
        found = self.ops.get(name)
        if found is None:
            found = self.ops[name] = OpStats()
        return found

    def merge(self, other: PhaseStats) -> None:
        """Merge another process's phase (samples concatenated, window widened)."""
        for name, stats in other.ops.items():
            self.op(name).merge(stats)
        self.started = min(self.started, other.started)
        self.ended = max(self.ended, other.ended)

    @property
    def duration(self) -> float:
        """Seconds of the measured window (0 if nothing was measured)."""
        return max(0.0, self.ended - self.started) if self.ended else 0.0

    @property
    def sent(self) -> int:
        """Requests answered in the phase, all operations."""
        return sum(s.sent for s in self.ops.values())

    def summary(self, order: tuple[str, ...]) -> dict[str, Any]:
        """The phase as the report's JSON (operations in mix order)."""
        duration = self.duration
        ops = {name: self.op(name).summary(duration) for name in order}
        total = sum(o["count"] for o in ops.values())
        return {
            "duration_s": duration,
            "throughput": total / duration if duration > 0 else 0.0,
            "ops": ops,
            "cpu_ms_per_request": None,
        }
