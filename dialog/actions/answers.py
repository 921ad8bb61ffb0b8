"""Reading a caller's answer to one question: fillers, yes/no, names, corrections.

Pure functions over the raw text, Vietnamese (with or without diacritics) and
English. Numbers, phone numbers and places are read by `dialog.numbers`,
`dialog.phone` and `dialog.gazetteer`.
"""

from __future__ import annotations

import re
from typing import Final

from dialog import gazetteer
from dialog.numbers import parse_house_number, words_to_digits
from dialog.phone import normalise_vn_phone
from dialog.textnorm import fold, nfc

_FILLERS: Final[str] = (
    r"alo|a lô|a lo|allo|dạ|da|vâng|vang|ờ|ơ|ừ|ừm|ừ thì|à|ạ|ơi|anh ơi|chị ơi|em ơi|"
    r"anh oi|chi oi|em oi|ơi ơi|thì|thi|là|nhé|nhe|nha|ấy|đây|uh|um|uhm|er|erm|hmm|"
    r"well|so|hello|hi|ok|okay|please|oh"
)
_LEADING_FILLERS = re.compile(rf"^(?:(?:{_FILLERS})(?![^\W_])[\s,.!?…]*)+", re.IGNORECASE)
_TRAILING_FILLERS = re.compile(r"(?:[\s,.!?…]+(?:ạ|a|nhé|nhe|nha|ấy|đây|cơ|co|please))+$",
                               re.IGNORECASE)


def clean(text: str) -> str:
    """The answer without fillers around it: "dạ, số 5 Hàng Bạc ạ" -> "số 5 Hàng Bạc"."""
    text = nfc(text).strip()
    text = _LEADING_FILLERS.sub("", text)
    text = _TRAILING_FILLERS.sub("", text)
    return text.strip(" ,.!?…").strip()


_YES: Final[tuple[str, ...]] = (
    "đúng", "đúng rồi", "vâng", "phải", "phải rồi", "ừ", "ừ đúng", "có", "chính xác", "ok",
    "okay", "được", "được ạ", "yes", "yeah", "yep", "yup", "correct", "right", "that's right",
    "that is right", "sure", "exactly", "affirmative", "uh huh",
)  # fmt: skip
_NO: Final[tuple[str, ...]] = (
    "không", "không phải", "sai", "sai rồi", "chưa đúng", "không đúng", "ko", "k", "chưa",
    "no", "nope", "wrong", "not right", "that's wrong", "incorrect", "not really",
)  # fmt: skip


def _starts_with_phrase(text: str, phrases: tuple[str, ...]) -> bool:
    lowered = nfc(text).lower().strip(" ,.!?")
    folded = fold(lowered)
    for phrase in sorted(phrases, key=len, reverse=True):
        for form, candidate in ((phrase, lowered), (fold(phrase), folded)):
            if candidate == form or re.match(re.escape(form) + r"(?![^\W_])", candidate):
                # the folded form counts only when the caller typed no accents there
                if candidate is folded and lowered[: len(form)] != folded[: len(form)]:
                    continue
                return True
    return False


def looks_like_words(text: str) -> bool:
    """False for keyboard mashing and pasted junk ("xxxxxxxx...", one 300-letter token).

    The classifier gives such text confident but meaningless intents.
    """
    words = re.findall(r"[^\W\d_]+", nfc(text))
    if not words:
        return False
    letters = sum(len(w) for w in words)
    long_letters = sum(len(w) for w in words if len(w) > 20)
    return long_letters * 2 < letters


def yes_no(text: str, intent: str | None = None) -> bool | None:
    """True for yes, False for no, None when the answer is neither.

    In a long answer only a yes or no set apart at the start counts ("không,
    số 18"): "chưa ai bị thương nhưng khói nhiều" is not a "no".
    """
    said = clean(text) or text
    head = re.split(r"[,.;!?]", said, maxsplit=1)[0]
    if len(said.split()) > 4 and len(head.split()) > 3:
        return None
    if _starts_with_phrase(head, _NO):
        return False
    if _starts_with_phrase(head, _YES):
        return True
    if intent == "affirm":
        return True
    if intent == "deny":
        return False
    return None


