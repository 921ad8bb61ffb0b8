"""The dialog quality benchmark: its figures, its stop rules, and the labelled set."""

from __future__ import annotations

import json
import re
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench import bench_dialog as bd

pytestmark = pytest.mark.unit

UNITS_JSON = Path(__file__).resolve().parents[2] / "dialog" / "data" / "hanoi_units.json"


# ---------------------------------------------------------------- metric maths


def test_precision_recall_f1_and_macro_f1_by_hand() -> None:
    pairs: list[tuple[str, str | None]] = [
        ("fire", "fire"),
        ("fire", "medical"),  # a fire missed, and a false medical
        ("medical", "medical"),
        ("theft", None),  # the dialog never settled on a category
    ]
    scores, macro = bd.category_scores(pairs)
    assert scores["fire"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": 0.6667,
        "support": 2,
        "predicted": 1,
    }
    assert scores["medical"]["precision"] == 0.5
    assert scores["medical"]["recall"] == 1.0
    assert scores["medical"]["f1"] == 0.6667
    assert scores["theft"] == {
        "precision": None,  # never predicted
        "recall": 0.0,
        "f1": 0.0,
        "support": 1,
        "predicted": 0,
    }
    assert macro == round((2 / 3 + 2 / 3 + 0) / 3, 4)
    assert set(scores) == {"fire", "medical", "theft"}  # macro over expected labels only


def test_a_predicted_category_nobody_expected_costs_precision_not_a_macro_class() -> None:
    scores, macro = bd.category_scores([("fire", "fire"), ("theft", "robbery")])
    assert "robbery" not in scores
    assert macro == 0.5  # fire 1.0, theft 0.0


def test_emergency_recall_counts_non_emergency_and_uncategorised_endings_as_misses() -> None:
    pairs: list[tuple[bool, str | None]] = [
        (True, "fire"),
        (True, "administrative"),  # an emergency answered as a question
        (True, None),  # no category at all
        (True, "human_request"),  # handed to a person: still an emergency
        (True, "medical"),
        (False, "prank_silent"),
        (False, "fire"),  # a non-emergency taken too seriously is not recall's business
    ]
    assert bd.emergency_recall(pairs) == 0.6
    assert bd.emergency_recall([(False, "administrative")]) is None
    assert bd.is_emergency_kept("prank_silent") is False


def test_red_flag_recall_and_precision() -> None:
    scores = bd.binary_scores([(True, True), (True, False), (False, True), (False, False)])
    assert scores["recall"] == 0.5
    assert scores["precision"] == 0.5
    assert (scores["true_pos"], scores["false_neg"], scores["false_pos"]) == (1, 1, 1)
    assert bd.binary_scores([(False, False)])["recall"] is None


@pytest.mark.parametrize(
    ("said", "normalised"),
    [
        ("0912 345 678", "0912345678"),
        ("+84 912 345 678", "0912345678"),
        ("84912345678", "0912345678"),
        ("+84 0912.345.678", "0912345678"),
        ("912-345-678", "0912345678"),
        ("024 3826 1111", "02438261111"),
        ("", None),
    ],
)
def test_phone_numbers_compare_in_national_form(said: str, normalised: str | None) -> None:
    assert bd.normalize_phone(said) == normalised


def test_ward_names_compare_without_type_word_accents_or_dashes() -> None:
    assert bd.same_place("phường Hoàn Kiếm", "Hoàn Kiếm")
    assert bd.same_place("Hoan Kiem ward", "Hoàn Kiếm")
    assert bd.same_place("P. Văn Miếu Quốc Tử Giám", "Văn Miếu - Quốc Tử Giám")
    assert bd.same_place("Xã Đông Anh", "Đông Anh")
    assert bd.same_place("xã Hòa Xá", "Hòa Xá")  # "Xá" at the end is part of the name
    assert not bd.same_place("phường Hà Đông", "Hoàn Kiếm")
    assert not bd.same_place(None, "Hoàn Kiếm")


# ---------------------------------------------------------------- the labelled set


def test_the_labelled_set_is_well_formed() -> None:
    conversations = bd.load_conversations(bd.DEFAULT_DATA)  # validates every entry
    assert len(conversations) >= 70
    ids = [c.id for c in conversations]
    assert len(set(ids)) == len(ids)
    per_category = Counter(c.expect.category for c in conversations)
    assert set(per_category) == set(bd.ALL_CATEGORIES)
    assert min(per_category.values()) >= 3, per_category
    langs = Counter(c.lang for c in conversations)
    assert set(langs) == {"vi", "en"}
    assert 0.25 <= langs["en"] / len(conversations) <= 0.45, langs
    for c in conversations:
        assert c.expect.emergency == (c.expect.category not in bd.NON_EMERGENCY), c.id
        if c.expect.category in bd.CATEGORIES_113:
            assert c.line == "113", c.id
        if c.expect.category in bd.CATEGORIES_114:
            assert c.line == "114", c.id
        if c.expect.callback_number:
            assert re.fullmatch(r"0\d{9,10}", c.expect.callback_number), c.id
    assert sum(1 for c in conversations if c.expect.red_flag) >= 15
    assert sum(1 for c in conversations if c.expect.ward) >= 15
    assert sum(1 for c in conversations if c.caller_number) >= 3


