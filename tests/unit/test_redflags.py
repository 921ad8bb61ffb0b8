"""Red-flag rules: what a caller says that must escalate the call at once."""

from __future__ import annotations

import pytest

from callcenter.events import Language
from dialog.redflags import RedFlag, detect_red_flags, safety_instruction_for_flag

pytestmark = pytest.mark.unit


def flags(text: str, language: Language | None = None) -> set[RedFlag]:
    return {hit.flag for hit in detect_red_flags(text, language)}


RAISED = [
    # people trapped
    (RedFlag.PEOPLE_TRAPPED, "Cứu với, nhà tôi cháy, mẹ tôi còn kẹt trong nhà"),
    (RedFlag.PEOPLE_TRAPPED, "cuu voi nha toi chay me toi con ket trong nha"),
    (RedFlag.PEOPLE_TRAPPED, "thang máy bị hỏng, có hai người mắc kẹt ở tầng 5"),
    (RedFlag.PEOPLE_TRAPPED, "nhà sập rồi, ông tôi bị đè dưới đống gạch"),
    (RedFlag.PEOPLE_TRAPPED, "khói nhiều quá chúng tôi không thoát ra được"),
    (RedFlag.PEOPLE_TRAPPED, "there are people trapped on the third floor"),
    (RedFlag.PEOPLE_TRAPPED, "my neighbour is stuck inside, the door won't open"),
    (RedFlag.PEOPLE_TRAPPED, "cửa không mở được người bị kẹt bên trong"),
    # weapon
    (RedFlag.WEAPON, "có thằng cầm dao đang đòi chém người ở đầu ngõ"),
    (RedFlag.WEAPON, "co thang cam dao dang doi chem nguoi"),
    (RedFlag.WEAPON, "bọn nó có súng, vừa nổ súng xong"),
    (RedFlag.WEAPON, "he has a knife and he is threatening my wife"),
    (RedFlag.WEAPON, "a man with a gun outside the bank"),
    # not breathing
    (RedFlag.NOT_BREATHING, "ông tôi ngã ra, không thở nữa"),
    (RedFlag.NOT_BREATHING, "ong toi nga ra khong tho nua"),
    (RedFlag.NOT_BREATHING, "thằng bé bị đuối nước, ngừng thở rồi"),
    (RedFlag.NOT_BREATHING, "my husband is not breathing"),
    (RedFlag.NOT_BREATHING, "she stopped breathing please hurry"),
    # unconscious
    (RedFlag.UNCONSCIOUS, "bà tôi tự nhiên ngất xỉu, gọi không tỉnh"),
    (RedFlag.UNCONSCIOUS, "ba toi bat tinh roi"),
    (RedFlag.UNCONSCIOUS, "người đi xe máy nằm bất động giữa đường"),
    (RedFlag.UNCONSCIOUS, "he passed out and won't wake up"),
    (RedFlag.UNCONSCIOUS, "my father collapsed in the kitchen"),
    # child in danger
    (RedFlag.CHILD_IN_DANGER, "con tôi bị rơi xuống ao"),
    (RedFlag.CHILD_IN_DANGER, "con toi bi roi xuong ao"),
    (RedFlag.CHILD_IN_DANGER, "cháu bé nhà bên bị nhốt trong xe ô tô ngoài nắng"),
    (RedFlag.CHILD_IN_DANGER, "đứa bé đi học từ chiều giờ vẫn chưa về, chắc bị lạc"),
    (RedFlag.CHILD_IN_DANGER, "my kid is missing, he was at the playground"),
    (RedFlag.CHILD_IN_DANGER, "a little girl is on the ledge of the balcony"),
    # gas leak
    (RedFlag.GAS_LEAK, "nhà bên có mùi gas nồng lắm"),
    (RedFlag.GAS_LEAK, "nha ben co mui gas nong lam"),
    (RedFlag.GAS_LEAK, "bình ga nhà tôi bị xì, kêu xì xì"),
    (RedFlag.GAS_LEAK, "I can smell gas in the stairwell"),
    (RedFlag.GAS_LEAK, "there's a gas leak in the restaurant"),
    # intruder present
    (RedFlag.INTRUDER_PRESENT, "có trộm đang ở trong nhà tôi, tôi trốn trong phòng"),
    (RedFlag.INTRUDER_PRESENT, "co trom dang o trong nha toi"),
    (RedFlag.INTRUDER_PRESENT, "có người lạ đang cạy cửa nhà tôi"),
    (RedFlag.INTRUDER_PRESENT, "someone is in my house, I can hear them downstairs"),
    (RedFlag.INTRUDER_PRESENT, "somebody broke in through the back window"),
    (RedFlag.INTRUDER_PRESENT, "someone broke into my house and he is still here"),
    (RedFlag.PEOPLE_TRAPPED, "bà tôi với con mèo bị kẹt trong phòng"),
    (RedFlag.PEOPLE_TRAPPED, "the dog and my son are stuck in the lift"),
    (RedFlag.PEOPLE_TRAPPED, "co con meo bi ket"),  # without accents: kept (recall first)
    (RedFlag.INTRUDER_PRESENT, "two men are breaking into the shop next door"),
    (RedFlag.INTRUDER_PRESENT, "I'm hiding, there are thieves in the house"),
    # spreading fire
    (RedFlag.SPREADING_FIRE, "lửa đang cháy lan sang nhà bên cạnh"),
    (RedFlag.SPREADING_FIRE, "lua dang chay lan sang nha ben canh"),
    (RedFlag.SPREADING_FIRE, "cháy to lắm, khói đen mù mịt cả khu"),
    (RedFlag.SPREADING_FIRE, "the fire is spreading to the next building"),
    (RedFlag.SPREADING_FIRE, "it's a huge fire, completely out of control"),
]


