"""The media-stream caller against a small fake service on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import math
import statistics
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve

from callcenter.audio import mulaw_decode, mulaw_encode, rms_dbfs
from callcenter.media_client import (
    LINE_FRAME_BYTES,
    MediaStreamCall,
    MediaStreamError,
    last_voiced_frame,
    line_frames,
)
from callcenter.scripted_caller import play_turns

pytestmark = pytest.mark.unit

SILENCE_8K = b"\xff" * LINE_FRAME_BYTES


def tone_pcm16k(seconds: float, *, level: float = 8000.0, hz: float = 440.0) -> bytes:
    t = np.arange(round(seconds * 16_000)) / 16_000
    return (level * np.sin(2 * math.pi * hz * t)).astype("<i2").tobytes()


def silence_pcm16k(seconds: float) -> bytes:
    return bytes(2 * round(seconds * 16_000))


@dataclass
class Received:
    at_s: float
    event: dict[str, Any]


@dataclass
class FakeService:
    """Records what the caller sends; `script` plays the bot's side."""

    script: Callable[[ServerConnection, FakeService], Coroutine[Any, Any, None]] | None = None
    received: list[Received] = field(default_factory=list)
    new_message: asyncio.Event = field(default_factory=asyncio.Event)

    def events(self, kind: str) -> list[Received]:
        return [r for r in self.received if r.event.get("event") == kind]

    async def wait_for(self, kind: str, count: int = 1, timeout_s: float = 3.0) -> list[Received]:
        async def wait() -> list[Received]:
            while len(self.events(kind)) < count:
                self.new_message.clear()
                await self.new_message.wait()
            return self.events(kind)

        return await asyncio.wait_for(wait(), timeout_s)

    async def handler(self, ws: ServerConnection) -> None:
        script_task: asyncio.Task[None] | None = None
        try:
            async for message in ws:
                event = json.loads(message)
                self.received.append(Received(time.monotonic(), event))
                self.new_message.set()
                if event["event"] == "start" and self.script is not None:
                    script_task = asyncio.create_task(self.script(ws, self))
                if event["event"] == "stop":
                    break
        finally:
            if script_task is not None:
                script_task.cancel()
                await asyncio.gather(script_task, return_exceptions=True)


async def send_audio(ws: ServerConnection, seconds: float, *, paced: bool) -> None:
    for _ in range(round(seconds / 0.02)):
        payload = base64.b64encode(SILENCE_8K.replace(b"\xff", b"\x80", 40)).decode()
        await ws.send(
            json.dumps({"event": "media", "streamSid": "x", "media": {"payload": payload}})
        )
        if paced:
            await asyncio.sleep(0.02)


async def send_mark(ws: ServerConnection, name: str) -> None:
    await ws.send(json.dumps({"event": "mark", "streamSid": "x", "mark": {"name": name}}))


