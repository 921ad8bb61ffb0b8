"""The chat API over the stand-in dialog and a real SQLite store: the HTTP
contract, every bad input, and a failing dialog handing the chat to a human."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from callcenter.chat import ChatService
from callcenter.events import DialogTurn
from callcenter.settings import Settings
from callcenter.web.chat_api import chat_router
from dialog.base import DialogError
from dialog.scripted import ScriptedDialog
from dispatch.store import SqlCallStore

pytestmark = pytest.mark.unit


class BrokenDialog(ScriptedDialog):
    async def respond(self, call_id: str, text: str) -> DialogTurn:
        raise DialogError("rasa unreachable")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlCallStore]:
    store = SqlCallStore(f"sqlite:///{tmp_path / 'chat.db'}")
    await store.create_schema()
    yield store
    await store.close()


def make_client(store: SqlCallStore, dialog: ScriptedDialog | None = None) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(chat_router(Settings()))
    service = ChatService(dialog or ScriptedDialog(), store, dialog_timeout_s=1.0)
    app.state.center = SimpleNamespace(chat=service)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def open_chat(client: httpx.AsyncClient, **body: str) -> str:
    response = await client.post(
        "/api/v1/chat/sessions", json={"line": "114", "lang": "vi", **body}
    )
    assert response.status_code == 201, response.text
    data = response.json()
    assert data["messages"] and "114" in data["messages"][0]
    return str(data["session_id"])


async def say(client: httpx.AsyncClient, session_id: str, text: str) -> httpx.Response:
    return await client.post(f"/api/v1/chat/sessions/{session_id}/messages", json={"text": text})


async def test_a_chat_is_answered_and_recorded(store: SqlCallStore) -> None:
    async with make_client(store) as client:
        session_id = await open_chat(client, **{"from": "0912345678"})
        first = await say(client, session_id, "Cháy nhà! Khói đen bốc lên nhiều lắm")
        assert first.status_code == 200
        assert first.json()["state"]["category"] == "fire"
        assert first.json()["state"]["requested_slot"] == "location"
        last = (await say(client, session_id, "số 18 Hàng Bài")).json()
    assert last["state"]["done"] is True
    assert last["state"]["incident_id"] is not None

    view = await store.get_call(session_id)
    assert view is not None and view.info.channel == "chat"
    texts = [(t.turn.speaker, t.turn.text) for t in view.turns]
    assert ("caller", "số 18 Hàng Bài") in texts
    assert [speaker for speaker, _ in texts] == ["bot", "caller", "bot", "caller", "bot"]
    incident = await store.get_incident(last["state"]["incident_id"])
    assert incident is not None and incident.incident.location_text == "số 18 Hàng Bài"


@pytest.mark.parametrize(
    "body,status",
    [
        ({"text": ""}, 422),
        ({"text": "   \n\t "}, 422),
        ({"text": "x" * 10_000}, 422),
        ({"text": "a" * 2_500}, 422),
        ({}, 422),
        ({"text": 42}, 422),
        ({"text": "ok", "extra": 1}, 422),
    ],
)
async def test_bad_messages_get_clear_errors(store: SqlCallStore, body: dict, status: int) -> None:
    async with make_client(store) as client:
        session_id = await open_chat(client)
        response = await client.post(f"/api/v1/chat/sessions/{session_id}/messages", json=body)
        assert response.status_code == status
        assert response.json()["detail"]
        # The chat is still usable afterwards.
        assert (await say(client, session_id, "cháy")).status_code == 200
    view = await store.get_call(session_id)
    assert view is not None
    assert [t.turn.text for t in view.turns if t.turn.speaker == "caller"] == ["cháy"]


async def test_not_json_and_bad_session_requests(store: SqlCallStore) -> None:
    async with make_client(store) as client:
        response = await client.post(
            "/api/v1/chat/sessions", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert response.status_code == 422
        for body in ({"line": "115"}, {"line": "113", "lang": "fr"}, {"lang": "vi"}):
            assert (await client.post("/api/v1/chat/sessions", json=body)).status_code == 422
        missing = await say(client, "chat-does-not-exist", "hello")
        assert missing.status_code == 404
        assert "unknown chat session" in missing.json()["detail"]


@pytest.mark.parametrize(
    "text",
    [
        "🔥🔥 cháy rồi!!! 🚒",
        "there is fire ở số 5 ngõ 12, help!",
        "'; DROP TABLE calls; --",
        "<script>alert(1)</script><b>cháy</b>",
    ],
)
async def test_unusual_text_is_kept_exactly_as_written(store: SqlCallStore, text: str) -> None:
    async with make_client(store) as client:
        session_id = await open_chat(client)
        response = await say(client, session_id, text)
        assert response.status_code == 200
    view = await store.get_call(session_id)
    assert view is not None
    assert [t.turn.text for t in view.turns if t.turn.speaker == "caller"] == [text]
    assert len(await store.list_calls()) == 1  # the SQL in the text did nothing


async def test_a_failing_dialog_hands_the_chat_to_a_human(store: SqlCallStore) -> None:
    async with make_client(store, BrokenDialog()) as client:
        session_id = await open_chat(client, lang="en")
        reply = (await say(client, session_id, "my neighbour's house is on fire")).json()
        assert reply["state"]["handoff"] is True
        assert "hold" in reply["messages"][0].lower()
        # Later messages are still recorded for the dispatcher who takes over.
        assert (await say(client, session_id, "please hurry")).status_code == 200
    view = await store.get_call(session_id)
    assert view is not None and view.status == "handed_off"
    caller_texts = [t.turn.text for t in view.turns if t.turn.speaker == "caller"]
    assert caller_texts == ["my neighbour's house is on fire", "please hurry"]


def test_chat_page_is_served_without_external_assets(store: SqlCallStore) -> None:
    from fastapi.testclient import TestClient

    app = FastAPI()
    app.include_router(chat_router(Settings()))
    with TestClient(app) as client:
        page = client.get("/chat")
    assert page.status_code == 200
    assert "/api/v1/chat/sessions" in page.text
    assert "http://" not in page.text and "https://" not in page.text


async def test_greeting_uses_the_callers_language(store: SqlCallStore) -> None:
    async with make_client(store) as client:
        response = await client.post("/api/v1/chat/sessions", json={"line": "113", "lang": "en"})
    assert "Police" in response.json()["messages"][0]
