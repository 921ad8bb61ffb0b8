"""Red-flag rules run on every caller transcript, independent of any classifier.

A red flag means a life may be at risk now: the call is escalated (priority 1,
a dispatcher alerted, a safety instruction spoken) whatever the dialog model
thinks. Rules favour recall: a false alarm costs a dispatcher a glance, a miss
can cost a life. Cheap negation handling removes the obvious false alarms
("không có ai bị kẹt", "no one is trapped"); "he is breathing" never matches
the not-breathing phrases in the first place.

Phrases are written in the small language of `textnorm.compile_phrase` and
match with or without diacritics (a caller word without any accent matches
the folded phrase; an accented one must match exactly, so "chạy" never reads
as "cháy").
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from callcenter.events import Language
from dialog.textnorm import KeyText, Token, compile_phrase, fold, prepare, tokenize


class RedFlag(StrEnum):
    PEOPLE_TRAPPED = "people_trapped"
    WEAPON = "weapon"
    NOT_BREATHING = "not_breathing"
    UNCONSCIOUS = "unconscious"
    CHILD_IN_DANGER = "child_in_danger"
    GAS_LEAK = "gas_leak"
    INTRUDER_PRESENT = "intruder_present"
    SPREADING_FIRE = "spreading_fire"


@dataclass(frozen=True, slots=True)
class RedFlagHit:
    flag: RedFlag
    evidence: str  # the caller's words that matched, as they were written


@dataclass(frozen=True, slots=True)
class _Rule:
    flag: RedFlag
    vi: tuple[str, ...]
    en: tuple[str, ...]


_PERSON_EN = (
    "he/she/they/someone/somebody/people/person/man/woman/family/dad/mum/mom/father/"
    "mother/husband/wife/son/daughter/grandma/grandpa/grandmother/grandfather/friend/"
    "neighbour/neighbor/boss/colleague/brother/sister/guy/lady"
)

_RULES: Final[tuple[_Rule, ...]] = (
    _Rule(
        RedFlag.PEOPLE_TRAPPED,
        vi=(
            "mắc/bị/đang/còn/vẫn kẹt", "kẹt trong/lại/bên/ở/dưới/trên", "kẹt cứng",
            "bị nhốt", "bị đè", "bị vùi", "bị chôn/lấp", "vùi lấp", "đè lên người",
            "không ra được", "không thoát được", "không thoát ra được", "chưa thoát ra",
            "không ra ngoài được", "không mở được cửa", "chưa ra được",
            "không chạy ra được", "không xuống được", "kẹt thang máy",
            "còn người/ai ở/bên trong", "còn người/ai trong nhà/phòng/đó/ấy/xe",
            "trong nhà/phòng/đó/xe còn người/ai", "bên trong còn người/ai",
            "có người ở/bên trong", "có người còn ở trong",
            "mắc kẹt", "bị mắc", "kẹt trong xe", "mắc trên/dưới",
        ),
        en=(
            "trapped", "stuck in/inside/under/on", "pinned", "buried",
            "can't get out", "cannot get out", "can't escape", "cannot escape",
            "unable to get out", "still inside", "people inside", "someone inside",
            "somebody inside", "locked in", "stuck in the lift/elevator",
            "can't open the door",
        ),
    ),
    _Rule(
        RedFlag.WEAPON,
        vi=(
            "dao", "dao găm/phay/bầu/rựa/chặt", "mã tấu", "thanh kiếm", "cầm/vung kiếm",
            "kiếm nhật", "rựa", "súng",
            "súng ngắn/hoa cải/săn/trường", "lựu đạn", "bom", "mìn", "vũ khí", "hung khí",
            "nổ súng", "bị bắn", "bắn người/chết", "bắn vào", "cầm gậy/gạch/tuýp/côn",
            "ống tuýp", "tuýp sắt", "gậy sắt", "gậy gộc", "a xít/xit", "axit", "tạt axit",
            "bị đâm vào/trúng bụng/ngực/lưng/cổ/tay/đùi", "đâm * nhát", "đâm chém",
            "chém nhau", "chém người", "bị chém",
            "kéo nhọn", "cầm kéo",
        ),
        en=(
            "knife", "knives", "gun", "guns", "pistol", "rifle", "shotgun", "firearm",
            "weapon", "weapons", "armed", "machete", "sword", "axe", "bomb", "grenade",
            "shot", "shooting", "shots fired", "stabbed", "stabbing", "acid",
            "baseball bat", "iron bar", "crowbar",
        ),
    ),
    _Rule(
        RedFlag.NOT_BREATHING,
        vi=(
            "không thở", "không còn thở", "không thấy thở", "không thở được",
            "thở không được", "ngừng/ngưng/tắt/hết thở", "tắt thở", "ngạt thở", "ngạt khí",
            "không có hơi thở", "hết hơi thở", "không còn hơi thở", "không còn mạch",
            "ngừng tim", "không thấy mạch", "tím tái", "hóc * không thở",
            "bị hóc", "hóc xương/dị vật", "sặc không thở",
        ),
        en=(
            "not breathing", "isn't breathing", "is not breathing", "stopped breathing",
            "no breath", "no breathing", "can't breathe", "cannot breathe",
            "not breathe", "no pulse", "turning blue", "choking", "heart stopped",
            "cardiac arrest", "doesn't breathe", "does not breathe",
        ),
    ),
    _Rule(
        RedFlag.UNCONSCIOUS,
        vi=(
            "bất tỉnh", "ngất", "ngất xỉu", "xỉu", "hôn mê", "không tỉnh", "chưa tỉnh",
            "gọi không tỉnh", "gọi không dậy", "lay không dậy", "không phản ứng",
            "nằm bất động", "không cử động", "lịm đi", "lả đi", "ngã gục",
            "gục xuống", "không biết gì nữa", "mê man",
        ),
        en=(
            "unconscious", "passed out", "fainted", "not responding", "unresponsive",
            "won't wake up", "wont wake up", "can't wake", "cannot wake",
            "not waking up", _PERSON_EN + " collapsed", _PERSON_EN + " has/just collapsed",
            "blacked out", "knocked out", _PERSON_EN + " is? not moving",
            _PERSON_EN + " isn't moving",
        ),
    ),
    _Rule(
        RedFlag.GAS_LEAK,
        vi=(
            "rò/rỉ/xì/hở/thoát ga/gas/khí", "rò rỉ ga/gas/khí", "mùi ga/gas", "mùi khí ga/gas",
            "bình ga/gas ** rò/rỉ/xì/hở", "khí ga/gas", "ga/gas * bị rò/rỉ/xì/hở",
            "ngửi thấy * ga/gas", "van ga/gas * hỏng/hở", "nổ bình ga/gas", "khí độc",
            "khí co/CO",
        ),
        en=(
            "gas leak", "leaking gas", "gas is leaking", "smell gas", "smell of gas",
            "smells of gas", "gas smell", "smells like gas", "gas cylinder", "gas bottle",
            "carbon monoxide", "gas escaping",
        ),
    ),
    _Rule(
        RedFlag.INTRUDER_PRESENT,
        vi=(
            "đột nhập", "có trộm", "trộm * đang/vẫn/còn", "kẻ trộm/gian * trong",
            "trộm * trong nhà", "có người lạ * trong/vào/trèo/cạy/phá",
            "có người * cạy/phá/trèo * cửa/nhà/tường/cổng",
            "người lạ * nhà", "đang cạy/phá cửa", "cạy cửa", "phá khóa", "trèo vào",
            "trèo tường", "lẻn vào", "xông vào nhà", "đang trốn * nhà",
            "có ai * trong nhà",
        ),
        en=(
            "intruder", "intruders", "broke in", "breaking in", "break in", "broken in",
            "burglar", "burglars", "someone in my house/home/flat/apartment",
            "someone is in my house/home/flat/apartment", "somebody in my house/home",
            "someone trying to get in", "trying to break", "someone downstairs",
            "stranger in", "man in my house", "someone inside my house",
            "breaking into", "broke/broken into ** is/are still", "thief/thieves * in the/my/our",
            "thief/thieves/robber/robbers * still/inside/downstairs/upstairs",
        ),
    ),
    _Rule(
        RedFlag.SPREADING_FIRE,
        vi=(
            "cháy lan", "lửa lan", "lan sang nhà/tầng/phòng/dãy/khu/bên/các",
            "lan rộng", "lan nhanh", "lan ra khắp", "đang lan",
            "cháy to", "cháy lớn", "cháy dữ dội", "cháy dữ", "cháy ngùn ngụt", "ngùn ngụt",
            "lửa bùng", "bùng cháy", "bùng lên", "lửa lớn", "lửa to", "cháy rừng rực",
            "cháy cả/hết dãy/tầng/tòa/khu/nhà", "cháy sang", "khói đen kịt/mù mịt",
            "khói đen", "khói mù mịt", "khói dày đặc", "cột khói", "không dập được",
            "lửa cháy * mái", "cháy tung",
        ),
        en=(
            "spreading", "spread to", "spreads", "big fire", "huge fire", "massive fire",
            "out of control", "whole building", "flames everywhere", "engulfed",
            "thick smoke", "black smoke", "blazing", "fire is getting bigger",
            "can't put it out", "cannot put it out",
        ),
    ),
)  # fmt: skip

# Child in danger: a child word and a danger word close together.
_CHILD_VI: Final[tuple[str, ...]] = (
    "trẻ em", "trẻ con", "trẻ nhỏ", "đứa trẻ", "đứa bé", "đứa nhỏ", "em bé", "cháu bé",
    "bé trai", "bé gái", "thằng bé", "con bé", "bé con", "con tôi", "con em", "con mình",
    "con trai tôi/em/mình", "con gái tôi/em/mình", "con của tôi/em", "cháu tôi/em/mình",
    "cháu nhà", "bé nhà", "cháu nhỏ", "đứa con", "học sinh", "trẻ sơ sinh", "trẻ",
)  # fmt: skip
_CHILD_EN: Final[tuple[str, ...]] = (
    "child", "children", "kid", "kids", "baby", "toddler", "infant", "my son",
    "my daughter", "little boy", "little girl", "boy", "girl", "schoolboy", "schoolgirl",
)  # fmt: skip
_CHILD_DANGER_VI: Final[tuple[str, ...]] = (
    "mất tích", "bị lạc", "đi lạc", "lạc mất", "không thấy đâu", "không tìm thấy",
    "chưa về", "bị bắt", "bắt cóc", "bị bắt đi", "dụ dỗ", "đuối nước", "chết đuối",
    "rơi xuống", "ngã xuống", "bị ngã", "rơi từ", "trèo ra", "kẹt", "bị nhốt",
    "khóa trong xe", "trong xe ô tô", "bị đánh", "đánh đập", "bạo hành", "hành hạ",
    "xâm hại", "sàm sỡ", "hiếp", "một mình", "bị bỏ rơi", "sốt cao", "co giật", "hóc",
    "nuốt", "bị bỏng", "bị điện giật", "điện giật", "không thở", "bất tỉnh", "ngất",
    "cháy", "chìm", "trôi",
)  # fmt: skip
_CHILD_DANGER_EN: Final[tuple[str, ...]] = (
    "missing", "lost", "kidnapped", "abducted", "taken", "snatched", "drowning",
    "drowned", "fell", "falling", "fallen", "locked in", "trapped", "stuck", "beaten",
    "beating", "hit", "hurting", "abused", "abuse", "alone", "choking", "swallowed",
    "burned", "electrocuted", "not breathing", "unconscious", "fire", "in the water",
    "on the roof", "on the ledge", "balcony", "hasn't come home", "not come home",
)  # fmt: skip
_CHILD_WINDOW_WORDS: Final = 14

# Negation, Vietnamese and English. A plain negator must come right before the
# phrase, with at most a few linking words between ("không bị kẹt", "không
# ngửi thấy mùi gas", "is not trapped"); a negated quantifier may come a few
# words earlier ("không có ai bị kẹt", "no one is trapped"). "không biết có ai
# bị kẹt không" (uncertainty) is not a negation and still flags.
_NEGATORS: Final[frozenset[str]] = frozenset(
    {"khong", "chang", "cha", "chua", "ko", "k", "hong", "not", "no", "never", "isn't",
     "aren't", "wasn't", "weren't", "don't", "doesn't", "didn't", "hasn't", "haven't",
     "can't", "cannot", "without", "nothing"}
)  # fmt: skip
_LINKING: Final[frozenset[str]] = frozenset(
    {"co", "thay", "nguoi", "ngui", "nghe", "bi", "con", "he", "phai", "la", "duoc", "dang",
     "been", "be", "seem", "seems", "smell", "see", "any", "a", "an", "the", "there", "is",
     "are", "was", "were", "it's", "getting", "really", "actually"}
)  # fmt: skip
_COORDINATORS: Final[frozenset[str]] = frozenset({"hay", "hoac", "va", "or", "nor", "and"})
_QUANTIFIED: Final[tuple[tuple[str, ...], ...]] = tuple(
    tuple(cue.split())
    for cue in (
        "khong co ai", "khong ai", "chang co ai", "chang ai", "cha ai", "cha co ai",
        "khong con ai", "khong co nguoi nao", "khong nguoi nao", "khong mot ai",
        "chua co ai", "khong co ai ca", "no one", "nobody", "noone", "none", "not anyone",
        "not anybody", "nobody's", "no people", "no person",
    )
)  # fmt: skip
_LINK_MAX: Final = 3
# "không thở" is itself a negation; those phrases are never denied.
_NEGATABLE: Final[frozenset[RedFlag]] = frozenset(RedFlag) - {RedFlag.NOT_BREATHING}
_QUANTIFIED_WINDOW: Final = 5
# Words right after a phrase that make it harmless: "kẹt xe" is a traffic jam,
# "dao động" is to fluctuate, "bất tỉnh táo" does not exist but "stuck in traffic" does.
_EXCLUDE_AFTER: Final[dict[RedFlag, frozenset[str]]] = {
    RedFlag.PEOPLE_TRAPPED: frozenset({"xe", "đường", "tiền", "traffic", "việc", "số"}),
    RedFlag.WEAPON: frozenset({"động", "cạo", "thớt"}),
}


# "Trapped" said of an animal ("con mèo bị kẹt trên cây", "my cat is stuck on
# the roof") is a rescue, not a life at risk: no red flag when an animal is
# named just before the phrase, in its clause, and no person is. Accented
# words only ("cho" without accents is "for", not "chó").
_ANIMALS: Final[frozenset[str]] = frozenset(
    {"mèo", "chó", "cún", "gà", "vịt", "ngan", "ngỗng", "bò", "trâu", "lợn", "heo", "chim",
     "khỉ", "ngựa", "dê", "cat", "cats", "kitten", "dog", "dogs", "puppy", "pet", "bird",
     "parrot", "cow", "horse", "goat", "pig", "monkey", "animal"}
)  # fmt: skip
_PEOPLE: Final[frozenset[str]] = frozenset(
    {"người", "tôi", "bé", "cháu", "em", "anh", "chị", "ông", "bà", "mẹ", "bố", "ba", "vợ",
     "chồng", "ai", "mình", "họ", "nó", *_PERSON_EN.split("/"), "i", "we", "us", "me",
     "child", "kid", "baby"}
)  # fmt: skip
_ANIMAL_WINDOW: Final = 4


def _about_an_animal(tokens: tuple[Token, ...], first: int) -> bool:
    clause = tokens[first].clause
    window = [t.key for t in tokens[max(0, first - _ANIMAL_WINDOW) : first] if t.clause == clause]
    return any(w in _ANIMALS for w in window) and not any(w in _PEOPLE for w in window)


@dataclass(frozen=True, slots=True)
class _Compiled:
    flag: RedFlag
    patterns: tuple[re.Pattern[str], ...]


@functools.cache
def _compiled(language: Language | None) -> tuple[_Compiled, ...]:
    out: list[_Compiled] = []
    for rule in _RULES:
        phrases: list[str] = []
        if language in (None, Language.VI):
            phrases.extend(rule.vi)
        if language in (None, Language.EN):
            phrases.extend(rule.en)
        out.append(_Compiled(rule.flag, tuple(compile_phrase(p) for p in phrases)))
    return tuple(out)


@functools.cache
def _child_patterns(
    language: Language | None,
) -> tuple[tuple[re.Pattern[str], ...], tuple[re.Pattern[str], ...]]:
    children: list[str] = []
    dangers: list[str] = []
    if language in (None, Language.VI):
        children.extend(_CHILD_VI)
        dangers.extend(_CHILD_DANGER_VI)
    if language in (None, Language.EN):
        children.extend(_CHILD_EN)
        dangers.extend(_CHILD_DANGER_EN)
    return (
        tuple(compile_phrase(p) for p in children),
        tuple(compile_phrase(p) for p in dangers),
    )


def _negated(tokens: tuple[Token, ...], first: int) -> bool:
    """Whether the phrase starting at token `first` is denied in its clause."""
    clause = tokens[first].clause
    i = first - 1
    links = 0
    while i >= 0 and tokens[i].clause == clause and links < _LINK_MAX:
        if tokens[i].folded in _NEGATORS:
            return True
        if tokens[i].folded in _COORDINATORS and i > 0:
            i -= 2  # "không có dao hay súng": skip "hay dao"
            continue
        if tokens[i].folded not in _LINKING:
            break
        i -= 1
        links += 1
    start = first
    while start > 0 and first - start < _QUANTIFIED_WINDOW and tokens[start - 1].clause == clause:
        start -= 1
    window = [t.folded for t in tokens[start:first]]
    for cue in _QUANTIFIED:
        n = len(cue)
        if any(tuple(window[j : j + n]) == cue for j in range(len(window) - n + 1)):
            return True
    return False


def _evidence(text: str, tokens: tuple[Token, ...], first: int, last: int) -> str:
    return text[tokens[first].start : tokens[last].end]


def detect_red_flags(text: str, language: Language | None = None) -> list[RedFlagHit]:
    """Red flags in one caller utterance, one hit per flag, in the order said.

    `language` None tries both Vietnamese and English phrases.
    """
    tokens = tuple(tokenize(text))
    if not tokens:
        return []
    source = prepare(text)
    key_text = KeyText.of(tokens)
    hits: list[tuple[int, RedFlagHit]] = []
    for rule in _compiled(language):
        best: tuple[int, int] | None = None
        for pattern in rule.patterns:
            for match in pattern.finditer(key_text.text):
                if match.end() <= match.start():
                    continue
                first, last = key_text.token_range(match)
                if tokens[first].clause != tokens[last].clause:
                    continue
                if rule.flag in _NEGATABLE and _negated(tokens, first):
                    continue
                if rule.flag is RedFlag.PEOPLE_TRAPPED and _about_an_animal(tokens, first):
                    continue
                after = tokens[last + 1] if last + 1 < len(tokens) else None
                excluded = _EXCLUDE_AFTER.get(rule.flag, frozenset())
                if after is not None and after.key in excluded | {fold(w) for w in excluded}:
                    continue
                if best is None or first < best[0]:
                    best = (first, last)
        if best is not None:
            evidence = _evidence(source, tokens, *best)
            hits.append((best[0], RedFlagHit(rule.flag, evidence)))
    child = _child_hit(source, key_text, language)
    if child is not None:
        hits.append(child)
    hits.sort(key=lambda item: item[0])
    return [hit for _, hit in hits]


def _child_hit(
    source: str, key_text: KeyText, language: Language | None
) -> tuple[int, RedFlagHit] | None:
    children, dangers = _child_patterns(language)
    tokens = key_text.tokens
    child_spans = [
        key_text.token_range(m) for p in children for m in p.finditer(key_text.text) if m.group()
    ]
    danger_spans = [
        key_text.token_range(m) for p in dangers for m in p.finditer(key_text.text) if m.group()
    ]
    best: tuple[int, int, int, int] | None = None
    for c_first, c_last in sorted(child_spans):
        for d_first, d_last in sorted(danger_spans):
            if d_first <= c_last and c_first <= d_last:
                continue  # the same words
            gap = d_first - c_last if d_first > c_last else c_first - d_last
            if gap > _CHILD_WINDOW_WORDS:
                continue
            if _negated(tokens, d_first) and d_first > c_last:
                continue
            if best is None or min(c_first, d_first) < min(best[0], best[2]):
                best = (c_first, c_last, d_first, d_last)
    if best is None:
        return None
    first = min(best[0], best[2])
    last = max(best[1], best[3])
    return first, RedFlagHit(RedFlag.CHILD_IN_DANGER, _evidence(source, tokens, first, last))


_FLAG_INSTRUCTIONS: Final[dict[RedFlag, tuple[str, str]]] = {
    RedFlag.PEOPLE_TRAPPED: (
        "Lực lượng cứu hộ đang đến. Đừng tự lao vào nơi nguy hiểm. Nếu bạn đang bị "
        "kẹt, hãy giữ bình tĩnh, che mũi miệng nếu có khói, và gõ vào tường để "
        "người cứu hộ biết chỗ.",
        "Rescuers are on the way. Do not go into danger yourself. If you are the one "
        "trapped, stay calm, cover your nose and mouth if there is smoke, and tap on "
        "a wall so rescuers can find you.",
    ),
    RedFlag.WEAPON: (
        "Hãy tránh xa người có vũ khí, tìm chỗ trốn và khóa cửa lại. Đừng tìm cách "
        "tước vũ khí. Để điện thoại ở chế độ im lặng.",
        "Get away from the person with the weapon, hide and lock the door. Do not try "
        "to take the weapon. Put your phone on silent.",
    ),
    RedFlag.NOT_BREATHING: (
        "Tôi sẽ nối máy với cấp cứu 115 ngay. Đặt người bệnh nằm ngửa trên nền cứng, "
        "ngửa đầu ra sau và xem ngực có phồng lên không. Nếu không thở, ấn mạnh và "
        "nhanh vào giữa ngực.",
        "I am connecting you to the ambulance service, 115, now. Lay the person on "
        "their back on a firm surface, tilt the head back and watch the chest. If "
        "they are not breathing, push hard and fast in the centre of the chest.",
    ),
    RedFlag.UNCONSCIOUS: (
        "Tôi sẽ nối máy với cấp cứu 115. Kiểm tra xem người đó còn thở không. Nếu "
        "còn thở, đặt nằm nghiêng và đừng cho ăn uống gì.",
        "I am connecting you to the ambulance service, 115. Check whether the person "
        "is breathing. If they are, turn them on their side and give them nothing to "
        "eat or drink.",
    ),
    RedFlag.CHILD_IN_DANGER: (
        "Nếu an toàn, hãy ở cạnh cháu và giữ máy. Đừng để cháu một mình.",
        "If it is safe, stay with the child and stay on the line. Do not leave the "
        "child alone.",
    ),
    RedFlag.GAS_LEAK: (
        "Đừng bật hay tắt công tắc điện, đừng dùng lửa hay điện thoại trong nhà. "
        "Khóa van ga nếu làm được, mở cửa sổ và ra ngoài ngay.",
        "Do not touch any switch, and do not use flames or a phone inside. Turn off "
        "the gas if you can, open the windows and get outside now.",
    ),
    RedFlag.INTRUDER_PRESENT: (
        "Hãy giữ im lặng, khóa mình trong phòng và để điện thoại ở chế độ im lặng. "
        "Đừng đối mặt với kẻ đột nhập. Công an đang đến.",
        "Stay quiet, lock yourself in a room and put your phone on silent. Do not "
        "confront them. The police are on the way.",
    ),
    RedFlag.SPREADING_FIRE: (
        "Hãy rời khỏi nhà ngay, cúi thấp dưới khói, không dùng thang máy, đóng cửa "
        "sau lưng. Nếu không ra được, vào phòng có cửa sổ, chèn khăn ướt vào khe cửa.",
        "Get out now, stay low under the smoke, do not use the lift, close doors "
        "behind you. If you cannot get out, go to a room with a window and block the "
        "gap under the door with wet cloth.",
    ),
}


def safety_instruction_for_flag(flag: RedFlag, language: Language) -> str:
    """What to tell the caller right away when `flag` is raised."""
    vi, en = _FLAG_INSTRUCTIONS[flag]
    return vi if language is Language.VI else en


__all__ = ["RedFlag", "RedFlagHit", "detect_red_flags", "safety_instruction_for_flag"]
