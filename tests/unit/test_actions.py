"""The incident form's actions, run as the action server runs them (no server).

Each test builds the tracker Rasa would send (the caller's words already put
into the requested slot by the `from_text` mapping) and checks what the caller
would notice: what is kept, what is asked next, what is said.
"""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from dialog.actions.closing import ActionAfterClose, ActionSubmitIncident
from dialog.actions.incident_form import ValidateIncidentForm

pytestmark = pytest.mark.unit

_DEFAULTS: dict[str, Any] = {
    "lang": "vi",
    "line": "114",
    "ask_mode": "plain",
    "handoff": False,
    "done": False,
}
# A call that is past its first question: the emergency is known.
_FIRE: dict[str, Any] = {"what_happened": "cháy nhà", "category": "fire", "priority": 1}


def _tracker(
    text: str,
    intent: str | None,
    confidence: float = 0.9,
    *,
    requested: str | None = "what_happened",
    **slots: Any,
) -> Tracker:
    values = {**_DEFAULTS, **slots, "requested_slot": requested}
    if requested is not None:
        values[requested] = text  # what the from_text mapping does
    return Tracker(
        sender_id="test-call",
        slots=values,
        latest_message={"text": text, "intent": {"name": intent, "confidence": confidence}},
        events=[],
        paused=False,
        followup_action=None,
        active_loop={"name": "incident_form"} if requested else {},
        latest_action_name="action_listen",
    )


class Turn:
    def __init__(self, events: list[dict[str, Any]], dispatcher: CollectingDispatcher) -> None:
        self.slots = {e["name"]: e["value"] for e in events if e.get("event") == "slot"}
        self.followups = [e["name"] for e in events if e.get("event") == "followup"]
        self.messages = dispatcher.messages

    @property
    def asked(self) -> str | None:
        return self.slots.get("requested_slot")

    @property
    def said(self) -> list[str]:
        return [m.get("response") or m.get("text") or "" for m in self.messages]


async def _form(tracker: Tracker) -> Turn:
    dispatcher = CollectingDispatcher()
    events = await ValidateIncidentForm().run(dispatcher, tracker, {})
    return Turn(events, dispatcher)


async def test_the_form_opens_by_asking_what_happened() -> None:
    turn = await _form(_tracker("EXTERNAL: start_call", "start_call", 1.0, requested=None))
    assert turn.asked == "what_happened"
    assert turn.said == []


async def test_a_fire_report_sets_category_priority_and_safety_advice_then_asks_where() -> None:
    turn = await _form(_tracker("alo cháy nhà rồi cứu với", "report_fire", 0.8))
    assert turn.slots["category"] == "fire"
    assert turn.slots["priority"] == 1
    assert turn.slots["what_happened"] == "cháy nhà rồi cứu với"
    assert turn.asked == "incident_location"
    assert any("thang máy" in s for s in turn.said)  # fire: do not use the lift


async def test_greeting_filler_is_not_a_failure_and_asks_again() -> None:
    turn = await _form(_tracker("alo alo", "greet"))
    assert turn.asked == "what_happened"
    assert turn.slots["what_happened"] is None
    assert turn.slots["dialog_state"].get("fails", 0) == 0
    assert "category" not in turn.slots


async def test_a_resolved_address_is_read_back_for_confirmation() -> None:
    turn = await _form(
        _tracker("dạ số 16 phố Huế ạ", "inform", requested="incident_location", **_FIRE)
    )
    assert turn.slots["incident_location"] == "số 16 phố Huế"
    assert turn.slots["location_unit_name"] == "Hai Bà Trưng"
    assert "16" in turn.slots["location_readback"]
    assert turn.asked == "location_confirmed"


async def test_an_unresolved_place_gets_a_narrowing_question_not_a_give_up() -> None:
    turn = await _form(_tracker("ở cái ngõ gần chợ", "inform", requested="incident_location"))
    assert turn.asked == "incident_location"
    assert turn.slots["ask_mode"] == "narrow"
    assert turn.slots["location_question"]
    assert turn.slots["incident_location"] is None


