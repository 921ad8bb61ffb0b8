"""The terminal softphone: the sound card behind its interface, the line codec, a live
call against a small fake media-stream service, and `callbot phone` without a sound card."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import numpy as np
import pytest
import sounddevice
from websockets.asyncio.server import ServerConnection, serve

from callcenter import cli
from callcenter.audio import mulaw_decode, pcm_to_array, rms_dbfs
from callcenter.softphone import (
    AudioDeviceError,
    LineDecoder,
    LineEncoder,
    SoundDevice,
    WavFileDevice,
    _MicStats,
    _offer,
    run_live,
)

pytestmark = pytest.mark.unit


def tone(seconds: float, level: float = 8000.0, hz: float = 440.0) -> bytes:
    t = np.arange(round(seconds * 16_000)) / 16_000
    return (level * np.sin(2 * math.pi * hz * t)).astype("<i2").tobytes()


def no_sound_card() -> bool:
    try:
        return len(sounddevice.query_devices()) == 0
    except sounddevice.PortAudioError:
        return True


# ---------------------------------------------------------------- `callbot phone`


@pytest.mark.skipif(not no_sound_card(), reason="this machine has a sound card")
def test_without_a_sound_card_phone_says_so_and_suggests_wav(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Nothing listens on the URL: the device is tried first, so no call is placed.
    code = cli.main(["phone", "--line", "114", "--lang", "vi", "--url", "ws://127.0.0.1:9/x"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no audio device found" in err
    assert "--wav" in err
    assert "Traceback" not in err


def test_an_unknown_device_name_is_reported_the_same_way(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = cli.main(["phone", "--device", "no such card", "--url", "ws://127.0.0.1:9/x"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no audio device found" in err and "no such card" in err and "--wav" in err


@pytest.mark.skipif(not no_sound_card(), reason="this machine has a sound card")
def test_sound_device_turns_portaudio_errors_into_audio_device_error() -> None:
    device = SoundDevice()
    with pytest.raises(AudioDeviceError, match="no audio device found"):
        device.open(lambda pcm: None)
    device.close()  # harmless after a failed open


# ---------------------------------------------------------------- SoundDevice wiring


class FakeRawStream:
    """Stands in for `sounddevice.RawStream`: records how it was opened."""

    made: ClassVar[list[FakeRawStream]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.started = self.stopped = self.closed = False
        FakeRawStream.made.append(self)

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        self.closed = True


def test_sound_device_opens_a_16_khz_mono_duplex_stream_of_20_ms_blocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    FakeRawStream.made.clear()
    monkeypatch.setattr(sounddevice, "RawStream", FakeRawStream)
    mic: list[bytes] = []
    device = SoundDevice("USB headset")
    device.open(mic.append)
    (stream,) = FakeRawStream.made
    assert stream.started
    assert stream.kwargs["samplerate"] == 16_000
    assert stream.kwargs["blocksize"] == 320
    assert stream.kwargs["channels"] == 1
    assert stream.kwargs["dtype"] == "int16"
    assert stream.kwargs["device"] == "USB headset"
    callback = stream.kwargs["callback"]

    # PortAudio calls back with the microphone block and a speaker block to fill.
    bot = tone(0.03)  # 960 bytes: one and a half blocks
    device.play(bot)
    assert device.pending_s() == pytest.approx(0.03)
    said = tone(0.02, hz=300)
    out = bytearray(640)
    callback(said, out, 320, None, 0)
    assert mic == [said]
    assert bytes(out) == bot[:640]
    callback(said, out, 320, None, 0)
    assert bytes(out) == bot[640:] + bytes(320)  # the rest, then silence
    callback(said, out, 320, None, 1)  # a flagged block (overflow) is counted
    assert bytes(out) == bytes(640) and device.overflows == 1

    device.play(bot)
    device.clear()  # barge-in: what was queued is dropped
    callback(said, out, 320, None, 0)
    assert bytes(out) == bytes(640)

    device.close()
    assert stream.stopped and stream.closed


# ---------------------------------------------------------------- line codec


def test_the_encoder_is_the_same_whatever_the_chunking() -> None:
    speech = tone(1.0, hz=700) + tone(0.5, level=2000, hz=1500)
    whole = LineEncoder().encode(speech)
    chunked_encoder = LineEncoder()
    chunked: list[bytes] = []
    for start in range(0, len(speech), 333):  # odd sizes: half samples carried over
        chunked += chunked_encoder.encode(speech[start : start + 333])
    assert len(whole) == 75 and all(len(f) == 160 for f in whole)
    assert b"".join(chunked) == b"".join(whole)


def test_the_line_keeps_the_level_of_speech_band_audio() -> None:
    speech = tone(1.0, hz=700)
    line = b"".join(LineEncoder().encode(speech))
    decoder = LineDecoder()
    back = b"".join(decoder.decode(line[i : i + 160]) for i in range(0, len(line), 160))
    assert len(back) == len(speech)
    level_in = rms_dbfs(pcm_to_array(speech))
    level_out = rms_dbfs(pcm_to_array(back[3200:]))  # past the filter's start-up
    assert abs(level_in - level_out) < 1.0


# ---------------------------------------------------------------- WavFileDevice


def test_the_file_microphone_waits_for_the_bot_then_says_its_turn() -> None:
    heard: list[tuple[float, bytes]] = []
    device = WavFileDevice([tone(0.1)], reply_gap_s=0.1)
    device.open(lambda pcm: heard.append((time.monotonic(), pcm)))
    try:
        time.sleep(0.3)
        assert device.turn_spans == []  # the bot has not spoken: the caller waits
        device.play(tone(0.1, hz=300))
        deadline = time.monotonic() + 3
        while device.turns_said < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        device.close()
    assert device.turns_said == 1
    started, ended = device.turn_spans[0]
    assert ended is not None and ended - started == pytest.approx(0.1, abs=0.05)
    assert all(len(pcm) == 640 for _, pcm in heard)
    voiced = [at for at, pcm in heard if rms_dbfs(pcm_to_array(pcm)) > -40]
    assert len(voiced) == 5
    # Paced like a sound card: about one frame per 20 ms.
    span_s = heard[-1][0] - heard[0][0]
    assert len(heard) == pytest.approx(span_s / 0.02 + 1, abs=5)
    assert device.speaker_pcm() == tone(0.1, hz=300)


def test_a_full_microphone_queue_drops_the_oldest_frame() -> None:
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=2)
    stats = _MicStats()
    for frame in (b"1", b"2", b"3"):
        _offer(queue, frame, stats)
    assert (stats.taken, stats.dropped) == (3, 1)
    assert [queue.get_nowait(), queue.get_nowait()] == [b"2", b"3"]


# ---------------------------------------------------------------- a live call


Script = Callable[[ServerConnection, list[dict[str, Any]]], Coroutine[Any, Any, None]]


@asynccontextmanager
async def fake_service(script: Script) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A media-stream service that runs `script` once the call starts."""
    received: list[dict[str, Any]] = []

    async def handler(ws: ServerConnection) -> None:
        task: asyncio.Task[None] | None = None
        try:
            async for message in ws:
                event = json.loads(message)
                received.append(event)
                if event["event"] == "start":
                    task = asyncio.create_task(script(ws, received))
        finally:
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/calls/media-stream", received


