"""The real dialog: the trained Rasa server and the action server, started once.

Needs .venv-rasa and the model from scripts/setup_rasa.sh; skipped otherwise.
Each test is a conversation a caller would notice going wrong.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest

from callcenter.events import CallInfo, DialogTurn, Language, Line
from dialog.base import DialogError
from dialog.rasa_dialog import RasaDialog
from dialog.rasa_process import RasaProcesses

pytestmark = [
    pytest.mark.component,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="session"),
]

_TIMEOUT_S = 2.5


_calls = 0


def _call(line: Line, language: Language, number: str | None = None) -> CallInfo:
    global _calls
    _calls += 1
    return CallInfo(f"component-{_calls}-{time.monotonic_ns()}", line, language, number, "chat")


async def _talk(dialog: RasaDialog, call: CallInfo, *texts: str) -> list[DialogTurn]:
    turns = [await dialog.start(call)]
    for text in texts:
        turns.append(await dialog.respond(call.call_id, text))
    return turns


async def test_vietnamese_fire_call_is_triaged_located_and_gets_a_callback_number(
    dialog: RasaDialog,
) -> None:
    call = _call(Line.FIRE, Language.VI)
    greeting, fire, where, confirmed, number = await _talk(
        dialog,
        call,
        "alo cháy nhà rồi, cứu với",
        "dạ số 16 phố Huế",
        "đúng rồi",
        "không chín một hai ba bốn năm sáu bảy tám",
    )
    assert greeting.reply.startswith("Cứu hỏa cứu nạn 114 xin nghe.")
    assert fire.category == "fire" and fire.priority == 1
    assert fire.requested_slot == "incident_location"
    assert "thang máy" in fire.reply  # safety advice for a fire
    assert "số 16 phố Huế" in where.reply and "Hai Bà Trưng" in where.reply  # read back
    assert where.requested_slot == "location_confirmed"
    assert confirmed.slots["location_confirmed"] == "yes"
    assert number.slots["callback_number"] == "0912345678"
    assert "0912 345 678" in number.reply
    assert number.slots["location_unit_name"] == "Hai Bà Trưng"


async def test_english_robbery_call_runs_to_the_end(dialog: RasaDialog) -> None:
    call = _call(Line.POLICE, Language.EN, "+84 987 654 321")
    turns = await _talk(
        dialog,
        call,
        "I've just been robbed, they took my bag",
        "near Dong Xuan market",
        "yes",
        "yes",  # the caller ID is fine for a callback
        "my name is John Smith",
        "nobody is hurt",
    )
    assert turns[0].reply == "Police, 113. What is happening?"
    assert turns[1].category == "robbery"
    last = turns[-1]
    assert last.done and not last.handoff
    assert last.slots["callback_number"] == "0987654321"
    assert last.slots["caller_name"] == "John Smith"
    assert last.slots["injured"] == "0"
    assert last.slots["location_unit_name"] == "Hoàn Kiếm"
    assert "dispatchers" in last.reply


async def test_a_red_flag_gets_priority_1_a_human_and_advice_whatever_the_classifier(
    dialog: RasaDialog,
) -> None:
    call = _call(Line.POLICE, Language.VI)
    await dialog.start(call)
    turn = await dialog.respond(call.call_id, "có người bị kẹt trong nhà")
    assert turn.priority == 1
    assert turn.handoff
    assert "people_trapped" in turn.red_flags
    assert turn.reply.startswith("Chúng tôi đang điều lực lượng tới hỗ trợ.")
    assert turn.requested_slot == "incident_location"  # still gathering the address
    # a flag in words the classifier was never trained on
    other = _call(Line.FIRE, Language.VI)
    await dialog.start(other)
    odd = await dialog.respond(other.call_id, "ờ thì cái bà hàng xóm bị kẹt trong nhà")
    assert odd.priority == 1 and odd.handoff and odd.red_flags


async def test_injured_unknown_stays_unknown_and_a_correction_changes_the_house_number(
    dialog: RasaDialog,
) -> None:
    call = _call(Line.FIRE, Language.VI)
    turns = await _talk(
        dialog,
        call,
        "cháy bếp nhà tôi",
        "số 16 phố Huế",
        "không phải, số 18 cơ",
        "đúng rồi",
        "0912345678",
        "tôi tên Lan",
        "không biết",
    )
    corrected = turns[3]
    assert "số 18 phố Huế" in corrected.reply
    assert corrected.slots["incident_location"] == "số 18 phố Huế"
    assert turns[-1].slots["injured"] == "unknown"
    assert turns[-1].requested_slot == "trapped"


async def test_asking_for_a_human_hands_off_with_the_hold_message(dialog: RasaDialog) -> None:
    call = _call(Line.POLICE, Language.VI)
    _, turn = await _talk(dialog, call, "cho tôi gặp người thật")
    assert turn.handoff
    assert turn.slots["handoff_reason"] == "caller asked for a human"
    assert "Xin giữ máy" in turn.reply


async def test_the_conversation_api_is_closed_without_the_token(rasa: RasaProcesses) -> None:
    async with httpx.AsyncClient(base_url=rasa.url, timeout=_TIMEOUT_S) as client:
        response = await client.get("/conversations/anyone/tracker")
    assert response.status_code == 401


async def test_killed_rasa_fails_fast_and_is_restarted(
    rasa: RasaProcesses, dialog: RasaDialog
) -> None:
    call = _call(Line.FIRE, Language.VI)
    await _talk(dialog, call, "cháy nhà")
    pid = rasa.pid("rasa")
    assert pid is not None
    restarts = rasa.restarts("rasa")
    os.kill(pid, signal.SIGKILL)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DialogError):
        await dialog.respond(call.call_id, "số 16 phố Huế")
    assert loop.time() - started <= 2 * _TIMEOUT_S + 0.5
    await rasa.wait_ready(timeout_s=60)
    assert rasa.restarts("rasa") > restarts
    # the service keeps the conversation and restores it on the new server
    turn = await dialog.respond(call.call_id, "số 16 phố Huế")
    assert turn.category == "fire"
    assert turn.requested_slot == "location_confirmed"