@asynccontextmanager
async def fake_service(service: FakeService) -> AsyncIterator[str]:
    async with serve(service.handler, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/calls/media-stream"


async def test_dial_sends_connected_then_start_with_the_call_parameters() -> None:
    service = FakeService()
    async with (
        fake_service(service) as url,
        MediaStreamCall(url, line="114", lang="en", caller_number="0987654321") as call,
    ):
        await service.wait_for("start")
    kinds = [r.event["event"] for r in service.received]
    assert kinds[:2] == ["connected", "start"]
    assert service.received[0].event == {
        "event": "connected",
        "protocol": "Call",
        "version": "1.0.0",
    }
    start = service.received[1].event
    assert start["streamSid"] == call.record.stream_sid == start["start"]["streamSid"]
    assert start["start"]["callSid"] == call.record.call_sid
    assert start["start"]["mediaFormat"] == {
        "encoding": "audio/x-mulaw",
        "sampleRate": 8000,
        "channels": 1,
    }
    assert start["start"]["customParameters"] == {
        "line": "114",
        "lang": "en",
        "from": "0987654321",
    }


async def test_speech_goes_out_as_160_byte_mulaw_frames_every_20_ms() -> None:
    service = FakeService()
    speech = tone_pcm16k(0.4) + silence_pcm16k(0.2)
    async with fake_service(service) as url, MediaStreamCall(url, continuous=False) as call:
        before_s = time.monotonic()
        end_s = await call.speak(speech)
        await service.wait_for("media", 30)
    media = service.events("media")
    assert len(media) == 30
    payloads = [base64.b64decode(r.event["media"]["payload"]) for r in media]
    assert {len(p) for p in payloads} == {LINE_FRAME_BYTES}
    # the tone is audible at the far end, the padding silent
    assert rms_dbfs(mulaw_decode(payloads[5])) > -20
    assert rms_dbfs(mulaw_decode(payloads[-1])) < -60
    gaps = [b.at_s - a.at_s for a, b in itertools.pairwise(media)]
    assert 0.015 < statistics.median(gaps) < 0.025
    assert 0.45 < media[-1].at_s - media[0].at_s < 0.75
    # sequence numbers and chunks count up; the end of speech is the tone's end
    assert [int(r.event["sequenceNumber"]) for r in media] == list(range(2, 32))
    assert [int(r.event["media"]["chunk"]) for r in media] == list(range(1, 31))
    assert 0.33 < end_s - before_s < 0.5
    assert all(r.event["media"]["track"] == "inbound" for r in media)


async def test_the_line_carries_silence_between_turns_like_a_phone() -> None:
    service = FakeService()
    async with fake_service(service) as url, MediaStreamCall(url) as call:
        await service.wait_for("media", 10)
        assert call.record.frames_sent >= 10
    payloads = [base64.b64decode(r.event["media"]["payload"]) for r in service.events("media")]
    assert all(p == SILENCE_8K for p in payloads)


async def test_marks_are_echoed_once_the_audio_before_them_has_played() -> None:
    async def bot(ws: ServerConnection, service: FakeService) -> None:
        await send_audio(ws, 0.3, paced=False)  # a burst: 300 ms to play
        await send_mark(ws, "greeting")

    service = FakeService(bot)
    async with fake_service(service) as url, MediaStreamCall(url, continuous=False) as call:
        mark = await call.wait_for_mark("greeting", timeout_s=3)
        echoed = await service.wait_for("mark")
    assert echoed[0].event["mark"] == {"name": "greeting"}
    assert echoed[0].event["streamSid"] == call.record.stream_sid
    assert mark.played_s is not None
    first_audio_s = call.record.media[0].received_s
    assert mark.played_s - first_audio_s >= 0.28
    assert len(call.record.media) == 15
    assert len(call.bot_audio_pcm16k()) == 15 * 320 * 2


async def test_clear_is_recorded_and_drops_the_queued_audio() -> None:
    async def bot(ws: ServerConnection, service: FakeService) -> None:
        await send_audio(ws, 2.0, paced=False)  # two seconds queued at the caller
        await send_mark(ws, "reply-1")
        await asyncio.sleep(0.1)
        await ws.send(json.dumps({"event": "clear", "streamSid": "x"}))

    service = FakeService(bot)
    async with fake_service(service) as url, MediaStreamCall(url, continuous=False) as call:
        mark = await call.wait_for_mark("reply-1", timeout_s=3)
    assert len(call.record.clears) == 1
    assert mark.played_s is not None
    # the mark comes back when the audio is dropped, not after two seconds
    assert mark.played_s - call.record.clears[0].received_s < 0.3
    assert mark.played_s - call.record.media[0].received_s < 1.0


async def test_first_media_after_gives_the_reply_latency() -> None:
    """A fake bot answers 200 ms after it hears three silent frames."""

    async def bot(ws: ServerConnection, service: FakeService) -> None:
        await send_audio(ws, 0.1, paced=True)
        await send_mark(ws, "greeting")
        heard_speech, quiet = False, 0
        seen = 0
        while True:
            media = service.events("media")
            for r in media[seen:]:
                level = rms_dbfs(mulaw_decode(base64.b64decode(r.event["media"]["payload"])))
                heard_speech = heard_speech or level > -30
                quiet = quiet + 1 if level < -60 else 0
                if heard_speech and quiet == 3:
                    await asyncio.sleep(0.2)
                    await send_audio(ws, 0.1, paced=True)
                    await send_mark(ws, "reply-1")
                    heard_speech = False
            seen = len(media)
            service.new_message.clear()
            await service.new_message.wait()

    service = FakeService(bot)
    async with fake_service(service) as url, MediaStreamCall(url) as call:
        greeting = await call.wait_for_mark("greeting", timeout_s=3)
        start_s = call.record.start_sent_s
        assert start_s is not None
        assert call.first_media_after(start_s) == call.record.media[0].received_s
        greeting_s = call.time_to_greeting_s()
        assert greeting_s is not None and greeting_s < 0.5
        timings = await play_turns(
            call, [tone_pcm16k(0.3) + silence_pcm16k(0.3)], reply_timeout_s=3
        )
        assert greeting.played_s is not None
    [turn] = timings
    assert turn.mark == "reply-1"
    assert turn.latency_s is not None
    # 3 quiet frames (40-60 ms after the last voiced one) + 200 ms of "thinking"
    assert 0.2 < turn.latency_s < 0.45
    assert call.first_media_after(time.monotonic()) is None


async def test_hangup_sends_stop_last_and_closes_normally() -> None:
    service = FakeService()
    async with fake_service(service) as url:
        call = MediaStreamCall(url)
        async with call:
            await call.speak(tone_pcm16k(0.1))
        await call.hangup()  # idempotent
        await service.wait_for("stop")
    last = service.received[-1].event
    assert last["event"] == "stop"
    assert last["stop"] == {"accountSid": "local", "callSid": call.record.call_sid}
    assert last["streamSid"] == call.record.stream_sid
    sequence = [int(r.event["sequenceNumber"]) for r in service.received[1:]]
    assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence)
    assert call.record.close_code == 1000
    assert not call.record.closed_by_service
    with pytest.raises(MediaStreamError):
        await call.speak(tone_pcm16k(0.1))


