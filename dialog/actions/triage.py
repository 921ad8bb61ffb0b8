"""From the classifier's intent, or a red flag, to an emergency category."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Final

from dialog.categories import CATEGORIES
from dialog.textnorm import KeyText, compile_phrase, tokenize

# Intent name in dialog/rasa/domain.yml -> category key in dialog.categories.
INTENT_CATEGORY: Final[dict[str, str]] = {
    "report_theft": "theft",
    "report_robbery": "robbery",
    "report_assault": "assault",
    "report_weapon": "weapon_threat",
    "report_domestic_violence": "domestic_violence",
    "report_missing_child": "missing_child",
    "report_public_disorder": "public_disorder",
    "report_traffic_accident": "traffic_accident",
    "report_fire": "fire",
    "report_explosion_gas": "explosion_gas_leak",
    "report_collapse": "collapse_trapped",
    "report_drowning": "drowning_water_rescue",
    "report_other_rescue": "other_rescue",
    "report_medical": "medical",
    "ask_administrative": "administrative",
    "prank": "prank_silent",
}

# Red flag (dialog.redflags.RedFlag value) -> the category it implies when the
# classifier found none.
FLAG_CATEGORY: Final[dict[str, str]] = {
    "people_trapped": "collapse_trapped",
    "weapon": "weapon_threat",
    "not_breathing": "medical",
    "unconscious": "medical",
    "child_in_danger": "missing_child",
    "gas_leak": "explosion_gas_leak",
    "intruder_present": "robbery",
    "spreading_fire": "fire",
}

# Flags that name the emergency outright (a weapon is a weapon threat whatever
# else is said; an intruder in the house is a burglary in progress); the others
# (trapped, unconscious, ...) happen in many kinds.
DEFINING_FLAGS: Final[frozenset[str]] = frozenset(
    {"weapon", "gas_leak", "spreading_fire", "intruder_present"}
)
# Below this the classifier's category yields to a defining red flag.
MIN_OVER_FLAG_CONFIDENCE: Final[float] = 0.6

# Categories where the form asks whether anyone is trapped.
TRAPPED_RELEVANT: Final[frozenset[str]] = frozenset(
    {
        "fire",
        "explosion_gas_leak",
        "collapse_trapped",
        "drowning_water_rescue",
        "other_rescue",
        "traffic_accident",
    }
)

# Categories closed by the bot itself (no emergency incident to gather).
CLOSED_BY_BOT: Final[frozenset[str]] = frozenset({"administrative", "prank_silent"})

# Below this confidence an intent is not trusted to name a category.
MIN_CATEGORY_CONFIDENCE: Final[float] = 0.3
# Below this, the bot does not close a call itself (administrative, prank): an
# emergency misread as a prank must never be closed with a warning.
MIN_CLOSE_CONFIDENCE: Final[float] = 0.8
# Below this, a category intent during another question is ignored.
MIN_INTERRUPT_CONFIDENCE: Final[float] = 0.6


def category_for_intent(intent: str | None, confidence: float) -> str | None:
    if intent is None or confidence < MIN_CATEGORY_CONFIDENCE:
        return None
    return INTENT_CATEGORY.get(intent)


def category_for_flags(flags: list[str], *, defining_only: bool = False) -> str | None:
    for flag in flags:
        if flag in FLAG_CATEGORY and (not defining_only or flag in DEFINING_FLAGS):
            return FLAG_CATEGORY[flag]
    return None


def priority_of(category: str) -> int | None:
    found = CATEGORIES.get(category)
    return found.priority if found is not None else None


def is_emergency(category: str | None) -> bool:
    found = CATEGORIES.get(category) if category else None
    return found is not None and found.is_emergency


# Words that make an utterance sound like an emergency, whatever the classifier
# says. Matched with `textnorm.compile_phrase`: an accented word exactly, an
# unaccented caller word by its folded form.
_EMERGENCY_PHRASES: Final[tuple[str, ...]] = (
    # vi
    "cháy", "khói", "lửa", "nổ", "rò gas/ga", "mùi gas/ga", "sập", "đổ sập", "kẹt", "mắc kẹt",
    "đuối", "chết đuối", "chìm", "rơi xuống", "ngã xuống", "chết", "máu", "cứu", "cứu với",
    "đánh", "đánh nhau", "chém", "đâm", "dao", "súng", "cướp", "trộm", "giật", "tai nạn",
    "va chạm", "tông", "ngất", "bất tỉnh", "không thở", "khó thở", "co giật", "mất tích",
    "bắt cóc", "đi lạc", "bị thương", "nguy hiểm", "đe dọa", "hành hung", "bạo hành",
    # en
    "fire", "smoke", "burning", "flames", "explosion", "exploded", "gas leak", "smell gas",
    "collapsed", "collapse", "trapped", "stuck", "drowning", "drowned", "fell", "fallen",
    "bleeding", "blood", "dead", "dying", "help", "attack", "attacked", "beating", "fight",
    "knife", "gun", "shot", "stabbed", "robbed", "robbery", "stolen", "stole", "thief",
    "accident", "crash", "crashed", "hit", "unconscious", "breathing", "seizure", "missing",
    "lost", "kidnapped", "injured", "hurt", "danger", "threatening", "emergency",
)


# Words of a question about paperwork ("thủ tục thẩm duyệt phòng cháy"): an
# administrative question that names a danger is still a question.
_ADMIN_PHRASES: Final[tuple[str, ...]] = (
    "thủ tục", "thẩm duyệt", "nghiệm thu", "giấy phép", "giấy chứng nhận", "giấy tờ",
    "đăng ký", "hồ sơ", "cấp lại", "làm lại", "cho hỏi", "xin hỏi", "ở đâu làm",
    "permit", "licence", "license", "certificate", "inspection", "register", "registration",
    "paperwork", "documents", "how do i", "office hours", "apply for",
)


@functools.cache
def _admin_patterns() -> tuple[re.Pattern[str], ...]:
    return tuple(compile_phrase(p) for p in _ADMIN_PHRASES)


def sounds_administrative(text: str) -> bool:
    key_text = KeyText.of(tokenize(text))
    return any(p.search(key_text.text) for p in _admin_patterns())


@functools.cache
def _emergency_patterns() -> tuple[re.Pattern[str], ...]:
    return tuple(compile_phrase(p) for p in _EMERGENCY_PHRASES)


def sounds_like_emergency(text: str) -> bool:
    """Danger words, and not a question about paperwork."""
    key_text = KeyText.of(tokenize(text))
    return any(p.search(key_text.text) for p in _emergency_patterns()) and not (
        sounds_administrative(text)
    )


def best_emergency_in_ranking(ranking: Sequence[tuple[str, float]]) -> str | None:
    """The classifier's most likely emergency category, however unsure it is."""
    for intent, _confidence in ranking:
        category = INTENT_CATEGORY.get(intent)
        if category is not None and is_emergency(category):
            return category
    return None