async def send_bot_audio(ws: ServerConnection, pcm16k: bytes) -> None:
    ulaw = b"".join(LineEncoder().encode(pcm16k))
    for i in range(0, len(ulaw), 160):
        payload = base64.b64encode(ulaw[i : i + 160]).decode()
        await ws.send(
            json.dumps({"event": "media", "streamSid": "s", "media": {"payload": payload}})
        )
        await asyncio.sleep(0.02)


def caller_audio(received: list[dict[str, Any]]) -> bytes:
    return b"".join(
        base64.b64decode(e["media"]["payload"]) for e in received if e["event"] == "media"
    )


async def test_a_live_call_plays_the_bot_and_sends_the_microphone() -> None:
    async def script(ws: ServerConnection, received: list[dict[str, Any]]) -> None:
        await send_bot_audio(ws, tone(0.5, hz=500))
        await ws.send(json.dumps({"event": "mark", "streamSid": "s", "mark": {"name": "greeting"}}))
        # Wait for the caller's turn (0.3 s of tone after the greeting), then hang up.
        for _ in range(200):
            if rms_dbfs(mulaw_decode(caller_audio(received)[-800:])) > -30:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        await ws.send(json.dumps({"event": "clear", "streamSid": "s"}))
        await ws.close(1000, "bot ended the call")

    device = WavFileDevice([tone(0.3, hz=800)], reply_gap_s=0.2)
    async with fake_service(script) as (url, received):
        outcome = await asyncio.wait_for(run_live(url, device, line="113", lang="en"), 15)

    assert outcome.ended_by == "service"
    start = next(e for e in received if e["event"] == "start")
    assert start["start"]["customParameters"]["line"] == "113"
    # The speaker got the bot's half second, in 16 kHz, at its level.
    bot = device.speaker_pcm()
    assert len(bot) == pytest.approx(0.5 * 32_000, abs=640)
    assert rms_dbfs(pcm_to_array(bot)[800:]) == pytest.approx(
        rms_dbfs(pcm_to_array(tone(0.5))), abs=1
    )
    assert device.clears == 1
    # The service got the microphone as 20 ms µ-law frames, the turn among them.
    frames = [base64.b64decode(e["media"]["payload"]) for e in received if e["event"] == "media"]
    assert frames and all(len(f) == 160 for f in frames)
    loud = [f for f in frames if rms_dbfs(mulaw_decode(f)) > -30]
    assert len(loud) == pytest.approx(15, abs=2)  # 0.3 s
    assert outcome.bot_pcm16k and outcome.mic_frames_dropped == 0
    assert device.turns_said == 1


async def test_stop_hangs_up_and_closes_the_device() -> None:
    async def script(ws: ServerConnection, received: list[dict[str, Any]]) -> None:
        await send_bot_audio(ws, tone(0.2))

    stop = asyncio.Event()
    device = WavFileDevice([])
    connected = threading.Event()
    async with fake_service(script) as (url, received):
        task = asyncio.create_task(run_live(url, device, stop=stop, on_connected=connected.set))
        await asyncio.sleep(0.6)
        stop.set()
        outcome = await asyncio.wait_for(task, 10)
    assert connected.is_set()
    assert outcome.ended_by == "caller"
    assert received[-1]["event"] == "stop"
    assert outcome.mic_frames >= 20  # the microphone ran while the call was up
    assert device.closed


async def test_a_time_limit_ends_the_call() -> None:
    async def script(ws: ServerConnection, received: list[dict[str, Any]]) -> None:
        return

    async with fake_service(script) as (url, _):
        outcome = await asyncio.wait_for(run_live(url, WavFileDevice([]), max_s=0.3), 10)
    assert outcome.ended_by == "time limit"
