"""Asterisk's side of an AudioSocket call, played by a test peer against the real service.

The peer is written here from the published frame format (1 type byte, 2
length bytes big-endian, payload), not with the service's own parser.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest

from bench.corpus import espeak_pcm, read_wav_16k, vieneu_clips
from callcenter.audio import StreamResampler, array_to_pcm, pcm_to_array, rms_dbfs
from dispatch.records import CallView
from dispatch.store import SqlCallStore
from tests.e2e.conftest import RunningService, start_service, stop_service

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HANGUP, UUID, DTMF, AUDIO = 0x00, 0x01, 0x03, 0x10
FRAME_BYTES = 320  # 20 ms of 8 kHz slin16
FRAME_S = 0.020
SILENCE = bytes(FRAME_BYTES)
SPEECH_DBFS = -40.0  # the bot's voice is well above this; line silence is -100


def msg(kind: int, payload: bytes = b"") -> bytes:
    return bytes((kind,)) + len(payload).to_bytes(2, "big") + payload


def call_uuid(line: str) -> uuid.UUID:
    """A fresh UUID whose last group ends in the line, as a dialplan would make it."""
    return uuid.UUID(uuid.uuid4().hex[:29] + line)


def slin8k(pcm16k: bytes) -> bytes:
    return array_to_pcm(StreamResampler(16_000, 8_000).process(pcm_to_array(pcm16k)))


@dataclass
class Peer:
    """Asterisk's end: sends 20 ms of audio every 20 ms (silence when nobody speaks)."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    received: list[tuple[float, bytes]] = field(default_factory=list)  # (arrival, slin 8 kHz)
    other: list[tuple[int, bytes]] = field(default_factory=list)  # non-audio messages
    closed_at: float | None = None
    _speech: list[bytes] = field(default_factory=list)
    _spoken: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)  # audio came, or closed
    _closed: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def dial(cls, address: tuple[str, int], line: str = "114") -> tuple[Peer, uuid.UUID]:
        reader, writer = await asyncio.open_connection(*address)
        peer = cls(reader, writer)
        call = call_uuid(line)
        writer.write(msg(UUID, call.bytes))
        await writer.drain()
        peer._tasks = [asyncio.create_task(peer._send()), asyncio.create_task(peer._receive())]
        return peer, call

    async def _send(self) -> None:
        next_tick = time.monotonic()
        with contextlib.suppress(OSError):
            while self.closed_at is None:
                if self._speech:
                    frame = self._speech.pop(0)
                    if not self._speech:
                        self._spoken.set()
                else:
                    frame = SILENCE
                self.writer.write(msg(AUDIO, frame))
                await self.writer.drain()
                next_tick += FRAME_S
                await asyncio.sleep(max(0.0, next_tick - time.monotonic()))

    async def _receive(self) -> None:
        try:
            while True:
                header = await self.reader.readexactly(3)
                payload = await self.reader.readexactly(int.from_bytes(header[1:], "big"))
                if header[0] == AUDIO:
                    self.received.append((time.monotonic(), payload))
                else:
                    self.other.append((header[0], payload))
                self._changed.set()
        except (asyncio.IncompleteReadError, OSError):
            self.closed_at = time.monotonic()
            self._closed.set()
            self._changed.set()

    async def say(self, pcm8k: bytes) -> float:
        """Speak in real time, 20 ms frames; returns when the last frame went out."""
        padded = pcm8k + bytes(-len(pcm8k) % FRAME_BYTES)
        self._spoken.clear()
        self._speech.extend(padded[i : i + FRAME_BYTES] for i in range(0, len(padded), FRAME_BYTES))
        await asyncio.wait_for(self._spoken.wait(), len(padded) / 16_000 + 10)
        return time.monotonic()

    async def bot_utterance(self, after_s: float, timeout_s: float, quiet_s: float = 1.2) -> bytes:
        """The bot's audio that starts after `after_s` and ends with `quiet_s` of no audio."""
        try:
            async with asyncio.timeout(timeout_s):
                while not any(at > after_s for at, _ in self.received):
                    assert self.closed_at is None, "the service closed the call"
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"no bot audio within {timeout_s} s") from None
        while (quiet_left_s := quiet_s - (time.monotonic() - self.received[-1][0])) > 0:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), quiet_left_s)
        return b"".join(pcm for at, pcm in self.received if at > after_s)

    async def hang_up(self) -> None:
        self.writer.write(msg(HANGUP))
        await self.writer.drain()

    async def wait_closed_by_service(self, timeout_s: float) -> None:
        await asyncio.wait_for(self._closed.wait(), timeout_s)

    async def close(self) -> None:
        self.closed_at = self.closed_at or time.monotonic()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def finished_call(service: RunningService, call_id: str, wait_s: float = 20.0) -> CallView:
    store = SqlCallStore(f"sqlite:///{service.data_dir / 'callbot.db'}")
    try:
        async with asyncio.timeout(wait_s):
            while True:
                view = await store.get_call(call_id)
                if view is not None and view.ended_at is not None:
                    return view
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"no finished call {call_id}:\n{service.log_tail()}") from None
    finally:
        await store.close()


def caller_turn_8k() -> bytes:
    """Real Vietnamese speech (vieneu) when present, else English espeak-ng."""
    clips = vieneu_clips()
    pcm16k = read_wav_16k(clips[0][0]) if clips else espeak_pcm("There is a fire in my house")
    return slin8k(pcm16k + bytes(16_000))  # and half a second of trailing silence


def seconds(pcm8k: bytes) -> float:
    return len(pcm8k) / 16_000


def level(pcm8k: bytes) -> float:
    return rms_dbfs(np.frombuffer(pcm8k, dtype="<i2"))