_DONT_KNOW = re.compile(
    r"(?<![^\W_])(không biết|chưa biết|không rõ|chưa rõ|ko biết|k biết|khong biet|chua biet|"
    r"khong ro|chua ro|không nhớ|khong nho|don'?t know|do not know|not sure|no idea|"
    r"can'?t remember)(?![^\W_])",
    re.IGNORECASE,
)


def says_dont_know(text: str, intent: str | None = None) -> bool:
    return intent == "dont_know" or _DONT_KNOW.search(nfc(text)) is not None


_REFUSE_NAME = re.compile(
    r"(không muốn nói|khong muon noi|giấu tên|giau ten|không cần biết|khong can biet|"
    r"rather not|prefer not|anonymous|don'?t want to say|not telling)",
    re.IGNORECASE,
)
_NAME_PREFIX = re.compile(
    r"^(?:tên|ten)\s+(?:của\s+)?(?:tôi|toi|em|mình|minh|cháu|chau)\s+(?:là|la)\s+"
    r"|^(?:(?:tôi|toi|tui|em|cháu|chau|con|mình|minh|anh|chị|chi|tao|bác|bac|cô|co)\s+)?"
    r"(?:tên\s+(?:là\s+|la\s+)?|ten\s+(?:la\s+)?|là\s+|la\s+)"
    r"|^(?:my name is|my name's|name's|name is|the name is|this is|i am|i'm|im|it's|it is|"
    r"call me)\s+",
    re.IGNORECASE,
)
_NAME_SUFFIX = re.compile(r"\s+(?:đây|day|ạ|nhé|nhe|here|speaking)$", re.IGNORECASE)
_NOT_A_NAME = re.compile(
    r"(?<![^\W_])(cháy|chay|cứu|cuu|trộm|trom|cướp|cuop|tai nạn|tai nan|bị|bi|thương|"
    r"không|khong|có|ai|người|nguoi|đang|rồi|roi|chưa|chua|được|nhà|ở|gì|gi|đâu|dau|sao|"
    r"fire|help|police|accident|injured|hurt|what|why|where|who|nobody|none|not|yes|"
    r"my|we|our|you|he|she|they|is|are|was|the|think|there|please|and)(?![^\W_])",
    re.IGNORECASE,
)


def refuses_name(text: str) -> bool:
    return _REFUSE_NAME.search(nfc(text)) is not None


def extract_name(text: str) -> str | None:
    """The caller's name from an answer, or None when it does not look like one.

    "dạ tôi tên là Nguyễn Văn Hùng ạ" -> "Nguyễn Văn Hùng"; "my name is john
    smith" -> "John Smith". Digits, questions, or more than six words are not
    a name.
    """
    said = clean(text)
    said = _NAME_PREFIX.sub("", said, count=1).strip(" ,.")
    said = _NAME_SUFFIX.sub("", said).strip(" ,.")
    # "Hương, Nguyễn Thu Hương": the full name said after the short one; but
    # "Hạnh, giáo viên" is a name and then something else
    parts = [p.strip() for p in re.split(r"[,;]", said) if p.strip()]
    if len(parts) > 1:
        first = parts[0]
        fuller = [p for p in parts[1:] if p.split()[-1].lower() == first.split()[-1].lower()]
        said = _NAME_PREFIX.sub("", fuller[-1] if fuller else first, count=1).strip(" ,.")
    words = said.split()
    if not 1 <= len(words) <= 6 or any(ch.isdigit() for ch in said):
        return None
    if _NOT_A_NAME.search(said) or "?" in text:
        return None
    return " ".join(w if any(c.isupper() for c in w) else w.capitalize() for w in words)


