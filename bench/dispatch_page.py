"""Write -> page latency of the dispatcher console, in a real browser (part of
`bench.bench_dispatch`; not a test).

The real service is started (Rasa included, SQLite in a temp data dir), a
dispatcher logs in to /dispatch in headless Chromium (Debian's, via
Playwright), and a MutationObserver on the queue notes when each new row
appears. Emergencies are reported through the chat API, whose answer comes
after the incident is written: answer returned -> row in the page is the
figure. The incidents cannot be written into the service's database from
here: the live feed is in the service's process, so only its own writes
reach the page.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.stats import is_loopback, summarize_ms
from callcenter.events import Line
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, create_user, log_in

DISPATCHER = "bench"
NEVER_SHOWN_AFTER_MS = 5000.0

OBSERVER_JS = """
() => {
  window.__seen = {};
  window.__frame = {};
  const body = document.querySelector("#queue-body");
  const note = (node) => {
    if (!(node instanceof HTMLTableRowElement) || !node.classList.contains("incident")) return;
    const id = node.dataset.id;
    if (!id || id in window.__seen) return;
    window.__seen[id] = Date.now();
    requestAnimationFrame(() => { window.__frame[id] = Date.now(); });
  };
  for (const tr of body.querySelectorAll("tr.incident")) window.__seen[tr.dataset.id] = 0;
  new MutationObserver((records) => {
    for (const record of records) for (const node of record.addedNodes) note(node);
  }).observe(body, { childList: true });
  return body.querySelectorAll("tr.incident").length;
}
"""

SEEN_JS = "() => ({ seen: window.__seen, frame: window.__frame })"


def page_message(index: int) -> tuple[Line, str]:
    """A resident's first message reporting an emergency, varied."""
    n = 3 + index * 7 % 190
    messages = (
        (Line.FIRE, f"cháy nhà ở số {n} phố Huế"),
        (Line.POLICE, f"có cướp ở ngõ {n} Láng Hạ"),
        (Line.FIRE, f"cháy nhà ở số {n} Hàng Bài, có người bị kẹt trên tầng hai"),
        (Line.POLICE, f"tôi vừa bị cướp điện thoại ở số {n} Kim Mã"),
        (Line.FIRE, f"có đám cháy lớn ở số {n} Nguyễn Trãi, khói rất nhiều"),
        (Line.POLICE, f"có cướp giật túi xách ở ngõ {n} Cầu Giấy"),
    )
    return messages[index % len(messages)]


@dataclass
class PageSample:
    index: int
    line: str
    text: str
    incident_id: str | None = None
    post_start_ms: float | None = None
    post_end_ms: float | None = None
    error: str | None = None


