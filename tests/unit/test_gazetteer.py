"""Hanoi gazetteer: where a caller is, in the wards and communes of July 2025."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from callcenter.events import Language
from dialog.gazetteer import (
    Resolution,
    narrowing_question,
    read_back,
    resolve_location,
    unit_by_name,
    units,
)
from dialog.textnorm import fold

pytestmark = pytest.mark.unit


def _data(name: str) -> dict[str, object]:
    text = resources.files("dialog").joinpath("data", name).read_text(encoding="utf-8")
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def test_the_data_has_hanois_126_units_with_unique_codes() -> None:
    raw = _data("hanoi_units.json")["units"]
    assert isinstance(raw, list)
    assert len(raw) == 126
    assert len({u["code"] for u in raw}) == 126
    assert len({fold(u["name"]) for u in raw}) == 126
    types = [u["type"] for u in raw]
    assert types.count("ward") == 51
    assert types.count("commune") == 75
    assert len(units()) == 126


def test_every_old_unit_went_somewhere() -> None:
    raw = _data("hanoi_units.json")["units"]
    assert isinstance(raw, list)
    merged = {(m["district"], m["name"], m["type"]) for u in raw for m in u["merged_from"]}
    assert len(merged) == 526  # wards, communes and towns of Hanoi before July 2025
    for unit in raw:
        assert unit["merged_from"], unit["name"]
        assert unit["old_districts"], unit["name"]


def test_curated_places_name_real_units() -> None:
    places = _data("hanoi_places.json")
    names = {fold(u.name) for u in units().values()}
    for group in ("streets", "landmarks"):
        items = places[group]
        assert isinstance(items, list) and items
        for item in items:
            assert item["units"], item["name"]
            assert all(fold(n) in names for n in item["units"]), item["name"]
            assert item["certainty"] in ("high", "medium", "low")


def resolved(text: str) -> Resolution:
    result = resolve_location(text)
    assert result.status == "resolved", (text, result)
    return result


@pytest.mark.parametrize(
    ("said", "unit", "unit_type"),
    [
        ("phường Cửa Nam", "Cửa Nam", "ward"),
        ("tôi ở phường Văn Miếu Quốc Tử Giám", "Văn Miếu - Quốc Tử Giám", "ward"),
        ("P. Ô Chợ Dừa", "Ô Chợ Dừa", "ward"),
        ("xã Bát Tràng", "Bát Tràng", "commune"),
        ("ở xã Hương Sơn ạ", "Hương Sơn", "commune"),
        ("phuong vinh tuy", "Vĩnh Tuy", "ward"),
        ("Ứng Hoà", "Ứng Hòa", "commune"),
    ],
)
def test_new_unit_names(said: str, unit: str, unit_type: str) -> None:
    result = resolved(said)
    assert result.unit_name == unit
    assert result.unit_type == unit_type
    found = unit_by_name(unit)
    assert found is not None and result.unit_code == found.code


@pytest.mark.parametrize(
    ("said", "unit", "old_district"),
    [
        ("phường Hàng Bạc", "Hoàn Kiếm", "Hoàn Kiếm"),
        ("phường Trúc Bạch quận Ba Đình", "Ba Đình", "Ba Đình"),
        ("phường Nghĩa Tân, Cầu Giấy", "Nghĩa Đô", "Cầu Giấy"),
        ("xã Thanh Xuân huyện Sóc Sơn", "Nội Bài", "Sóc Sơn"),
        ("thị trấn Trạm Trôi", "Hoài Đức", "Hoài Đức"),
    ],
)
def test_old_ward_names(said: str, unit: str, old_district: str) -> None:
    result = resolved(said)
    assert result.unit_name == unit
    assert result.old_district == old_district


def test_the_new_ward_wins_over_the_old_commune_of_the_same_name() -> None:
    # phường Thanh Xuân (new) vs xã Thanh Xuân (old, Sóc Sơn)
    assert resolved("phường Thanh Xuân").unit_name == "Thanh Xuân"


def test_old_district_alone_is_ambiguous_with_its_wards_as_candidates() -> None:
    result = resolve_location("nhà tôi ở quận Hoàn Kiếm")
    assert result.status == "ambiguous"
    assert result.old_district == "Hoàn Kiếm"
    assert {"Hoàn Kiếm", "Cửa Nam"} <= set(result.candidates)
    assert result.unit_code is None


@pytest.mark.parametrize(
    ("said", "old_district"),
    [
        ("q. Đống Đa", "Đống Đa"),
        ("quan dong da", "Đống Đa"),
        ("Hoan Kiem district", "Hoàn Kiếm"),
        ("huyện Gia Lâm", "Gia Lâm"),
        ("quận Bắc Từ Liêm", "Bắc Từ Liêm"),
        ("Nam Từ Liêm", "Nam Từ Liêm"),
    ],
)
def test_old_districts(said: str, old_district: str) -> None:
    result = resolve_location(said)
    assert result.status == "ambiguous"
    assert result.old_district == old_district


def test_a_bare_name_that_is_a_new_ward_and_an_old_district_means_the_ward() -> None:
    result = resolved("Hai Bà Trưng")
    assert result.unit_name == "Hai Bà Trưng"
    assert result.house_number is None  # "Hai" is a name here, not a 2


def test_street_and_old_district_resolve_to_the_new_ward() -> None:
    result = resolved("số 18 phố Hàng Bài, quận Hoàn Kiếm")
    assert result.unit_name == "Cửa Nam"
    assert result.old_district == "Hoàn Kiếm"
    assert result.house_number == "18"
    assert result.street == "phố Hàng Bài"


def test_a_street_overrides_a_ward_name_used_the_old_way() -> None:
    # callers say "phường Hoàn Kiếm" for the old district; Hàng Bài is now in Cửa Nam
    assert resolved("phố Hàng Bài phường Hoàn Kiếm").unit_name == "Cửa Nam"


@pytest.mark.parametrize(
    ("said", "unit", "house", "street"),
    [
        ("so 18 hang bai", "Cửa Nam", "18", "phố Hàng Bài"),
        ("18 Hang Bai street", "Cửa Nam", "18", "phố Hàng Bài"),
        ("nhà số mười hai phố Hàng Bạc", "Hoàn Kiếm", "12", "phố Hàng Bạc"),
        ("nhà tôi ở ngõ 12 phố Huế", "Hai Bà Trưng", None, "ngõ 12 phố Huế"),
        ("12 Trần Phú Hà Đông", "Hà Đông", "12", "phố Trần Phú"),
        ("đường Quang Trung, Hà Đông", "Hà Đông", None, "đường Quang Trung"),
        ("số 5 đường Xuân Thủy", "Cầu Giấy", "5", "đường Xuân Thủy"),
    ],
)
def test_streets(said: str, unit: str, house: str | None, street: str) -> None:
    result = resolved(said)
    assert result.unit_name == unit
    assert result.house_number == house
    assert result.street == street


def test_a_long_street_is_ambiguous_until_narrowed() -> None:
    wide = resolve_location("phố Kim Mã")
    assert wide.status == "ambiguous"
    assert set(wide.candidates) == {"Giảng Võ", "Ngọc Hà"}
    question = narrowing_question(wide, Language.VI)
    assert "Giảng Võ" in question and "Ngọc Hà" in question
    narrowed = resolve_location("phố Kim Mã, phường Ngọc Hà")
    assert narrowed.status == "resolved" and narrowed.unit_name == "Ngọc Hà"


@pytest.mark.parametrize(
    ("said", "unit", "landmark"),
    [
        ("ở gần Hồ Gươm", "Hoàn Kiếm", "Hồ Gươm"),
        ("chỗ bờ hồ ấy", "Hoàn Kiếm", "Hồ Gươm"),
        ("đang ở Lăng Bác", "Ba Đình", "Lăng Bác"),
        ("lang bac", "Ba Đình", "Lăng Bác"),
        ("tôi đang ở bến xe Mỹ Đình", "Từ Liêm", "Bến xe Mỹ Đình"),
        ("cổng Bệnh viện Bạch Mai", "Kim Liên", "Bệnh viện Bạch Mai"),
        ("trong chợ Đồng Xuân", "Hoàn Kiếm", "Chợ Đồng Xuân"),
        ("sân bay Nội Bài", "Nội Bài", "Sân bay Nội Bài"),
        ("khu Times City", "Vĩnh Tuy", "Times City"),
        ("toà R4 Royal City", "Thanh Xuân", "Royal City"),
        ("near Hoan Kiem Lake", "Hoàn Kiếm", "Hồ Gươm"),
    ],
)
def test_landmarks(said: str, unit: str, landmark: str) -> None:
    result = resolved(said)
    assert result.unit_name == unit
    assert result.landmark == landmark


def test_a_bridge_spans_two_wards() -> None:
    result = resolve_location("trên cầu Long Biên")
    assert result.status == "ambiguous"
    assert result.landmark == "Cầu Long Biên"
    assert set(result.candidates) == {"Hồng Hà", "Bồ Đề"}


def test_without_diacritics() -> None:
    assert resolved("phuong cua nam").unit_name == "Cửa Nam"
    assert resolved("xa bat trang").unit_name == "Bát Tràng"
    assert resolved("gan cho dong xuan").landmark == "Chợ Đồng Xuân"


def test_accents_that_are_there_must_match() -> None:
    # "làng" (village) is not phường Láng
    assert resolve_location("ở trong làng tôi").status == "unresolved"
    assert resolve_location("lang").status == "unresolved"  # one word, no accents: too vague
    assert resolve_location("đường Láng").street == "đường Láng"


@pytest.mark.parametrize(
    "said",
    [
        "ở một cánh đồng nào đó, tôi không biết",
        "quận 1 thành phố Hồ Chí Minh",
        "tôi không biết đây là đâu",
        "",
    ],
)
def test_unknown_place_is_unresolved_with_a_narrowing_question(said: str) -> None:
    result = resolve_location(said)
    assert result.status == "unresolved"
    assert result.unit_code is None
    vi = narrowing_question(result, Language.VI)
    en = narrowing_question(result, Language.EN)
    assert "Gần đâu" in vi and "biển tên đường" in vi
    assert "street" in en


def test_an_unknown_street_is_kept_as_said() -> None:
    result = resolve_location("số 5 đường Nguyễn Văn Xyz")
    assert result.status == "unresolved"
    assert result.house_number == "5"
    assert result.street == "đường Nguyễn Văn Xyz"
    assert "phường" in narrowing_question(result, Language.VI)


def test_read_back_vietnamese() -> None:
    said = "số 18 phố Hàng Bài, quận Hoàn Kiếm"
    text = read_back(resolve_location(said), said, Language.VI)
    assert text == (
        "Tôi xác nhận: số 18 phố Hàng Bài, phường Cửa Nam, quận Hoàn Kiếm cũ, đúng không ạ?"
    )


def test_read_back_english_has_no_diacritics() -> None:
    said = "18 Hang Bai street, Hoan Kiem"
    text = read_back(resolve_location(said), said, Language.EN)
    assert text == (
        "Let me confirm: 18 Hang Bai Street, Cua Nam ward, the former Hoan Kiem district. "
        "Is that right?"
    )


def test_read_back_of_a_landmark_and_of_an_unknown_place() -> None:
    landmark = read_back(resolve_location("Lăng Bác"), "Lăng Bác", Language.VI)
    assert landmark == "Tôi xác nhận: Lăng Bác, phường Ba Đình, đúng không ạ?"
    said = "cạnh cây xăng trên đê"
    unknown = read_back(resolve_location(said), said, Language.VI)
    assert unknown == "Tôi xác nhận địa chỉ: cạnh cây xăng trên đê, đúng không ạ?"


def test_narrowing_for_a_resolved_place_asks_what_is_missing() -> None:
    assert narrowing_question(resolved("phường Cửa Nam"), Language.VI) == (
        "Số nhà và tên phố là gì ạ?"
    )
    assert "house number" in narrowing_question(resolved("phố Hàng Bạc"), Language.EN)


def test_many_candidates_ask_for_a_street() -> None:
    result = resolve_location("quận Ba Đình")
    question = narrowing_question(result, Language.VI)
    assert question.startswith("Ở khu vực quận Ba Đình cũ")
    assert "phố nào" in question
