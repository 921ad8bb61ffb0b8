"""Where is it? Resolve what a caller says to one of Hanoi's 126 wards and communes.

Since 1 July 2025 Hanoi has no districts: 51 wards (phường) and 75 communes
(xã) replaced 30 districts and 526 wards, communes and towns (Resolution
1656/NQ-UBTVQH15). Callers keep using the old names, so the gazetteer knows:

- the new units (`data/hanoi_units.json`, with the old units merged into each);
- the old districts ("quận Hoàn Kiếm") and old wards ("phường Hàng Bạc");
- common streets and landmarks (`data/hanoi_places.json`, curated).

Every place name in the text gives a set of possible new units; the sets are
intersected, most specific first (landmark, new unit, street, old ward, old
district), so "18 Hàng Bài, quận Hoàn Kiếm" lands in phường Cửa Nam. One unit
left is "resolved", several "ambiguous" (ask a narrowing question), none
"unresolved". Whatever the status, the bot reads the address back for the
caller to confirm: ASR mishears names, and some mappings are best guesses.

Matching ignores diacritics where the caller's word has none ("hang bai"),
but an accented word must match its accents ("Hà Đông" is not "Hạ Đình").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from callcenter.events import Language
from dialog.gazetteer_data import Entry, GazetteerData, Unit, load, unit_by_name, units
from dialog.numbers import parse_house_number, words_to_digits
from dialog.textnorm import Token, canon, fold, has_diacritics, prepare, strip_accents, tokenize

Status = Literal["resolved", "ambiguous", "unresolved"]
_Role = Literal["ward", "commune", "town", "district", "street", "alley"]


@dataclass(frozen=True, slots=True)
class Resolution:
    status: Status
    unit_code: str | None
    unit_name: str | None  # "Cửa Nam"; see unit_type for phường / xã
    unit_type: str | None  # "ward" or "commune"
    old_district: str | None  # pre-2025 district, said by the caller or inferred
    matched: str  # the caller's words that named places
    candidates: tuple[str, ...]  # unit names when ambiguous, most likely first
    house_number: str | None
    street: str | None  # "phố Hàng Bài", "ngõ 12 phố Huế"
    landmark: str | None


_KIND_RANK: Final[dict[str, int]] = {
    "landmark": 5, "unit": 4, "street": 3, "old_ward": 2, "old_district": 1,
}  # fmt: skip
_BARE_STOP: Final[frozenset[str]] = frozenset(
    {"thanh cong", "hoa binh", "thong nhat", "doan ket", "thang loi", "tu nhien", "dong tam",
     "tan lap", "le loi", "tien phong", "hung dao", "dai hung", "cong hoa", "tan tien",
     "hop tien", "minh tan", "tan dan", "nam tien", "liem", "dong", "hong ha"}
)  # fmt: skip

_PREFIXES: Final[tuple[tuple[tuple[str, ...], _Role], ...]] = (
    (("thị", "trấn"), "town"), (("thị", "xã"), "district"), (("thành", "phố"), "district"),
    (("phường",), "ward"), (("p",), "ward"), (("xã",), "commune"), (("tt",), "town"),
    (("quận",), "district"), (("q",), "district"), (("huyện",), "district"),
    (("tx",), "district"), (("phố",), "street"), (("đường",), "street"), (("đ",), "street"),
    (("ngõ",), "alley"), (("ngách",), "alley"), (("hẻm",), "alley"), (("kiệt",), "alley"),
)  # fmt: skip
_POSTFIXES: Final[dict[str, _Role]] = {
    "ward": "ward", "commune": "commune", "district": "district", "street": "street",
    "road": "street", "st": "street", "lane": "alley", "alley": "alley",
}  # fmt: skip
_OLD_MARKS: Final[frozenset[str]] = frozenset({"cũ", "old", "former"})
_NEW_MARKS: Final[frozenset[str]] = frozenset({"mới", "new"})
_DISTRICT_WORDS: Final[dict[str, tuple[str, str]]] = {
    "urban_district": ("quận", "district"),
    "rural_district": ("huyện", "district"),
    "town": ("thị xã", "town"),
}


# --- Finding place names in the text -----------------------------------------


def _word_is(token: Token, word: str) -> bool:
    """The caller's word is `word`, exactly or (if typed without accents) folded."""
    target = canon(word)
    return token.key == target or (not has_diacritics(token.key) and token.key == fold(target))


