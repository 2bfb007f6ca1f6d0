"""The load run's figures: a summary table on stdout and the same numbers as JSON."""

from __future__ import annotations

import math
from collections import Counter

MIB = 1 << 20


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank), or None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def latency_summary(values: list[float]) -> dict:
    return {
        "count": len(values),
        "p50_ms": _ms(percentile(values, 50)),
        "p99_ms": _ms(percentile(values, 99)),
        "max_ms": _ms(max(values) if values else None),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def hostile_table(outcomes: Counter) -> dict:
    """kind -> {outcome: count}."""
    table: dict[str, dict[str, int]] = {}
    for (kind, outcome), count in sorted(outcomes.items()):
        table.setdefault(kind, {})[outcome] = count
    return table


def print_summary(report: dict) -> None:
    load = report["load"]
    print()
    print(
        f"optimizerd load run: {report['config']['seconds']} s, {report['config']['clients']} legitimate clients, "
        f"{report['config']['hostile']} hostile workers ({report['config']['binary']})"
    )
    rows = [
        ("requests served (all clients)", load["requests_served"]),
        ("legitimate requests", load["legit_requests"]),
        ("legitimate steps acknowledged", load["legit_steps"]),
        ("legitimate steps/s", load["legit_steps_per_second"]),
        ("failed legitimate requests", len(load["failures"])),
        (
            "transport errors (retried) / on idle-closed connections",
            f"{load['transport_errors']} / {load['stale_connection_errors']}",
        ),
        ("steps acknowledged after a retry", load["retried_steps"]),
        ("step latency p50 / p99 / max (ms)", _triple(load["step_latency"])),
        ("/healthz probes", report["health"]["count"]),
        ("/healthz failures", len(report["health"]["failures"])),
        ("/healthz p50 / p99 / max (ms)", _triple(report["health"])),
        ("hostile requests", load["hostile_requests"]),
        ("hostile violations", len(load["hostile_violations"])),
    ]
    memory = report.get("memory")
    if memory:
        rows += [
            (
                "RSS before / peak / after (MiB)",
                f"{memory['before_mib']} / {memory['peak_mib']} / {memory['after_mib']}",
            ),
            ("RSS growth (MiB) / bound", f"{memory['growth_mib']} / {memory['bound_mib']}"),
            (
                "open descriptors before / peak / after",
                f"{memory['fds_before']} / {memory['fds_peak']} / {memory['fds_after']}",
            ),
        ]
    restart = report.get("restart")
    if restart:
        rows.append(
            (
                "restart: sessions checked / mismatches",
                f"{restart['sessions']} / {len(restart['mismatches'])}",
            )
        )
        rows.append(("restart: shutdown seconds", restart["shutdown_seconds"]))
    logs = report.get("logs")
    if logs:
        rows.append(("log: bytes / secrets found", f"{logs['bytes']} / {len(logs['findings'])}"))
        rows.append(("log: lines by level", ", ".join(f"{k} {v}" for k, v in sorted(logs["levels"].items()))))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print("  hostile outcomes:")
    for kind, outcomes in load["hostile"].items():
        print(f"    {kind:<28} " + ", ".join(f"{outcome}×{count}" for outcome, count in outcomes.items()))
    for kind, seconds in load.get("held_seconds", {}).items():
        print(f"    {kind:<28} closed by the daemon after {seconds['min']}–{seconds['max']} s")
    if report["violations"]:
        print(f"VIOLATIONS ({len(report['violations'])}):")
        for violation in report["violations"][:60]:
            print(f"  - {violation}")
    else:
        print("all invariants held")


def _triple(summary: dict) -> str:
    return f"{summary['p50_ms']} / {summary['p99_ms']} / {summary['max_ms']}"
