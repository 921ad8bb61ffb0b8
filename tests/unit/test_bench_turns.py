"""The turn benchmark against a fake service: figures out, never a failing exit."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection

from bench import bench_turns
from callcenter.audio import mulaw_decode, rms_dbfs
from tests.unit.test_media_client import (
    FakeService,
    fake_service,
    send_audio,
    send_mark,
    silence_pcm16k,
    tone_pcm16k,
)

pytestmark = pytest.mark.unit


async def polite_bot(ws: ServerConnection, service: FakeService) -> None:
    """Greets, answers each turn 100 ms after 3 quiet frames, says goodbye after two."""
    await send_audio(ws, 0.1, paced=True)
    await send_mark(ws, "greeting")
    heard, quiet, seen, answered = False, 0, 0, 0
    while True:
        media = service.events("media")
        for r in media[seen:]:
            level = rms_dbfs(mulaw_decode(base64.b64decode(r.event["media"]["payload"])))
            heard = heard or level > -30
            quiet = quiet + 1 if level < -60 else 0
            if heard and quiet == 3:
                heard = False
                answered += 1
                await asyncio.sleep(0.1)
                await send_audio(ws, 0.1, paced=True)
                await send_mark(ws, "goodbye" if answered == 2 else f"reply-{answered}")
        seen = len(media)
        service.new_message.clear()
        await service.new_message.wait()


async def test_reports_greeting_and_turn_latency_as_json(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    turn = tone_pcm16k(0.3) + silence_pcm16k(0.2)
    monkeypatch.setattr(bench_turns, "load_turns", lambda *_args: [turn, turn, turn])
    out = tmp_path / "turns.json"
    async with fake_service(FakeService(polite_bot)) as url:
        args = bench_turns.parse_args(["--url", url, "--calls", "1", "--json", str(out)])
        assert await bench_turns.run(args) == 0
    report = json.loads(out.read_text())
    assert report["calls_connected"] == 1
    assert report["greeting"]["n"] == 1
    assert report["turn_latency"]["n"] == 2  # the goodbye ended the call after two turns
    assert 100 < report["turn_latency"]["median_ms"] < 400
    assert report["answers"] == {"reply": 1, "goodbye": 1}
    assert [t["answer"] for t in report["calls"][0]["turns"]] == ["reply-1", "goodbye"]
    assert report["service_rss_mb"] == {"before": None, "after": None}  # no /health here


async def test_an_unreachable_service_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_turns, "load_turns", lambda *_args: [tone_pcm16k(0.1)])
    async with fake_service(FakeService()) as url:
        pass  # closed again
    args = bench_turns.parse_args(["--url", url, "--calls", "2", "--ready-timeout", "1"])
    assert await bench_turns.run(args) == 2


async def test_only_loopback_services_are_driven() -> None:
    args = bench_turns.parse_args(["--url", "ws://192.0.2.1:8080/calls/media-stream"])
    assert await bench_turns.run(args) == 2
    assert bench_turns.is_loopback("ws://localhost:1/x")
    assert bench_turns.health_url("ws://127.0.0.1:8080/calls/media-stream") == (
        "http://127.0.0.1:8080/health"
    )
