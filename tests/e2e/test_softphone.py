"""The terminal softphone against the real service: the live path through the file-backed
audio device (microphone = a recording, speaker = a buffer), and `callbot phone --wav`."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from bench.corpus import espeak_pcm
from callcenter import cli
from callcenter.audio import pcm_to_array, read_wav, rms_dbfs, write_wav
from callcenter.softphone import WavFileDevice, run_live
from dispatch.records import CallView
from dispatch.store import SqlCallStore
from tests.e2e.conftest import RunningService

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SPEECH_DBFS = -40.0
BYTES_PER_S = 32_000  # 16 kHz int16


def caller_number() -> str:
    return "09" + str(uuid.uuid4().int)[:8]


async def finished_call(service: RunningService, caller: str, wait_s: float = 20.0) -> CallView:
    store = SqlCallStore(f"sqlite:///{service.data_dir / 'callbot.db'}")
    try:
        async with asyncio.timeout(wait_s):
            while True:
                for summary in await store.list_calls(limit=200):
                    view = await store.get_call(summary.call_id)
                    if view and view.info.caller_number == caller and view.ended_at:
                        return view
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"no finished call for {caller}:\n{service.log_tail()}") from None
    finally:
        await store.close()


async def test_live_softphone_talks_and_listens(service: RunningService) -> None:
    caller = caller_number()
    turn = espeak_pcm("There is a fire in my kitchen and the smoke is everywhere")
    device = WavFileDevice([turn + bytes(BYTES_PER_S)], reply_gap_s=0.8)
    stop = asyncio.Event()
    call = asyncio.create_task(
        run_live(
            service.ws_url,
            device,
            line="114",
            lang="en",
            caller_number=caller,
            stop=stop,
            max_s=90,
        )
    )
    try:
        # The caller speaks once the greeting is over; then wait for the reply to end.
        for _ in range(600):
            said = device.turn_spans[0][1] if device.turn_spans else None
            last_heard = device.heard[-1][0] if device.heard else 0.0
            replied = said is not None and last_heard > said
            if replied and time.monotonic() - last_heard > 1.5 and device.pending_s() == 0:
                break
            assert not call.done(), "the call ended early"
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        outcome = await asyncio.wait_for(call, 20)

    assert outcome.ended_by == "caller"
    assert device.closed and device.turns_said == 1
    started, ended = device.turn_spans[0]
    assert ended is not None
    greeting = device.speaker_pcm(before_s=started)
    reply = device.speaker_pcm(after_s=ended)
    # The greeting came out of the speaker before the caller spoke, the reply after.
    assert len(greeting) >= BYTES_PER_S and rms_dbfs(pcm_to_array(greeting)) > SPEECH_DBFS
    assert len(reply) >= BYTES_PER_S // 2 and rms_dbfs(pcm_to_array(reply)) > SPEECH_DBFS
    assert outcome.mic_frames_dropped <= outcome.mic_frames // 50  # under 2% lost to a busy loop

    # The service heard the microphone well enough to recognise the words.
    record = await finished_call(service, caller)
    assert record.info.channel == "media-stream" and record.info.line == "114"
    caller_turns = [t.turn.text.lower() for t in record.turns if t.turn.speaker == "caller"]
    assert caller_turns and "fire" in caller_turns[0]
    assert record.end_reason == "caller hung up"


def test_phone_with_recordings_saves_the_bot_side(service: RunningService, tmp_path: Path) -> None:
    turn_wav = tmp_path / "turn.wav"
    write_wav(turn_wav, espeak_pcm("Someone broke into my house and stole my motorbike"))
    saved = tmp_path / "bot.wav"
    code = cli.main(
        [
            "phone",
            "--url",
            service.ws_url,
            "--line",
            "113",
            "--lang",
            "en",
            "--from",
            caller_number(),
            "--wav",
            str(turn_wav),
            "--save",
            str(saved),
        ]
    )
    assert code == 0
    samples, rate = read_wav(saved)
    assert rate == 16_000
    assert samples.size / rate >= 2.0  # greeting and reply
    assert rms_dbfs(samples) > SPEECH_DBFS