async def test_after_two_narrowing_questions_the_place_is_kept_as_said() -> None:
    state = {"loc_parts": ["ở cái ngõ gần chợ", "nhà màu xanh"], "loc_attempts": 2}
    turn = await _form(
        _tracker(
            "cạnh cây xăng", "inform", requested="incident_location", dialog_state=state, **_FIRE
        )
    )
    assert turn.asked == "location_confirmed"
    assert turn.slots["incident_location"] == "ở cái ngõ gần chợ, nhà màu xanh, cạnh cây xăng"
    assert turn.slots["location_status"] == "unresolved"


async def test_correction_of_the_house_number_while_confirming() -> None:
    turn = await _form(
        _tracker(
            "không phải, số 18 cơ",
            "correction",
            requested="location_confirmed",
            incident_location="số 16 phố Huế",
            location_readback="Tôi xác nhận: số 16 phố Huế, phường Hai Bà Trưng, đúng không ạ?",
        )
    )
    assert turn.slots["incident_location"] == "số 18 phố Huế"
    assert "18" in turn.slots["location_readback"]
    assert turn.asked == "location_confirmed"


async def test_english_correction_later_in_the_form_changes_the_address_not_the_name() -> None:
    turn = await _form(
        _tracker(
            "no, it's 18",
            "correction",
            requested="caller_name",
            lang="en",
            incident_location="16 Hue street",
            location_confirmed=True,
            callback_number="0912345678",
            dialog_state={"last_filled": "callback_number"},
            **_FIRE,
        )
    )
    assert turn.slots["incident_location"] == "18 Hue street"
    assert turn.slots["caller_name"] is None
    assert turn.asked == "location_confirmed"


async def test_confirmed_location_moves_on_to_the_callback_number() -> None:
    turn = await _form(
        _tracker(
            "đúng rồi",
            "affirm",
            requested="location_confirmed",
            incident_location="số 16 phố Huế",
            **_FIRE,
        )
    )
    assert turn.slots["location_confirmed"] is True
    assert turn.asked == "callback_number"


async def test_a_denied_location_is_asked_again() -> None:
    turn = await _form(
        _tracker("không", "deny", requested="location_confirmed", incident_location="số 16 phố Huế")
    )
    assert turn.slots["incident_location"] is None
    assert turn.asked == "incident_location"
    assert turn.slots["ask_mode"] == "again"


async def test_a_spoken_callback_number_is_normalised_and_read_back() -> None:
    turn = await _form(
        _tracker(
            "không chín một hai ba bốn năm sáu bảy tám",
            "inform",
            requested="callback_number",
            location_confirmed=True,
            incident_location="số 16 phố Huế",
            **_FIRE,
        )
    )
    assert turn.slots["callback_number"] == "0912345678"
    assert turn.messages[0]["response"] == "utter_callback_noted"
    assert turn.messages[0]["callback_readback"] == "0912 345 678"
    assert turn.asked == "caller_name"


async def test_the_caller_id_is_offered_and_confirmed() -> None:
    base: dict[str, Any] = {
        "incident_location": "số 16 phố Huế",
        "location_confirmed": True,
        "what_happened": "cháy",
        "category": "fire",
    }
    offer = await _form(
        _tracker(
            "đúng rồi",
            "affirm",
            requested="location_confirmed",
            caller_id="+84 912 345 678",
            **{k: v for k, v in base.items() if k != "location_confirmed"},
        )
    )
    assert offer.asked == "callback_number"
    assert offer.slots["ask_mode"] == "confirm"
    assert offer.slots["callback_readback"] == "0912 345 678"
    confirm = await _form(
        _tracker(
            "vâng",
            "affirm",
            requested="callback_number",
            caller_id="+84 912 345 678",
            dialog_state=offer.slots["dialog_state"],
            **base,
        )
    )
    assert confirm.slots["callback_number"] == "0912345678"


async def test_an_impossible_number_is_asked_again() -> None:
    turn = await _form(_tracker("một hai ba", "inform", requested="callback_number"))
    assert turn.slots["callback_number"] is None
    assert "utter_callback_invalid" in turn.said
    assert turn.asked == "callback_number"


