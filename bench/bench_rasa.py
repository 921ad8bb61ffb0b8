"""The Rasa dialog alone: start-up, memory and turn latency.

    .venv/bin/python -m bench.bench_rasa [--json PATH] [--calls 20] [--data-dir var]

Starts the Rasa server and the action server as the service does
(`RasaProcesses`, free loopback ports), then runs scripted conversations
through `RasaDialog` one after another. Reports:

- **ready_s**: spawn to both servers answering (the model loaded);
- **rss_mb**: resident memory of the Rasa server and of the action server,
  after the conversations;
- **turn**: `RasaDialog.respond` (webhook + tracker, with the action server);
- **webhook**: `POST /webhooks/rest/webhook` alone, the same turns replayed;
- **start**: `RasaDialog.start` (the greeting).

Needs `scripts/setup_rasa.sh`. Exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx

from bench.stats import emit, summarize_ms, table
from callcenter.events import CallInfo, Language, Line
from dialog.rasa_dialog import RasaDialog
from dialog.rasa_process import RasaProcesses, RasaSettings, new_auth_token

_CONVERSATIONS: tuple[tuple[Line, Language, tuple[str, ...]], ...] = (
    (
        Line.FIRE,
        Language.VI,
        (
            "alo cháy nhà rồi cứu với",
            "số 16 phố Huế",
            "đúng rồi",
            "không chín một hai ba bốn năm sáu bảy tám",
            "tôi tên Lan",
            "không biết",
            "không có ai",
        ),
    ),
    (
        Line.POLICE,
        Language.EN,
        (
            "I've just been robbed",
            "near Dong Xuan market",
            "yes",
            "0987654321",
            "my name is John",
            "nobody",
        ),
    ),
    (
        Line.POLICE,
        Language.VI,
        (
            "có người cầm dao đe dọa",
            "ngõ 5 Láng Hạ",
            "phường Láng",
            "đúng",
            "0912345678",
            "Hùng",
            "hai người",
        ),
    ),
)


def _rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        return None
    return None


async def _run(calls: int, data_dir: Path) -> dict[str, object]:
    settings = RasaSettings.for_data_dir(
        data_dir, port=0, action_port=0, auth_token=new_auth_token()
    )
    started = time.perf_counter()
    processes = RasaProcesses(settings)
    await processes.start()
    ready_s = time.perf_counter() - started
    starts: list[float] = []
    turns: list[float] = []
    webhook: list[float] = []
    try:
        dialog = RasaDialog(processes.url, timeout_s=settings.timeout_s, token=settings.auth_token)
        for i in range(calls):
            line, language, texts = _CONVERSATIONS[i % len(_CONVERSATIONS)]
            call = CallInfo(f"bench-{i}", line, language, None, "bench")
            t0 = time.perf_counter()
            await dialog.start(call)
            starts.append(time.perf_counter() - t0)
            for text in texts:
                t0 = time.perf_counter()
                await dialog.respond(call.call_id, text)
                turns.append(time.perf_counter() - t0)
            await dialog.end(call.call_id)
        await dialog.aclose()
        async with httpx.AsyncClient(base_url=processes.url, timeout=5.0) as client:
            for i in range(calls):
                _, _, texts = _CONVERSATIONS[i % len(_CONVERSATIONS)]
                for text in texts:
                    t0 = time.perf_counter()
                    response = await client.post(
                        "/webhooks/rest/webhook", json={"sender": f"raw-{i}", "message": text}
                    )
                    response.raise_for_status()
                    webhook.append(time.perf_counter() - t0)
        rss = {
            "rasa_server": _rss_mb(processes.pid("rasa")),
            "action_server": _rss_mb(processes.pid("actions")),
        }
    finally:
        await processes.stop()
    return {
        "ready_s": round(ready_s, 2),
        "rss_mb": rss,
        "start": summarize_ms(starts),
        "turn": summarize_ms(turns),
        "webhook": summarize_ms(webhook),
        "calls": calls,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--data-dir", type=Path, default=Path("var"))
    args = parser.parse_args(argv)
    report = asyncio.run(_run(max(1, min(args.calls, 500)), args.data_dir))
    rss = report["rss_mb"]
    assert isinstance(rss, dict)
    print(
        f"ready after {report['ready_s']} s; RSS rasa {rss['rasa_server']} MiB, "
        f"actions {rss['action_server']} MiB",
        file=sys.stderr,
    )
    rows = []
    for name in ("start", "turn", "webhook"):
        summary = report[name]
        assert isinstance(summary, dict)
        rows.append(
            [name, summary["n"], summary["median_ms"], summary["p95_ms"], summary["max_ms"]]
        )
    print(table(["request", "n", "median ms", "p95 ms", "max ms"], rows), file=sys.stderr)
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
