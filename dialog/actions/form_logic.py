"""Every turn of the incident form, decided in one place.

Rasa fills the requested slot with the caller's raw words (`from_text`), then
calls the form's validation action, which calls `decide`. `decide` reads the
turn (text, intent, confidence, the slots so far) and returns the slots to set,
what to say, and which slot to ask next (or None to end the form). Nothing here
imports rasa-sdk, so the rules are plain functions under test.

Rules that matter to callers:
- a slot filled once is changed only by an explicit correction, never by a
  later turn that the classifier happened to misread;
- a correction ("không phải, số 18 cơ") changes the detail it names;
- a location is resolved with the gazetteer and read back for confirmation; an
  unresolved one gets a narrowing question, and is kept as said after two;
- "không biết" people is unknown, never 0;
- two failed understandings in a row, or a request, hand the call to a human.
"""

from __future__ import annotations

from typing import Final

from callcenter.events import Language
from dialog import gazetteer
from dialog.actions import answers, triage
from dialog.actions.turn import ORDER, UNKNOWN, UNSET, Outcome, Turn
from dialog.categories import CATEGORIES, safety_instruction
from dialog.numbers import parse_count
from dialog.phone import normalise_vn_phone

MAX_FAILS: Final[int] = 2  # failed understandings in a row before a human takes over
MAX_NARROWING: Final[int] = 2  # narrowing questions before a location is kept as said
MAX_PHONE_TRIES: Final[int] = 2
FAIL_INTENTS: Final[frozenset[str]] = frozenset({"nlu_fallback", "out_of_scope"})


def decide(turn: Turn) -> Outcome:
    out = Outcome(turn, state=dict(turn.slots.get("dialog_state") or {}))
    # The raw text Rasa put into the requested slot is a candidate, not a value:
    # the slot stays empty unless a handler fills it.
    if turn.requested is not None:
        out.set(turn.requested, None)
    requested = turn.requested
    if requested is None:
        if turn.intent in (None, "start_call"):
            _ask_next(out)  # form activation at the start of the call: greet
            return _finish(out)
        requested = "what_happened"  # re-opened after the bot had closed
    if turn.intent != "silence":
        out.state["silent"] = 0
    if not _global(out, requested):
        _HANDLERS[requested](out, requested)
    if out.next_slot is UNSET:
        _ask_next(out)
    return _finish(out)


def _finish(out: Outcome) -> Outcome:
    # The tracker's latest_message is not reliable inside a form (Rasa drops a
    # form's own turns when it replays events), so the turn's NLU is kept here.
    out.state["intent"] = out.turn.intent
    out.state["confidence"] = round(out.turn.confidence, 4)
    out.set("dialog_state", out.state)
    out.set("requested_slot", out.requested)
    return out


def _ask_next(out: Outcome) -> None:
    category = out.get("category")
    for slot in ORDER:
        if slot == "trapped" and category not in triage.TRAPPED_RELEVANT:
            continue
        if out.get(slot) is None:
            if slot == "callback_number" and _offer_caller_id(out):
                out.ask(slot, "confirm")
            else:
                out.ask(slot)
            return
    out.end("complete")


def _offer_caller_id(out: Outcome) -> bool:
    caller_id = out.get("caller_id")
    if not caller_id or out.state.get("callback_offer") == "declined":
        return False
    number = normalise_vn_phone(str(caller_id))
    if number is None:  # withheld, or not a Vietnamese number
        return False
    out.set("callback_readback", answers.format_phone(number))
    out.state["callback_offer"] = "offered"
    return True


# --- turn-wide rules ------------------------------------------------------------