def _prefix_at(tokens: list[Token], i: int) -> tuple[_Role, int] | None:
    for words, role in _PREFIXES:
        n = len(words)
        if i + n <= len(tokens) and all(_word_is(tokens[i + k], w) for k, w in enumerate(words)):
            if tokens[i + n - 1].clause != tokens[i].clause:
                continue
            return role, n
    return None


@dataclass(frozen=True, slots=True)
class _Mention:
    entries: tuple[Entry, ...]
    start: int  # first token, including a prefix word
    name_start: int
    end: int  # one past the last token
    role: _Role | None
    street_hint: bool
    old: bool

    @property
    def best(self) -> tuple[Entry, ...]:
        """Entries of the kind this mention most likely means."""
        def order(entry: Entry) -> int:
            if self.old and entry.kind in ("old_ward", "old_district"):
                return 10
            if self.street_hint and entry.kind == "street":
                return 9
            return _KIND_RANK[entry.kind]

        top = max(order(e) for e in self.entries)
        return tuple(e for e in self.entries if order(e) == top)

    @property
    def rank(self) -> int:
        return max(_KIND_RANK[e.kind] for e in self.best)

    @property
    def ordered_codes(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for entry in (*self.best, *self.entries):
            for code in entry.codes:
                seen.setdefault(code, None)
        return tuple(seen)

    @property
    def preferred(self) -> tuple[str, ...]:
        best = self.best
        if len(best) == 1 and len(best[0].codes) == 1:
            code = best[0].codes[0]
            # a bare name that is a commune and a street elsewhere ("Trần Phú") is
            # not settled; a ward of the same name ("Hai Bà Trưng") is the likelier
            if self.role is None and best[0].kind == "unit" and best[0].subtype == "commune":
                streets = [e for e in self.entries if e.kind == "street"]
                if streets and not any(code in s.codes for s in streets):
                    return ()
            return (code,)
        return ()


def _accent_ok(tokens: list[Token], i: int, accented: tuple[str, ...]) -> bool:
    return all(
        tokens[i + k].key == word or not has_diacritics(tokens[i + k].key)
        for k, word in enumerate(accented)
    )


def _filter_role(entries: tuple[Entry, ...], role: _Role | None) -> tuple[Entry, ...]:
    if role is None or role == "alley":
        return entries
    if role == "street":
        kept = tuple(e for e in entries if e.kind == "street")
    elif role == "district":
        kept = tuple(e for e in entries if e.kind == "old_district")
    else:
        typed = tuple(
            e for e in entries if e.kind in ("unit", "old_ward") and e.subtype == role
        )
        kept = typed or tuple(e for e in entries if e.kind in ("unit", "old_ward"))
        # "phường Hoàn Kiếm": callers also say phường for the old district
        kept += tuple(e for e in entries if e.kind == "old_district")
    return kept or entries


def _match_at(
    gaz: GazetteerData, tokens: list[Token], i: int, role: _Role | None, strict: bool
) -> tuple[tuple[Entry, ...], int] | None:
    for length in range(min(gaz.max_len, len(tokens) - i), 0, -1):
        window = tokens[i : i + length]
        if window[-1].clause != window[0].clause:
            continue
        key = tuple(t.folded for t in window)
        bucket = gaz.index.get(key)
        if not bucket:
            continue
        found = tuple(
            entry for accented, entry in bucket if not strict or _accent_ok(tokens, i, accented)
        )
        if not found:
            continue
        if role is None:
            if length == 1 and not (has_diacritics(window[0].key) and strict):
                continue  # "lang" alone may be làng, lăng or Láng
            found = tuple(e for e in found if e.kind != "street" or length > 1)
            if " ".join(key) in _BARE_STOP:
                found = tuple(e for e in found if e.kind != "old_ward")
            if not found:
                continue
        return _filter_role(found, role), i + length
    return None


def _find_mentions(
    gaz: GazetteerData, tokens: list[Token], strict: bool
) -> tuple[list[_Mention], list[str], str | None]:
    """Place mentions, alley parts ("ngõ 12") and a street name not in the data."""
    mentions: list[_Mention] = []
    alleys: list[str] = []
    free_street: str | None = None
    role: _Role | None = None
    role_start = -1
    role_end = -1
    i = 0
    while i < len(tokens):
        prefix = _prefix_at(tokens, i)
        if prefix is not None:
            role, n = prefix
            role_start, role_end = i, i + n
            i += n
            if role == "alley" and i < len(tokens) and re.fullmatch(r"\d+\w?", tokens[i].key):
                alleys.append(f"{tokens[role_start].key} {tokens[i].key.upper()}")
                i += 1
                role_end = i
                role = None
            continue
        active = role if role_end == i else None
        previous = tokens[i - 1] if i > 0 else None
        street_hint = previous is not None and (
            bool(re.fullmatch(r"\d+\w?(?:/\d+\w?)?", previous.key))
            or (bool(alleys) and role_end == i)
        )
        match = _match_at(gaz, tokens, i, active, strict)
        if match is not None:
            found, end = match
            post = tokens[end] if end < len(tokens) else None
            if post is not None and post.key in _POSTFIXES and active is None:
                found = _filter_role(found, _POSTFIXES[post.key])
                end += 1
                post = tokens[end] if end < len(tokens) else None
            old = post is not None and post.key in _OLD_MARKS
            if post is not None and post.key in _NEW_MARKS:
                found = tuple(e for e in found if e.kind == "unit") or found
            start = role_start if active is not None else i
            mentions.append(_Mention(found, start, i, end, active, street_hint, old))
            i = end + (1 if old else 0)
            continue
        if active == "street" and free_street is None:
            words: list[str] = []
            j = i
            while (
                j < len(tokens)
                and len(words) < 5
                and tokens[j].clause == tokens[i].clause
                and _prefix_at(tokens, j) is None
                and not tokens[j].key.isdigit()
            ):
                words.append(tokens[j].key)
                j += 1
            if words:
                prefix_word = tokens[role_start].key
                free_street = f"{_canonical_prefix(prefix_word)} {_title(words)}"
                i = j
                continue
        i += 1
    return mentions, alleys, free_street


def _canonical_prefix(word: str) -> str:
    return "đường" if fold(word) in ("duong", "d") else "phố"


def _title(words: Iterable[str]) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in words)


