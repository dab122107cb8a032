"""The report: JSON (config, phases, ratios) and the human table."""

from __future__ import annotations

from typing import Any

from jobcontrol.service.loadgen.config import BenchConfig


def ratios(phases: dict[str, Any]) -> dict[str, float]:
    """Each main-phase op's throughput over the echo baseline's (empty without one)."""
    baseline = phases.get("baseline")
    if not baseline:
        return {}
    echo = baseline["ops"].get("echo", {}).get("throughput", 0.0)
    if not echo:
        return {}
    return {op: stats["throughput"] / echo for op, stats in phases["main"]["ops"].items()}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _load(config: BenchConfig) -> str:
    if config.rate is not None:
        shape = f"open loop at {config.rate:g} req/s (at most {config.max_in_flight} in flight)"
    else:
        shape = f"{config.concurrency} in flight"
    processes = "1 client process" if config.processes == 1 else f"{config.processes} processes"
    return f"{config.protocol}, {shape}, {processes}"


def table(report: dict[str, Any], config: BenchConfig) -> str:
    """The phases as text tables."""
    lines = [f"jobctl bench: {_load(config)}, {config.jobs} jobs in collection {config.collection}"]
    header = (
        f"{'op':<14} {'count':>8} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'vs echo':>8}  errors"
    )
    ratio = report["ratios"]
    for label, phase in report["phases"].items():
        if phase is None:
            continue
        lines.append("")
        lines.append(
            f"{label}: {phase['duration_s']:.2f} s measured, {phase['throughput']:.1f} req/s"
        )
        lines.append(header)
        for op, s in phase["ops"].items():
            errors = " ".join(f"{k}={v}" for k, v in s["errors"].items()) or "-"
            vs = f"{ratio[op]:.0%}" if label == "main" and op in ratio else "-"
            lines.append(
                f"{op:<14} {s['count']:>8} {s['throughput']:>9.1f} {_ms(s['p50_ms']):>8} "
                f"{_ms(s['p90_ms']):>8} {_ms(s['p99_ms']):>8} {_ms(s['max_ms']):>8} "
                f"{vs:>8}  {errors}"
            )
        cpu = phase.get("cpu_ms_per_request")
        if cpu:
            parts = ", ".join(f"{k} {v:.3f}" for k, v in cpu.items() if v is not None)
            lines.append(f"CPU ms per request: {parts}")
    return "\n".join(lines)