def _global(out: Outcome, requested: str) -> bool:
    """Rules that apply whatever was asked; True when the turn is handled."""
    turn = out.turn
    intent = turn.intent
    if intent == "silence":
        out.state["silent"] = int(out.state.get("silent", 0)) + 1
        if out.state["silent"] >= 2 and out.get("category") is None:
            _set_category(out, "prank_silent")
            _hand_off(out, "silent call")
            out.end("silent")
        else:
            out.utter("utter_are_you_there")
            out.ask(requested, str(turn.slots.get("ask_mode") or "plain"))
        return True
    if intent == "request_human" and turn.confidence >= 0.5:
        if out.get("category") is None:
            _set_category(out, "human_request")
        _hand_off(out, "caller asked for a human")
        out.end("handoff")
        return True
    if intent == "ask_what_to_do" and turn.confidence >= 0.5:
        _advise(out)
        out.ask(requested, str(turn.slots.get("ask_mode") or "plain"))
        return True
    if (
        intent in ("greet", "thank")
        and requested != "what_happened"
        and turn.confidence >= 0.8
        and len(turn.text.split()) <= 3
    ):
        out.ask(requested, str(turn.slots.get("ask_mode") or "plain"))  # "alo?", "cảm ơn"
        return True
    if intent == "goodbye" and turn.confidence >= 0.6:
        out.end("goodbye")
        return True
    if (
        requested != "what_happened"
        and answers.sounds_like_correction(turn.text, intent)
        and not _answers_directly(turn.text, requested)
    ):
        return _correct(out, requested)
    return False


def _answers_directly(text: str, requested: str) -> bool:
    """A self-corrected answer to the question asked is an answer, not a correction."""
    if requested == "callback_number":
        corrected = answers.after_self_correction(text) or text
        return normalise_vn_phone(corrected) is not None
    return False


def _advise(out: Outcome) -> None:
    category = out.get("category")
    instruction = safety_instruction(category, out.turn.language) if category else None
    if instruction:
        out.text(instruction)
    else:
        out.utter("utter_stay_calm")


def _hand_off(out: Outcome, reason: str) -> None:
    out.set("handoff", True)
    if not out.get("handoff_reason"):
        out.set("handoff_reason", reason)


def _not_understood(out: Outcome, requested: str, mode: str = "plain") -> None:
    if requested != "what_happened" and _volunteered(out, requested):
        out.ask(requested, mode)  # an answer to another question: kept, then ask again
        return
    fails = int(out.state.get("fails", 0)) + 1
    out.state["fails"] = fails
    if fails >= MAX_FAILS:
        _hand_off(out, "not understood twice")
        out.end("handoff")
        return
    out.utter("utter_not_understood")
    out.ask(requested, mode)


def _volunteered(out: Outcome, requested: str) -> bool:
    """Details given before they were asked ("em tên Hương" while asked the number).

    Only empty slots are filled, and only from clear cues: a valid phone
    number, "tên ..."/"my name is ...", a count next to "bị thương"/"kẹt", or
    an address precise enough to send help to.
    """
    turn = out.turn
    text = turn.text
    found = False

    def empty(slot: str) -> bool:
        return out.get(slot) in (None, UNKNOWN)

    if requested != "callback_number" and empty("callback_number"):
        number = normalise_vn_phone(text)
        if number is not None:
            _accept_number(out, number)
            found = True
    said_name = answers.names_self(text) or (
        requested == "callback_number" and answers.looks_like_a_name(text)
    )
    if requested != "caller_name" and empty("caller_name") and said_name:
        name = answers.extract_name(text)
        if name is not None:
            out.fill("caller_name", name)
            found = True
    people = (("injured", answers.mentions_injured), ("trapped", answers.mentions_trapped))
    for slot, mentioned in people:
        if requested != slot and empty(slot) and mentioned(text):
            count = parse_count(text)
            if count is not None and count.known and count.value is not None:
                out.fill(slot, str(count.value))
                found = True
    if requested not in ("incident_location", "location_confirmed") and out.get(
        "incident_location"
    ) is None:
        said = answers.clean(text)
        resolution = gazetteer.resolve_location(said)
        if _precise(resolution):
            _accept_location(out, said, resolution)
            found = True
    if found:
        out.state["fails"] = 0
    return found


def _set_category(out: Outcome, category: str) -> bool:
    """Set the category unless one is already known; True when it was set."""
    current = out.get("category")
    replaceable = current is None or current == "human_request" or not triage.is_emergency(current)
    if not replaceable or current == category:
        return False
    out.set("category", category)
    priority = triage.priority_of(category)
    existing = out.get("priority")
    if priority is not None:
        out.set("priority", priority if existing is None else min(int(existing), priority))
    return True