_CORRECTION = re.compile(
    r"^(?:không phải|khong phai|ko phải|không,|khong,|nhầm|nham|nhầm rồi|sửa lại|sua lai|"
    r"à không|a khong|ý tôi là|y toi la|xin lỗi|xin loi|chết|không không|"
    r"no,|no it'?s|no,? it'?s|not .{1,30}, it'?s|sorry,? (?:it'?s|i meant|i mean)|i mean|"
    r"i meant|actually|correction|wait)"
    r"|(?<![^\W_])(?:cơ|chứ không phải|chu khong phai|mới đúng|moi dung|not)\s*[.!]?$",
    re.IGNORECASE,
)


def sounds_like_correction(text: str, intent: str | None = None) -> bool:
    said = clean(text).lower() or text.lower()
    return intent == "correction" or _CORRECTION.search(nfc(said)) is not None


_PLACE_WORDS = re.compile(
    r"(?<![^\W_])(số nhà|so nha|nhà số|nha so|địa chỉ|dia chi|đường|duong|phố|pho|ngõ|ngo|"
    r"ngách|ngach|hẻm|hem|kiệt|kiet|phường|phuong|quận|quan|xã|xa|thôn|thon|tòa|toa|"
    r"chung cư|chung cu|gần|gan|cạnh|canh|đối diện|doi dien|street|road|lane|alley|ward|"
    r"district|address|house|building|near|opposite)(?![^\W_])",
    re.IGNORECASE,
)
_NAME_WORDS = re.compile(r"(?<![^\W_])(tên|ten|name)(?![^\W_])", re.IGNORECASE)
_INJURED_WORDS = re.compile(
    r"(?<![^\W_])(bị thương|bi thuong|thương|injured|hurt|wounded)(?![^\W_])", re.IGNORECASE
)
_TRAPPED_WORDS = re.compile(
    r"(?<![^\W_])(kẹt|ket|mắc kẹt|mac ket|trapped|stuck)(?![^\W_])", re.IGNORECASE
)
_PHONE_WORDS = re.compile(
    r"(?<![^\W_])(số điện thoại|so dien thoai|số máy|so may|điện thoại|dien thoai|sđt|sdt|"
    r"phone|mobile|number to call)(?![^\W_])",
    re.IGNORECASE,
)


_SELF_CORRECTION = re.compile(
    r"(?:à không|a khong|à nhầm|a nham|nhầm rồi|nham roi|nhầm|không phải|khong phai|"
    r"ý là|y la|i mean|sorry|no wait|correction)[\s,.:;!-]+",
    re.IGNORECASE,
)


def after_self_correction(text: str) -> str | None:
    """What follows the caller's last self-correction, or None when there is none.

    "không chín bốn sáu... à không, không chín bốn bảy ..." -> "không chín bốn bảy ...".
    """
    matches = list(_SELF_CORRECTION.finditer(nfc(text)))
    return nfc(text)[matches[-1].end() :] if matches else None


_SURNAMES: Final[frozenset[str]] = frozenset(
    fold(name)
    for name in (
        "nguyễn", "trần", "lê", "phạm", "hoàng", "huỳnh", "phan", "vũ", "võ", "đặng",
        "bùi", "đỗ", "hồ", "ngô", "dương", "lý", "đinh", "trịnh", "đào", "mai", "lương",
        "tạ", "cao", "lâm", "tô", "chu", "hà", "vương", "kiều", "quách",
    )
)  # fmt: skip


def looks_like_a_name(text: str) -> bool:
    """A full name said alone: a Vietnamese surname first, or capitalised words."""
    said = clean(text)
    words = said.split()
    if not 2 <= len(words) <= 5 or extract_name(said) is None:
        return False
    if fold(words[0]) in _SURNAMES:
        return True
    return len(words) <= 3 and all(w[:1].isupper() for w in words)