async def test_asterisk_call_on_line_114_is_answered_and_recorded(service: RunningService) -> None:
    address = service.gateway_address("audiosocket")
    peer, call = await Peer.dial(address, line="114")
    try:
        greeting = await peer.bot_utterance(0.0, timeout_s=20)
        peer.writer.write(msg(DTMF, b"1"))  # a key press is taken without disturbing the call
        end_of_speech = await peer.say(caller_turn_8k())
        reply = await peer.bot_utterance(end_of_speech, timeout_s=40, quiet_s=1.5)
        await peer.hang_up()
        await peer.wait_closed_by_service(15)
    finally:
        await peer.close()

    # The greeting and the reply are speech, not silence, and last a while.
    assert level(greeting) > SPEECH_DBFS and seconds(greeting) >= 1.0
    assert level(reply) > SPEECH_DBFS and seconds(reply) >= 0.5
    assert all(len(pcm) == FRAME_BYTES for _, pcm in peer.received)

    record = await finished_call(service, f"as-{call.hex}")
    assert record.info.channel == "audiosocket"
    assert record.info.line == "114"
    assert record.end_reason == "caller hung up"
    turns = [view.turn for view in record.turns]
    assert turns and turns[0].speaker == "bot" and turns[0].text  # the greeting
    assert any(t.speaker == "caller" and t.text for t in turns), "the caller was not heard"
    assert sum(t.speaker == "bot" for t in turns) >= 2  # greeting and the reply


async def test_bad_input_ends_only_that_connection(service: RunningService) -> None:
    address = service.gateway_address("audiosocket")

    async def exchange(data: bytes, *, eof: bool = True, read_s: float = 15.0) -> bytes:
        """Send `data`, optionally close our side, and read until the service closes."""
        reader, writer = await asyncio.open_connection(*address)
        writer.write(data)
        await writer.drain()
        if eof:
            writer.write_eof()
        got = b""
        async with asyncio.timeout(read_s):
            while chunk := await reader.read(65536):
                got += chunk
        writer.close()
        return got

    bad_call = call_uuid("113")
    with_bad_messages = (
        msg(UUID, bad_call.bytes)
        + msg(0x42, b"garbage")  # unknown type
        + msg(AUDIO, bytes(321))  # odd length
        + msg(AUDIO, bytes(20_000))  # over one second in one message
        + msg(0x12, bytes(640))  # 16 kHz audio, which we do not take
        + msg(DTMF, b"xy")  # bad DTMF
        + msg(AUDIO, SILENCE) * 10
        + msg(AUDIO, SILENCE)[:40]  # cut mid-message, then EOF
    )
    started = time.monotonic()
    results = await asyncio.gather(
        exchange(with_bad_messages),
        exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),  # not AudioSocket at all
        exchange(b"", eof=False),  # says nothing: closed after the 5 s UUID wait
        exchange(msg(UUID, b"short")),
    )
    assert time.monotonic() - started < 15
    assert results[1] == results[3] == b""
    assert results[2] == b""

    # The call with bad messages was recorded like any other.
    record = await finished_call(service, f"as-{bad_call.hex}")
    assert record.info.channel == "audiosocket" and record.info.line == "113"
    assert record.end_reason == "socket closed"

    # The server still answers a good call.
    peer, _ = await Peer.dial(address, line="113")
    try:
        greeting = await peer.bot_utterance(0.0, timeout_s=20, quiet_s=0.5)
        assert level(greeting) > SPEECH_DBFS
        await peer.hang_up()
        await peer.wait_closed_by_service(15)
    finally:
        await peer.close()
    async with httpx.AsyncClient() as http:
        health = (await http.get(f"{service.base_url}/health", timeout=5)).json()
    assert health["gateways"]["audiosocket"].startswith("tcp ")
    assert service.process.poll() is None


async def test_a_service_that_cannot_take_calls_answers_asterisk_with_an_error(
    tmp_path: Path,
) -> None:
    """No speech recognition: the call is refused at once with an error message
    (type 0xff, our code 0x10), so the dialplan can route it to people."""
    broken = start_service(
        tmp_path / "no-asr",
        expect="degraded",
        CALLBOT_WHISPER_MODEL_DIR=str(tmp_path / "missing-model"),
        CALLBOT_RASA_VENV=str(tmp_path / "missing-venv"),
    )
    try:
        reader, writer = await asyncio.open_connection(*broken.gateway_address("audiosocket"))
        writer.write(msg(UUID, call_uuid("114").bytes))
        async with asyncio.timeout(10):
            answer = await reader.read()  # until the service closes
        writer.close()
    finally:
        stop_service(broken)
    assert answer == msg(0xFF, b"\x10")


async def test_the_bot_ending_the_call_sends_asterisk_a_hang_up(tmp_path: Path) -> None:
    """A caller who stays silent is told goodbye; then a hang-up message, then EOF."""
    quick = start_service(
        tmp_path / "quick",
        CALLBOT_DIALOG_ENGINE="scripted",
        CALLBOT_SILENCE_REPROMPT_S="1",
        CALLBOT_SILENCE_MAX_REPROMPTS="0",
    )
    try:
        peer, call = await Peer.dial(quick.gateway_address("audiosocket"), line="114")
        try:
            await peer.wait_closed_by_service(40)
        finally:
            await peer.close()
        record = await finished_call(quick, f"as-{call.hex}")
    finally:
        stop_service(quick)
    assert peer.other[-1:] == [(HANGUP, b"")]
    goodbye_and_greeting = b"".join(pcm for _, pcm in peer.received)
    assert seconds(goodbye_and_greeting) >= 1.0 and level(goodbye_and_greeting) > SPEECH_DBFS
    assert record.status == "handed_off" and "silent" in (record.handoff_reason or "")
    assert record.info.line == "114"
