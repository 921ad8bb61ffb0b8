"""Spoken numbers, people counts, house numbers and callback numbers."""

from __future__ import annotations

import pytest

from dialog.numbers import Count, parse_count, parse_house_number, words_to_digits
from dialog.phone import is_plausible_vn_phone, normalise_vn_phone

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("said", "digits"),
    [
        ("không chín một hai ba bốn năm sáu bảy tám", "0912345678"),
        ("khong chin mot hai ba bon nam sau bay tam", "0912345678"),
        ("không chín linh năm, một hai ba, bốn năm sáu", "0905123456"),
        ("không tám tám lẻ bẩy tư mốt hai ba lăm", "0880741235"),
        ("09 một hai ba bốn năm sáu bảy tám", "0912345678"),
        ("zero nine one two three four five six seven eight", "0912345678"),
        ("oh nine double three four five six seven eight nine", "0933456789"),
        ("mười tám", "18"),
        ("hai mươi mốt", "21"),
        ("chín mươi", "90"),
        ("một trăm linh năm", "105"),
        ("ba trăm hai mươi lăm", "325"),
    ],
)
def test_spoken_digits(said: str, digits: str) -> None:
    assert words_to_digits(said) == digits


def test_words_around_the_number_are_kept() -> None:
    assert words_to_digits("số của em là không chín tám bảy sáu năm bốn ba hai một ạ") == (
        "số của em là 0987654321 ạ"
    )
    assert words_to_digits("số nhà mười tám phố Hàng Bài") == "số nhà 18 phố Hàng Bài"


def test_ordinary_words_that_are_also_numbers_stay_words() -> None:
    for sentence in (
        "không một ai bị thương",
        "ba tôi bị ngã",
        "năm nay lũ to quá",
        "nhà tôi ở Hai Bà Trưng",
        "no one is hurt",
    ):
        assert words_to_digits(sentence) == sentence


@pytest.mark.parametrize(
    ("said", "value"),
    [
        ("hai người", 2),
        ("có hai người bị thương", 2),
        ("một người, bị gãy chân", 1),
        ("mười hai người", 12),
        ("3 người", 3),
        ("two people are hurt", 2),
        ("chac la hai nguoi", 2),
    ],
)
def test_known_counts(said: str, value: int) -> None:
    count = parse_count(said)
    assert count is not None
    assert count.known and count.value == value
    assert not count.approximate


@pytest.mark.parametrize(
    "said", ["không có ai", "khong co ai", "không ai bị thương cả", "không một ai", "nobody"]
)
def test_no_one_is_zero(said: str) -> None:
    assert parse_count(said) == Count(0, True, said)


@pytest.mark.parametrize(
    "said",
    ["không biết", "khong biet", "chưa rõ", "tôi không rõ có bao nhiêu người", "I don't know",
     "not sure", "chưa biết nữa anh ơi"],
)  # fmt: skip
def test_dont_know_is_unknown_not_zero(said: str) -> None:
    count = parse_count(said)
    assert count is not None
    assert not count.known
    assert count.value is None


def test_a_range_takes_the_upper_bound() -> None:
    for said in ("ba bốn người", "2-3 người", "khoảng hai hoặc ba người"):
        count = parse_count(said)
        assert count is not None
        assert count.known and count.approximate
        assert count.value == (4 if said.startswith("ba") else 3)
        assert count.at_least == (3 if said.startswith("ba") else 2)


def test_two_numbers_for_two_things_are_not_a_range() -> None:
    count = parse_count("hai người bị thương, ba người bị kẹt")
    assert count is not None and count.value == 2 and not count.approximate


def test_many_is_unknown_but_several() -> None:
    count = parse_count("nhiều người lắm")
    assert count is not None
    assert not count.known and count.value is None
    assert count.at_least is not None and count.at_least >= 2
    more = parse_count("hơn chục người")
    assert more is not None and more.at_least == 10 and more.approximate


def test_about_is_approximate() -> None:
    count = parse_count("khoảng năm người")
    assert count == Count(5, True, "khoảng năm người", approximate=True)


def test_not_an_answer() -> None:
    assert parse_count("cứu tôi với") is None


@pytest.mark.parametrize(
    ("said", "number"),
    [
        ("không phải, số 18 cơ", "18"),
        ("số nhà mười tám phố Hàng Bài", "18"),
        ("nhà số 5A ngõ 12 Khâm Thiên", "5A"),
        ("18/3 Khâm Thiên", "18/3"),
        ("ngõ 12 số 7", "7"),
        ("so 24 hang bac", "24"),
        ("number 18 Hang Bai street", "18"),
    ],
)
def test_house_numbers(said: str, number: str) -> None:
    assert parse_house_number(said) == number


def test_no_house_number() -> None:
    assert parse_house_number("ngõ 12 Khâm Thiên") is None
    assert parse_house_number("2 người bị thương") is None
    assert parse_house_number("gần chợ Đồng Xuân") is None


@pytest.mark.parametrize(
    ("said", "number"),
    [
        ("không chín một hai ba bốn năm sáu bảy tám", "0912345678"),
        ("số của em là không chín tám, bảy sáu năm, bốn ba hai một", "0987654321"),
        ("khong chin tam bay sau nam bon ba hai mot", "0987654321"),
        ("0912 345 678", "0912345678"),
        ("0912.345.678", "0912345678"),
        ("091-234-5678", "0912345678"),
        ("+84 912 345 678", "0912345678"),
        ("+84 (0) 912 345 678", "0912345678"),
        ("84912345678", "0912345678"),
        ("0084 912345678", "0912345678"),
        ("cộng tám tư chín một hai ba bốn năm sáu bảy tám", "0912345678"),
        ("912 345 678", "0912345678"),
        ("zero three two one two three four five six seven", "0321234567"),
        ("số bàn nhà tôi 024 3826 1234", "02438261234"),
        ("028 3829 1234", "02838291234"),
        ("0203 3825 123", "02033825123"),
        ("số nhà 18, điện thoại 0987 654 321", "0987654321"),
    ],
)
def test_callback_numbers(said: str, number: str) -> None:
    assert normalise_vn_phone(said) == number


@pytest.mark.parametrize(
    "said",
    [
        "113",
        "114",
        "một một lăm",
        "0012345678",  # no such prefix
        "0112345678",
        "012345678",  # too short
        "09123456789",  # too long for a mobile
        "+1 415 555 0100",  # another country
        "1900 1234",
        "tôi không nhớ số",
        "",
    ],
)
def test_not_a_callback_number(said: str) -> None:
    assert normalise_vn_phone(said) is None


def test_mobile_prefixes() -> None:
    for prefix in ("032", "039", "052", "056", "058", "059", "070", "079", "081", "086", "088",
                   "089", "090", "096", "099"):  # fmt: skip
        assert is_plausible_vn_phone(prefix + "1234567"), prefix
    for prefix in ("031", "050", "071", "080", "010", "060"):
        assert not is_plausible_vn_phone(prefix + "1234567"), prefix
