"""The call session with fakes at its boundaries: turn taking, barge-in,
silence, and failing toward a human. The fakes implement the same Protocols
as the real engines; the endpointer and recogniser are the real ones."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from asr.base import Recognition
from callcenter.events import (
    FRAME_BYTES,
    CallInfo,
    DialogTurn,
    Language,
    Line,
    Speech,
)
from callcenter.metrics import Metrics
from callcenter.recording import CallRecorder
from callcenter.session import CallSession, SessionServices
from callcenter.settings import Settings
from dialog.base import DialogError

pytestmark = pytest.mark.unit


def tone(seconds: float, freq_hz: float = 220.0, amplitude: int = 9000) -> bytes:
    t = np.arange(int(16000 * seconds)) / 16000
    # A buzzy, speech-like signal: a fundamental with harmonics.
    wave = sum(np.sin(2 * np.pi * freq_hz * k * t) / k for k in range(1, 6))
    return (amplitude * wave / 2).astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return bytes(int(16000 * seconds) * 2)


class FakeDecoder:
    def __init__(self, texts: list[str]) -> None:
        self._texts = texts
        self.accepted = 0

    def accept(self, pcm: bytes) -> None:
        self.accepted += len(pcm)

    def finish(self) -> Recognition:
        text = self._texts.pop(0) if self._texts else ""
        return Recognition(text=text, confidence=0.9, engine="fake", language=Language.EN)

    def close(self) -> None:
        pass


class FakeTranscriber:
    name = "fake"

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def open_decoder(self, language: Language) -> FakeDecoder:
        return FakeDecoder(self.texts)

    def transcribe(self, pcm: bytes, language: Language) -> Recognition:
        raise NotImplementedError

    def close(self) -> None:
        pass


class FakeDialog:
    name = "fake"

    def __init__(self, replies: list[DialogTurn | Exception]) -> None:
        self.replies = replies
        self.heard: list[str] = []

    async def start(self, call: CallInfo) -> DialogTurn:
        return DialogTurn(reply="greeting")

    async def respond(self, call_id: str, text: str) -> DialogTurn:
        self.heard.append(text)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def end(self, call_id: str) -> None:
        pass

    def fixed_prompts(self, language: Language) -> list[str]:
        return []


class FakeSpeech:
    """Each reply is a tone whose length is set per text (default 0.3 s)."""

    def __init__(self, lengths_s: dict[str, float] | None = None) -> None:
        self.lengths_s = lengths_s or {}
        self.spoken: list[str] = []

    async def speak(self, text: str, language: Language) -> Speech:
        self.spoken.append(text)
        return Speech(tone(self.lengths_s.get(text, 0.3), 440, 3000), text, language)


@dataclass
class FakeStore:
    fail: bool = False
    turns: list[Any] = field(default_factory=list)
    ended: list[tuple[str, str, str | None]] = field(default_factory=list)
    incidents: list[Any] = field(default_factory=list)
    recordings: list[tuple[str, str, float]] = field(default_factory=list)

    async def _maybe_fail(self) -> None:
        if self.fail:
            from dispatch.errors import StoreUnavailable

            raise StoreUnavailable("database down")

    async def start_call(self, info: CallInfo, started_at: Any) -> None:
        await self._maybe_fail()

    async def mark_answered(self, call_id: str, at: Any) -> None:
        await self._maybe_fail()

    async def add_turn(self, call_id: str, turn: Any) -> None:
        await self._maybe_fail()
        self.turns.append(turn)

    async def end_call(
        self, call_id: str, status: str, end_reason: str, at: Any, handoff_reason: str | None = None
    ) -> None:
        self.ended.append((status, end_reason, handoff_reason))

    async def upsert_incident(self, incident: Any, *, actor: str = "bot") -> None:
        await self._maybe_fail()
        self.incidents.append(incident)

    async def set_recording(self, call_id: str, path: str, duration_s: float) -> None:
        await self._maybe_fail()
        self.recordings.append((call_id, path, duration_s))


@dataclass
class FakeOutput:
    frames: int = 0
    marks: list[str] = field(default_factory=list)
    clears: int = 0
    closed: str | None = None
    on_mark: Callable[[str], None] | None = None

    async def send_audio(self, pcm: bytes) -> None:
        assert len(pcm) == FRAME_BYTES
        self.frames += 1

    async def send_mark(self, name: str) -> None:
        self.marks.append(name)

    async def clear(self) -> None:
        self.clears += 1

    async def close(self, reason: str) -> None:
        self.closed = reason


@pytest.fixture
def executor():
    with ThreadPoolExecutor(2) as pool:
        yield pool


def make_session(
    executor: ThreadPoolExecutor,
    *,
    texts: list[str],
    replies: list[DialogTurn | Exception],
    speech: FakeSpeech | None = None,
    store: FakeStore | None = None,
    dialog: FakeDialog | None = None,
    recorder: CallRecorder | None = None,
    metrics: Metrics | None = None,
    lines: asyncio.Semaphore | None = None,
    transcriber: FakeTranscriber | None = None,
    **settings: Any,
) -> tuple[CallSession, FakeOutput, FakeDialog, FakeStore]:
    output, store = FakeOutput(), store or FakeStore()
    dialog = dialog or FakeDialog(replies)
    services = SessionServices(
        settings=Settings(**{"endpoint_silence_ms": 300, "dialog_timeout_s": 1.0, **settings}),
        transcriber_for=lambda language: transcriber or FakeTranscriber(texts),
        asr_executor=executor,
        dialog=dialog,
        speech=speech or FakeSpeech(),
        store=store,
        recorder=recorder,
        metrics=metrics,
        lines=lines,
    )
    info = CallInfo("call-1", Line.FIRE, Language.EN, "0912345678", "test")
    return CallSession(info, services, output), output, dialog, store


async def say(session: CallSession, pcm: bytes, *, realtime: bool = False) -> None:
    for offset in range(0, len(pcm), FRAME_BYTES):
        await session.push_audio(pcm[offset : offset + FRAME_BYTES])
        if realtime:
            await asyncio.sleep(0.02)
        elif offset % (FRAME_BYTES * 10) == 0:
            await asyncio.sleep(0)


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polling what the fakes saw
            await asyncio.sleep(0.02)


async def test_caller_turn_gets_a_reply_and_is_recorded(executor) -> None:
    session, output, dialog, store = make_session(
        executor,
        texts=["my kitchen is on fire"],
        replies=[DialogTurn(reply="where are you", category="fire", slots={"what": "fire"})],
    )
    task = asyncio.create_task(session.run())
    await wait_for(lambda: "greeting" in output.marks)
    await say(session, silence(0.3) + tone(1.0) + silence(0.6))
    await wait_for(lambda: "reply-1" in output.marks)
    session.hangup("caller hung up")
    outcome = await asyncio.wait_for(task, 5)

    assert dialog.heard == ["my kitchen is on fire"]
    assert [t.speaker for t in store.turns] == ["bot", "caller", "bot"]
    assert store.turns[1].text == "my kitchen is on fire"
    assert store.turns[2].reply_latency_ms is not None
    assert len(outcome.turn_latencies_ms) == 1
    assert store.incidents and store.incidents[-1].category == "fire"
    assert store.ended == [("completed", "caller hung up", None)]


async def test_dialog_failure_plays_hold_and_hands_off(executor) -> None:
    session, output, _, store = make_session(
        executor, texts=["there is smoke"], replies=[DialogError("rasa is down")]
    )
    task = asyncio.create_task(session.run())
    await wait_for(lambda: "greeting" in output.marks)
    await say(session, tone(0.8) + silence(0.6))
    await wait_for(lambda: "hold" in output.marks)
    session.hangup("caller hung up")
    outcome = await asyncio.wait_for(task, 5)

    assert outcome.status == "handed_off"
    assert "rasa is down" in (outcome.handoff_reason or "")
    # What the caller said is kept even though the dialog failed.
    assert any(t.speaker == "caller" and t.text == "there is smoke" for t in store.turns)
    assert store.ended[0][0] == "handed_off"


async def test_dialog_timeout_hands_off(executor) -> None:
    class SlowDialog(FakeDialog):
        async def respond(self, call_id: str, text: str) -> DialogTurn:
            await asyncio.sleep(10)
            raise AssertionError("unreachable")

    session, output, _, _ = make_session(
        executor, texts=["hello"], replies=[], dialog=SlowDialog([])
    )
    task = asyncio.create_task(session.run())
    await wait_for(lambda: "greeting" in output.marks)
    await say(session, tone(0.8) + silence(0.6))
    await wait_for(lambda: "hold" in output.marks, timeout_s=4)
    session.hangup("caller hung up")
    outcome = await asyncio.wait_for(task, 5)
    assert outcome.status == "handed_off"


async def test_caller_barging_in_stops_the_bot(executor) -> None:
    long_reply = "a very long safety instruction"
    session, output, _, _ = make_session(
        executor,
        texts=["fire", "wait, it's the second floor"],
        replies=[DialogTurn(reply=long_reply), DialogTurn(reply="ok")],
        speech=FakeSpeech({long_reply: 4.0}),
    )
    task = asyncio.create_task(session.run())
    await wait_for(lambda: "greeting" in output.marks)
    await say(session, tone(0.8) + silence(0.6))
    await wait_for(lambda: output.frames > 0 and session._player.speaking)
    await asyncio.sleep(0.5)  # the bot is half a second into a 4 s reply
    await say(session, tone(0.8) + silence(0.6), realtime=True)
    await wait_for(lambda: "reply-2" in output.marks, timeout_s=6)
    session.hangup("caller hung up")
    await asyncio.wait_for(task, 5)

    assert output.clears >= 1
    assert "reply-1" not in output.marks  # the interrupted reply never finished


async def test_silent_caller_is_reprompted_then_ended_for_a_call_back(executor) -> None:
    session, output, _, _ = make_session(
        executor, texts=[], replies=[], silence_reprompt_s=1.0, silence_max_reprompts=1
    )
    outcome = await asyncio.wait_for(session.run(), 10)
    assert output.marks == ["greeting", "reprompt-1", "goodbye"]
    assert output.closed is not None
    assert outcome.status == "handed_off"
    assert "silent" in (outcome.handoff_reason or "")


async def test_hangup_mid_utterance_keeps_the_last_words(executor) -> None:
    session, output, dialog, store = make_session(
        executor, texts=["they are breaking in"], replies=[]
    )
    task = asyncio.create_task(session.run())
    await wait_for(lambda: "greeting" in output.marks)
    await say(session, tone(1.0))  # no trailing silence: the caller is cut off
    session.hangup("socket closed")
    await asyncio.wait_for(task, 5)
    assert [t.text for t in store.turns if t.speaker == "caller"] == ["they are breaking in"]
    assert dialog.heard == []  # nobody is listening any more: no reply attempted


async def test_a_failing_store_never_breaks_the_call(executor) -> None:
    session, output, _, _ = make_session(
        executor,
        texts=["fire"],
        replies=[DialogTurn(reply="where")],
        store=FakeStore(fail=True),
    )
    task = asyncio.create_task(session.run())
    await wait_for(lambda: "greeting" in output.marks)
    await say(session, tone(0.8) + silence(0.6))
    await wait_for(lambda: "reply-1" in output.marks)
    session.hangup("caller hung up")
    outcome = await asyncio.wait_for(task, 5)
    assert outcome.status == "completed"


async def test_after_a_hand_off_request_the_bot_keeps_gathering_details(executor) -> None:
    session, output, dialog, store = make_session(
        executor,
        texts=["my neighbour is not breathing", "number 5 Hang Bai"],
        replies=[
            DialogTurn(
                reply="help is coming, where are you",
                handoff=True,
                red_flags=("not_breathing",),
                category="medical",
            ),
            DialogTurn(
                reply="number 5 Hang Bai, is that right",
                handoff=True,
                category="medical",
                slots={"incident_location": "number 5 Hang Bai"},
            ),
        ],
    )
    task = asyncio.create_task(session.run())
    await wait_for(lambda: "greeting" in output.marks)
    await say(session, tone(0.8) + silence(0.6))
    await wait_for(lambda: "reply-1" in output.marks)
    await say(session, tone(0.8) + silence(0.6))
    await wait_for(lambda: "reply-2" in output.marks)
    session.hangup("caller hung up")
    outcome = await asyncio.wait_for(task, 5)
    assert dialog.heard == ["my neighbour is not breathing", "number 5 Hang Bai"]
    assert outcome.status == "handed_off"
    assert outcome.handoff_reason == "red flag: not_breathing"
    assert store.incidents[-1].location_text == "number 5 Hang Bai"


async def test_caller_talking_after_a_failure_is_told_to_hold(executor, monkeypatch) -> None:
    monkeypatch.setattr("callcenter.session._HOLD_REPEAT_S", 0.0)
    session, output, dialog, store = make_session(
        executor,
        texts=["fire at number 5", "hello? is anyone there?"],
        replies=[DialogError("rasa down")],
    )
    task = asyncio.create_task(session.run())
    await wait_for(lambda: "greeting" in output.marks)
    await say(session, tone(0.8) + silence(0.6))
    await wait_for(lambda: output.marks.count("hold") == 1)
    await say(session, tone(0.8) + silence(0.6))
    await wait_for(lambda: output.marks.count("hold") == 2)
    session.hangup("caller hung up")
    outcome = await asyncio.wait_for(task, 5)
    assert dialog.heard == ["fire at number 5"]  # the failed dialog is not asked again
    assert outcome.status == "handed_off"
    assert [t.text for t in store.turns if t.speaker == "caller"][-1] == "hello? is anyone there?"
