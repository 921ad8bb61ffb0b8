"""Vietnamese text normalisation shared by the rule modules.

ASR output and chat users often drop diacritics ("khong tho" for "không thở"),
so matching works on two forms of every word:

- the *key*: NFC, lower case, with diacritics kept when the speaker's text had them;
- the *folded* form: diacritics stripped and "đ" turned into "d".

`word_pattern` builds a regular expression for a word that matches its exact
accented form, or its folded form when the caller's word carries no
diacritics at all. So "dao" (knife) matches "dao" but not "dạo" (to stroll),
while a caller typing without accents still matches. Folding alone would
confuse cháy (fire) with chạy (run), khói (smoke) with khỏi, nổ with nó.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'"})


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


# Old and new tone placement are both in use ("hòa"/"hoà", "thủy"/"thuỷ");
# keys use the new style so either spelling matches.
_TONE_STYLE: dict[str, str] = {
    old: new
    for vowel, follower in (("o", "a"), ("o", "e"), ("u", "y"))
    for old, new in (
        (unicodedata.normalize("NFC", vowel + mark + follower),
         unicodedata.normalize("NFC", vowel + follower + mark))
        for mark in ("\u0300", "\u0301", "\u0309", "\u0303", "\u0323")
    )
}  # fmt: skip
_TONE_RE = re.compile("|".join(_TONE_STYLE))


def canon(word: str) -> str:
    """NFC, lower case, tone marks placed in the new style: "Hòa" -> "hoà"."""
    lowered = nfc(word).lower()
    return _TONE_RE.sub(lambda m: _TONE_STYLE[m.group()], lowered)


def fold(text: str) -> str:
    """Lower case without diacritics: "Đống Đa" -> "dong da"."""
    lowered = unicodedata.normalize("NFD", text.lower().replace("đ", "d").replace("Đ", "d"))
    return "".join(ch for ch in lowered if not unicodedata.combining(ch))


def strip_accents(text: str) -> str:
    """Diacritics removed, case kept: "Đống Đa" -> "Dong Da" (for English replies)."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return unicodedata.normalize(
        "NFC", "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    )


def has_diacritics(word: str) -> bool:
    return fold(word) != word.lower()


@dataclass(frozen=True, slots=True)
class Token:
    """One word of the caller's text: its key, folded form and span in the text."""

    key: str
    folded: str
    start: int
    end: int
    clause: int  # index of the clause (split at punctuation) the word is in


_CLAUSE_BREAK = re.compile(r"[.!?;:,\n]")


def prepare(text: str) -> str:
    """NFC with typographic apostrophes made plain; token spans index into this."""
    return nfc(text).translate(_APOSTROPHES)


def tokenize(text: str) -> list[Token]:
    """Words of `prepare(text)`, with the clause each belongs to.

    Clauses break at punctuation, so "không, có người bị kẹt" keeps the
    "không" out of the clause that reports someone trapped.
    """
    text = prepare(text)
    tokens: list[Token] = []
    clause = 0
    last_end = 0
    for match in _WORD.finditer(text):
        if _CLAUSE_BREAK.search(text, last_end, match.start()):
            clause += 1
        key = canon(match.group())
        tokens.append(Token(key, fold(key), match.start(), match.end(), clause))
        last_end = match.end()
    return tokens


def word_pattern(word: str) -> str:
    """Regex (no groups) for one word or a '/'-separated set of alternatives."""
    alternatives: list[str] = []
    for alt in word.split("/"):
        alt = canon(alt)
        for form in (alt, fold(alt)):
            escaped = re.escape(form)
            if escaped not in alternatives:
                alternatives.append(escaped)
    return "(?:" + "|".join(alternatives) + ")"


def compile_phrase(phrase: str) -> re.Pattern[str]:
    """Compile a phrase of the small rule language into a regex over `KeyText.text`.

    Words are separated by spaces; "a/b" is a choice of words; "word?" is an
    optional word; "*" skips up to two words and "**" up to four. Each word
    matches its accented form exactly or, for an unaccented caller word, its
    folded form (see `word_pattern`).
    """
    pieces: list[str] = []
    for item in phrase.split():
        if item == "*":
            pieces.append(r"(?:\S+ ){0,2}")
        elif item == "**":
            pieces.append(r"(?:\S+ ){0,4}")
        elif item.endswith("?"):
            pieces.append("(?:" + word_pattern(item[:-1]) + " )?")
        else:
            pieces.append(word_pattern(item) + " ")
    return re.compile(r"(?<!\S)" + "".join(pieces))


@dataclass(frozen=True, slots=True)
class KeyText:
    """Token keys joined by single spaces (with a trailing space), for phrase regexes."""

    text: str
    tokens: tuple[Token, ...]
    offsets: tuple[int, ...]

    @classmethod
    def of(cls, tokens: Iterable[Token]) -> KeyText:
        toks = tuple(tokens)
        offsets: list[int] = []
        position = 0
        for token in toks:
            offsets.append(position)
            position += len(token.key) + 1
        return cls("".join(t.key + " " for t in toks), toks, tuple(offsets))

    def token_range(self, match: re.Match[str]) -> tuple[int, int]:
        """Indices [first, last] of the tokens a phrase match covers."""
        first = bisect.bisect_right(self.offsets, match.start()) - 1
        last = bisect.bisect_right(self.offsets, max(match.start(), match.end() - 2)) - 1
        return first, last


def find_phrases(
    key_text: KeyText, phrases: Iterable[re.Pattern[str]]
) -> list[tuple[int, int]]:
    """Token ranges [first, last] of every match of any phrase."""
    found: list[tuple[int, int]] = []
    for pattern in phrases:
        for match in pattern.finditer(key_text.text):
            if match.end() > match.start():
                found.append(key_text.token_range(match))
    return sorted(found)