# --- Resolution ------------------------------------------------------------------


def resolve_location(text: str) -> Resolution:
    """Resolve a caller's description of a place in Hanoi (see the module doc)."""
    gaz = load()
    source = prepare(text)
    tokens = tokenize(source)
    mentions, alleys, free_street = _find_mentions(gaz, tokens, strict=True)
    if not mentions:  # ASR may put a wrong tone on a name: try without accents
        mentions, alleys, free_street = _find_mentions(gaz, tokens, strict=False)
    house = parse_house_number(source)
    street_mention = next(
        (m for m in mentions if any(e.kind == "street" for e in m.best)), None
    )
    if house is None and street_mention is not None:
        before = words_to_digits(source[: tokens[street_mention.start].start])
        lead = re.search(r"(\d+[A-Za-z]?(?:/\d+[A-Za-z]?)?)\s*$", before)
        if lead is not None and not re.search(r"(ngõ|ngo|ngách|ngach|hẻm|hem)\s+\S+\s*$", before):
            house = lead.group(1).upper()
    street = _street_text(street_mention, tokens, free_street, alleys)
    landmark = next(
        (m.best[0].name for m in mentions if m.best[0].kind == "landmark"), None
    )
    matched = ", ".join(
        source[tokens[m.start].start : tokens[m.end - 1].end] for m in mentions
    )
    if not mentions:
        return Resolution(
            "unresolved", None, None, None, None, matched, (), house, street, landmark
        )
    ranked = sorted(mentions, key=lambda m: -m.rank)
    pool = list(ranked[0].ordered_codes)
    used = [ranked[0]]
    for mention in ranked[1:]:
        narrowed = [c for c in pool if c in mention.ordered_codes]
        if narrowed:
            pool = narrowed
            used.append(mention)
    chosen: str | None = pool[0] if len(pool) == 1 else None
    if chosen is None:
        for mention in used:
            preferred = [c for c in mention.preferred if c in pool]
            if len(preferred) == 1:
                chosen = preferred[0]
                break
    old_district = _old_district(gaz, used, chosen)
    if chosen is None:
        names = tuple(gaz.units[c].name for c in pool)
        return Resolution(
            "ambiguous", None, None, None, old_district, matched, names, house, street, landmark
        )
    unit = gaz.units[chosen]
    return Resolution(
        "resolved", unit.code, unit.name, unit.type, old_district, matched, (), house, street,
        landmark,
    )  # fmt: skip