# A flood is a water rescue whatever kind of rescue the classifier took it for
# (a family on the roof with the water rising reads like "trapped", "collapse"
# or "other rescue", but the crews need boats), and whatever it guessed unsure.
_FLOOD_PHRASES: Final[tuple[str, ...]] = (
    "lũ", "lụt", "ngập", "nước dâng", "nước lên", "nước lũ", "lũ quét", "nước tràn",
    "flood", "floods", "flooded", "flooding", "floodwater", "floodwaters", "water is rising",
    "water rising",
)  # fmt: skip
_TAKEN_FOR_A_FLOOD: Final[frozenset[str | None]] = frozenset(
    {"other_rescue", "collapse_trapped"}
)


@functools.cache
def _flood_patterns() -> tuple[re.Pattern[str], ...]:
    return tuple(compile_phrase(p) for p in _FLOOD_PHRASES)


def water_rescue_in_a_flood(category: str | None, text: str, confidence: float) -> str | None:
    """`category`, or water rescue when `text` tells of a flood and the category is a
    generic rescue, or the classifier is unsure of it (below MIN_OVER_FLAG_CONFIDENCE)."""
    if category not in _TAKEN_FOR_A_FLOOD and confidence >= MIN_OVER_FLAG_CONFIDENCE:
        return category
    key_text = KeyText.of(tokenize(text))
    if any(p.search(key_text.text) for p in _flood_patterns()):
        return "drowning_water_rescue"
    return category