def report_incident(client: httpx.Client, sample: PageSample, number: str) -> None:
    try:
        opened = client.post(
            "/api/v1/chat/sessions", json={"line": sample.line, "lang": "vi", "from": number}
        )
        opened.raise_for_status()
        session_id = opened.json()["session_id"]
        sample.post_start_ms = time.time() * 1000.0
        reply = client.post(
            f"/api/v1/chat/sessions/{session_id}/messages", json={"text": sample.text}
        )
        sample.post_end_ms = time.time() * 1000.0
        reply.raise_for_status()
        incident_id = reply.json()["state"]["incident_id"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        sample.error = repr(exc)[:200]
        return
    sample.incident_id = None if incident_id is None else str(incident_id)


def page_latencies(
    samples: Sequence[PageSample], seen: dict[str, Any], frame: dict[str, Any]
) -> dict[str, object]:
    from_end: list[float] = []
    from_start: list[float] = []
    to_frame: list[float] = []
    never = 0
    rows = []
    for s in samples:
        if s.incident_id is None or s.post_end_ms is None or s.post_start_ms is None:
            continue
        shown = seen.get(s.incident_id)
        painted = frame.get(s.incident_id)
        late = shown is None or float(shown) - s.post_end_ms > NEVER_SHOWN_AFTER_MS
        if late:
            never += 1
        if shown is not None and not late:
            from_end.append((float(shown) - s.post_end_ms) / 1000.0)
            from_start.append((float(shown) - s.post_start_ms) / 1000.0)
            if painted is not None:
                to_frame.append((float(painted) - s.post_end_ms) / 1000.0)
        rows.append(
            {
                "incident_id": s.incident_id,
                "post_ms": round(s.post_end_ms - s.post_start_ms, 1),
                "shown_after_answer_ms": None
                if shown is None
                else round(float(shown) - s.post_end_ms, 1),
            }
        )
    return {
        "from_answer": summarize_ms(from_end),
        "from_post_start": summarize_ms(from_start),
        "next_frame_from_answer": summarize_ms(to_frame),
        "never_shown_within_5s": never,
        "shown_before_answer": sum(1 for v in from_end if v < 0),
        "samples": rows,
    }


def bench_page(args: argparse.Namespace) -> dict[str, object]:
    """Write -> page latency in headless Chromium, against the real service."""
    if args.skip_browser:
        return {"skipped": "--skip-browser"}
    if not CHROMIUM.exists():
        return {"skipped": f"{CHROMIUM} is not installed (apt-get install chromium)"}
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import start_service, stop_service

    with tempfile.TemporaryDirectory(prefix="bench-dispatch-page-") as tmp:
        data_dir = Path(tmp) / "service"
        started = time.monotonic()
        try:
            service = start_service(
                data_dir, CALLBOT_DATABASE_URL=f"sqlite:///{data_dir / 'callbot.db'}"
            )
        except RuntimeError as exc:
            return {"unreachable": True, "error": f"the service did not start: {exc}"[-2000:]}
        startup_s = time.monotonic() - started
        if not is_loopback(service.base_url):
            stop_service(service)
            return {"unreachable": True, "error": f"not loopback: {service.base_url}"}
        try:
            create_user(data_dir, DISPATCHER, "dispatcher")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
                )
                try:
                    return measure_page(browser, service.base_url, args) | {
                        "service_start_s": round(startup_s, 1)
                    }
                finally:
                    browser.close()
        except (subprocess.SubprocessError, PlaywrightError) as exc:
            return {"error": repr(exc)[:500], "service_log": service.log_tail(20)}
        finally:
            stop_service(service)


def measure_page(browser: Any, base_url: str, args: argparse.Namespace) -> dict[str, object]:
    context = browser.new_context()
    page = context.new_page()
    log_in(page, base_url, DISPATCHER, "/dispatch")
    page.wait_for_selector('body[data-live="1"]', state="attached", timeout=10_000)
    page.evaluate(OBSERVER_JS)

    samples = []
    for index in range(args.page_incidents):
        line, message = page_message(index)
        samples.append(PageSample(index, str(line), message))
    started = time.monotonic()
    with httpx.Client(base_url=base_url, timeout=10.0, trust_env=False) as client:
        for sample in samples:
            wait_s = started + sample.index / args.page_rate - time.monotonic()
            if wait_s > 0:
                time.sleep(wait_s)
            report_incident(client, sample, f"09{sample.index + 1:08d}")
    wanted = {s.incident_id for s in samples if s.incident_id is not None}
    last_end = max((s.post_end_ms or 0.0 for s in samples), default=time.time() * 1000.0)
    while True:  # until every row is there, or 5 s after the last answer
        found = page.evaluate(SEEN_JS)
        if wanted <= set(found["seen"]) or time.time() * 1000.0 > last_end + NEVER_SHOWN_AFTER_MS:
            break
        time.sleep(0.2)
    time.sleep(0.1)  # let the last frames run
    found = page.evaluate(SEEN_JS)
    context.close()
    posts = [
        (s.post_end_ms - s.post_start_ms) / 1000.0
        for s in samples
        if s.post_end_ms is not None and s.post_start_ms is not None
    ]
    return {
        "incidents_requested": args.page_incidents,
        "rate_per_s": args.page_rate,
        "reported": len(wanted),
        "no_incident_id": sum(1 for s in samples if s.incident_id is None and s.error is None),
        "errors": [f"#{s.index}: {s.error}" for s in samples if s.error][:5],
        "chat_message_latency": summarize_ms(posts),
        **page_latencies(samples, found["seen"], found["frame"]),
    }