async def test_name_is_taken_from_the_answer() -> None:
    turn = await _form(
        _tracker("dạ tôi tên là Nguyễn Văn Hùng ạ", "inform", requested="caller_name")
    )
    assert turn.slots["caller_name"] == "Nguyễn Văn Hùng"


@pytest.mark.parametrize(
    ("text", "intent", "expected"),
    [
        ("không biết", "dont_know", "unknown"),
        ("chưa rõ", "inform", "unknown"),
        ("không có ai", "deny", "0"),
        ("hai người", "inform", "2"),
        ("I don't know", "dont_know", "unknown"),
    ],
)
async def test_injured_count_unknown_is_never_zero(text: str, intent: str, expected: str) -> None:
    turn = await _form(_tracker(text, intent, requested="injured", category="fire"))
    assert turn.slots["injured"] == expected


async def test_yes_without_a_number_asks_how_many() -> None:
    turn = await _form(_tracker("có", "affirm", requested="trapped", category="fire"))
    assert turn.asked == "trapped"
    assert turn.slots["ask_mode"] == "how_many"


async def test_a_misclassified_later_turn_does_not_overwrite_the_category() -> None:
    # "hai người" once flipped a fire into a medical call (see DESIGN.md)
    turn = await _form(
        _tracker(
            "hai người bị thương",
            "report_medical",
            0.85,
            requested="injured",
            category="fire",
            priority=1,
        )
    )
    assert turn.slots["injured"] == "2"
    assert turn.slots.get("category", "fire") == "fire"
    location = await _form(
        _tracker(
            "số 5 Hàng Bạc",
            "report_theft",
            0.7,
            requested="incident_location",
            category="fire",
            priority=1,
        )
    )
    assert location.slots["incident_location"] == "số 5 Hàng Bạc"
    assert location.slots.get("category", "fire") == "fire"


async def test_a_request_for_a_human_hands_off_and_ends_the_form() -> None:
    turn = await _form(_tracker("cho tôi gặp người thật", "request_human", 0.9))
    assert turn.slots["handoff"] is True
    assert turn.slots["handoff_reason"] == "caller asked for a human"
    assert turn.slots["category"] == "human_request"
    assert turn.asked is None


async def test_two_failed_understandings_in_a_row_hand_off() -> None:
    first = await _form(_tracker("ư ư", "nlu_fallback", 0.1))
    assert first.asked == "what_happened"
    assert "utter_not_understood" in first.said
    second = await _form(
        _tracker("hừm", "out_of_scope", 0.5, dialog_state=first.slots["dialog_state"])
    )
    assert second.slots["handoff"] is True
    assert second.asked is None


async def test_a_red_flag_gives_a_category_even_when_the_classifier_has_none() -> None:
    turn = await _form(
        _tracker(
            "có người bị kẹt trong nhà",
            "nlu_fallback",
            0.1,
            red_flags=["people_trapped"],
            priority=1,
            handoff=True,
        )
    )
    assert turn.slots["category"] == "collapse_trapped"
    assert turn.slots["priority"] == 1
    assert turn.asked == "incident_location"  # the form goes on while a human is found


async def test_asking_what_to_do_gives_advice_and_repeats_the_question() -> None:
    turn = await _form(
        _tracker(
            "what do I do until they come?",
            "ask_what_to_do",
            0.9,
            requested="incident_location",
            lang="en",
            category="fire",
        )
    )
    assert turn.asked == "incident_location"
    assert turn.slots["incident_location"] is None  # the question is not the address
    assert any("lift" in s for s in turn.said)


async def test_an_administrative_question_is_answered_and_closed() -> None:
    turn = await _form(_tracker("cho hỏi làm căn cước ở đâu", "ask_administrative", 0.9))
    assert turn.slots["category"] == "administrative"
    assert turn.asked is None
    dispatcher = CollectingDispatcher()
    tracker = _tracker(
        "", None, requested=None, **{k: v for k, v in turn.slots.items() if k != "requested_slot"}
    )
    events = await ActionSubmitIncident().run(dispatcher, tracker, {})
    assert dispatcher.messages[0]["response"] == "utter_administrative"
    assert {"event": "slot", "name": "done", "value": True, "timestamp": None} in events