def _street_text(
    mention: _Mention | None, tokens: list[Token], free: str | None, alleys: list[str]
) -> str | None:
    name: str | None = None
    if mention is not None:
        entry = next(e for e in mention.best if e.kind == "street")
        word = (
            _canonical_prefix(tokens[mention.start].key)
            if mention.role == "street"
            else entry.subtype or "phố"
        )
        name = f"{word} {entry.name}"
    elif free is not None:
        name = free
    parts = [*alleys, name] if name else list(alleys)
    return " ".join(parts) if parts else None


def _old_district(gaz: GazetteerData, used: list[_Mention], chosen: str | None) -> str | None:
    for mention in used:
        districts = [e.name for e in mention.entries if e.kind == "old_district"]
        if (
            districts
            and all(e.kind in ("old_district", "unit") for e in mention.best)
            and (mention.best[0].kind == "old_district" or chosen is None)
        ):
            return districts[0]
    for mention in used:
        wards = {e.district for e in mention.best if e.kind == "old_ward"}
        if len(wards) == 1:
            return wards.pop()
    if chosen is not None:
        olds = gaz.units[chosen].old_districts
        return olds[0] if olds else None
    return None


# --- What the bot says -------------------------------------------------------


def _unit_word(unit_type: str | None, language: Language) -> str:
    if language is Language.VI:
        return "xã" if unit_type == "commune" else "phường"
    return "commune" if unit_type == "commune" else "ward"


def _district_phrase(name: str, language: Language) -> str:
    kind = load().district_types.get(name, "urban_district")
    vi, en = _DISTRICT_WORDS.get(kind, ("quận", "district"))
    if language is Language.VI:
        return f"{vi} {name} cũ"
    return f"the former {strip_accents(name)} {en}"


def _join_or(items: list[str], language: Language) -> str:
    word = "hay" if language is Language.VI else "or"
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {word} {items[-1]}"


def narrowing_question(resolution: Resolution, language: Language) -> str:
    """The next question that narrows the place down."""
    vi = language is Language.VI
    if resolution.status == "ambiguous" and 1 < len(resolution.candidates) <= 3:
        types = {u.type for c in resolution.candidates if (u := unit_by_name(c)) is not None}
        names = [c if vi else strip_accents(c) for c in resolution.candidates]
        if vi:
            word = "Xã" if types == {"commune"} else "Phường" if types == {"ward"} else "Phường, xã"
            return (
                f"{word} nào ạ: {_join_or(names, language)}? Nếu không rõ, bạn cho tôi biết "
                "tên phố hoặc một toà nhà, cửa hàng gần đó."
            )
        word = "commune" if types == {"commune"} else "ward"
        return (
            f"Which {word} is it: {_join_or(names, language)}? If you are not sure, tell me "
            "the street or a building nearby."
        )
    if resolution.status == "ambiguous":
        if vi:
            area = (
                f"Ở khu vực {_district_phrase(resolution.old_district, language)}, bạn"
                if resolution.old_district
                else "Bạn"
            )
            return f"{area} ở phố nào, số nhà bao nhiêu ạ? Hoặc gần toà nhà, địa điểm nào?"
        area = (
            f"In {_district_phrase(resolution.old_district, language)}, which"
            if resolution.old_district
            else "Which"
        )
        return f"{area} street and house number? Or what building or place is nearby?"
    if resolution.status == "unresolved":
        if resolution.street:
            if vi:
                return f"{resolution.street[:1].upper()}{resolution.street[1:]} thuộc phường " \
                    "hay quận nào ạ? Hoặc gần toà nhà, cửa hàng nào?"
            return (
                f"Which ward or district is {_english_street(resolution.street)} in? "
                "Or what building is nearby?"
            )
        if vi:
            return "Gần đâu ạ? Bạn có thấy biển tên đường hay toà nhà nào không?"
        return "What is nearby? Can you see a street sign or a building name?"
    # resolved: ask for what is still missing
    if resolution.street is None and resolution.landmark is None:
        if vi:
            return "Số nhà và tên phố là gì ạ?"
        return "What is the house number and the street?"
    if resolution.house_number is None and resolution.landmark is None:
        if vi:
            return "Số nhà bao nhiêu ạ? Hoặc gần toà nhà, cửa hàng nào?"
        return "What is the house number? Or what building is nearby?"
    if vi:
        return "Gần đó có toà nhà hay cửa hàng nào dễ nhận ra không ạ?"
    return "Is there a building or shop nearby that is easy to spot?"


