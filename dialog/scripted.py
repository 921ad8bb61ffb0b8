"""STAND-IN dialog, used until the Rasa dialog lands. It is not the product.

It asks a fixed sequence of questions (what happened, where, a callback
number) and spots a handful of keywords to guess a category. It does no real
language understanding, no location resolution and no red-flag rules; its only
purpose is to let the speech pipeline be exercised end to end behind the same
`Dialog` interface the Rasa dialog will implement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from callcenter.events import CallInfo, DialogTurn, Language, Line

_PROMPTS: dict[Language, dict[str, str]] = {
    Language.VI: {
        "greeting_113": "Công an 113 xin nghe. Bạn cần báo sự việc gì?",
        "greeting_114": "Cứu hỏa 114 xin nghe. Bạn cần báo sự việc gì?",
        "ask_location": "Sự việc xảy ra ở đâu? Xin nói số nhà, tên đường, phường.",
        "ask_callback": "Xin cho biết số điện thoại để chúng tôi gọi lại.",
        "closing": (
            "Chúng tôi đã ghi nhận và đang chuyển cho điều phối viên. "
            "Xin giữ máy và giữ an toàn."
        ),
        "not_heard": "Xin lỗi, tôi chưa nghe rõ. Bạn nói lại được không?",
    },
    Language.EN: {
        "greeting_113": "Police, 113. What is your emergency?",
        "greeting_114": "Fire and rescue, 114. What is your emergency?",
        "ask_location": "Where is it happening? Please say the house number, street and ward.",
        "ask_callback": "What number can we call you back on?",
        "closing": (
            "Thank you. A dispatcher has your report and help is being arranged. "
            "Stay on the line and stay safe."
        ),
        "not_heard": "Sorry, I did not catch that. Could you say it again?",
    },
}

_CATEGORY_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("fire", ("fire", "smoke", "burning", "cháy", "khói")),
    ("medical", ("breathing", "unconscious", "bất tỉnh", "không thở", "ngất")),
    ("traffic_accident", ("accident", "crash", "tai nạn", "đâm")),
    ("theft", ("stole", "stolen", "theft", "trộm", "mất cắp")),
    ("assault", ("attack", "hit", "assault", "đánh", "hành hung")),
)

_DIGITS = re.compile(r"\d")


@dataclass(slots=True)
class _Conversation:
    info: CallInfo
    step: int = 0
    slots: dict[str, str] = field(default_factory=dict)
    category: str | None = None


class ScriptedDialog:
    """A fixed three-question script. STAND-IN until the Rasa dialog lands."""

    name = "scripted-stand-in"

    def __init__(self) -> None:
        self._conversations: dict[str, _Conversation] = {}

    def fixed_prompts(self, language: Language) -> list[str]:
        return list(_PROMPTS[language].values())

    async def start(self, call: CallInfo) -> DialogTurn:
        self._conversations[call.call_id] = _Conversation(info=call)
        greeting = _PROMPTS[call.language][f"greeting_{call.line.value}"]
        return DialogTurn(reply=greeting, requested_slot="what_happened")

    async def respond(self, call_id: str, text: str) -> DialogTurn:
        conv = self._conversations[call_id]
        prompts = _PROMPTS[conv.info.language]
        said = text.strip()
        if not said:
            return self._turn(conv, prompts["not_heard"], requested="what_happened")
        if conv.step == 0:
            conv.slots["what_happened"] = said
            conv.category = _guess_category(said, conv.info.line)
            conv.step = 1
            return self._turn(conv, prompts["ask_location"], requested="location")
        if conv.step == 1:
            conv.slots["location"] = said
            conv.step = 2
            if conv.info.caller_number is None:
                return self._turn(conv, prompts["ask_callback"], requested="callback_number")
            conv.slots["callback_number"] = conv.info.caller_number
        elif conv.step == 2 and "callback_number" not in conv.slots:
            digits = "".join(_DIGITS.findall(said))
            conv.slots["callback_number"] = digits or said
        conv.step = 3
        return self._turn(conv, prompts["closing"], requested=None, done=True)

    async def end(self, call_id: str) -> None:
        self._conversations.pop(call_id, None)

    def _turn(
        self, conv: _Conversation, reply: str, *, requested: str | None, done: bool = False
    ) -> DialogTurn:
        return DialogTurn(
            reply=reply,
            category=conv.category,
            slots=dict(conv.slots),
            requested_slot=requested,
            done=done,
            handoff=done,
        )


def _guess_category(text: str, line: Line) -> str:
    lowered = text.lower()
    for category, words in _CATEGORY_WORDS:
        if any(word in lowered for word in words):
            return category
    return "unknown_114" if line is Line.FIRE else "unknown_113"