async def test_a_new_emergency_after_closing_reopens_the_form() -> None:
    dispatcher = CollectingDispatcher()
    tracker = _tracker(
        "à nhà bên cạnh cháy rồi",
        "report_fire",
        0.9,
        requested=None,
        done=True,
        category="administrative",
        dialog_state={"end": "administrative"},
    )
    events = await ActionAfterClose().run(dispatcher, tracker, {})
    assert {"event": "followup", "name": "incident_form", "timestamp": None} in events


async def test_thanks_after_closing_says_goodbye_and_listens() -> None:
    dispatcher = CollectingDispatcher()
    tracker = _tracker(
        "cảm ơn",
        "thank",
        0.9,
        requested=None,
        done=True,
        category="fire",
        dialog_state={"end": "complete"},
    )
    events = await ActionAfterClose().run(dispatcher, tracker, {})
    assert dispatcher.messages[0]["response"] == "utter_goodbye"
    assert {"event": "followup", "name": "action_listen", "timestamp": None} in events


async def test_a_doubtful_prank_is_not_closed_with_a_warning() -> None:
    turn = await _form(_tracker("haha nhà cháy thật đấy", "prank", 0.4))
    assert turn.asked == "what_happened"
    assert "category" not in turn.slots


async def test_a_prank_is_warned_and_closed() -> None:
    turn = await _form(_tracker("haha đùa thôi", "prank", 0.9))
    assert turn.slots["category"] == "prank_silent"
    assert turn.asked is None


async def test_keyboard_mashing_is_not_taken_for_an_emergency() -> None:
    turn = await _form(_tracker("x" * 1000, "report_traffic_accident", 1.0))
    assert "category" not in turn.slots
    assert turn.asked == "what_happened"


async def test_a_red_flag_after_a_prank_reopens_the_form() -> None:
    dispatcher = CollectingDispatcher()
    tracker = _tracker("actually there's a man with a knife", "correction", 0.5, requested=None,
                       done=True, category="prank_silent", red_flags=["weapon"],
                       dialog_state={"end": "prank"})
    events = await ActionAfterClose().run(dispatcher, tracker, {})
    assert {"event": "followup", "name": "incident_form", "timestamp": None} in events
    reopened = await _form(
        _tracker("actually there's a man with a knife", "correction", 0.5, requested=None,
                 category="prank_silent", red_flags=["weapon"], priority=1)
    )
    assert reopened.slots["category"] == "weapon_threat"
    assert reopened.asked == "incident_location"


async def test_a_name_given_out_of_turn_is_kept_and_the_number_asked_again() -> None:
    turn = await _form(
        _tracker("em tên Hương, Nguyễn Thu Hương", "inform", requested="callback_number",
                 incident_location="số 12 Hàng Bạc", location_confirmed=True, **_FIRE)
    )
    assert turn.slots["caller_name"] == "Nguyễn Thu Hương"
    assert turn.asked == "callback_number"
    assert turn.slots["dialog_state"].get("fails", 0) == 0


async def test_an_emergency_misread_as_a_question_is_not_closed() -> None:
    tracker = _tracker("the ceiling next door collapsed and my neighbour is under it",
                       "ask_administrative", 0.7)
    tracker.latest_message["intent_ranking"] = [
        {"name": "ask_administrative", "confidence": 0.7},
        {"name": "report_other_rescue", "confidence": 0.1},
        {"name": "report_collapse", "confidence": 0.08},
    ]
    turn = await _form(tracker)
    assert turn.slots["category"] == "other_rescue"  # the best emergency it saw
    assert turn.asked == "incident_location"


async def test_a_question_about_fire_permits_is_still_a_question() -> None:
    tracker = _tracker("how do I get a fire safety inspection for my shop",
                       "ask_administrative", 0.8)
    tracker.latest_message["intent_ranking"] = [
        {"name": "ask_administrative", "confidence": 0.8},
        {"name": "report_fire", "confidence": 0.1},
    ]
    turn = await _form(tracker)
    assert turn.slots["category"] == "administrative"
    assert turn.asked is None


