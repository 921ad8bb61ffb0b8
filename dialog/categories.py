"""Emergency categories, their line and priority, and spoken safety instructions.

Priority: 1 = a life is threatened now; 2 = urgent, harm likely or ongoing;
3 = needs a response but no one is in immediate danger; 4 = no incident.
A red flag raises a call's priority whatever its category (see `redflags`).

`medical` calls are routed to 115 (ambulance) but still recorded as incidents.
`prank_silent` covers silent and hoax calls: a silent caller may be unable to
speak, so such calls still go to a human, never closed by the bot alone.
`human_request` is a caller asking for a person: an incident on the line called.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from callcenter.events import Language, Line


@dataclass(frozen=True, slots=True)
class Category:
    key: str
    line: Line | None  # Line is a StrEnum: Line.POLICE == "113"
    priority: int
    is_emergency: bool
    name_vi: str
    name_en: str

    def name(self, language: Language) -> str:
        return self.name_vi if language is Language.VI else self.name_en


def _c(
    key: str, line: Line | None, priority: int, emergency: bool, vi: str, en: str
) -> tuple[str, Category]:
    return key, Category(key, line, priority, emergency, vi, en)


_P, _F = Line.POLICE, Line.FIRE

CATEGORIES: Final[Mapping[str, Category]] = MappingProxyType(
    dict(
        [
            # 113: police
            _c("theft", _P, 3, True, "trộm cắp tài sản", "theft"),
            _c("robbery", _P, 2, True, "cướp tài sản", "robbery"),
            _c("assault", _P, 2, True, "đánh nhau, hành hung", "assault"),
            _c("weapon_threat", _P, 1, True, "đe dọa bằng vũ khí", "threat with a weapon"),
            _c("domestic_violence", _P, 2, True, "bạo lực gia đình", "domestic violence"),
            _c("missing_child", _P, 1, True, "trẻ em mất tích", "missing child"),
            _c("public_disorder", _P, 3, True, "gây rối trật tự công cộng", "public disorder"),
            _c("traffic_accident", _P, 2, True, "tai nạn giao thông", "traffic accident"),
            # 114: fire and rescue
            _c("fire", _F, 1, True, "cháy", "fire"),
            _c("explosion_gas_leak", _F, 1, True, "nổ, rò rỉ khí gas", "explosion or gas leak"),
            _c("collapse_trapped", _F, 1, True, "sập đổ, người mắc kẹt",
               "collapse, people trapped"),
            _c("drowning_water_rescue", _F, 1, True, "đuối nước, cứu nạn dưới nước",
               "drowning, water rescue"),
            _c("other_rescue", _F, 2, True, "cứu nạn, cứu hộ khác", "other rescue"),
            # other
            _c("medical", None, 2, True, "cấp cứu y tế (chuyển 115)",
               "medical emergency (routed to 115)"),
            _c("administrative", None, 4, False, "hỏi thủ tục hành chính",
               "administrative question"),
            _c("prank_silent", None, 4, False, "cuộc gọi im lặng hoặc quấy rối",
               "silent or prank call"),
            _c("human_request", None, 2, True, "yêu cầu gặp cán bộ trực",
               "asks for a human call-taker"),
        ]
    )
)  # fmt: skip


_INSTRUCTIONS: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {
        "fire": (
            "Hãy rời khỏi nhà ngay. Cúi thấp người dưới khói, không dùng thang máy, "
            "đóng cửa lại sau lưng. Đừng quay vào lấy đồ.",
            "Get out now. Stay low under the smoke, do not use the lift, and close "
            "doors behind you. Do not go back inside for anything.",
        ),
        "explosion_gas_leak": (
            "Đừng bật hay tắt công tắc điện, đừng dùng lửa. Khóa van bình gas nếu "
            "làm được, mở cửa sổ và ra khỏi nhà ngay.",
            "Do not touch any light switch and do not use any flame. Turn off the gas "
            "valve if you can, open the windows and leave the building now.",
        ),
        "collapse_trapped": (
            "Tránh xa chỗ bị sập, coi chừng sập tiếp. Nếu bạn bị kẹt, hãy gõ vào "
            "tường hoặc ống nước để người cứu hộ nghe thấy, giữ điện thoại bên mình.",
            "Keep away from the collapsed part, more may fall. If you are trapped, tap "
            "on a wall or a pipe so rescuers can hear you, and keep your phone with you.",
        ),
        "drowning_water_rescue": (
            "Đừng nhảy xuống cứu. Hãy ném cho người đó vật gì nổi được, như can nhựa, "
            "phao hay dây, và gọi người xung quanh giúp.",
            "Do not jump in. Throw them something that floats, a plastic can, a "
            "life ring or a rope, and shout for people nearby to help.",
        ),
        "other_rescue": (
            "Giữ khoảng cách an toàn, đừng tự leo lên hay xuống để cứu. Giữ máy, "
            "lực lượng cứu hộ đang đến.",
            "Keep a safe distance and do not climb up or down to reach them yourself. "
            "Stay on the line, rescuers are on the way.",
        ),
        "traffic_accident": (
            "Đừng di chuyển người bị thương. Bật đèn cảnh báo, đặt vật báo hiệu để "
            "xe khác đi chậm lại, và đứng vào chỗ an toàn.",
            "Do not move anyone who is injured. Put the hazard lights on, warn other "
            "traffic, and stand somewhere safe.",
        ),
        "robbery": (
            "Đừng đuổi theo hay chống cự. Hãy ở chỗ an toàn và cố nhớ đặc điểm, "
            "biển số xe, hướng chạy.",
            "Do not chase them or fight back. Stay somewhere safe and try to remember "
            "what they looked like, the number plate and which way they went.",
        ),
        "theft": (
            "Đừng đuổi theo. Giữ nguyên hiện trường, đừng chạm vào đồ vật kẻ gian "
            "đã động tới.",
            "Do not chase anyone. Leave everything as it is and do not touch what "
            "the thief touched.",
        ),
        "assault": (
            "Hãy tránh xa người gây ra, đến chỗ đông người hoặc khóa cửa lại. "
            "Nếu ai bị chảy máu, ấn chặt vào vết thương.",
            "Get away from the attacker, go where other people are or lock a door. "
            "If someone is bleeding, press firmly on the wound.",
        ),
        "weapon_threat": (
            "Tránh xa người có vũ khí, tìm chỗ trốn và khóa cửa lại, để điện thoại "
            "ở chế độ im lặng. Đừng tìm cách tước vũ khí.",
            "Get away from the person with the weapon, hide and lock the door, put "
            "your phone on silent. Do not try to take the weapon.",
        ),
        "domestic_violence": (
            "Nếu có thể, hãy ra khỏi nhà hoặc vào phòng có khóa, tránh bếp và chỗ "
            "có dao kéo. Nếu không nói được, cứ giữ máy.",
            "If you can, leave the house or go into a room that locks, away from the "
            "kitchen and anything sharp. If you cannot talk, just stay on the line.",
        ),
        "missing_child": (
            "Hãy tìm kỹ những chỗ gần nhất, kể cả trong nhà, xe và gần nước. "
            "Chuẩn bị ảnh và mô tả quần áo cháu đang mặc.",
            "Search the nearest places first, inside the house, cars, and near water. "
            "Have a photo ready and describe what the child is wearing.",
        ),
        "public_disorder": (
            "Hãy tránh xa đám đông và đừng can thiệp. Giữ máy nếu bạn vẫn an toàn.",
            "Keep away from the crowd and do not get involved. Stay on the line if "
            "you are safe.",
        ),
        "medical": (
            "Tôi sẽ chuyển sang cấp cứu 115. Nếu người bệnh bất tỉnh nhưng còn thở, "
            "đặt nằm nghiêng; kiểm tra xem có thở không.",
            "I am connecting you to the ambulance service, 115. If the person is "
            "unconscious but breathing, turn them on their side, and keep checking "
            "their breathing.",
        ),
    }
)


def safety_instruction(category_key: str, language: Language) -> str | None:
    """Short spoken advice for a category, or None when there is none to give."""
    pair = _INSTRUCTIONS.get(category_key)
    if pair is None:
        return None
    return pair[0] if language is Language.VI else pair[1]


__all__ = ["CATEGORIES", "Category", "safety_instruction"]
