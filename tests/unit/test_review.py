"""Supervisor review: quality checks on recorded calls with known answers, search with
and without diacritics, the review queue, scoring, notes, corrections, figures.

The real application over a real SQLite store (see test_incidents_api).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime

import pytest

from callcenter.center import CallCenter
from callcenter.events import CallInfo, Language, Line
from callcenter.quality import sampled
from dialog.categories import safety_instruction
from dispatch import IncidentData, SqlCallStore, TurnData
from tests.unit.test_incidents_api import Api, api

__all__ = ["api"]

pytestmark = pytest.mark.unit

FIRE_ADVICE = safety_instruction("fire", Language.VI)


async def record_call(
    store: SqlCallStore,
    call_id: str,
    turns: list[tuple[str, str]],
    *,
    category: str | None = "fire",
    priority: int | None = 2,
    location: str | None = "số 18 Hàng Bài",
    confirmed: bool = True,
    callback: str | None = "0912345678",
    details: dict[str, object] | None = None,
    handoff: str | None = None,
    line: Line = Line.FIRE,
) -> str:
    """A finished call as the service records it: turns, incident, end."""
    started = datetime.now(UTC)
    info = CallInfo(call_id, line, Language.VI, "0987654321", "media-stream")
    await store.start_call(info, started)
    for speaker, text in turns:
        await store.add_turn(
            call_id,
            TurnData(
                speaker=speaker,  # type: ignore[arg-type]
                text=text,
                asr_confidence=0.9 if speaker == "caller" else None,
                slots=(
                    {"caller_id": "0987654321", **({"handoff": "yes"} if handoff else {})}
                    if speaker == "bot"
                    else {}
                ),
            ),
        )
    if category is not None:
        evidence = {"location_text": {"confirmed_by_caller": confirmed}} if location else {}
        await store.upsert_incident(
            IncidentData(
                id=f"inc-{call_id}",
                call_id=call_id,
                line=line,
                category=category,
                priority=priority,
                location_text=location,
                callback_number=callback,
                details={"evidence": evidence, **(details or {})},  # type: ignore[dict-item]
            )
        )
    await store.end_call(
        call_id,
        "handed_off" if handoff else "completed",
        "caller hung up",
        datetime.now(UTC),
        handoff_reason=handoff,
    )
    return call_id


def center_of(api: Api) -> CallCenter:
    transport = api.client._transport  # the ASGI app behind the test client
    return transport.app.state.center  # type: ignore[attr-defined,no-any-return]


async def checks(api: Api, call_id: str) -> dict[str, bool | None]:
    assessment = await center_of(api).assess_call(call_id)
    assert assessment is not None
    return {check.name: check.passed for check in assessment.checks}


async def test_a_well_handled_fire_call_passes_every_check(api: Api) -> None:
    call = await record_call(
        api.store,
        "good",
        [
            ("bot", "Cứu hỏa 114 xin nghe. Xin cho biết chuyện gì đang xảy ra?"),
            ("caller", "cháy nhà ở số 18 Hàng Bài"),
            ("bot", f"Tôi đã ghi nhận. {FIRE_ADVICE} Địa chỉ là số 18 Hàng Bài phải không ạ?"),
            ("caller", "đúng rồi"),
        ],
    )
    result = await checks(api, call)
    assert {name: passed for name, passed in result.items() if passed is not None} == {
        "emergency_type_captured": True,
        "location_captured": True,
        "location_read_back": True,
        "callback_captured": True,
        "safety_instruction_given": True,
        "time_to_greeting_ms": True,
        "time_to_first_question_ms": True,
        "silence_count": True,
        "repeat_count": True,
    }
    assert result["red_flag_handled"] is None  # no red flag was raised


async def test_missing_details_flag_a_call_and_put_it_in_the_queue(api: Api) -> None:
    call = await record_call(
        api.store,
        "poor",
        [
            ("bot", "Cứu hỏa 114 xin nghe. Xin cho biết chuyện gì đang xảy ra?"),
            ("caller", "cháy"),
            ("bot", "Xin nhắc lại?"),
            ("bot", "Xin nhắc lại?"),
            ("bot", "Xin nhắc lại?"),
        ],
        location=None,
        callback=None,
        priority=3,
        details={"red_flags": ["people_trapped"]},
    )
    result = await checks(api, call)
    assert result["location_captured"] is False
    assert result["location_read_back"] is False
    assert result["callback_captured"] is False
    assert result["safety_instruction_given"] is False
    assert result["red_flag_handled"] is False  # trapped people and no hand-off
    assert result["repeat_count"] is False
    queue = await api.client.get(
        "/api/v1/review/calls", params={"queue": "true"}, headers=api.as_("supervisor")
    )
    row = queue.json()["items"][0]
    assert row["call_id"] == "poor" and row["review"] == {"reason": "flagged", "reviewed": False}
    assert set(row["qa"]["failed"]) >= {"location_captured", "callback_captured"}


async def test_an_administrative_question_needs_no_location(api: Api) -> None:
    call = await record_call(
        api.store,
        "admin",
        [
            ("bot", "Công an 113 xin nghe. Xin cho biết chuyện gì?"),
            ("caller", "làm căn cước ở đâu"),
        ],
        category="administrative",
        priority=4,
        location=None,
        callback=None,
        line=Line.POLICE,
    )
    result = await checks(api, call)
    assert result["emergency_type_captured"] is True
    for name in ("location_captured", "location_read_back", "callback_captured"):
        assert result[name] is None, name


def test_about_two_percent_are_sampled_at_random() -> None:
    chosen = sum(sampled(f"ms-{n:06x}") for n in range(20_000))
    assert 0.016 < chosen / 20_000 < 0.024
    assert sampled("ms-000001") == sampled("ms-000001")  # stable for a call


async def test_every_priority_one_call_is_queued_for_review(api: Api) -> None:
    for n in range(6):
        await record_call(
            api.store,
            f"p1-{n}",
            [("bot", f"Xin nghe? {FIRE_ADVICE}"), ("caller", "cháy lớn")],
            priority=1,
        )
        await center_of(api).assess_call(f"p1-{n}")
    queue = await api.client.get(
        "/api/v1/review/calls", params={"queue": "true", "priority": 1}, headers=api.as_("admin")
    )
    body = queue.json()
    assert body["total"] == 6
    assert {row["review"]["reason"] for row in body["items"]} == {"priority1"}


async def test_search_matches_with_or_without_diacritics_and_takes_text_literally(
    api: Api,
) -> None:
    await record_call(api.store, "c1", [("caller", "Cháy nhà ở phố Huế")])
    await record_call(api.store, "c2", [("caller", "có cướp ở ngõ 5 Láng Hạ, 100% chắc")])
    await record_call(api.store, "c3", [("caller", "Đường Giải Phóng tắc")], category=None)
    boss = api.as_("supervisor")

    async def found(q: str) -> list[str]:
        answer = await api.client.get("/api/v1/review/calls", params={"q": q}, headers=boss)
        assert answer.status_code == 200, answer.text
        return sorted(row["call_id"] for row in answer.json()["items"])

    assert await found("chay") == ["c1"]
    assert await found("CHÁY NHÀ") == ["c1"]
    assert await found("duong giai phong") == ["c3"]
    assert await found("cuop") == ["c2"]
    assert await found("100%") == ["c2"]
    assert await found("%") == ["c2"]  # a literal percent sign, not a wildcard
    for hostile in ("_", "' OR 1=1 --", ".*", "(", "\\", "%' --", "c_y"):
        assert await found(hostile) == [], hostile
    answer = await api.client.get("/api/v1/review/calls", params={"q": "chay"}, headers=boss)
    assert answer.json()["items"][0]["match"] == "Cháy nhà ở phố Huế"


async def test_review_routes_are_for_supervisors_and_reads_are_logged(api: Api) -> None:
    await record_call(api.store, "r1", [("caller", "cháy")])
    routes = [
        ("GET", "/api/v1/review/calls", None),
        ("GET", "/api/v1/review/calls/r1", None),
        ("GET", "/api/v1/review/form", None),
        ("POST", "/api/v1/review/calls/r1/reviews", {"answers": {}}),
        ("POST", "/api/v1/review/calls/r1/turns/1/annotations", {"text": "x"}),
        ("POST", "/api/v1/review/incidents/inc-r1/corrections", {"field": "priority", "value": 1}),
        ("GET", "/api/v1/review/stats", None),
        ("GET", "/api/v1/review/export.csv", None),
        ("GET", "/api/v1/calls/r1/recording", None),
    ]
    for method, path, body in routes:
        assert (await api.client.request(method, path, json=body)).status_code == 401, path
        answer = await api.client.request(method, path, json=body, headers=api.as_("dispatcher"))
        assert answer.status_code == 403, path
    assert (await api.client.get("/review")).status_code == 303
    answer = await api.client.get("/api/v1/review/calls/r1", headers=api.as_("supervisor"))
    assert answer.status_code == 200
    assert answer.json()["call"]["caller_number"] == "098****321"  # masked for supervisors
    leaks = [m.start() for m in re.finditer("0987654321|0912345678", answer.text)]
    assert not leaks, [answer.text[max(0, i - 80) : i + 20] for i in leaks]
    admin_view = await api.client.get("/api/v1/review/calls/r1", headers=api.as_("admin"))
    assert admin_view.json()["call"]["caller_number"] == "0987654321"
    log = (await api.client.get("/api/v1/access-log", headers=api.as_("admin"))).json()["items"]
    assert [(e["actor"], e["action"], e["subject"]) for e in log] == [
        ("token:admin-bot", "read_transcript", "call:r1"),
        ("token:supervisor-bot", "read_transcript", "call:r1"),
    ]
    for missing in ("/api/v1/review/calls/nope", "/api/v1/review/calls/..%2Fr1"):
        assert (await api.client.get(missing, headers=api.as_("supervisor"))).status_code == 404


async def test_scores_notes_and_corrections_are_kept_as_human_judgements(api: Api) -> None:
    await record_call(api.store, "s1", [("bot", "Xin nghe?"), ("caller", "cháy ở số 8 phố Huế")])
    boss = api.as_("supervisor")
    form = (await api.client.get("/api/v1/review/form", headers=boss)).json()["questions"]
    assert {q["kind"] for q in form} == {"yes_no", "score_1_5"}
    answers = {q["id"]: (True if q["kind"] == "yes_no" else 5) for q in form}
    answers["location"] = False
    saved = await api.client.post(
        "/api/v1/review/calls/s1/reviews", json={"answers": answers, "notes": "ok"}, headers=boss
    )
    assert saved.status_code == 201, saved.text
    assert 0 < saved.json()["score"] < 100
    for bad in (
        {"answers": {"nope": True}},
        {"answers": {"courtesy": 9}},
        {"answers": {"greeting": 1}},
    ):
        answer = await api.client.post("/api/v1/review/calls/s1/reviews", json=bad, headers=boss)
        assert answer.status_code == 422, bad
    note = await api.client.post(
        "/api/v1/review/calls/s1/turns/2/annotations",
        json={"text": "nghe nhầm số nhà"},
        headers=boss,
    )
    assert note.status_code == 201
    assert (
        await api.client.post(
            "/api/v1/review/calls/s1/turns/9/annotations", json={"text": "x"}, headers=boss
        )
    ).status_code == 404

    fixed = await api.client.post(
        "/api/v1/review/incidents/inc-s1/corrections",
        json={"field": "location_text", "value": "số 18 phố Huế", "expected_version": 1},
        headers=boss,
    )
    assert fixed.status_code == 200, fixed.text
    incident = fixed.json()
    assert incident["location"]["said"] == "số 18 phố Huế"
    assert incident["evidence"]["location_text"]["confirmed_by_human"] is True
    stale = await api.client.post(
        "/api/v1/review/incidents/inc-s1/corrections",
        json={"field": "priority", "value": 1, "expected_version": 1},
        headers=boss,
    )
    assert stale.status_code == 409
    bad = await api.client.post(
        "/api/v1/review/incidents/inc-s1/corrections",
        json={"field": "status", "value": "closed"},
        headers=boss,
    )
    assert bad.status_code == 422

    # the bot writes the incident again (a call still going on): the human's value stays
    await api.store.upsert_incident(
        IncidentData(
            id="inc-s1", call_id="s1", line=Line.FIRE, category="fire", location_text="số 8 phố Huế"
        )
    )
    detail = (await api.client.get("/api/v1/review/calls/s1", headers=boss)).json()
    assert detail["incident"]["location"]["said"] == "số 18 phố Huế"
    assert ("location_text", "reviewer:token:supervisor-bot") in [
        (entry["field"], entry["actor"]) for entry in detail["audit"]
    ]
    assert detail["turns"][1]["annotations"][0]["text"] == "nghe nhầm số nhà"
    assert detail["reviews"][0]["answers"]["location"] is False


async def test_dashboard_figures_and_csv_export(api: Api) -> None:
    for n in range(3):
        await record_call(
            api.store,
            f"d{n}",
            [("bot", "Xin nghe?"), ("caller", "cháy")],
            handoff="red flag" if n == 0 else None,
        )
        await center_of(api).assess_call(f"d{n}")
    boss = api.as_("supervisor")
    stats = (await api.client.get("/api/v1/review/stats", headers=boss)).json()
    assert stats["calls"] == 3 and stats["categories"] == {"fire": 3}
    assert stats["handoff_rate"] == pytest.approx(1 / 3, abs=0.001)
    assert sum(b["count"] for b in stats["asr_confidence"]["buckets"]) == 3
    assert 0 <= stats["qa_pass_rates"]["location_captured"] <= 1
    too_long = await api.client.get(
        "/api/v1/review/stats",
        params={"since": "2020-01-01T00:00:00+00:00", "until": "2026-01-01T00:00:00+00:00"},
        headers=boss,
    )
    assert too_long.status_code == 422

    export = await api.client.get("/api/v1/review/export.csv", headers=boss)
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert sorted(row["call_id"] for row in rows) == ["d0", "d1", "d2"]
    assert {row["caller_number"] for row in rows} == {"098****321"}