async def test_the_service_closing_after_goodbye_ends_the_waits() -> None:
    async def bot(ws: ServerConnection, service: FakeService) -> None:
        await send_audio(ws, 0.1, paced=True)
        await send_mark(ws, "goodbye")
        await service.wait_for("mark")
        await ws.close(1000)

    service = FakeService(bot)
    async with fake_service(service) as url, MediaStreamCall(url) as call:
        await call.wait_for_mark("goodbye", timeout_s=3)
        assert await call.wait_closed(timeout_s=3) == 1000
        assert call.record.closed_by_service
        with pytest.raises(MediaStreamError, match="ended"):
            await call.wait_for_mark("reply-1", timeout_s=3)
        with pytest.raises(MediaStreamError):
            await call.speak(tone_pcm16k(0.1))
    assert service.events("stop") == []


async def test_waits_are_bounded() -> None:
    service = FakeService()
    async with fake_service(service) as url, MediaStreamCall(url) as call:
        started = time.monotonic()
        with pytest.raises(MediaStreamError, match="within"):
            await call.wait_for_mark("greeting", timeout_s=0.2)
        assert time.monotonic() - started < 1.0


async def test_an_unreachable_service_raises_a_media_stream_error() -> None:
    async with fake_service(FakeService()) as url:
        pass  # the port is closed again
    with pytest.raises(MediaStreamError, match="cannot connect"):
        async with MediaStreamCall(url, connect_timeout_s=1.0):
            pass


def test_frames_and_end_of_speech_detection() -> None:
    frames = line_frames(tone_pcm16k(0.5) + silence_pcm16k(0.5) + b"\x00\x00" * 10)
    assert len(frames) == 51 and all(len(f) == LINE_FRAME_BYTES for f in frames)
    assert last_voiced_frame(frames) in (24, 25)
    assert last_voiced_frame([SILENCE_8K] * 5) is None
    assert last_voiced_frame([]) is None
    quiet_noise = mulaw_encode(np.full(160, 30, dtype=np.int16))
    assert last_voiced_frame([*frames[:10], quiet_noise, quiet_noise]) == 9