def _acknowledge(out: Outcome, category: str) -> None:
    language = out.turn.language
    found = CATEGORIES.get(category)
    if found is not None:
        name = found.name(language)
        out.text(f"Đã rõ: {name}." if language is Language.VI else f"Understood: {name}.")
    flagged = bool(out.get("red_flags"))
    if category == "medical" and flagged:
        out.utter("utter_medical_115")
    elif not flagged:  # with a red flag the service already gave the flag's instruction
        instruction = safety_instruction(category, language)
        if instruction:
            out.text(instruction)
        elif category == "medical":
            out.utter("utter_medical_115")


def _late_category(out: Outcome) -> bool:
    """A category heard while asking something else: kept only if none is known."""
    turn = out.turn
    category = triage.category_for_intent(turn.intent, turn.confidence)
    if category is None or turn.confidence < triage.MIN_INTERRUPT_CONFIDENCE:
        return False
    if not answers.looks_like_words(turn.text):
        return False
    if category in triage.CLOSED_BY_BOT:
        return False
    if _set_category(out, category):
        if out.get("what_happened") is None:
            out.fill("what_happened", answers.clean(turn.text))
        _acknowledge(out, category)
    else:
        out.utter("utter_noted")
    return True


# --- one handler per requested slot ------------------------------------------------


def _what_happened(out: Outcome, requested: str) -> None:
    turn = out.turn
    said = answers.clean(turn.text)
    category = triage.category_for_intent(turn.intent, turn.confidence)
    if not answers.looks_like_words(turn.text):
        category = None
    flags = list(out.get("red_flags") or [])
    if category in triage.CLOSED_BY_BOT and (
        flags or turn.confidence < triage.MIN_CLOSE_CONFIDENCE
    ):
        category = None  # never close a call that may be an emergency
    if category is None and flags:
        category = triage.category_for_flags(flags)
    elif flags and turn.confidence < triage.MIN_OVER_FLAG_CONFIDENCE:
        category = triage.category_for_flags(flags, defining_only=True) or category
    category = triage.water_rescue_in_a_flood(category, said, turn.confidence)
    if (
        category is None or category in triage.CLOSED_BY_BOT
    ) and triage.sounds_like_emergency(said) and answers.looks_like_words(said):
        # emergency words, but the top intent is no emergency: take the
        # classifier's best emergency (recall first: a dispatcher can downgrade)
        category = triage.best_emergency_in_ranking(turn.ranking) or category
        if category in triage.CLOSED_BY_BOT:
            category = None
    if category is None:
        if turn.intent == "greet" or not said:
            out.ask(requested)
            return
        resolution = gazetteer.resolve_location(said)
        if resolution.status != "unresolved" and out.get("incident_location") is None:
            # the place came first: keep it, then ask again what happened
            if _precise(resolution):
                _accept_location(out, said, resolution)
            else:
                out.state["loc_parts"] = [*out.state.get("loc_parts", []), said]
            out.state["fails"] = 0
            out.utter("utter_noted")
            out.ask(requested, "again")
            return
        _not_understood(out, requested, "again")
        return
    if not _set_category(out, category):
        category = str(out.get("category"))
    out.fill("what_happened", said)
    if category == "administrative":
        out.end("administrative")
        return
    if category == "prank_silent":
        out.end("prank")
        return
    _acknowledge(out, category)
    if out.get("incident_location") is None:
        resolution = gazetteer.resolve_location(said)
        if _precise(resolution):
            _accept_location(out, said, resolution)


def _incident_location(out: Outcome, requested: str) -> None:
    turn = out.turn
    said = answers.clean(turn.text)
    parts = [*out.state.get("loc_parts", []), *([said] if said else [])]
    combined = ", ".join(p for p in parts if p)
    dont_know = answers.says_dont_know(turn.text, turn.intent)
    resolution = gazetteer.resolve_location(combined) if combined else None
    attempts = int(out.state.get("loc_attempts", 0))
    resolved = resolution is not None and resolution.status == "resolved" and not dont_know
    if resolved and (_precise(resolution) or attempts >= MAX_NARROWING):  # type: ignore[arg-type]
        _accept_location(out, combined, resolution)  # type: ignore[arg-type]
        return
    if not dont_know and not _mentions_place(said) and _late_category(out):
        out.ask(requested, str(turn.slots.get("ask_mode") or "plain"))
        return
    if attempts < MAX_NARROWING:
        if not dont_know and said:
            out.state["loc_parts"] = parts
        out.state["loc_attempts"] = attempts + 1
        base = resolution or gazetteer.resolve_location("")
        out.set("location_question", gazetteer.narrowing_question(base, turn.language))
        out.ask(requested, "narrow")
        return
    if combined:
        _accept_location(out, combined, resolution or gazetteer.resolve_location(combined))
    else:
        out.fill(requested, UNKNOWN)
        out.fill("location_confirmed", False)
        out.set("location_status", "unresolved")


