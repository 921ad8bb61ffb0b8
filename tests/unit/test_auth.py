"""Accounts, lockout, sessions, API tokens and the FastAPI dependencies, on a
real SQLite file: what a dispatcher, a supervisor or an attacker would see."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

from callcenter.auth.cli import add_subcommands, run_auth_command
from callcenter.auth.deps import (
    AdminPrincipal,
    StaffPrincipal,
    SupervisorPrincipal,
)
from callcenter.auth.errors import AccountExists, AccountLocked, InvalidCredentials, WeakPassword
from callcenter.auth.models import Principal, Role
from callcenter.auth.passwords import PasswordService
from callcenter.auth.router import auth_router
from callcenter.auth.store import SqlAuthStore
from callcenter.settings import Settings

pytestmark = pytest.mark.unit

T0 = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"


def cheap_hasher(time_cost: int = 1) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=8, parallelism=1)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "auth.db"


@pytest.fixture
async def store(db_path: Path, clock: Clock) -> AsyncIterator[SqlAuthStore]:
    store = SqlAuthStore(
        f"sqlite:///{db_path}", passwords=PasswordService(cheap_hasher()), clock=clock
    )
    await store.create_schema()
    await store.create_user("disp1", PASSWORD, Role.DISPATCHER)
    yield store
    await store.close()


def rows(db_path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db_path) as db:
        return list(db.execute(sql))


# -- passwords ------------------------------------------------------------------------


def test_passwords_are_hashed_with_argon2id_and_verified() -> None:
    passwords = PasswordService(cheap_hasher())
    encoded = passwords.hash(PASSWORD)
    assert encoded.startswith("$argon2id$") and PASSWORD not in encoded
    assert passwords.verify(encoded, PASSWORD)
    assert not passwords.verify(encoded, PASSWORD + "!")
    assert not passwords.verify("not a hash", PASSWORD)
    assert not passwords.verify(encoded, "x" * 5000)
    with pytest.raises(WeakPassword):
        passwords.hash("short")


async def test_login_rehashes_when_the_parameters_change(
    store: SqlAuthStore, db_path: Path, clock: Clock
) -> None:
    (before,) = rows(db_path, "SELECT password_hash FROM auth_users")
    assert "t=1," in str(before[0])
    stronger = SqlAuthStore(
        f"sqlite:///{db_path}", passwords=PasswordService(cheap_hasher(time_cost=2)), clock=clock
    )
    try:
        await stronger.login("disp1", PASSWORD)
        (after,) = rows(db_path, "SELECT password_hash FROM auth_users")
        assert "t=2," in str(after[0])
        assert (await stronger.login("disp1", PASSWORD)).principal.role is Role.DISPATCHER
    finally:
        await stronger.close()


async def test_duplicate_user_is_refused(store: SqlAuthStore) -> None:
    with pytest.raises(AccountExists):
        await store.create_user("DISP1", PASSWORD, Role.ADMIN)


# -- lockout and unknown users --------------------------------------------------------


async def test_five_failures_lock_the_account_even_for_the_right_password(
    store: SqlAuthStore, clock: Clock
) -> None:
    for _ in range(5):
        clock.advance(seconds=30)
        with pytest.raises(InvalidCredentials):
            await store.login("disp1", "wrong password!")
    with pytest.raises(AccountLocked) as locked:
        await store.login("disp1", PASSWORD)
    # the window runs from the first of the five failures, 2 minutes ago
    assert 12 * 60 < locked.value.retry_after_s <= 13 * 60
    clock.advance(minutes=13, seconds=1)
    opened = await store.login("disp1", PASSWORD)
    assert opened.principal.name == "disp1"
    # success clears the count: four more failures do not lock
    for _ in range(4):
        with pytest.raises(InvalidCredentials):
            await store.login("disp1", "wrong password!")
    await store.login("disp1", PASSWORD)


async def test_failures_spread_beyond_the_window_do_not_lock(
    store: SqlAuthStore, clock: Clock
) -> None:
    for _ in range(6):
        with pytest.raises(InvalidCredentials):
            await store.login("disp1", "wrong password!")
        clock.advance(minutes=4)
    await store.login("disp1", PASSWORD)


async def test_unknown_user_spends_a_verification_and_locks_like_a_real_one(
    store: SqlAuthStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = PasswordService.verify_unknown

    def spy(self: PasswordService, password: str) -> bool:
        calls.append(password)
        return real(self, password)

    monkeypatch.setattr(PasswordService, "verify_unknown", spy)
    for _ in range(5):
        with pytest.raises(InvalidCredentials, match="wrong username or password"):
            await store.login("nobody", PASSWORD)
    assert len(calls) == 5
    with pytest.raises(AccountLocked):
        await store.login("nobody", PASSWORD)
    with pytest.raises(InvalidCredentials):
        await store.login("bad name with spaces", PASSWORD)
    assert len(calls) == 6


async def test_sessions_slide_and_expire(store: SqlAuthStore, clock: Clock) -> None:
    opened = await store.login("disp1", PASSWORD)
    clock.advance(hours=11)
    assert await store.session_principal(opened.session_id) is not None
    clock.advance(hours=11)  # 22 h after login, 11 h after the last use
    principal = await store.session_principal(opened.session_id)
    assert principal is not None and principal.csrf_token == opened.csrf_token
    clock.advance(hours=12, seconds=1)
    assert await store.session_principal(opened.session_id) is None
    assert await store.session_principal("forged") is None


# -- API tokens -----------------------------------------------------------------------


async def test_tokens_are_stored_hashed_and_can_be_revoked(
    store: SqlAuthStore, db_path: Path
) -> None:
    new = await store.create_token("CAD-Bridge", Role.SUPERVISOR)
    assert len(new.token) >= 43
    stored = rows(db_path, "SELECT * FROM auth_api_tokens")
    assert all(new.token not in str(value) for row in stored for value in row)
    assert rows(db_path, "SELECT name, token_sha256, last_used_at FROM auth_api_tokens") == [
        ("cad-bridge", hashlib.sha256(new.token.encode()).hexdigest(), None)
    ]
    principal = await store.token_principal(new.token)
    assert principal == Principal(kind="token", name="cad-bridge", role=Role.SUPERVISOR)
    (info,) = await store.list_tokens()
    assert info.last_used_at is not None and not info.revoked

    forged = new.token[:-1] + ("B" if new.token.endswith("A") else "A")
    assert await store.token_principal(forged) is None
    assert await store.token_principal("x" * 10_000) is None
    assert await store.revoke_tokens("cad-bridge") == 1
    assert await store.token_principal(new.token) is None


# -- the FastAPI dependencies and /auth -----------------------------------------------


def make_app(store: SqlAuthStore) -> FastAPI:
    app = FastAPI()
    app.state.auth_store = store
    app.include_router(auth_router())

    @app.get("/queue")
    async def queue(who: StaffPrincipal) -> dict[str, str]:
        return {"name": who.name, "role": who.role.value}

    @app.post("/queue/ack")
    async def ack(who: StaffPrincipal) -> dict[str, str]:
        return {"acked_by": who.name}

    @app.get("/review")
    async def review(who: SupervisorPrincipal) -> dict[str, str]:
        return {"name": who.name}

    @app.post("/admin/users")
    async def admin(who: AdminPrincipal) -> dict[str, str]:
        return {"name": who.name}

    return app


@pytest.fixture
async def client(store: SqlAuthStore) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://callbot.local") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_missing_malformed_and_forged_credentials_get_401(
    client: httpx.AsyncClient, store: SqlAuthStore
) -> None:
    for headers in ({}, {"Authorization": "Basic ZGlzcDE6cGFzcw=="}, bearer("forged-token")):
        answer = await client.get("/queue", headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert answer.json()["detail"]
    new = await store.create_token("bridge", Role.DISPATCHER)
    await store.revoke_tokens("bridge")
    answer = await client.get("/queue", headers=bearer(new.token))
    assert answer.status_code == 401
    assert answer.json() == {"detail": "invalid or revoked token"}
    client.cookies.set("callbot_session", "stale", domain="callbot.local")
    assert (await client.get("/queue")).status_code == 401


async def test_roles_are_enforced_for_tokens(
    client: httpx.AsyncClient, store: SqlAuthStore
) -> None:
    dispatcher = (await store.create_token("console", Role.DISPATCHER)).token
    supervisor = (await store.create_token("reviewer", Role.SUPERVISOR)).token
    answer = await client.post("/admin/users", headers=bearer(dispatcher))
    assert answer.status_code == 403
    assert "dispatcher" in answer.json()["detail"] and "admin" in answer.json()["detail"]
    assert (await client.get("/review", headers=bearer(dispatcher))).status_code == 403
    answer = await client.get("/review", headers=bearer(supervisor))
    assert answer.status_code == 200 and answer.json() == {"name": "reviewer"}
    assert (await client.post("/admin/users", headers=bearer(supervisor))).status_code == 403
    # bearer requests carry no cookie, so they need no CSRF token
    answer = await client.post("/queue/ack", headers=bearer(dispatcher))
    assert answer.status_code == 200 and answer.json() == {"acked_by": "console"}


async def test_session_login_then_pages_with_csrf_on_posts(client: httpx.AsyncClient) -> None:
    answer = await client.post("/auth/login", data={"username": "Disp1", "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["username"] == "disp1" and body["role"] == "dispatcher"
    csrf = body["csrf_token"]
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie

    answer = await client.get("/queue")
    assert answer.status_code == 200 and answer.json() == {"name": "disp1", "role": "dispatcher"}
    assert (await client.get("/review")).status_code == 403

    answer = await client.post("/queue/ack")
    assert answer.status_code == 403 and "CSRF" in answer.json()["detail"]
    wrong_csrf = {"X-CSRF-Token": "x" + csrf}
    assert (await client.post("/queue/ack", headers=wrong_csrf)).status_code == 403
    answer = await client.post("/queue/ack", headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 200 and answer.json() == {"acked_by": "disp1"}
    answer = await client.post("/queue/ack", data={"csrf_token": csrf, "note": "on my way"})
    assert answer.status_code == 200

    me = await client.get("/auth/me")
    assert me.json()["csrf_token"] == csrf and me.json()["kind"] == "session"
    assert (await client.post("/auth/logout")).status_code == 403  # CSRF here too
    assert (await client.post("/auth/logout", headers={"X-CSRF-Token": csrf})).status_code == 204
    assert (await client.get("/queue")).status_code == 401


async def test_login_bad_input_and_lockout(client: httpx.AsyncClient) -> None:
    wrong = {"username": "disp1", "password": "not the password"}
    answer = await client.post("/auth/login", json=wrong)
    assert answer.status_code == 401 and answer.json() == {"detail": "wrong username or password"}
    assert "set-cookie" not in answer.headers
    assert (await client.post("/auth/login", json={"username": "disp1"})).status_code == 422
    assert (await client.post("/auth/login", content=b"{not json",
                              headers={"Content-Type": "application/json"})).status_code == 422
    assert (await client.post("/auth/login", content=b"disp1")).status_code == 415
    huge = {"username": "disp1", "password": "p" * 20_000}
    assert (await client.post("/auth/login", json=huge)).status_code == 413
    for _ in range(4):
        assert (await client.post("/auth/login", json=wrong)).status_code == 401
    answer = await client.post("/auth/login", json={"username": "disp1", "password": PASSWORD})
    assert answer.status_code == 429
    assert int(answer.headers["Retry-After"]) > 800
    assert "too many failed logins" in answer.json()["detail"]


async def test_cookie_is_secure_over_https(store: SqlAuthStore) -> None:
    transport = httpx.ASGITransport(app=make_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="https://callbot.local") as client:
        answer = await client.post("/auth/login", json={"username": "disp1", "password": PASSWORD})
    assert answer.status_code == 200
    assert "secure" in answer.headers["set-cookie"].lower()


# -- the CLI --------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="callbot")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def test_cli_creates_a_user_and_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'var' / 'callbot.db'}")
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    # the CLI runs its own event loop, so run it off this test's loop
    args = parse(["users", "create", "Lan", "--role", "dispatcher"])
    assert await asyncio.to_thread(run_auth_command, args, settings) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert await asyncio.to_thread(run_auth_command, args, settings) == 1
    assert "already exists" in capsys.readouterr().err

    args = parse(["token", "create", "--name", "cad", "--role", "supervisor"])
    assert await asyncio.to_thread(run_auth_command, args, settings) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert len(token) >= 43 and "shown only this once" in out.err

    store = SqlAuthStore(settings.resolved_database_url)
    try:
        opened = await store.login("lan", PASSWORD)
        assert opened.principal.role is Role.DISPATCHER
        assert await store.token_principal(token) == Principal("token", "cad", Role.SUPERVISOR)
    finally:
        await store.close()

    with pytest.raises(SystemExit):
        parse(["users", "create", "x", "--role", "dispatcher", "--password", "p"])
