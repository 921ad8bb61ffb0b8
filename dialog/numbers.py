"""Spoken numbers in Vietnamese and English: digits, people counts, house numbers.

viet-asr writes numbers as words ("không chín một hai ..."), Whisper sometimes
as words and sometimes as digits, and chat users mix both. Everything here is
rule based and works with or without diacritics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from dialog.textnorm import Token, fold, has_diacritics, nfc, tokenize

# Digit words said one by one. Each maps to one digit.
_DIGIT_WORDS: Final[dict[str, int]] = {
    "không": 0, "linh": 0, "lẻ": 0, "zero": 0, "oh": 0, "o": 0, "nil": 0,
    "một": 1, "mốt": 1, "one": 1,
    "hai": 2, "two": 2,
    "ba": 3, "three": 3,
    "bốn": 4, "tư": 4, "four": 4,
    "năm": 5, "lăm": 5, "nhăm": 5, "five": 5,
    "sáu": 6, "six": 6,
    "bảy": 7, "bẩy": 7, "seven": 7,
    "tám": 8, "eight": 8,
    "chín": 9, "nine": 9,
}  # fmt: skip
# Words that are numbers but also common words or names ("không" = no,
# "năm" = year, "ba" = dad, "tư" = private, "Hai Bà Trưng"): converted only
# inside a run of numbers or after a cue such as "số".
_AMBIGUOUS: Final[frozenset[str]] = frozenset(
    {"không", "linh", "lẻ", "oh", "o", "nil", "ba", "tư", "năm", "lăm", "nhăm", "mốt", "một",
     "one", "hai", "bảy", "bẩy", "sáu", "tám", "bốn", "chín"}
)  # fmt: skip
_TEEN_WORDS: Final[dict[str, int]] = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
_TENS_MARK: Final[frozenset[str]] = frozenset({"mươi", "chục"})
_TEN: Final[frozenset[str]] = frozenset({"mười"})
_HUNDRED: Final[frozenset[str]] = frozenset({"trăm", "hundred"})
_REPEAT: Final[dict[str, int]] = {"double": 2, "triple": 3}
_CUES: Final[frozenset[str]] = frozenset(
    {"số", "nhà", "ngõ", "ngách", "hẻm", "kiệt", "tầng", "phòng", "number"}
)


def _lookup(token: Token, table: dict[str, int]) -> int | None:
    """Exact match, or folded match when the caller's word has no diacritics."""
    if token.key in table:
        return table[token.key]
    if not has_diacritics(token.key):
        for word, value in table.items():
            if fold(word) == token.key:
                return value
    return None


def _is(token: Token, words: frozenset[str]) -> bool:
    return token.key in words or (
        not has_diacritics(token.key) and any(fold(w) == token.key for w in words)
    )


def _is_number_token(token: Token) -> bool:
    return (
        token.key.isdigit()
        or _lookup(token, _DIGIT_WORDS) is not None
        or _lookup(token, _TEEN_WORDS) is not None
        or _is(token, _TENS_MARK | _TEN | _HUNDRED)
        or token.key in _REPEAT
    )


def _digit(token: Token) -> int | None:
    if token.key.isdigit() and len(token.key) == 1:
        return int(token.key)
    return _lookup(token, _DIGIT_WORDS)