def _mentions_place(text: str) -> bool:
    return answers.mentions_place(text)


def _precise(resolution: gazetteer.Resolution) -> bool:
    """Precise enough to send help: a ward plus a street or a landmark."""
    return resolution.status == "resolved" and bool(resolution.street or resolution.landmark)


def _accept_location(out: Outcome, said: str, resolution: gazetteer.Resolution) -> None:
    out.fill("incident_location", said)
    out.set("location_confirmed", None)
    out.set("location_status", resolution.status)
    out.set("location_unit_code", resolution.unit_code)
    out.set("location_unit_name", resolution.unit_name)
    out.set("location_old_district", resolution.old_district)
    out.set("location_landmark", resolution.landmark)
    out.set("location_readback", gazetteer.read_back(resolution, said, out.turn.language))
    out.state["loc_parts"] = []
    out.state["loc_attempts"] = 0


def _location_confirmed(out: Outcome, requested: str) -> None:
    turn = out.turn
    answer = answers.yes_no(turn.text, turn.intent)
    if answer is True:
        out.fill(requested, True)
        _volunteered(out, requested)
        return
    if normalise_vn_phone(turn.text) is not None and _volunteered(out, requested):
        out.ask(requested)  # a phone number is no house number
        return
    detail = answers.strip_correction(turn.text)
    if detail and (_mentions_place(detail) or answers.house_number_in(detail) is not None):
        _correct_location(out, turn.text)
        return
    if answer is False:
        for slot in ("incident_location", "location_readback", "location_status",
                     "location_unit_code", "location_unit_name"):
            out.set(slot, None)
        out.state["loc_parts"] = []
        out.state["loc_attempts"] = 0
        out.ask("incident_location", "again")
        return
    if _late_category(out):
        out.ask(requested)
        return
    _not_understood(out, requested)


def _correct_location(out: Outcome, text: str) -> None:
    detail = answers.strip_correction(text)
    old = out.get("incident_location")
    new_house = answers.house_number_in(detail)
    resolution = gazetteer.resolve_location(detail)
    only_a_number = (
        new_house is not None
        and not _mentions_place(detail.replace(new_house, ""))
        and resolution.status != "resolved"
    )
    if old and old != UNKNOWN and new_house is not None and only_a_number:
        said = answers.replace_house_number(str(old), new_house)
    elif resolution.status == "resolved" or not old or old == UNKNOWN:
        said = detail
    else:
        said = f"{old}, {detail}"
    _accept_location(out, said, gazetteer.resolve_location(said))
    out.ask("location_confirmed")


def _callback_number(out: Outcome, requested: str) -> None:
    turn = out.turn
    corrected = answers.after_self_correction(turn.text)
    number = (normalise_vn_phone(corrected) if corrected else None) or normalise_vn_phone(
        turn.text
    )
    if number is not None:
        _accept_number(out, number)
        return
    if out.state.get("callback_offer") == "offered":
        answer = answers.yes_no(turn.text, turn.intent)
        if answer is True:
            number = normalise_vn_phone(str(out.get("caller_id")))
            if number is not None:
                _accept_number(out, number, say=False)
                return
        if answer is False:
            out.state["callback_offer"] = "declined"
            out.ask(requested)
            return
    if answers.says_dont_know(turn.text, turn.intent) or answers.yes_no(turn.text) is False:
        out.fill(requested, UNKNOWN)
        return
    if _late_category(out):
        out.ask(requested, "confirm" if out.state.get("callback_offer") == "offered" else "plain")
        return
    if _volunteered(out, requested):
        out.ask(requested, "confirm" if out.state.get("callback_offer") == "offered" else "plain")
        return
    tries = int(out.state.get("phone_tries", 0)) + 1
    out.state["phone_tries"] = tries
    if tries >= MAX_PHONE_TRIES:
        out.fill(requested, UNKNOWN)
        return
    out.utter("utter_callback_invalid")
    out.state["callback_offer"] = "declined"
    out.ask(requested)


