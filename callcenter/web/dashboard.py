"""The supervisor dashboard's figures, from the rows of a date range (pure)."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import UTC, datetime
from typing import Any

LATENCY_EDGES_MS = [250, 500, 750, 1000, 1250, 1500, 2000, 2500, 3000, 5000]
CONFIDENCE_EDGES = [round(0.1 * i, 1) for i in range(1, 11)]


def dashboard_figures(
    calls: list[tuple[datetime, str, str | None, bool, Any]],
    latencies: list[float],
    confidences: list[float],
) -> dict[str, Any]:
    per_hour: Counter[tuple[str, str]] = Counter()
    categories: Counter[str] = Counter()
    handoffs = 0
    qa_total: Counter[str] = Counter()
    qa_passed: Counter[str] = Counter()
    for started_at, line, category, handoff, qa in calls:
        hour = started_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        per_hour[(hour.isoformat(), line)] += 1
        categories[category or "unknown"] += 1
        handoffs += int(handoff)
        for name, check in (qa or {}).items():
            if isinstance(check, dict) and check.get("passed") is not None:
                qa_total[name] += 1
                qa_passed[name] += int(check["passed"] is True)
    quantiles = (
        statistics.quantiles(latencies, n=20, method="inclusive") if len(latencies) >= 2 else []
    )
    return {
        "calls": len(calls),
        "calls_per_hour": [
            {"hour": hour, "line": line, "count": count}
            for (hour, line), count in sorted(per_hour.items())
        ],
        "categories": dict(categories.most_common()),
        "latency_ms": {
            "buckets": _histogram(latencies, [*LATENCY_EDGES_MS, None]),
            "median": round(statistics.median(latencies), 1) if latencies else None,
            "p95": round(quantiles[18], 1) if quantiles else None,
        },
        "handoff_rate": round(handoffs / len(calls), 4) if calls else None,
        "qa_pass_rates": {
            name: round(qa_passed[name] / qa_total[name], 4) for name in sorted(qa_total)
        },
        "asr_confidence": {"buckets": _histogram(confidences, [*CONFIDENCE_EDGES])},
    }


def _histogram(
    values: list[float], edges: list[float | None]
) -> list[dict[str, float | int | None]]:
    """Counts per bucket up to each edge (None: everything above the last edge)."""
    counts = [0] * len(edges)
    for value in values:
        for index, edge in enumerate(edges):
            if edge is None or value <= edge:
                counts[index] += 1
                break
    return [{"le": edge, "count": count} for edge, count in zip(edges, counts, strict=True)]