def test_every_expected_ward_is_a_real_post_2025_unit() -> None:
    units = json.loads(UNITS_JSON.read_text(encoding="utf-8"))["units"]
    names = {u["name"] for u in units}
    assert len(names) == 126
    for c in bd.load_conversations(bd.DEFAULT_DATA):
        if c.expect.ward:
            assert c.expect.ward in names, (c.id, c.expect.ward)


def test_a_malformed_conversation_is_refused_with_its_id() -> None:
    good: dict[str, Any] = {
        "id": "x-1",
        "line": "113",
        "lang": "vi",
        "turns": ["alo"],
        "expect": {
            "category": "theft",
            "emergency": True,
            "red_flag": False,
            "location_said": False,
        },
    }
    assert bd.parse_conversation(good).id == "x-1"
    wrong_emergency = {**good, "expect": {**good["expect"], "emergency": False}}
    with pytest.raises(ValueError, match="x-1"):
        bd.parse_conversation(wrong_emergency)
    with pytest.raises(ValueError, match="unknown category"):
        bd.parse_conversation({**good, "expect": {**good["expect"], "category": "arson"}})
    with pytest.raises(ValueError, match="turn"):
        bd.parse_conversation({**good, "turns": ["  "]})
    with pytest.raises(ValueError, match="normalised"):
        bd.parse_conversation(
            {**good, "expect": {**good["expect"], "callback_number": "+84912345678"}}
        )


# ---------------------------------------------------------------- a fake chat service


class FakeChat:
    """The chat API's shape with a keyword dialog: enough to check the benchmark's plumbing.

    First message: "cháy" -> fire, "knife" -> weapon_threat (red flag, hand-off: the
    bot then stops answering), "certificate" -> administrative (done), anything else
    prank_silent. Second message: the location ("Hàng Bạc" resolves to a ward). Any
    message with 9+ digits: the callback number. Done after four messages.
    """

    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}
        self.received: dict[str, list[str]] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/health":
            return httpx.Response(200, json={"status": "ok"})
        if request.method == "POST" and path == "/api/v1/chat/sessions":
            body = json.loads(request.content)
            sid = f"chat-{len(self.sessions) + 1}"
            self.sessions[sid] = {
                "category": None,
                "priority": None,
                "requested_slot": "what_happened",
                "slots": {},
                "red_flags": [],
                "handoff": False,
                "done": False,
                "incident_id": None,
            }
            self.received[sid] = []
            greeting = "Cứu hỏa 114 xin nghe" if body["line"] == "114" else "113 xin nghe"
            return httpx.Response(
                201, json={"session_id": sid, "messages": [greeting], "state": self.sessions[sid]}
            )
        match = re.fullmatch(r"/api/v1/chat/sessions/([^/]+)/messages", path)
        if request.method == "POST" and match and match.group(1) in self.sessions:
            sid = match.group(1)
            return httpx.Response(200, json=self._reply(sid, json.loads(request.content)["text"]))
        return httpx.Response(404, json={"detail": "unknown chat session"})

    def _reply(self, sid: str, text: str) -> dict[str, Any]:
        state = self.sessions[sid]
        self.received[sid].append(text)
        if state["handoff"]:
            return {"messages": [], "state": state}
        n = len(self.received[sid])
        reply = "Dạ, anh chị nói tiếp ạ."
        if n == 1:
            lowered = text.lower()
            if "cháy" in lowered:
                state["category"] = "fire"
            elif "knife" in lowered:
                state["category"] = "weapon_threat"
                state["red_flags"] = ["weapon"]
                state["handoff"] = True
                reply = "Stay somewhere safe; a dispatcher is taking your call."
            elif "certificate" in lowered:
                state["category"] = "administrative"
                state["done"] = True
            else:
                state["category"] = "prank_silent"
        elif n == 2:
            state["slots"]["incident_location"] = text
            if "Hàng Bạc" in text:
                state["slots"]["ward_name"] = "phường Hoàn Kiếm"
                state["slots"]["ward_code"] = "00070"
        digits = re.sub(r"\D", "", text)
        if len(digits) >= 9:
            state["slots"]["callback_number"] = "+84" + digits.lstrip("0")
        if n >= 4:
            state["done"] = True
        return {"messages": [reply], "state": state}