def _accept_number(out: Outcome, number: str, *, say: bool = True) -> None:
    out.fill("callback_number", number)
    out.set("callback_readback", answers.format_phone(number))
    out.state["phone_tries"] = 0
    if say:
        out.utter("utter_callback_noted", callback_readback=answers.format_phone(number))


def _caller_name(out: Outcome, requested: str) -> None:
    turn = out.turn
    if answers.refuses_name(turn.text) or answers.says_dont_know(turn.text, turn.intent):
        out.fill(requested, UNKNOWN)
        return
    name = answers.extract_name(turn.text)
    named = name is not None and answers.clean(turn.text).lower() != (name or "").lower()
    if name is not None and (named or turn.intent in ("inform", "nlu_fallback", "out_of_scope",
                                                       "greet", "affirm", None)
                             or turn.confidence < triage.MIN_INTERRUPT_CONFIDENCE):
        out.fill(requested, name)
        return
    if _late_category(out):
        out.ask(requested)
        return
    if name is not None:
        out.fill(requested, name)
        return
    _not_understood(out, requested)


def _people(out: Outcome, requested: str) -> None:
    """injured / trapped: a count, 0, or unknown ("không biết" is never 0)."""
    turn = out.turn
    asked_how_many = turn.slots.get("ask_mode") == "how_many"
    count = parse_count(turn.text)
    if count is not None:
        if count.known and count.value is not None:
            out.fill(requested, str(count.value))
        elif count.at_least is not None:
            out.fill(requested, f"{count.at_least}+")
        else:
            out.fill(requested, "1+" if asked_how_many else UNKNOWN)
        return
    if answers.says_dont_know(turn.text, turn.intent):
        out.fill(requested, "1+" if asked_how_many else UNKNOWN)
        return
    answer = answers.yes_no(turn.text, turn.intent)
    if answer is False:
        out.fill(requested, "1+" if asked_how_many else "0")
        return
    if answer is True:
        if asked_how_many:
            out.fill(requested, "1+")
        else:
            out.ask(requested, "how_many")
        return
    if _late_category(out):
        out.ask(requested)
        return
    _not_understood(out, requested)


def _correct(out: Outcome, requested: str) -> bool:
    """A correction of an earlier detail; False when it is an answer after all."""
    turn = out.turn
    filled = {slot for slot in ORDER if out.get(slot) is not None}
    target = answers.correction_target(turn.text, filled, out.state.get("last_filled"))
    if target is None or target == "what_happened":
        return False
    if target == requested:
        return False  # "không, hai người" answers the question being asked
    if target in ("incident_location", "location_confirmed"):
        _correct_location(out, turn.text)
        return True
    detail = answers.strip_correction(turn.text)
    if target == "callback_number":
        number = normalise_vn_phone(detail) or normalise_vn_phone(turn.text)
        if number is None:
            return False
        _accept_number(out, number)
    elif target == "caller_name":
        name = answers.extract_name(detail)
        if name is None:
            return False
        out.fill("caller_name", name)
    elif target in ("injured", "trapped"):
        count = parse_count(detail)
        if count is None:
            return False
        out.fill(target, str(count.value) if count.known and count.value is not None
                 else (f"{count.at_least}+" if count.at_least else UNKNOWN))
    else:
        return False
    if target != "callback_number":  # a new number is read back already
        out.utter("utter_noted")
    out.ask(requested, str(turn.slots.get("ask_mode") or "plain"))
    if requested == "callback_number" and out.state.get("callback_offer") == "offered":
        out.ask(requested, "confirm")
    return True


_HANDLERS: Final = {
    "what_happened": _what_happened,
    "incident_location": _incident_location,
    "location_confirmed": _location_confirmed,
    "callback_number": _callback_number,
    "caller_name": _caller_name,
    "injured": _people,
    "trapped": _people,
}