@pytest.mark.parametrize(("flag", "text"), RAISED)
def test_red_flag_raised(flag: RedFlag, text: str) -> None:
    assert flag in flags(text)


NOT_RAISED = [
    # negations
    (RedFlag.PEOPLE_TRAPPED, "không có ai bị kẹt cả, mọi người ra hết rồi"),
    (RedFlag.PEOPLE_TRAPPED, "khong co ai bi ket"),
    (RedFlag.PEOPLE_TRAPPED, "trong nhà không còn ai bên trong"),
    (RedFlag.PEOPLE_TRAPPED, "no one is trapped, everyone got out"),
    (RedFlag.PEOPLE_TRAPPED, "nobody trapped, thank god"),
    (RedFlag.NOT_BREATHING, "he is breathing, but he is bleeding a lot"),
    (RedFlag.NOT_BREATHING, "anh ấy vẫn thở, vẫn nói chuyện được"),
    (RedFlag.NOT_BREATHING, "ông ấy có thở không tôi cũng không biết"),
    (RedFlag.UNCONSCIOUS, "không bất tỉnh, vẫn tỉnh táo"),
    (RedFlag.UNCONSCIOUS, "he is not unconscious, he is talking"),
    (RedFlag.GAS_LEAK, "không ngửi thấy mùi gas gì cả"),
    (RedFlag.GAS_LEAK, "I can't smell gas, only smoke"),
    (RedFlag.WEAPON, "tôi không thấy có dao hay súng gì"),
    (RedFlag.WEAPON, "no weapon, they just punched him"),
    (RedFlag.SPREADING_FIRE, "đám cháy nhỏ thôi, chưa lan sang đâu"),
    # words that only look like flags
    (RedFlag.PEOPLE_TRAPPED, "tôi đang bị kẹt xe trên đường Láng"),
    (RedFlag.PEOPLE_TRAPPED, "I'm stuck in traffic on the bridge"),
    (RedFlag.WEAPON, "giá vàng dao động mạnh quá"),
    (RedFlag.UNCONSCIOUS, "tôi làm ở công ty bất động sản"),
    (RedFlag.UNCONSCIOUS, "the old building collapsed last night"),
    (RedFlag.SPREADING_FIRE, "chị Lan ra ngoài rồi"),
    (RedFlag.SPREADING_FIRE, "xe chạy nhanh quá đâm vào cột điện"),
    (RedFlag.INTRUDER_PRESENT, "hôm qua nhà tôi bị trộm mất xe máy"),
    (RedFlag.INTRUDER_PRESENT, "someone broke into my car last night and took the radio"),
    (RedFlag.PEOPLE_TRAPPED, "con mèo bị kẹt trên cây ba ngày rồi"),
    (RedFlag.PEOPLE_TRAPPED, "my cat is stuck on the roof"),
    (RedFlag.CHILD_IN_DANGER, "cháu gọi để báo có đám cháy ở chợ"),
]


