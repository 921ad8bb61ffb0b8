"""Which open incidents may be the same emergency: same line, close in time and place.

Several callers often report one fire. The store only suggests; a dispatcher
decides and merges. Place is compared by the resolved ward or commune code
when both have one, else by the words of the location as said (without
diacritics, so "Hang Bai" matches "Hàng Bài"); a same category ranks higher but
is not required (one caller reports smoke, another an explosion).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from dispatch.records import IncidentView
from dispatch.text import fold

WINDOW: Final = timedelta(minutes=60)
_MIN_WORD_OVERLAP: Final = 0.5
# Words that say nothing about which place it is.
_STOP_TEXT: Final = (
    "so duong pho phuong quan huyen xa ngo ngach hem gan o tai nha "
    "number street road ward district near the at in of"
)
_STOP_WORDS: Final = frozenset(_STOP_TEXT.split())


@dataclass(frozen=True, slots=True)
class Candidate:
    incident: IncidentView
    score: float
    reason: str  # "same ward", "similar address"


def place_words(text: str | None) -> frozenset[str]:
    if not text:
        return frozenset()
    return frozenset(word for word in re.findall(r"\w+", fold(text)) if word not in _STOP_WORDS)


def candidates(incident: IncidentView, others: Iterable[IncidentView]) -> list[Candidate]:
    """Open incidents in `others` that may report the same emergency, best first."""
    me = incident.incident
    my_unit = _unit(incident)
    my_words = place_words(me.location_text)
    found: list[Candidate] = []
    for other in others:
        them = other.incident
        if them.id == me.id or them.line != me.line:
            continue
        if abs(other.created_at - incident.created_at) > WINDOW:
            continue
        their_unit = _unit(other)
        overlap = _overlap(my_words, place_words(them.location_text))
        if my_unit is not None and my_unit == their_unit:
            score, reason = 2.0 + overlap, "same ward"
        elif overlap >= _MIN_WORD_OVERLAP:
            score, reason = 1.0 + overlap, "similar address"
        else:
            continue
        if me.category is not None and me.category == them.category:
            score += 0.5
        found.append(Candidate(other, score, reason))
    found.sort(key=lambda candidate: (-candidate.score, candidate.incident.created_at))
    return found


def _unit(view: IncidentView) -> str | None:
    code = view.incident.details.get("location_unit_code")
    return code if isinstance(code, str) and code else None


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two word sets (0 when either is empty)."""
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)
