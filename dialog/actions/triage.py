"""From the classifier's intent, or a red flag, to an emergency category."""

from __future__ import annotations

from typing import Final

from dialog.categories import CATEGORIES

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
# Below this, a category intent during another question is ignored.
MIN_INTERRUPT_CONFIDENCE: Final[float] = 0.6


def category_for_intent(intent: str | None, confidence: float) -> str | None:
    if intent is None or confidence < MIN_CATEGORY_CONFIDENCE:
        return None
    return INTENT_CATEGORY.get(intent)


def category_for_flags(flags: list[str]) -> str | None:
    for flag in flags:
        if flag in FLAG_CATEGORY:
            return FLAG_CATEGORY[flag]
    return None


def priority_of(category: str) -> int | None:
    found = CATEGORIES.get(category)
    return found.priority if found is not None else None


def is_emergency(category: str | None) -> bool:
    found = CATEGORIES.get(category) if category else None
    return found is not None and found.is_emergency