def _parse_run(run: list[Token]) -> str:
    """Digits for a run of number tokens, reading compounds ("mười tám" -> 18)."""
    out: list[str] = []
    i = 0
    while i < len(run):
        tok = run[i]
        nxt = run[i + 1] if i + 1 < len(run) else None
        if tok.key.isdigit() and len(tok.key) > 1:
            out.append(tok.key)
            i += 1
        elif tok.key in _REPEAT and nxt is not None and _digit(nxt) is not None:
            out.append(str(_digit(nxt)) * _REPEAT[tok.key])
            i += 2
        elif _lookup(tok, _TEEN_WORDS) is not None:
            value = _lookup(tok, _TEEN_WORDS) or 0
            i += 1
            if value >= 20 and i < len(run):
                unit = _digit(run[i])
                if unit is not None and unit > 0 and run[i].key not in ("oh", "o"):
                    value += unit
                    i += 1
            out.append(str(value))
        elif _is(tok, _TEN):
            # "mười", "mười tám", "mười lăm"
            i += 1
            unit = _digit(run[i]) if i < len(run) else None
            if unit is not None and unit > 0:
                out.append(f"1{unit}")
                i += 1
            else:
                out.append("10")
        elif _digit(tok) is not None and nxt is not None and _is(nxt, _TENS_MARK):
            # "hai mươi", "hai mươi mốt", "ba chục"
            tens = _digit(tok) or 0
            i += 2
            unit = _digit(run[i]) if i < len(run) else None
            if unit is not None and unit > 0:
                out.append(f"{tens}{unit}")
                i += 1
            else:
                out.append(f"{tens}0")
        elif _digit(tok) is not None and nxt is not None and _is(nxt, _HUNDRED):
            hundreds = _digit(tok) or 0
            i += 2
            rest = run[i:]
            if len(rest) >= 2 and _is(rest[0], frozenset({"linh", "lẻ", "and"})):
                unit = _digit(rest[1])
                if unit is not None:
                    out.append(f"{hundreds}0{unit}")
                    i += 2
                    continue
            if len(rest) >= 2 and _digit(rest[0]) is not None and _is(rest[1], _TENS_MARK):
                tens = _digit(rest[0]) or 0
                unit = _digit(rest[2]) if len(rest) >= 3 else None
                if unit is not None and unit > 0:
                    out.append(f"{hundreds}{tens}{unit}")
                    i += 3
                else:
                    out.append(f"{hundreds}{tens}0")
                    i += 2
                continue
            if len(rest) >= 1 and _is(rest[0], _TEN):
                unit = _digit(rest[1]) if len(rest) >= 2 else None
                if unit is not None and unit > 0:
                    out.append(f"{hundreds}1{unit}")
                    i += 2
                else:
                    out.append(f"{hundreds}10")
                    i += 1
                continue
            if len(rest) == 1 and _digit(rest[0]) is not None and fold(rest[0].key) != "khong":
                # colloquial "ba trăm hai" = 320
                out.append(f"{hundreds}{_digit(rest[0])}0")
                i += 1
                continue
            out.append(f"{hundreds}00")
        elif _digit(tok) is not None:
            out.append(str(_digit(tok)))
            i += 1
        else:  # a stray "mươi"/"trăm"
            i += 1
    return "".join(out)


_JOINER = re.compile(r"^[\s,.\-]*$")


def _runs(text: str, tokens: list[Token]) -> list[list[Token]]:
    """Maximal runs of number tokens separated only by spaces, commas, dots, dashes."""
    runs: list[list[Token]] = []
    current: list[Token] = []
    for tok in tokens:
        if _is_number_token(tok):
            if current and not _JOINER.match(text[current[-1].end : tok.start]):
                runs.append(current)
                current = []
            current.append(tok)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def _convertible(run: list[Token], previous: Token | None) -> bool:
    if len(run) >= 2 or run[0].key.isdigit():
        return True
    if previous is not None and _is(previous, _CUES):
        return True
    return not _is(run[0], _AMBIGUOUS)


def words_to_digits(text: str) -> str:
    """Replace spoken numbers with digits, joining numbers said one after another.

    "không chín một hai ba bốn năm sáu bảy tám" -> "0912345678";
    "số điện thoại là 09 một hai, ba bốn năm" -> "số điện thoại là 0912345";
    "số nhà mười tám" -> "số nhà 18". Other words are kept as they were.
    A lone number word that is also an ordinary word ("không", "năm", "ba")
    is left alone unless a cue ("số", "ngõ", "number") comes before it.
    """
    text = nfc(text)
    tokens = tokenize(text)
    index = {id(t): i for i, t in enumerate(tokens)}
    pieces: list[str] = []
    last = 0
    for run in _runs(text, tokens):
        first = index[id(run[0])]
        previous = tokens[first - 1] if first > 0 else None
        cued = previous is not None and _is(previous, _CUES)
        if len(run) == 2 and not cued and fold(run[0].key) == "khong":
            run = run[1:]  # "không một ai", "không hai lần": a negation, not a zero
        if not _convertible(run, previous):
            continue
        digits = _parse_run(run)
        if not digits:
            continue
        pieces.append(text[last : run[0].start])
        pieces.append(digits)
        last = run[-1].end
    pieces.append(text[last:])
    return "".join(pieces)


# --- People counts -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Count:
    """How many people, as the caller said it.

    `known` is False when the caller does not know ("không biết", "chưa rõ")
    or gave no number ("nhiều người"): never read that as zero. `value` is the
    number when known; for a range ("ba bốn người") it is the upper bound, so
    dispatch errs toward more help, and `approximate` is True. `at_least` is a
    lower bound when the caller gave one ("nhiều người" -> 2, "hơn chục" -> 10).
    """

    value: int | None
    known: bool
    text: str
    approximate: bool = False
    at_least: int | None = None