@pytest.mark.parametrize(("flag", "text"), NOT_RAISED)
def test_red_flag_not_raised(flag: RedFlag, text: str) -> None:
    assert flag not in flags(text)


def test_uncertainty_is_not_a_denial() -> None:
    assert RedFlag.PEOPLE_TRAPPED in flags("không biết có ai bị kẹt trong đó không")
    assert RedFlag.PEOPLE_TRAPPED in flags("I don't know if anyone is still inside")


def test_a_comma_ends_the_negation() -> None:
    assert RedFlag.PEOPLE_TRAPPED in flags("không, có người bị kẹt ở tầng hai")


def test_evidence_is_the_callers_own_words() -> None:
    [hit] = detect_red_flags("Ông tôi KHÔNG THỞ nữa rồi")
    assert hit.flag is RedFlag.NOT_BREATHING
    assert hit.evidence == "KHÔNG THỞ"


def test_several_flags_in_the_order_said() -> None:
    hits = detect_red_flags("cháy lan sang nhà bên rồi, bà tôi còn kẹt trên tầng ba, bất tỉnh")
    assert [h.flag for h in hits] == [
        RedFlag.SPREADING_FIRE,
        RedFlag.PEOPLE_TRAPPED,
        RedFlag.UNCONSCIOUS,
    ]


def test_language_restricts_the_rules() -> None:
    assert flags("he is not breathing", Language.VI) == set()
    assert flags("he is not breathing", Language.EN) == {RedFlag.NOT_BREATHING}
    assert flags("ông ấy không thở", Language.EN) == set()


def test_accented_words_keep_their_meaning() -> None:
    # "chạy" (run) is not "cháy" (fire); "khỏi" (leave) is not "khói" (smoke)
    assert flags("xe chạy lan man khỏi đường") == set()


def test_nothing_in_an_ordinary_sentence() -> None:
    assert detect_red_flags("") == []
    assert detect_red_flags("cho tôi hỏi thủ tục làm căn cước công dân") == []
    assert detect_red_flags("I would like to ask about a parking fine") == []


@pytest.mark.parametrize("flag", list(RedFlag))
@pytest.mark.parametrize("language", list(Language))
def test_every_flag_has_a_safety_instruction(flag: RedFlag, language: Language) -> None:
    text = safety_instruction_for_flag(flag, language)
    assert len(text) > 20
    if language is Language.VI:
        assert any(ch in text for ch in "ạảãáàâăêôơưđ")


def test_intruder_instruction_tells_the_caller_to_hide_quietly() -> None:
    vi = safety_instruction_for_flag(RedFlag.INTRUDER_PRESENT, Language.VI)
    en = safety_instruction_for_flag(RedFlag.INTRUDER_PRESENT, Language.EN)
    assert "im lặng" in vi and "khóa" in vi
    assert "quiet" in en and "silent" in en


def test_categories_cover_both_lines() -> None:
    from callcenter.events import Line
    from dialog.categories import CATEGORIES

    police = {k for k, c in CATEGORIES.items() if c.line is Line.POLICE}
    fire = {k for k, c in CATEGORIES.items() if c.line == "114"}
    assert police == {
        "theft", "robbery", "assault", "weapon_threat", "domestic_violence", "missing_child",
        "public_disorder", "traffic_accident",
    }  # fmt: skip
    assert fire == {
        "fire", "explosion_gas_leak", "collapse_trapped", "drowning_water_rescue", "other_rescue",
    }  # fmt: skip
    assert CATEGORIES["medical"].is_emergency and CATEGORIES["medical"].line is None
    assert not CATEGORIES["administrative"].is_emergency
    assert all(1 <= c.priority <= 4 and c.key == k for k, c in CATEGORIES.items())
    assert CATEGORIES["fire"].priority == 1


def test_category_safety_instructions() -> None:
    from dialog.categories import safety_instruction

    fire = safety_instruction("fire", Language.VI)
    assert fire is not None and "thang máy" in fire and "đóng cửa" in fire
    gas = safety_instruction("explosion_gas_leak", Language.EN)
    assert gas is not None and "switch" in gas and "window" in gas
    drowning = safety_instruction("drowning_water_rescue", Language.VI)
    assert drowning is not None and "Đừng nhảy xuống" in drowning
    assert safety_instruction("administrative", Language.VI) is None
    assert safety_instruction("no_such_category", Language.EN) is None
