"""A speech engine failing mid-call: the caller hears the hold prompt (synthesised
at start-up, so it plays even with the engine down), the call goes to a human, and
what was said is kept. The session with fakes at its boundaries (see test_session)."""

from __future__ import annotations

import asyncio

import pytest

from asr.base import Recognition
from asr.errors import AsrError
from callcenter.events import DialogTurn, Language, Speech
from callcenter.prompts import Prompt, prompt_text
from tests.unit.test_session import (
    FakeDecoder,
    FakeSpeech,
    FakeTranscriber,
    executor,
    make_session,
    say,
    silence,
    tone,
    wait_for,
)
from tts.errors import TtsError

__all__ = ["executor"]

pytestmark = pytest.mark.unit


class EngineDownAfterGreeting(FakeSpeech):
    """The speech engine dies after the greeting; cached prompts still play."""

    async def speak(self, text: str, language: Language) -> Speech:
        cached = {prompt_text(p, language) for p in Prompt}
        if self.spoken and text not in cached:
            raise TtsError("espeak-ng crashed")
        return await super().speak(text, language)


async def test_speech_synthesis_failing_mid_call_holds_the_caller(executor) -> None:
    session, output, _, store = make_session(
        executor,
        texts=["my kitchen is on fire"],
        replies=[DialogTurn(reply="where are you", category="fire", slots={"what": "fire"})],
        speech=EngineDownAfterGreeting(),
    )
    task = asyncio.create_task(session.run())
    await wait_for(lambda: "greeting" in output.marks)
    await say(session, silence(0.3) + tone(1.0) + silence(0.6))
    await wait_for(lambda: "hold" in output.marks)
    session.hangup("caller hung up")
    outcome = await asyncio.wait_for(task, 5)
    assert outcome.status == "handed_off" and "synthesis" in (outcome.handoff_reason or "")
    assert any(t.speaker == "caller" and "fire" in t.text for t in store.turns)
    assert store.incidents and store.incidents[-1].category == "fire"  # gathered, kept


class CrashingDecoder(FakeDecoder):
    def finish(self) -> Recognition:
        raise AsrError("the recogniser's worker crashed")


class CrashingTranscriber(FakeTranscriber):
    def open_decoder(self, language: Language) -> FakeDecoder:
        return CrashingDecoder(self.texts)


async def test_speech_recognition_crashing_mid_call_holds_the_caller(executor) -> None:
    session, output, _, store = make_session(executor, texts=["hello"], replies=[])
    session._svc = type(session._svc)(  # the same services with a crashing recogniser
        **{
            **{f: getattr(session._svc, f) for f in session._svc.__dataclass_fields__},
            "transcriber_for": lambda language: CrashingTranscriber([]),
        }
    )
    task = asyncio.create_task(session.run())
    await wait_for(lambda: "greeting" in output.marks)
    # a phone line carries audio all the time (silence too): the failure is noticed
    # at the next frame after the recogniser dies
    line = asyncio.create_task(say(session, silence(0.3) + tone(1.0) + silence(3.0), realtime=True))
    await wait_for(lambda: "hold" in output.marks)
    await asyncio.wait_for(line, 10)  # the caller's audio is still taken, never stalled
    session.hangup("caller hung up")
    outcome = await asyncio.wait_for(task, 5)
    assert outcome.status == "handed_off" and "recognition" in (outcome.handoff_reason or "")
    assert store.ended and store.ended[0][0] == "handed_off"