_EN_STREET_WORDS: Final[dict[str, str]] = {
    "phố": "Street", "đường": "Road", "ngõ": "Lane", "ngách": "Alley", "hẻm": "Alley",
    "kiệt": "Alley",
}  # fmt: skip


def _english_street(street: str) -> str:
    """"ngõ 12 phố Huế" -> "Lane 12, Hue Street"."""
    parts = re.findall(r"(ngõ|ngách|hẻm|kiệt) (\S+)", street)
    rest = re.sub(r"(ngõ|ngách|hẻm|kiệt) \S+\s*", "", street).strip()
    out = [f"{_EN_STREET_WORDS[kind]} {number}" for kind, number in parts]
    if rest:
        kind, _, name = rest.partition(" ")
        if kind in _EN_STREET_WORDS and name:
            out.append(f"{strip_accents(name)} {_EN_STREET_WORDS[kind]}")
        else:
            out.append(strip_accents(rest))
    return ", ".join(out)


def read_back(resolution: Resolution, said: str, language: Language) -> str:
    """The confirmation question: "Tôi xác nhận: số 18 phố Hàng Bài, phường Cửa Nam, ..."."""
    vi = language is Language.VI
    parts: list[str] = []
    if resolution.street:
        if vi:
            house = f"số {resolution.house_number} " if resolution.house_number else ""
            parts.append(f"{house}{resolution.street}")
        else:
            house = f"{resolution.house_number} " if resolution.house_number else ""
            parts.append(f"{house}{_english_street(resolution.street)}")
    elif resolution.house_number:
        parts.append(f"số {resolution.house_number}" if vi else f"number {resolution.house_number}")
    if resolution.landmark:
        if vi:
            parts.append(f"gần {resolution.landmark}" if parts else resolution.landmark)
        else:
            name = _landmark_en(resolution.landmark)
            parts.append(f"near {name}" if parts else name)
    if resolution.status == "resolved" and resolution.unit_name:
        word = _unit_word(resolution.unit_type, language)
        if vi:
            parts.append(f"{word} {resolution.unit_name}")
        else:
            parts.append(f"{strip_accents(resolution.unit_name)} {word}")
        old = resolution.old_district
        if old and fold(old) != fold(resolution.unit_name):
            parts.append(_district_phrase(old, language))
    elif resolution.old_district and parts:
        parts.append(_district_phrase(resolution.old_district, language))
    said = said.strip().rstrip(".?!")
    if not said and not parts:
        return narrowing_question(resolution, language)
    if not parts or resolution.status == "unresolved":
        if vi:
            return f"Tôi xác nhận địa chỉ: {said}, đúng không ạ?"
        return f"Let me confirm the address: {said}. Is that right?"
    if vi:
        return f"Tôi xác nhận: {', '.join(parts)}, đúng không ạ?"
    return f"Let me confirm: {', '.join(parts)}. Is that right?"


def _landmark_en(name: str) -> str:
    for bucket in load().index.values():
        for _, entry in bucket:
            if entry.kind == "landmark" and entry.name == name and entry.name_en:
                return entry.name_en
    return strip_accents(name)


def mentions_place(text: str) -> bool:
    """Whether the text names any place the gazetteer knows (a cheap slot check)."""
    tokens = tokenize(text)
    mentions, alleys, free = _find_mentions(load(), tokens, strict=True)
    return bool(mentions or alleys or free)


__all__ = [
    "Resolution",
    "Unit",
    "mentions_place",
    "narrowing_question",
    "read_back",
    "resolve_location",
    "unit_by_name",
    "units",
]
