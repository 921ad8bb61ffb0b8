"""Call recordings, hand-off requests and a dispatcher taking a call over, on a
session with fakes at its boundaries (see test_session)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from callcenter.audio import rms_dbfs
from callcenter.events import DialogTurn
from callcenter.recording import RECORDING_RATE_HZ, CallRecorder
from tests.unit.test_session import executor, make_session, say, silence, tone, wait_for

__all__ = ["executor"]

pytestmark = pytest.mark.unit


def loudness(track: np.ndarray, start_s: float, end_s: float) -> float:
    part = track[int(start_s * RECORDING_RATE_HZ) : int(end_s * RECORDING_RATE_HZ)]
    return rms_dbfs(part.astype(np.int16))


async def test_both_sides_are_recorded_in_step(executor, tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path / "recordings")
    session, output, _, store = make_session(
        executor,
        texts=["my kitchen is on fire"],
        replies=[DialogTurn(reply="where are you", category="fire")],
        recorder=recorder,
    )
    task = asyncio.create_task(session.run())
    await wait_for(lambda: "greeting" in output.marks)
    await say(session, silence(1.0) + tone(1.5) + silence(0.8), realtime=True)
    await wait_for(lambda: "reply-1" in output.marks)
    await asyncio.sleep(0.5)
    session.hangup("caller hung up")
    await asyncio.wait_for(task, 5)

    assert len(store.recordings) == 1
    call_id, relative, duration_s = store.recordings[0]
    assert call_id == "call-1" and relative.endswith("/call-1.flac")
    path = recorder.resolve(relative)
    assert path is not None
    audio, rate = soundfile.read(path, dtype="int16")
    assert rate == 8000 and audio.shape[1] == 2
    assert abs(len(audio) / rate - duration_s) < 0.05
    caller, bot = audio[:, 0], audio[:, 1]
    # the caller's tone is on the left, where it was said; the bot is on the right
    assert loudness(caller, 1.1, 2.4) > -30
    assert loudness(caller, 0.0, 0.9) < -60
    assert loudness(bot, 0.0, duration_s) > -40
    assert path.stat().st_size < len(audio) * 4  # compressed


async def test_recordings_past_retention_are_purged(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path)
    old, new = tmp_path / "2025/01/01/a.flac", tmp_path / "2026/11/30/b.flac"
    for path in (old, new):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"fLaC")
    ninety_one_days_ago = time.time() - 91 * 86400
    os.utime(old, (ninety_one_days_ago, ninety_one_days_ago))
    assert recorder.purge_expired(90) == ["2025/01/01/a.flac"]
    assert not old.exists() and new.exists()
    assert recorder.resolve("../../etc/passwd") is None
    assert recorder.resolve("2026/11/30/b.flac") == new.resolve()


async def test_a_red_flag_asks_for_a_human_and_a_dispatcher_can_take_over(executor) -> None:
    session, output, _, store = make_session(
        executor,
        texts=["a man with a knife is in my house", "please hurry"],
        replies=[
            DialogTurn(
                reply="help is coming, stay hidden",
                category="weapon_threat",
                priority=1,
                red_flags=("weapon",),
                handoff=True,
            ),
            DialogTurn(reply="should not be said", category="weapon_threat", priority=1),
        ],
    )
    task = asyncio.create_task(session.run())
    await wait_for(lambda: "greeting" in output.marks)
    await say(session, silence(0.3) + tone(1.0) + silence(0.6))
    await asyncio.wait_for(session.handoff_requested.wait(), 5)

    heard: list[tuple[int, bytes]] = []
    speak = await session.take_over("lan", lambda at_ms, pcm: heard.append((at_ms, pcm)))
    frames_before = output.frames
    await say(session, tone(1.0) + silence(0.6))  # the caller keeps talking to the dispatcher
    await speak(tone(0.02))  # the dispatcher answers
    await asyncio.sleep(0.3)
    session.hangup("caller hung up")
    outcome = await asyncio.wait_for(task, 5)

    assert session.taken_over_by == "lan"
    assert outcome.status == "handed_off" and "lan" in (outcome.handoff_reason or "")
    assert len(heard) >= 50  # a second of the caller's voice reached the dispatcher
    assert output.frames == frames_before + 1  # only the dispatcher's frame, no bot, no hold
    assert "hold" not in output.marks
    assert store.incidents[-1].details["taken_over_by"] == "lan"
    # what the caller said to the dispatcher is still transcribed and kept
    assert [t.text for t in store.turns if t.speaker == "caller"][-1] == "please hurry"


async def test_no_dispatcher_answering_keeps_the_caller_with_the_bot(executor) -> None:
    session, output, _, store = make_session(
        executor,
        texts=["my father is not breathing"],
        replies=[DialogTurn(reply="help is coming", category="medical", priority=1, handoff=True)],
    )
    task = asyncio.create_task(session.run())
    await wait_for(lambda: "greeting" in output.marks)
    await say(session, silence(0.3) + tone(1.0) + silence(0.6))
    await asyncio.wait_for(session.handoff_requested.wait(), 5)
    await session.dispatcher_unavailable()
    await wait_for(lambda: "hold" in output.marks)
    session.hangup("caller hung up")
    await asyncio.wait_for(task, 5)
    assert store.incidents[-1].details["waiting_for_dispatcher"] is True


async def test_when_the_dispatcher_leaves_the_caller_is_told_to_hold(executor) -> None:
    session, output, _, store = make_session(
        executor,
        texts=["there is a fire", "hello?"],
        replies=[DialogTurn(reply="help is coming", category="fire", priority=1, handoff=True)],
    )
    task = asyncio.create_task(session.run())
    await wait_for(lambda: "greeting" in output.marks)
    await say(session, silence(0.3) + tone(1.0) + silence(0.6))
    await asyncio.wait_for(session.handoff_requested.wait(), 5)
    heard: list[int] = []

    def tap(at_ms: int, pcm: bytes) -> None:
        heard.append(at_ms)

    await session.take_over("lan", tap)
    await session.release(tap)  # the dispatcher's connection dropped
    await wait_for(lambda: "hold" in output.marks)
    before = len(heard)
    await say(session, tone(0.5) + silence(0.6))
    session.hangup("caller hung up")
    outcome = await asyncio.wait_for(task, 5)
    assert session.ended.is_set() and session.taken_over_by is None
    assert len(heard) == before  # no longer sent to the dispatcher
    assert outcome.status == "handed_off"
    details = store.incidents[-1].details
    assert details["waiting_for_dispatcher"] is True and "taken_over_by" not in details
