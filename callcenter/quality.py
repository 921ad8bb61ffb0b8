"""Automatic quality checks on every call, and which calls a supervisor must review.

Emergency-centre quality standards ask for a human review of at least 2% of
calls chosen at random plus every high-acuity call; with transcripts the bot
can pre-screen all of them. `assess` runs the checks on a finished call;
`review_reason` picks it for the review queue: every priority-1 call, every
call failing a check, and 2% of the rest, chosen by a hash of the call id (so
the choice is random across calls but the same every time it is computed).

Checks answer True (passed), False (failed) or None (does not apply: no
location is needed for an administrative question).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from callcenter.events import Language
from callcenter.prompts import Prompt, prompt_text
from dialog.categories import CATEGORIES, safety_instruction
from dialog.redflags import RedFlag, safety_instruction_for_flag
from dispatch.incidents import stored_evidence
from dispatch.records import CallView, IncidentView, JsonValue, TurnView

SAMPLE_RATE: Final = 0.02
GREETING_WITHIN_MS: Final = 2000  # the turn is written a little after its audio starts
FIRST_QUESTION_WITHIN_MS: Final = 20_000
HANDOFF_WITHIN_MS: Final = 30_000  # from the call's start, on a red flag
MAX_SILENCE_PROMPTS: Final = 1
MAX_REPEATS: Final = 1
# A failed one of these flags the call for a human.
REQUIRED: Final = (
    "emergency_type_captured",
    "location_captured",
    "location_read_back",
    "callback_captured",
    "safety_instruction_given",
    "red_flag_handled",
    "time_to_greeting_ms",
)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool | None
    value: JsonValue = None
    detail: str = ""

    def as_json(self) -> dict[str, JsonValue]:
        return {"passed": self.passed, "value": self.value, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Assessment:
    checks: tuple[Check, ...]
    min_asr_confidence: float | None

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if c.passed is False and c.name in REQUIRED]

    @property
    def flagged(self) -> bool:
        return bool(self.failed)

    def as_json(self) -> dict[str, JsonValue]:
        return {check.name: check.as_json() for check in self.checks}


def sampled(call_id: str, rate: float = SAMPLE_RATE) -> bool:
    """Whether `call_id` falls in the random `rate` of calls (stable for a call)."""
    bucket = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
    return bucket < rate * 2**64


def review_reason(call: CallView, assessment: Assessment) -> str | None:
    if call.priority == 1:
        return "priority1"
    if assessment.flagged:
        return "flagged"
    if sampled(call.info.call_id):
        return "random"
    return None


def assess(call: CallView, incident: IncidentView | None) -> Assessment:
    """Every check on a finished call (its incident, if it produced one)."""
    language = call.info.language
    bot = [t for t in call.turns if t.turn.speaker == "bot"]
    category = (incident.incident.category if incident else None) or call.category
    known = CATEGORIES.get(category or "")
    emergency = known.is_emergency if known is not None else category is not None
    details = incident.incident.details if incident else {}
    raised = details.get("red_flags")
    flags = [str(flag) for flag in raised] if isinstance(raised, list) else []
    checks = [
        _check("emergency_type_captured", category is not None, category),
        _needs(emergency, "location_captured", _location(incident)),
        _needs(emergency, "location_read_back", _read_back(details)),
        _needs(
            emergency,
            "callback_captured",
            incident is not None and bool(incident.incident.callback_number),
        ),
        _safety(category, flags, language, bot)
        if emergency
        else Check("safety_instruction_given", None),
        _red_flag(call, flags, details),
        _timed(
            "time_to_greeting_ms",
            _ms(call.started_at, bot[0].created_at if bot else None),
            GREETING_WITHIN_MS,
        ),
        _timed(
            "time_to_first_question_ms",
            _ms(call.started_at, _first_question(bot)),
            FIRST_QUESTION_WITHIN_MS,
        ),
        _handoff_time(call, bot, flags),
        _counted("silence_count", _count_prompts(bot, Prompt.STILL_THERE), MAX_SILENCE_PROMPTS),
        _counted("repeat_count", _repeats(bot), MAX_REPEATS),
    ]
    confidences = [
        t.turn.asr_confidence
        for t in call.turns
        if t.turn.speaker == "caller" and t.turn.asr_confidence is not None
    ]
    return Assessment(tuple(checks), min(confidences) if confidences else None)


# -- the checks -----------------------------------------------------------------------


def _check(name: str, passed: bool, value: JsonValue = None, detail: str = "") -> Check:
    return Check(name, passed, value, detail)


def _needs(applies: bool, name: str, passed: bool) -> Check:
    return Check(name, passed if applies else None)


def _location(incident: IncidentView | None) -> bool:
    return incident is not None and bool(incident.incident.location_text)


def _read_back(details: dict[str, JsonValue] | object) -> bool:
    if not isinstance(details, dict):
        return False
    entry = stored_evidence(details).get("location_text")
    if isinstance(entry, dict) and (
        entry.get("confirmed_by_caller") or entry.get("confirmed_by_human")
    ):
        return True
    return str(details.get("location_confirmed", "")).lower() in ("yes", "true")


def _safety(
    category: str | None, flags: list[str], language: Language, bot: list[TurnView]
) -> Check:
    wanted: list[str] = []
    if category:
        instruction = safety_instruction(category, language)
        if instruction:
            wanted.append(instruction)
    for flag in flags:
        try:
            wanted.append(safety_instruction_for_flag(RedFlag(flag), language))
        except ValueError:
            continue
    if not wanted:
        return Check("safety_instruction_given", None, detail="no instruction for this category")
    said = " ".join(t.turn.text for t in bot)
    given = any(instruction in said for instruction in wanted)
    return Check("safety_instruction_given", given)


def _red_flag(call: CallView, flags: list[str], details: object) -> Check:
    if not flags:
        return Check("red_flag_handled", None)
    asked = call.handoff or (isinstance(details, dict) and details.get("handoff") is True)
    return Check("red_flag_handled", asked, ", ".join(flags))


def _handoff_time(call: CallView, bot: list[TurnView], flags: list[str]) -> Check:
    at = next((t.created_at for t in bot if t.turn.slots.get("handoff") == "yes"), None)
    value = _ms(call.started_at, at)
    if not flags:
        return Check("time_to_handoff_ms", None, value)
    return Check("time_to_handoff_ms", value is not None and value <= HANDOFF_WITHIN_MS, value)


def _timed(name: str, value: int | None, within_ms: int) -> Check:
    if value is None:
        return Check(name, False, None, "never")
    return Check(name, value <= within_ms, value)


def _counted(name: str, count: int, most: int) -> Check:
    return Check(name, count <= most, count)


def _first_question(bot: list[TurnView]) -> datetime | None:
    return next((t.created_at for t in bot if "?" in t.turn.text), None)


def _count_prompts(bot: list[TurnView], prompt: Prompt) -> int:
    texts = {prompt_text(prompt, language) for language in Language}
    return sum(1 for t in bot if t.turn.text in texts)


def _repeats(bot: list[TurnView]) -> int:
    return sum(1 for a, b in itertools.pairwise(bot) if a.turn.text == b.turn.text)


def _ms(start: datetime, end: datetime | None) -> int | None:
    return None if end is None else max(0, int((end - start).total_seconds() * 1000))