async def test_a_self_corrected_number_keeps_the_corrected_one() -> None:
    turn = await _form(
        _tracker("số em là không chín bốn sáu... à không, không chín bốn bảy, hai không một, "
                 "tám tám chín", "correction", 0.6, requested="callback_number",
                 incident_location="số 27 ngõ 40 Tạ Quang Bửu", location_confirmed=True, **_FIRE)
    )
    assert turn.slots["callback_number"] == "0947201889"
    assert turn.slots.get("incident_location", "số 27 ngõ 40 Tạ Quang Bửu") == (
        "số 27 ngõ 40 Tạ Quang Bửu"
    )


async def test_a_long_answer_starting_with_chua_is_not_a_no() -> None:
    turn = await _form(
        _tracker("chưa ai bị thương nhưng khói nhiều lắm", "inform", 0.4,
                 requested="location_confirmed", incident_location="số 16 phố Huế", **_FIRE)
    )
    assert turn.slots.get("incident_location", "số 16 phố Huế") == "số 16 phố Huế"
    assert turn.asked == "location_confirmed"


async def test_a_name_said_when_asked_for_the_number_is_kept() -> None:
    turn = await _form(
        _tracker("Phạm Thị Lan", "inform", 0.4, requested="callback_number",
                 incident_location="số 16 phố Huế", location_confirmed=True, **_FIRE)
    )
    assert turn.slots["caller_name"] == "Phạm Thị Lan"
    assert turn.slots["callback_number"] is None
    assert turn.asked == "callback_number"


async def test_a_weapon_flag_outweighs_an_unsure_classifier() -> None:
    turn = await _form(
        _tracker("a man in the street is waving a gun around", "report_other_rescue", 0.37,
                 red_flags=["weapon"], priority=1, handoff=True)
    )
    assert turn.slots["category"] == "weapon_threat"


async def test_an_intruder_in_the_house_outweighs_an_unsure_classifier() -> None:
    # A burglary in progress must never reach the queue as a fire.
    turn = await _form(
        _tracker("there is a burglar in my house right now", "report_fire", 0.41,
                 red_flags=["intruder_present"], priority=1, handoff=True)
    )
    assert turn.slots["category"] == "robbery"


async def test_a_sure_classifier_keeps_its_category_beside_an_intruder_flag() -> None:
    turn = await _form(
        _tracker("my husband broke in and he is beating me", "report_domestic_violence", 0.91,
                 red_flags=["intruder_present"], priority=1, handoff=True)
    )
    assert turn.slots["category"] == "domestic_violence"


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("nước lũ ngập tới ngực rồi, cả nhà đang ở trên gác", "report_other_rescue"),
        ("lu len nhanh qua, ca nha ket tren mai", "report_collapse"),
        ("the flood water is rising and we are stuck upstairs", "report_other_rescue"),
    ],
)
async def test_a_rescue_in_a_flood_is_a_water_rescue(text: str, intent: str) -> None:
    turn = await _form(_tracker(text, intent, 0.8))
    assert turn.slots["category"] == "drowning_water_rescue"
    assert turn.slots["priority"] == 1


async def test_an_unsure_guess_in_a_flood_is_a_water_rescue() -> None:
    turn = await _form(
        _tracker("our street is flooded and my parents can't get out", "report_public_disorder",
                 0.45, red_flags=["people_trapped"], priority=1, handoff=True)
    )
    assert turn.slots["category"] == "drowning_water_rescue"
    assert turn.slots["priority"] == 1


async def test_a_rescue_without_a_flood_stays_what_it_was() -> None:
    turn = await _form(_tracker("a man is stuck on a billboard", "report_other_rescue", 0.8))
    assert turn.slots["category"] == "other_rescue"


async def test_a_sure_category_is_kept_when_a_flood_is_mentioned() -> None:
    turn = await _form(_tracker("nhà bị ngập, bà tôi ngất không thở", "report_medical", 0.9))
    assert turn.slots["category"] == "medical"

