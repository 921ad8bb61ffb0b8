"""The readable table of `bench.bench_dispatch` (the JSON report is its source)."""

from __future__ import annotations

import sys
from typing import Any

from bench.stats import fmt, table


def store_rows(name: str, result: dict[str, Any]) -> list[list[object]]:
    if "skipped" in result or "error" in result:
        what = "skipped" if "skipped" in result else "error"
        reason = str(result[what]).splitlines()[0]
        return [[name, what, "", "", "", "", "", reason[:110]]]
    writes, retries, claims = result["writes"], result["retries"], result["claims"]
    wc, rc, cc = writes["check"], retries["check"], claims["check"]
    return [
        _row(
            name, "write (create + update)", writes, "writes", "writes_per_s", "write_latency",
            f"{writes['incidents_per_s']} incidents/s; rows {wc['rows']}/{wc['expected_rows']}, "
            f"lost {wc['lost']}, dup {wc['duplicated']}, v!=2 {wc['not_at_version_2']}, "
            f"audit {wc['audit_rows']}/{wc['audit_rows_expected']}, errors {writes['errors']}",
        ),
        _row(
            name, "retry (same last write)", retries, "writes", "writes_per_s", "write_latency",
            f"rows {rc['rows']}, new versions {rc['new_versions']}, "
            f"new audit rows {rc['audit_rows_added']}, errors {retries['errors']}",
        ),
        _row(
            name, "claim attempts", claims, "attempts", "attempts_per_s", "attempt_latency",
            f"{claims['claims']} won ({claims['claims_per_s']}/s; all claimed after "
            f"{claims['all_claimed_after_s']} s), "
            f"{claims['already_claimed']} AlreadyClaimed, errors {claims['errors']}; "
            f"one winner each: {'yes' if cc['ok'] else 'NO'}",
        ),
    ]


def _row(
    name: str, what: str, part: dict[str, Any], count: str, rate: str, latency: str, note: str
) -> list[object]:
    """One table row: count, rate, latency median / p95 / max, and the check."""
    timing = part[latency]
    return [
        name, what, part[count], part[rate],
        timing["median_ms"], timing["p95_ms"], timing["max_ms"], note,
    ]


def print_table(report: dict[str, Any]) -> None:
    stores = report["stores"]
    rows: list[list[object]] = []
    for name in ("sqlite", "postgresql"):
        rows.extend(store_rows(name, stores[name]))
    params = report["params"]
    out = [
        f"\ndispatch store: {params['incidents']} incidents by {params['writers']} writers; "
        f"{params['dispatchers']} dispatchers on {params['claims']} incidents\n",
        table(
            ["store", "figure", "n", "per s", "median ms", "p95 ms", "max ms", "check"],
            rows,
        ),
    ]
    page = report["page"]
    if "from_answer" in page:
        prow = []
        for label, key in (
            ("answer returned -> row in page", "from_answer"),
            ("POST sent -> row in page", "from_post_start"),
            ("answer returned -> next frame", "next_frame_from_answer"),
            ("chat message POST", "chat_message_latency"),
        ):
            s = page[key]
            prow.append([label, s["n"], s["median_ms"], s["p95_ms"], s["max_ms"]])
        out.append(
            f"\n\nwrite -> page in headless Chromium: {page['reported']} incidents reported "
            f"at {page['rate_per_s']}/s, {page['never_shown_within_5s']} not shown within 5 s\n"
        )
        out.append(table(["figure", "n", "median ms", "p95 ms", "max ms"], prow))
    else:
        out.append(f"\n\nwrite -> page: {page.get('skipped') or page.get('error')}")
    met = report["meets_targets"]

    def verdict(value: object) -> str:
        return "-" if value is None else ("yes" if value else "NO")

    page_p95 = page.get("from_answer", {}).get("p95_ms") if "from_answer" in page else None
    target_rows: list[list[object]] = [
        ["write -> page p95 < 300 ms", fmt(page_p95, " ms"), verdict(met["write_to_page_p95"])],
    ]
    for name in ("sqlite", "postgresql"):
        result = stores[name]
        if "writes" in result:
            check = result["writes"]["check"]
            measured = (
                f"{result['writes']['incidents_written']} incidents, {check['lost']} lost, "
                f"{check['duplicated']} duplicated"
            )
        else:
            measured = "skipped" if "skipped" in result else "error"
        target_rows.append(
            [
                f"{name}: 1,000 incidents by 20 writers, 0 lost, 0 duplicated",
                measured,
                verdict(met[f"writes_{name}"]),
            ]
        )
    out.append("\n\ntargets\n")
    out.append(table(["target", "measured", "met"], target_rows))
    out.append(
        f"\nload average {report['loadavg_before']} -> {report['loadavg_after']}, "
        f"{report['cpu_count']} CPUs, {report['wall_s']} s\n"
    )
    sys.stderr.write("".join(out))
