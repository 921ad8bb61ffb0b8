"""Frames between pjsip's media clock and the session: order, silence, barge-in, gaps."""

from __future__ import annotations

import asyncio
import threading

import pytest

from callcenter.events import FRAME_BYTES
from callcenter.gateways.sip_audio import PRIME_FRAMES, CallAudio, SipCallOutput

pytestmark = pytest.mark.unit


def frame(value: int) -> bytes:
    return bytes([value]) * FRAME_BYTES


def make_audio(**kwargs: int) -> CallAudio[bytes]:
    return CallAudio(asyncio.get_running_loop(), lambda pcm: pcm, **kwargs)


async def test_bot_frames_play_in_order_then_silence() -> None:
    audio = make_audio()
    for value in (1, 2, 3):
        audio.play(frame(value))
    audio.end_of_utterance()
    assert [audio.next_frame() for _ in range(4)] == [frame(1), frame(2), frame(3), None]
    assert audio.counters.frames_out == 3
    assert audio.counters.underruns == 0  # silence after the utterance is no gap


async def test_short_frames_are_padded() -> None:
    audio = make_audio()
    audio.play(b"\x01\x02")
    audio.play(frame(9) + b"extra")
    played = [audio.next_frame() for _ in range(2)]
    assert played == [b"\x01\x02" + bytes(FRAME_BYTES - 2), frame(9)]


async def test_an_utterance_waits_for_a_little_audio_before_it_starts() -> None:
    audio = make_audio()
    audio.play(frame(1))
    assert audio.next_frame() is None  # one frame is not enough to start on
    for value in range(2, PRIME_FRAMES + 1):
        audio.play(frame(value))
    assert audio.next_frame() == frame(1)


async def test_audio_that_runs_dry_mid_utterance_is_counted_as_a_gap() -> None:
    audio = make_audio()
    audio.play(frame(1))
    audio.play(frame(2))
    assert audio.next_frame() == frame(1)
    assert audio.next_frame() == frame(2)
    assert audio.next_frame() is None
    assert audio.counters.underruns == 1
    audio.play(frame(3))
    assert audio.next_frame() is None  # buffering again after the gap
    audio.play(frame(4))
    assert audio.next_frame() == frame(3)


async def test_clear_drops_what_is_queued() -> None:
    audio = make_audio()
    for value in range(5):
        audio.play(frame(value))
    output = SipCallOutput(audio, hang_up=lambda reason: None)
    await output.clear()
    assert audio.queued_frames == 0
    assert audio.next_frame() is None
    assert audio.counters.underruns == 0


async def test_the_outbound_queue_is_bounded() -> None:
    audio = make_audio(outbound_frames=3)
    for value in range(5):
        audio.play(frame(value))
    assert audio.queued_frames == 3
    assert audio.counters.dropped_out == 2
    assert audio.next_frame() == frame(2)  # the oldest went first


async def test_caller_frames_from_another_thread_reach_the_loop_in_order() -> None:
    audio = make_audio(inbound_frames=10)
    clock = threading.Thread(target=lambda: [audio.received(frame(v)) for v in range(5)])
    clock.start()
    clock.join()
    got = [await asyncio.wait_for(audio.inbound.get(), 1.0) for _ in range(5)]
    assert got == [frame(v) for v in range(5)]
    assert audio.counters.frames_in == 5


async def test_a_session_far_behind_loses_frames_instead_of_blocking_the_clock() -> None:
    audio = make_audio(inbound_frames=3)
    for value in range(6):
        audio.received(frame(value))
    await asyncio.sleep(0)
    assert audio.inbound.qsize() == 3
    assert audio.counters.dropped_in == 3


async def test_a_closed_leg_ignores_late_frames() -> None:
    audio = make_audio()
    audio.closed = True
    audio.received(frame(1))
    await asyncio.sleep(0)
    assert audio.inbound.empty()


async def test_output_answers_on_first_audio_and_hangs_up_once() -> None:
    audio = make_audio()
    events: list[str] = []
    output = SipCallOutput(
        audio, hang_up=lambda reason: events.append(f"bye:{reason}"),
        on_first_audio=lambda: events.append("answer"),
    )  # fmt: skip
    await output.send_audio(frame(1))
    await output.send_audio(frame(2))
    await output.send_mark("greeting")
    await output.close("completed")
    await output.close("again")
    await output.send_audio(frame(3))  # after the hang-up: dropped
    assert events == ["answer", "bye:completed"]
    assert audio.queued_frames == 2
