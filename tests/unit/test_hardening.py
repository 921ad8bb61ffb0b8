"""Hostile use of the public entry points: rate limits, security headers, and a
production configuration with default secrets that refuses to start."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from callcenter.app import UnsafeConfiguration, create_app
from callcenter.chat import ChatService
from callcenter.cli import main
from callcenter.settings import Settings
from callcenter.web.chat_api import chat_router
from callcenter.web.ratelimit import RateLimiter
from dialog.scripted import ScriptedDialog
from tests.unit.test_chat_api import store
from tests.unit.test_incidents_api import Api, api

__all__ = ["api", "store"]

pytestmark = pytest.mark.unit


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=6, burst=3, clock=clock, max_keys=2)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(10.0)  # one token every 10 s
    assert limiter.take("b") == 0.0  # others are not affected
    clock.now = 10.0
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(10.0)
    # at most two keys are remembered: the least recent is forgotten and starts afresh
    limiter.take("b")
    limiter.take("c")
    assert limiter.take("a") == 0.0


async def test_chats_from_one_number_are_limited_but_others_still_get_through(store) -> None:
    settings = Settings(chat_opens_per_number_per_min=2, chat_messages_per_chat_per_min=3)
    app = FastAPI()
    app.include_router(chat_router(settings))
    app.state.center = SimpleNamespace(
        chat=ChatService(ScriptedDialog(), store, dialog_timeout_s=1.0)
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        body = {"line": "114", "lang": "vi", "from": "0912000111"}
        answers = [await client.post("/api/v1/chat/sessions", json=body) for _ in range(8)]
        codes = [answer.status_code for answer in answers]
        assert codes.count(201) == 5 and codes[-1] == 429  # the burst, then refused
        assert int(answers[-1].headers["Retry-After"]) >= 1
        assert "number" in answers[-1].json()["detail"]
        other = await client.post("/api/v1/chat/sessions", json={**body, "from": "0988000222"})
        assert other.status_code == 201
        session = other.json()["session_id"]
        sent = [
            await client.post(f"/api/v1/chat/sessions/{session}/messages", json={"text": "cháy"})
            for _ in range(20)
        ]
        assert sent[0].status_code == 200 and sent[-1].status_code == 429


async def test_logins_from_one_address_are_limited(api: Api) -> None:
    codes = [
        (
            await api.client.post("/auth/login", json={"username": f"u{n}", "password": "x" * 12})
        ).status_code
        for n in range(14)
    ]
    assert codes[:10] == [401] * 10 and codes[-1] == 429


async def test_every_answer_carries_security_headers(api: Api) -> None:
    for path in ("/login", "/dispatch", "/api/v1/incidents", "/health", "/nope"):
        answer = await api.client.get(path)
        assert answer.headers["x-content-type-options"] == "nosniff", path
        assert answer.headers["x-frame-options"] == "DENY", path
        assert answer.headers["referrer-policy"] == "no-referrer", path


def test_production_with_default_secrets_refuses_to_start(tmp_path: Path, capsys) -> None:
    weak = Settings(
        environment="production",
        data_dir=tmp_path,
        database_url="postgresql+psycopg://callbot:postgres@db.internal/callbot",
        rasa_url="http://rasa.internal:5005",
        rasa_token="",
    )
    with pytest.raises(UnsafeConfiguration) as refused:
        create_app(weak)
    message = str(refused.value)
    for what in ("COOKIE_SECURE", "RASA_TOKEN", "PostgreSQL password"):
        assert what in message
    assert "postgres@" not in message  # the secret itself is never repeated
    strong = weak.model_copy(
        update={
            "cookie_secure": "always",
            "rasa_token": "r" * 32,
            "database_url": "postgresql+psycopg://callbot:Xk2-long-random-9vQ@db.internal/callbot",
        }
    )
    assert strong.production_problems() == []


def test_callbot_serve_says_why_it_will_not_start(monkeypatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setenv("CALLBOT_ENVIRONMENT", "production")
    monkeypatch.setenv("CALLBOT_DATA_DIR", str(tmp_path))
    assert main(["serve"]) == 2
    assert "refusing to start in production" in capsys.readouterr().err