_UNKNOWN_PHRASES: Final[tuple[str, ...]] = (
    "không biết", "chưa biết", "không rõ", "chưa rõ", "không chắc", "chưa chắc",
    "không nắm được", "chưa nắm được", "không đếm được", "chưa đếm",
    "ko biết", "k biết", "hổng biết", "không thấy rõ", "chưa xác định",
    "don't know", "do not know", "dont know", "not sure", "no idea", "unknown",
    "can't tell", "cannot tell", "can't see", "unsure", "i'm not certain",
)  # fmt: skip
# Said as the whole answer: checked before numbers ("không một ai" is not 1).
_NO_ONE_PHRASES: Final[tuple[str, ...]] = (
    "không có ai", "không ai", "chẳng có ai", "chẳng ai", "không có người nào",
    "không người nào", "không một ai", "không một người nào", "không còn ai",
    "chả có ai", "chả ai", "ko có ai", "k có ai", "không có người",
    "no one", "nobody", "noone", "no-one", "none", "not anyone", "no people",
    "not a single",
)  # fmt: skip
# Weaker: only when the answer holds no number ("hai người, còn lại không sao").
_ZERO_PHRASES: Final[tuple[str, ...]] = (
    "không có", "không bị", "không sao", "zero", "no injuries", "everyone is fine",
    "everybody is fine", "everyone's fine", "everyone is ok", "all fine",
)  # fmt: skip
_SEVERAL_PHRASES: Final[tuple[tuple[str, int], ...]] = (
    ("rất nhiều", 5), ("nhiều lắm", 5), ("đông người", 5), ("cả chục", 10), ("hàng chục", 10),
    ("mấy chục", 20), ("vài chục", 20), ("cả nhà", 2), ("cả gia đình", 2),
    ("nhiều", 2), ("một số", 2), ("mấy người", 2), ("vài", 2), ("dăm", 3),
    ("lots", 5), ("many", 2), ("several", 2), ("a few", 2), ("some", 2), ("a lot", 5),
    ("dozens", 20), ("whole family", 2), ("everyone", 2),
)  # fmt: skip
_APPROX_WORDS: Final[tuple[str, ...]] = (
    "khoảng", "chừng", "tầm", "cỡ", "độ", "gần", "hơn", "ít nhất", "trên",
    "about", "around", "maybe", "roughly", "at least", "more than", "over", "approximately",
)  # fmt: skip
_LOWER_BOUND_WORDS: Final[tuple[str, ...]] = (
    "hơn", "ít nhất", "trên", "at least", "more than", "over",
)  # fmt: skip


def _contains(folded_text: str, text: str, phrase: str) -> bool:
    """Phrase match on whole words, exact or (for unaccented input) folded."""
    pattern = r"(?<![^\W_])" + re.escape(phrase) + r"(?![^\W_])"
    if re.search(pattern, text):
        return True
    folded_phrase = fold(phrase)
    if not re.search(r"(?<![^\W_])" + re.escape(folded_phrase) + r"(?![^\W_])", folded_text):
        return False
    # the folded form matched: accept only if the caller's words there lack accents
    for match in re.finditer(r"(?<![^\W_])" + re.escape(folded_phrase), folded_text):
        original = text[match.start() : match.start() + len(phrase)]
        if original == fold(original):
            return True
    return False


def parse_count(text: str) -> Count | None:
    """How many people are hurt or trapped, from an answer; None when no answer.

    "hai người" -> 2; "ba bốn người" -> 4 (upper bound, approximate);
    "không có ai" -> 0; "không biết" / "chưa rõ" / "I don't know" -> unknown
    (known=False, never 0); "nhiều người" -> unknown with at_least=2.
    """
    text = nfc(text).strip()
    lowered = text.lower().replace("’", "'")
    folded = fold(lowered)
    if any(_contains(folded, lowered, p) for p in _UNKNOWN_PHRASES):
        return Count(None, False, text)
    if any(_contains(folded, lowered, p) for p in _NO_ONE_PHRASES):
        return Count(0, True, text)
    approximate = any(_contains(folded, lowered, p) for p in _APPROX_WORDS)
    lower_bound = any(_contains(folded, lowered, p) for p in _LOWER_BOUND_WORDS)
    numbers = _count_numbers(lowered)
    if numbers:
        first, first_end = numbers[0][0], numbers[0][2]
        # a range said as two neighbouring numbers: "ba bốn người", "2-3 người",
        # "hai hoặc ba": take the upper bound, so dispatch errs toward more help
        if len(numbers) >= 2:
            second, second_start = numbers[1][0], numbers[1][1]
            if 0 < second - first <= 2 and second_start - first_end <= 2:
                return Count(second, True, text, approximate=True, at_least=first)
        if first == 0:
            return Count(0, True, text)
        return Count(
            first, True, text, approximate=approximate, at_least=first if lower_bound else None
        )
    if any(_contains(folded, lowered, p) for p in _ZERO_PHRASES):
        return Count(0, True, text)
    for phrase, minimum in _SEVERAL_PHRASES:
        if _contains(folded, lowered, phrase):
            return Count(None, False, text, approximate=True, at_least=minimum)
    if re.search(r"(?<![^\W_])(chỉ có tôi|mình tôi|một mình|just me|only me)(?![^\W_])", lowered):
        return Count(1, True, text)
    return None