def _conversation(
    cid: str, line: str, lang: str, turns: list[str], **expect: Any
) -> dict[str, Any]:
    category = expect.pop("category")
    return {
        "id": cid,
        "line": line,
        "lang": lang,
        "turns": turns,
        "expect": {
            "category": category,
            "emergency": category not in bd.NON_EMERGENCY,
            "red_flag": False,
            "location_said": True,
            **expect,
        },
    }


SMALL_SET = {
    "conversations": [
        _conversation(
            "a",
            "114",
            "vi",
            ["cháy nhà", "số 12 Hàng Bạc", "đúng rồi", "0912 345 678", "never sent: done"],
            category="fire",
            ward="Hoàn Kiếm",
            callback_number="0912345678",
        ),
        _conversation(
            "b", "113", "vi", ["mất cái ví", "ngõ 5 Phúc Xá"], category="theft", ward="Hồng Hà"
        ),
        _conversation(
            "c",
            "113",
            "en",
            ["a man with a knife", "Ta Hien street", "James"],
            category="weapon_threat",
            red_flag=True,
        ),
        _conversation(
            "d",
            "114",
            "en",
            ["how do I get a fire safety certificate", "thanks"],
            category="administrative",
            location_said=False,
        ),
    ]
}


async def test_plays_conversations_and_scores_the_final_states(tmp_path: Path) -> None:
    data = tmp_path / "eval.json"
    data.write_text(json.dumps(SMALL_SET, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "report.json"
    fake = FakeChat()
    args = bd.parse_args(["--data", str(data), "--json", str(out), "--transcripts"])
    assert await bd.run(args, transport=httpx.MockTransport(fake)) == 0

    sent = {cid: len(texts) for cid, texts in fake.received.items()}
    assert sent == {"chat-1": 4, "chat-2": 2, "chat-3": 2, "chat-4": 1}  # stop rules
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["conversations"] == 4
    assert report["macro_f1"] == 0.75  # fire 1, theft 0, weapon 1, administrative 1
    assert report["per_category"]["theft"]["recall"] == 0.0
    assert report["emergency_recall"] == 0.6667  # b ended as prank_silent
    assert report["emergencies_missed"] == ["b"]
    assert report["non_emergency_kept_out"] == 1.0
    assert report["red_flag"]["recall"] == 1.0
    assert report["red_flag"]["precision"] == 1.0
    assert report["location_captured"] == 0.6667  # c handed off before its location
    assert report["locations_missed"] == ["c"]
    assert report["ward_resolved"] == 0.5
    assert report["ward_accuracy"] == 0.5
    assert report["callback_accuracy"] == 1.0  # "+84912345678" read as 0912345678
    assert report["handoff"]["all"] == 0.25
    assert report["handoff"]["red_flag"] == 1.0
    assert report["chat_reply_latency"]["n"] == 9
    assert report["meets_targets"] == {
        "macro_f1": False,
        "emergency_recall": False,
        "location_captured": False,
    }
    first = report["results"][0]
    assert first["turns_sent"] == 4 and first["done"] is True
    assert first["transcript"][1] == {"caller": "cháy nhà", "bot": ["Dạ, anh chị nói tiếp ạ."]}
    assert report["by_lang"]["en"]["conversations"] == 2


async def test_the_full_labelled_set_plays_against_the_fake(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    args = bd.parse_args(["--json", str(out), "--lang", "en", "--limit", "10"])
    assert await bd.run(args, transport=httpx.MockTransport(FakeChat())) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["conversations"] == 10
    assert report["errors"] == 0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_an_unreachable_service_exits_2(tmp_path: Path) -> None:
    data = tmp_path / "eval.json"
    data.write_text(json.dumps(SMALL_SET), encoding="utf-8")
    args = bd.parse_args(
        [
            *("--url", f"http://127.0.0.1:{_closed_port()}", "--data", str(data)),
            *("--request-timeout", "2", "--ready-timeout", "1"),
        ]
    )
    assert await bd.run(args) == 2


async def test_a_chat_api_that_only_fails_exits_2(tmp_path: Path) -> None:
    data = tmp_path / "eval.json"
    data.write_text(json.dumps(SMALL_SET), encoding="utf-8")

    def not_ready(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            return httpx.Response(503, json={"status": "down"})
        return httpx.Response(503, json={"detail": "dialog not ready"})

    args = bd.parse_args(["--data", str(data), "--ready-timeout", "1"])
    assert await bd.run(args, transport=httpx.MockTransport(not_ready)) == 2


async def test_only_loopback_services_are_driven() -> None:
    args = bd.parse_args(["--url", "http://192.0.2.1:8080"])
    assert await bd.run(args) == 2
    assert bd.is_loopback("http://localhost:8080")
    assert bd.is_loopback("http://[::1]:8080")
    assert not bd.is_loopback("http://example.org")


def test_a_label_outside_the_category_keys_is_no_category() -> None:
    assert bd.is_emergency_kept("unknown_113") is False
    assert bd.emergency_recall([(True, "unknown_114"), (True, "fire")]) == 0.5