def names_self(text: str) -> bool:
    """The caller says their name ("em tên Hương", "my name is John")."""
    said = clean(text)
    return _NAME_PREFIX.search(said) is not None and _NAME_WORDS.search(nfc(said)) is not None


def mentions_injured(text: str) -> bool:
    return _INJURED_WORDS.search(nfc(text)) is not None


def mentions_trapped(text: str) -> bool:
    return _TRAPPED_WORDS.search(nfc(text)) is not None


def mentions_place(text: str) -> bool:
    """Place words ("ngõ", "phường", "near") or a place the gazetteer knows."""
    return _PLACE_WORDS.search(nfc(text)) is not None or gazetteer.mentions_place(text)


def correction_target(text: str, filled: set[str], last_filled: str | None) -> str | None:
    """Which detail a correction changes ("không phải, số 18 cơ" -> the location)."""
    said = nfc(text)
    if normalise_vn_phone(said) is not None or _PHONE_WORDS.search(said):
        return "callback_number"
    if _NAME_WORDS.search(said):
        return "caller_name"
    if _TRAPPED_WORDS.search(said):
        return "trapped"
    if _INJURED_WORDS.search(said):
        return "injured"
    place = mentions_place(said) or parse_house_number(said) is not None
    if place and ("incident_location" in filled or last_filled in (None, "incident_location")):
        return "incident_location"
    if re.search(r"\d", words_to_digits(said)):
        if last_filled in ("injured", "trapped"):
            return last_filled
        if "incident_location" in filled:
            return "incident_location"
    return last_filled


_MARKERS = re.compile(
    r"^(?:không phải|khong phai|ko phải|không|khong|nhầm rồi|nhầm|nham|sửa lại|sua lai|"
    r"à không|a khong|ý tôi là|y toi la|xin lỗi|xin loi|chết|no|sorry|i mean|i meant|"
    r"actually|correction|wait|it'?s|it is)(?![^\W_])[\s,.!]*",
    re.IGNORECASE,
)
_TAIL_MARKERS = re.compile(
    r"[\s,]*(?:cơ|co|chứ|chu|mới đúng|moi dung|chứ không phải.*|not .*)\s*[.!]?$",
    re.IGNORECASE,
)


def strip_correction(text: str) -> str:
    """The corrected value alone: "không phải, số 18 cơ" -> "số 18"."""
    said = clean(text)
    previous = None
    while previous != said:
        previous = said
        said = _MARKERS.sub("", said).strip()
    return _TAIL_MARKERS.sub("", said).strip(" ,.")


_BARE_NUMBER = re.compile(
    r"^\s*(?:số|so|number|no\.?|#|nhà|nha)?\s*(\d{1,5}[a-zA-Z]?(?:\s*/\s*\d{1,5}[a-zA-Z]?)*)\s*$",
    re.IGNORECASE,
)


def house_number_in(text: str) -> str | None:
    """A house number in an address, or a number said alone ("18", "no, it's 18")."""
    found = parse_house_number(text)
    if found is not None:
        return found
    match = _BARE_NUMBER.match(words_to_digits(nfc(text)))
    return re.sub(r"\s+", "", match.group(1)).upper() if match else None


def replace_house_number(location: str, house_number: str) -> str:
    """The location with its house number changed, or the number added in front."""
    converted = words_to_digits(location)
    old = parse_house_number(converted)
    if old is not None:
        pattern = re.compile(rf"(?<![\w/]){re.escape(old)}(?![\w/])", re.IGNORECASE)
        if pattern.search(converted):
            return pattern.sub(house_number, converted, count=1)
    return f"số {house_number} {location}"


def format_phone(number: str) -> str:
    """Grouped for reading back: "0912345678" -> "0912 345 678"."""
    if len(number) == 10:
        return f"{number[:4]} {number[4:7]} {number[7:]}"
    if len(number) == 11:
        return f"{number[:3]} {number[3:7]} {number[7:]}"
    return number
