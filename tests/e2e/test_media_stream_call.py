"""A caller streams audio over the media-stream WebSocket; the bot answers."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import httpx
import numpy as np
import pytest
import websockets

from bench.corpus import espeak_pcm, phone_band
from callcenter.audio import mulaw_decode, rms_dbfs
from callcenter.media_client import MediaStreamCall
from dispatch.store import SqlCallStore
from tests.e2e.conftest import RunningService

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _caller_number() -> str:
    return "09" + str(uuid.uuid4().int)[:8]


async def _call_record(service: RunningService, caller: str, *, wait_s: float = 10.0):
    """The stored call of this caller, once the service has closed its record."""
    store = SqlCallStore(f"sqlite:///{service.data_dir / 'callbot.db'}")
    try:
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            for summary in await store.list_calls(limit=200):
                view = await store.get_call(summary.call_id)
                if view is not None and view.info.caller_number == caller and view.ended_at:
                    return view
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no finished call for {caller}:\n{service.log_tail()}")
            await asyncio.sleep(0.2)
    finally:
        await store.close()


async def test_english_caller_is_answered_and_the_turn_is_recorded(service: RunningService) -> None:
    caller = _caller_number()
    turn = phone_band(espeak_pcm("There is a fire in my kitchen and the smoke is everywhere"))
    async with MediaStreamCall(service.ws_url, line="114", lang="en", caller_number=caller) as call:
        await call.wait_for_mark("greeting", timeout_s=15)
        greeting_s = call.time_to_greeting_s()
        speech_end = await call.speak(turn)
        mark = await call.wait_for_mark("reply-1", timeout_s=20)
        first_reply = call.first_media_after(speech_end)
        reply_pcm = b"".join(m.payload for m in call.record.media if m.received_s > speech_end)
    assert greeting_s is not None
    assert first_reply is not None and first_reply < mark.received_s
    # The reply is speech, not silence: well above the line's noise floor.
    assert rms_dbfs(mulaw_decode(reply_pcm)) > -40

    record = await _call_record(service, caller)
    assert record.info.line == "114" and record.info.language == "en"
    caller_turns = [t.turn for t in record.turns if t.turn.speaker == "caller"]
    bot_turns = [t.turn for t in record.turns if t.turn.speaker == "bot"]
    assert len(caller_turns) == 1
    assert "fire" in caller_turns[0].text.lower()
    assert caller_turns[0].asr_engine == "whisper"
    assert len(bot_turns) >= 2  # greeting and the reply
    assert any(t.reply_latency_ms is not None and t.reply_latency_ms > 0 for t in bot_turns)


async def test_bad_messages_do_not_end_the_call(service: RunningService) -> None:
    caller = _caller_number()
    sid = "MZbad" + uuid.uuid4().hex[:8]
    async with websockets.connect(service.ws_url) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call"}))
        await ws.send(
            json.dumps({"event": "media", "streamSid": sid, "media": {"payload": "AA=="}})
        )
        await ws.send(
            json.dumps(
                {
                    "event": "start",
                    "streamSid": sid,
                    "start": {
                        "streamSid": sid,
                        "customParameters": {"line": "113", "lang": "en", "from": caller},
                    },
                }
            )
        )
        for bad in (
            "{not json",
            json.dumps({"event": "dance", "streamSid": sid}),
            json.dumps(
                {"event": "media", "streamSid": "someone-else", "media": {"payload": "AA=="}}
            ),
            json.dumps({"event": "media", "streamSid": sid, "media": {"payload": "%%%"}}),
            json.dumps(
                {
                    "event": "media",
                    "streamSid": sid,
                    "media": {"payload": base64.b64encode(bytes(20_000)).decode()},
                }
            ),
        ):
            await ws.send(bad)
        await ws.send(b"\x00binary")
        # The greeting still arrives: the call survived every bad message.
        got_media = False
        async with asyncio.timeout(15):
            while not got_media:
                message = json.loads(await ws.recv())
                got_media = message["event"] == "media" and message["streamSid"] == sid
        await ws.send(json.dumps({"event": "stop", "streamSid": sid}))
    record = await _call_record(service, caller)
    assert record.end_reason == "caller hung up"


async def test_unsupported_codec_is_refused_with_a_close_code(service: RunningService) -> None:
    async with websockets.connect(service.ws_url) as ws:
        await ws.send(
            json.dumps(
                {
                    "event": "start",
                    "streamSid": "MZcodec",
                    "start": {
                        "streamSid": "MZcodec",
                        "mediaFormat": {
                            "encoding": "audio/opus",
                            "sampleRate": 48000,
                            "channels": 1,
                        },
                    },
                }
            )
        )
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003


async def test_socket_dropped_mid_utterance_keeps_what_was_said(service: RunningService) -> None:
    caller = _caller_number()
    words = phone_band(espeak_pcm("Help, someone is breaking into my house right now"))
    call = MediaStreamCall(service.ws_url, line="113", lang="en", caller_number=caller)
    await call.dial()
    await call.wait_for_mark("greeting", timeout_s=15)
    await call.speak(words)
    # Drop the TCP connection without a stop message, right after the words.
    assert call._ws is not None
    call._ws.transport.abort()
    await call.hangup()
    record = await _call_record(service, caller, wait_s=20)
    caller_turns = [t.turn for t in record.turns if t.turn.speaker == "caller"]
    assert caller_turns and "house" in caller_turns[-1].text.lower()


async def test_noise_and_silence_do_not_break_the_service(service: RunningService) -> None:
    caller = _caller_number()
    rng = np.random.default_rng(7)
    noise = (rng.normal(0, 2500, 16000 * 10)).astype(np.int16).tobytes()
    async with MediaStreamCall(service.ws_url, line="114", lang="vi", caller_number=caller) as call:
        await call.wait_for_mark("greeting", timeout_s=15)
        await call.speak(noise, realtime=False)
        await call.silence(2.0, realtime=False)
    record = await _call_record(service, caller)
    assert record.status in {"completed", "handed_off"}
    # The service still answers new calls afterwards.
    async with MediaStreamCall(service.ws_url, line="114", lang="vi", caller_number=caller) as call:
        await call.wait_for_mark("greeting", timeout_s=15)


async def test_with_the_dialog_down_callers_are_held_for_a_human(tmp_path) -> None:
    """Rasa cannot start: /health says degraded, yet a caller is answered, told to
    hold, and the call is recorded as handed to a human."""
    from tests.e2e.conftest import start_service, stop_service

    broken = start_service(
        tmp_path / "no-dialog", expect="degraded", CALLBOT_RASA_VENV=str(tmp_path / "missing")
    )
    try:
        async with httpx.AsyncClient() as http:
            health = (await http.get(f"{broken.base_url}/health", timeout=2)).json()
        assert health["components"]["dialog"].startswith("failed")
        caller = _caller_number()
        async with MediaStreamCall(
            broken.ws_url, line="114", lang="vi", caller_number=caller
        ) as call:
            mark = await call.wait_for_mark("hold", timeout_s=15)
            assert call.first_media_after(0) is not None and mark.played_s is not None
        record = await _call_record(broken, caller)
        assert record.status == "handed_off"
        assert "greeting failed" in (record.handoff_reason or "")
    finally:
        stop_service(broken)