_RANGE_JOINERS: Final[frozenset[str]] = frozenset({"đến", "tới", "hoặc", "hay", "or", "to"})


def _count_numbers(lowered: str) -> list[tuple[int, int, int]]:
    """(value, first token, last token) of each number in a count answer.

    "một" as an article counts as 1 ("một người bị thương").
    """
    tokens = tokenize(lowered)
    values: list[tuple[int, int, int]] = []
    for i, tok in enumerate(tokens):
        if tok.key.isdigit():
            values.append((int(tok.key), i, i))
            continue
        if _is(tok, _RANGE_JOINERS):
            continue
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        prev = tokens[i - 1] if i > 0 else None
        if _is(tok, frozenset({"không", "linh", "lẻ", "oh", "o", "nil"})):
            continue  # "không" is "no" far more often than "zero" in a count answer
        if _is(tok, frozenset({"chục"})) and prev is not None and _digit(prev) is not None:
            continue
        if _is(tok, _TEN):
            unit = _digit(nxt) if nxt is not None else None
            values.append((10 + unit, i, i + 1) if unit else (10, i, i))
            continue
        if _is(tok, frozenset({"chục"})):
            values.append((10, i, i))
            continue
        teen = _lookup(tok, _TEEN_WORDS)
        if teen is not None:
            values.append((teen, i, i))
            continue
        digit = _digit(tok)
        if digit is None:
            continue
        if prev is not None and (_is(prev, _TEN) or _is(prev, _TENS_MARK)):
            continue  # part of "mười hai" / "hai mươi mốt", handled there
        if nxt is not None and _is(nxt, _TENS_MARK):
            after = tokens[i + 2] if i + 2 < len(tokens) else None
            unit = _digit(after) if after is not None else None
            values.append((digit * 10 + (unit or 0), i, i + 2 if unit else i + 1))
            continue
        values.append((digit, i, i))
    return values


# --- House numbers -------------------------------------------------------------

_HOUSE_CUE = re.compile(
    r"(?<![^\W_])(?:số\s+nhà|nhà\s+số|số|so\s+nha|nha\s+so|so|number|no\.?|nhà|nha|#)\s*"
    r"(\d+[a-zA-Z]?(?:\s*/\s*\d+[a-zA-Z]?)*(?:\s*bis)?)(?![^\W_])",
    re.IGNORECASE,
)
_LEADING_NUMBER = re.compile(
    r"^\s*(\d+[a-zA-Z]?(?:/\d+[a-zA-Z]?)*)\s+"
    r"(?:(?i:phố|pho|đường|duong|ngõ|ngo|ngách|ngach|hẻm|hem|p\.|đ\.)|[A-ZÀ-ỸĐ])",
)
_ALLEY_NUMBER = re.compile(r"(?:ngõ|ngo|ngách|ngach|hẻm|hem|kiệt|kiet)\s+\d", re.IGNORECASE)


def parse_house_number(text: str) -> str | None:
    """The house number in an address or a correction, digits and letters as written.

    "không phải, số 18 cơ" -> "18"; "số nhà mười tám phố Hàng Bài" -> "18";
    "nhà 5A ngõ 12" -> "5A"; "18/3 Khâm Thiên" -> "18/3". Alley numbers
    ("ngõ 12") are not house numbers.
    """
    converted = words_to_digits(nfc(text))
    match = _HOUSE_CUE.search(converted)
    if match is not None:
        # "số" right after an alley word ("ngõ số 5") names the alley, not the house
        before = converted[: match.start()].rstrip().lower()
        if not re.search(r"(ngõ|ngo|ngách|ngach|hẻm|hem|kiệt|kiet)$", before):
            return re.sub(r"\s+", "", match.group(1)).upper()
        rest = converted[match.end() :]
        again = _HOUSE_CUE.search(rest)
        if again is not None:
            return re.sub(r"\s+", "", again.group(1)).upper()
    lead = _LEADING_NUMBER.match(converted)
    if lead is not None and not _ALLEY_NUMBER.match(converted.strip()):
        return lead.group(1).upper()
    return None


__all__ = ["Count", "parse_count", "parse_house_number", "words_to_digits"]
