"""Each incident field the bot fills says which words set it, how sure it was, and
whether the caller confirmed it."""

from __future__ import annotations

import pytest

from callcenter.events import CallInfo, DialogTurn, Language, Line
from callcenter.incidents import EvidenceLog, Utterance, incident_from_turn

pytestmark = pytest.mark.unit

CALL = CallInfo(
    call_id="ms-1",
    line=Line.FIRE,
    language=Language.VI,
    caller_number="0912345678",
    channel="media-stream",
)


def test_each_field_keeps_the_utterance_that_set_it_and_its_confirmation() -> None:
    log = EvidenceLog("rasa, model callbot.tar.gz sha256:abc")
    first = DialogTurn(
        reply="Địa chỉ ở đâu ạ?",
        category="fire",
        priority=2,
        intent_confidence=0.91234,
        slots={"what_happened": "cháy nhà"},
    )
    log.note(first, Utterance("cháy nhà rồi", "viet-asr", 0.8))
    second = DialogTurn(
        reply="Số 18 Hàng Bài, đúng không ạ?",
        category="fire",
        priority=2,
        intent_confidence=0.7,
        slots={"what_happened": "cháy nhà", "incident_location": "số 18 Hàng Bài"},
    )
    log.note(second, Utterance("số mười tám hàng bài", "viet-asr", 0.65))
    confirmed = DialogTurn(
        reply="Xin cho biết số điện thoại",
        category="fire",
        priority=2,
        intent_confidence=0.95,
        slots={
            "what_happened": "cháy nhà",
            "incident_location": "số 18 Hàng Bài",
            "location_confirmed": "yes",
        },
    )
    log.note(confirmed, Utterance("đúng rồi", "viet-asr", 0.9))

    incident = incident_from_turn(CALL, confirmed, log)
    assert incident is not None
    evidence = incident.details["evidence"]
    assert isinstance(evidence, dict)
    category = evidence["category"]
    assert isinstance(category, dict)
    assert category["utterance"] == "cháy nhà rồi" and category["caller_turn"] == 1
    assert category["intent_confidence"] == 0.912 and category["asr_confidence"] == 0.8
    assert category["model"] == "rasa, model callbot.tar.gz sha256:abc"
    location = evidence["location_text"]
    assert isinstance(location, dict)
    assert location["utterance"] == "số mười tám hàng bài" and location["caller_turn"] == 2
    assert location["value"] == "số 18 Hàng Bài"
    assert location["confirmed_by_caller"] is True and location["confirmed_by_human"] is False
    what = evidence["what_happened"]
    assert isinstance(what, dict) and what["caller_turn"] == 1  # unchanged since turn 1
    # the callback number came from the caller ID, not from anything said
    assert incident.callback_number == "0912345678"
    assert incident.details["callback_source"] == "caller_id"
    assert "callback_number" not in evidence


def test_a_corrected_field_points_at_the_correction_and_is_unconfirmed_again() -> None:
    log = EvidenceLog("m")
    log.note(
        DialogTurn(reply="", slots={"incident_location": "số 18", "location_confirmed": "yes"}),
        Utterance("số 18"),
    )
    log.note(
        DialogTurn(reply="", slots={"incident_location": "số 28", "location_confirmed": "no"}),
        Utterance("không phải, số 28 cơ"),
    )
    location = log.as_json()["location_text"]
    assert isinstance(location, dict)
    assert location["utterance"] == "không phải, số 28 cơ" and location["value"] == "số 28"
    assert location["confirmed_by_caller"] is False
    assert location["asr_engine"] is None  # typed in a chat
