"""The incidents API as dispatchers, supervisors, admins and strangers see it.

The real application (`create_app`) over a real SQLite store and account
database; only the speech and dialog parts are not started (they play no part
in the queue).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from callcenter.app import create_app
from callcenter.auth.models import Role
from callcenter.auth.store import SqlAuthStore
from callcenter.center import CallCenter
from callcenter.events import CallInfo, Language, Line
from callcenter.settings import Settings
from dispatch import IncidentData, SqlCallStore, TurnData

pytestmark = pytest.mark.unit

PASSWORD = "correct horse battery"
REPO_DATA = Path(__file__).resolve().parents[2] / "var"  # what `make setup-test` prepared


@dataclass
class Api:
    client: httpx.AsyncClient
    store: SqlCallStore
    tokens: dict[str, str]  # role -> bearer token
    db_path: Path

    def as_(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.db_path) as db:
            return list(db.execute(sql))


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(data_dir=tmp_path, dialog_engine="scripted")
    app: FastAPI = create_app(settings)
    center: CallCenter = app.state.center
    auth: SqlAuthStore = app.state.auth_store
    await auth.create_schema()
    journaled = await center.open_store()
    tokens = {}
    for role in Role:
        tokens[role.value] = (await auth.create_token(f"{role.value}-bot", role)).token
    await auth.create_user("lan", PASSWORD, Role.DISPATCHER)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://callbot.local") as client:
        yield Api(client, journaled.store, tokens, tmp_path / "callbot.db")
    await center.stop()
    await auth.close()


async def report(
    store: SqlCallStore,
    call_id: str,
    *,
    line: Line = Line.FIRE,
    category: str | None = "fire",
    priority: int | None = 2,
    location: str | None = "số 18 Hàng Bài",
    unit: str | None = None,
    red_flags: tuple[str, ...] = (),
) -> str:
    """A call as the bot records it: the call, one caller turn, the incident."""
    info = CallInfo(
        call_id=call_id,
        line=line,
        language=Language.VI,
        caller_number="0912345678",
        channel="media-stream",
    )
    await store.start_call(info, datetime.now(UTC))
    await store.add_turn(call_id, TurnData(speaker="caller", text="cháy nhà ở " + str(location)))
    details: dict[str, object] = {}
    if unit:
        details["location_unit_code"] = unit
        details["location_unit_name"] = "Phường Cửa Nam"
    if red_flags:
        details["red_flags"] = list(red_flags)
    incident_id = f"inc-{call_id}"
    await store.upsert_incident(
        IncidentData(
            id=incident_id,
            call_id=call_id,
            line=line,
            category=category,
            priority=priority,
            location_text=location,
            details=details,  # type: ignore[arg-type]
        ),
        actor="bot:rasa",
    )
    return incident_id


ROUTES = [
    ("GET", "/api/v1/incidents", None),
    ("GET", "/api/v1/incidents/inc-x", None),
    ("GET", "/api/v1/incidents/inc-x/transcript", None),
    ("GET", "/api/v1/incidents/inc-x/duplicates", None),
    ("POST", "/api/v1/incidents/inc-x/ack", {}),
    ("POST", "/api/v1/incidents/inc-x/dispatch", {"units": ["PCCC 1"]}),
    ("POST", "/api/v1/incidents/inc-x/close", {"outcome": "done"}),
    ("POST", "/api/v1/incidents/inc-x/merge", {"into": "inc-y"}),
    ("GET", "/api/v1/events", None),
    ("GET", "/api/v1/access-log", None),
]


async def test_every_route_needs_a_valid_credential(api: Api) -> None:
    await report(api.store, "x")
    for method, path, body in ROUTES:
        for headers in ({}, {"Authorization": "Bearer forged"}, {"Authorization": "Basic eDp5"}):
            answer = await api.client.request(method, path, json=body, headers=headers)
            assert answer.status_code == 401, (method, path, headers)
            assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert api.rows("select status, version from incidents") == [("new", 1)]


async def test_only_admins_read_the_access_log(api: Api) -> None:
    for role in ("dispatcher", "supervisor"):
        answer = await api.client.get("/api/v1/access-log", headers=api.as_(role))
        assert answer.status_code == 403, role
        assert "admin" in answer.json()["detail"]
    answer = await api.client.get("/api/v1/access-log", headers=api.as_("admin"))
    assert answer.status_code == 200 and answer.json()["items"] == []


async def test_queue_is_most_urgent_then_oldest_with_filters(api: Api) -> None:
    late_p1 = await report(api.store, "a", priority=3)
    await report(api.store, "b", priority=1, red_flags=("people_trapped",))
    await report(api.store, "c", line=Line.POLICE, category="theft", priority=3)
    await report(api.store, "d", priority=None, category=None, location=None)
    # the first call turns out to be life-threatening after all
    await report(api.store, "a", priority=1)

    answer = await api.client.get("/api/v1/incidents", headers=api.as_("dispatcher"))
    assert answer.status_code == 200
    items = answer.json()["items"]
    assert [item["id"] for item in items] == [late_p1, "inc-b", "inc-c", "inc-d"]
    first = items[1]
    assert first["red_flags"] == ["people_trapped"] and first["priority"] == 1
    assert first["location"]["said"] == "số 18 Hàng Bài"
    assert first["caller"]["callback_number"] is None
    assert first["call_in_progress"] is True and first["version"] == 1

    only_police = await api.client.get(
        "/api/v1/incidents", params={"line": "113"}, headers=api.as_("dispatcher")
    )
    assert [item["id"] for item in only_police.json()["items"]] == ["inc-c"]
    urgent_fire = await api.client.get(
        "/api/v1/incidents",
        params={"priority": 1, "category": "fire"},
        headers=api.as_("supervisor"),
    )
    assert [item["id"] for item in urgent_fire.json()["items"]] == [late_p1, "inc-b"]
    paged = await api.client.get(
        "/api/v1/incidents", params={"limit": 2, "offset": 2}, headers=api.as_("dispatcher")
    )
    assert [item["id"] for item in paged.json()["items"]] == ["inc-c", "inc-d"]

    for params in (
        {"status": "finished"},
        {"line": "115"},
        {"limit": 0},
        {"since": "yesterday"},
        {"since": "2026-11-30T08:00:00"},  # no time zone
    ):
        answer = await api.client.get("/api/v1/incidents", params=params, headers=api.as_("admin"))
        assert answer.status_code == 422, params


async def test_lifecycle_over_the_api_and_refusals_change_nothing(api: Api) -> None:
    incident = await report(api.store, "fire1")
    base = f"/api/v1/incidents/{incident}"
    lan = api.as_("dispatcher")

    answer = await api.client.post(f"{base}/close", json={"outcome": "x"}, headers=lan)
    assert answer.status_code == 409 and "new" in answer.json()["detail"]
    answer = await api.client.post(f"{base}/ack", json={"expected_version": 7}, headers=lan)
    assert answer.status_code == 409 and "version 1" in answer.json()["detail"]
    for bad in ({"units": []}, {"units": [""]}, {"units": "PCCC"}, {"units": ["a"], "x": 1}):
        answer = await api.client.post(f"{base}/dispatch", json=bad, headers=lan)
        assert answer.status_code == 422, bad
    answer = await api.client.post(
        f"{base}/close",
        content=b'{"outcome": "' + b"x" * 70_000 + b'"}',
        headers={**lan, "Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    answer = await api.client.post(
        f"{base}/ack", content=b"{not json", headers={**lan, "Content-Type": "application/json"}
    )
    assert answer.status_code == 422
    assert (
        await api.client.post("/api/v1/incidents/inc-nope/ack", json={}, headers=lan)
    ).status_code == 404
    assert api.rows("select status, version from incidents") == [("new", 1)]

    answer = await api.client.post(f"{base}/ack", json={"expected_version": 1}, headers=lan)
    assert answer.status_code == 200, answer.text
    acked = answer.json()
    assert acked["status"] == "acknowledged" and acked["version"] == 2
    assert acked["acknowledged_by"] == "token:dispatcher-bot"
    answer = await api.client.post(f"{base}/ack", json={}, headers=api.as_("supervisor"))
    assert answer.status_code == 409 and "already acknowledged" in answer.json()["detail"]

    answer = await api.client.post(
        f"{base}/dispatch",
        json={"units": ["PCCC Hoàn Kiếm", "115"], "expected_version": 2},
        headers=lan,
    )
    assert answer.status_code == 200 and answer.json()["units"] == ["PCCC Hoàn Kiếm", "115"]
    answer = await api.client.post(
        f"{base}/close",
        json={"outcome": "fire out, nobody hurt", "expected_version": 3},
        headers=lan,
    )
    assert answer.status_code == 200 and answer.json()["status"] == "closed"
    answer = await api.client.post(f"{base}/ack", json={}, headers=lan)
    assert answer.status_code == 409

    detail = (await api.client.get(base, headers=lan)).json()
    assert detail["incident"]["outcome"] == "fire out, nobody hurt"
    fields = [(entry["version"], entry["field"], entry["actor"]) for entry in detail["audit"]]
    assert (1, "category", "bot:rasa") in fields
    assert (2, "status", "dispatcher:token:dispatcher-bot") in fields
    assert (4, "outcome", "dispatcher:token:dispatcher-bot") in fields
    default_queue = await api.client.get("/api/v1/incidents", headers=lan)
    assert default_queue.json()["items"] == []
    closed = await api.client.get("/api/v1/incidents", params={"status": "closed"}, headers=lan)
    assert [item["id"] for item in closed.json()["items"]] == [incident]


async def test_two_dispatchers_claim_at_once_and_one_wins(api: Api) -> None:
    incident = await report(api.store, "race")
    answers = await asyncio.gather(
        *(
            api.client.post(f"/api/v1/incidents/{incident}/ack", json={}, headers=api.as_(role))
            for role in ("dispatcher", "supervisor", "admin")
        )
    )
    assert sorted(answer.status_code for answer in answers) == [200, 409, 409]
    assert api.rows("select status, version from incidents") == [("acknowledged", 2)]


async def test_duplicates_are_suggested_and_a_human_merges_them(api: Api) -> None:
    first = await report(api.store, "c1", location="số 18 Hàng Bài", unit="00070")
    second = await report(api.store, "c2", location="so 18 hang bai", category="explosion_gas")
    third = await report(api.store, "c3", location="Ngõ 5 Láng Hạ, Đống Đa", unit="00200")
    police = await report(api.store, "c4", line=Line.POLICE, location="số 18 Hàng Bài")
    lan = api.as_("dispatcher")

    answer = await api.client.get(f"/api/v1/incidents/{second}/duplicates", headers=lan)
    assert answer.status_code == 200
    suggested = [(item["incident"]["id"], item["reason"]) for item in answer.json()["items"]]
    assert suggested == [(first, "similar address")]
    assert third not in str(suggested) and police not in str(suggested)

    answer = await api.client.post(
        f"/api/v1/incidents/{second}/merge",
        json={"into": first, "expected_version": 1},
        headers=lan,
    )
    assert answer.status_code == 200, answer.text
    survivor = answer.json()
    assert survivor["id"] == first and survivor["merged_from"] == [second]
    merged = (await api.client.get(f"/api/v1/incidents/{second}", headers=lan)).json()
    assert merged["incident"]["status"] == "merged"
    assert merged["incident"]["merged_into"] == first
    queue = (await api.client.get("/api/v1/incidents", headers=lan)).json()["items"]
    assert second not in [item["id"] for item in queue]

    # the bot keeps writing to the surviving incident: the merge is not lost
    await report(api.store, "c1", location="số 18 Hàng Bài, cạnh ngân hàng", unit="00070")
    survivor = (await api.client.get(f"/api/v1/incidents/{first}", headers=lan)).json()
    assert survivor["incident"]["merged_from"] == [second]

    answer = await api.client.post(
        f"/api/v1/incidents/{second}/merge", json={"into": third}, headers=lan
    )
    assert answer.status_code == 409 and "merged" in answer.json()["detail"]
    answer = await api.client.post(
        f"/api/v1/incidents/{third}/merge", json={"into": third}, headers=lan
    )
    assert answer.status_code == 409
    answer = await api.client.post(
        f"/api/v1/incidents/{third}/merge", json={"into": "inc-nope"}, headers=lan
    )
    assert answer.status_code == 404
    assert api.rows(f"select status from incidents where id = '{third}'") == [("new",)]


async def test_reading_a_transcript_is_written_to_the_access_log(api: Api) -> None:
    incident = await report(api.store, "t1")
    await api.store.add_turn("t1", TurnData(speaker="bot", text="Cứu hỏa 114 xin nghe."))
    await api.store.upsert_incident(IncidentData(id="inc-manual", line=Line.FIRE, category="fire"))

    answer = await api.client.get(
        f"/api/v1/incidents/{incident}/transcript", headers=api.as_("dispatcher")
    )
    assert answer.status_code == 200
    body = answer.json()
    assert [(t["seq"], t["speaker"]) for t in body["turns"]] == [(1, "caller"), (2, "bot")]
    assert body["turns"][0]["text"] == "cháy nhà ở số 18 Hàng Bài"
    answer = await api.client.get(
        "/api/v1/incidents/inc-manual/transcript", headers=api.as_("dispatcher")
    )
    assert answer.status_code == 404

    log = (await api.client.get("/api/v1/access-log", headers=api.as_("admin"))).json()["items"]
    assert [(e["actor"], e["role"], e["action"], e["subject"]) for e in log] == [
        ("token:dispatcher-bot", "dispatcher", "read_transcript", "call:t1")
    ]


async def test_console_page_needs_a_login_and_actions_need_csrf(api: Api) -> None:
    answer = await api.client.get("/dispatch")
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/dispatch"
    assert (await api.client.get("/login")).status_code == 200
    incident = await report(api.store, "page")

    login = await api.client.post("/auth/login", json={"username": "lan", "password": PASSWORD})
    assert login.status_code == 200
    csrf = login.json()["csrf_token"]
    page = await api.client.get("/dispatch")
    assert page.status_code == 200 and "dispatch.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert (await api.client.get("/static/dispatch.js")).status_code == 200
    assert (await api.client.get("/static/..%2Fapp.py")).status_code == 404
    answer = await api.client.post(f"/api/v1/incidents/{incident}/ack", json={})
    assert answer.status_code == 403 and "CSRF" in answer.json()["detail"]
    answer = await api.client.post(
        f"/api/v1/incidents/{incident}/ack", json={}, headers={"X-CSRF-Token": csrf}
    )
    assert answer.status_code == 200 and answer.json()["acknowledged_by"] == "lan"


async def test_the_openapi_schema_documents_the_queue(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in (
        "/api/v1/incidents",
        "/api/v1/incidents/{incident_id}",
        "/api/v1/incidents/{incident_id}/transcript",
        "/api/v1/incidents/{incident_id}/duplicates",
        "/api/v1/incidents/{incident_id}/ack",
        "/api/v1/incidents/{incident_id}/dispatch",
        "/api/v1/incidents/{incident_id}/close",
        "/api/v1/incidents/{incident_id}/merge",
        "/api/v1/events",
        "/api/v1/access-log",
    ):
        assert path in paths, path
    ack = paths["/api/v1/incidents/{incident_id}/ack"]["post"]
    assert {"401", "403", "404", "409", "413", "422"} <= set(ack["responses"])
    assert "text/event-stream" in paths["/api/v1/events"]["get"]["responses"]["200"]["content"]
