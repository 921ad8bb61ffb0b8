"""Small helpers shared by the benchmarks: summaries, RSS, output."""

from __future__ import annotations

import ipaddress
import json
import math
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from callcenter.settings import Settings

Summary = dict[str, float | int | None]


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (the value at rank ceil(fraction * n))."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summarize_ms(values_s: Sequence[float]) -> Summary:
    """n, median, p95, min and max of durations given in seconds, in milliseconds."""
    if not values_s:
        return {"n": 0, "median_ms": None, "p95_ms": None, "min_ms": None, "max_ms": None}
    ms = [v * 1000.0 for v in values_s]
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 1),
        "p95_ms": round(percentile(ms, 0.95), 1),
        "min_ms": round(min(ms), 1),
        "max_ms": round(max(ms), 1),
    }


def rss_mb() -> float | None:
    """Resident set size of this process, in MiB (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        return None
    return None


def emit(report: dict[str, object], json_path: Path | None) -> None:
    """The JSON report to `json_path`, or to stdout when none is given."""
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if json_path is None:
        sys.stdout.write(text + "\n")
    else:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(text + "\n", encoding="utf-8")


def fmt(value: object, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}{unit}" if abs(value) >= 10 else f"{value:.3g}{unit}"
    return f"{value}{unit}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain fixed-width text table."""
    cells = [[str(h) for h in headers]] + [[fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def is_loopback(url: str) -> bool:
    """True when the URL's host is this machine: benchmarks load nothing else."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def whisper_model_dir(settings: Settings, override: Path | None) -> Path:
    """The Whisper model a benchmark uses: an explicit one, the setting, or the packaged one."""
    from asr.model import ensure_whisper_model

    model_dir = override or settings.whisper_model_dir
    if model_dir is None:
        model_dir = ensure_whisper_model(settings.models_dir / "whisper-base")
    return model_dir
