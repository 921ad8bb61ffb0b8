"""Word error rate, for tests and benchmarks."""

from __future__ import annotations

import unicodedata

_JOINING = {"'", "’", "ʼ"}  # apostrophes join ("don't" stays one word)


def normalise(text: str) -> list[str]:
    """NFC, lower-case, punctuation dropped; numbers are left as they are."""
    text = unicodedata.normalize("NFC", text).lower()
    chars: list[str] = []
    for index, char in enumerate(text):
        if char in _JOINING:
            continue
        category = unicodedata.category(char)
        if category[0] == "P" and _between_digits(text, index):
            chars.append(char)  # "3.5", "1,000": numbers are left as they are
        elif category[0] in "PSZ" or category == "Cc":
            chars.append(" ")
        else:
            chars.append(char)
    return "".join(chars).split()


def _between_digits(text: str, index: int) -> bool:
    return 0 < index < len(text) - 1 and text[index - 1].isdigit() and text[index + 1].isdigit()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words.

    An empty reference gives 0.0 for an empty hypothesis and 1.0 otherwise.
    """
    ref = normalise(reference)
    hyp = normalise(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, start=1):
            current[j] = min(
                previous[j] + 1,
                current[j - 1] + 1,
                previous[j - 1] + (ref_word != hyp_word),
            )
        previous = current
    return previous[-1] / len(ref)
