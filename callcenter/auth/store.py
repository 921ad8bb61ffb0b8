"""The account store: users, login lockout, page sessions and API tokens.

Uses the service's database (`Settings.resolved_database_url`): SQLite (WAL)
by default, PostgreSQL for several nodes. Every public method is a coroutine
that runs the blocking SQLAlchemy work (and argon2 hashing) in a worker thread
under a timeout; a timeout or database failure raises `AuthStoreUnavailable`.

Lockout: after `max_failures` failed logins for a username within
`lockout_window_s`, every login for it is refused, right password or not,
until enough of those failures are older than the window. Refused attempts
are not counted, so a locked account unlocks on time. Failures are counted for
unknown usernames too, so lockout reveals nothing about which accounts exist.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session

from callcenter.auth.errors import (
    AccountExists,
    AccountLocked,
    AuthStoreUnavailable,
    InvalidCredentials,
    UnknownAccount,
)
from callcenter.auth.models import (
    NewSession,
    NewToken,
    Principal,
    Role,
    TokenInfo,
    normalise_username,
)
from callcenter.auth.passwords import PasswordService
from callcenter.auth.tables import (
    ApiTokenRecord,
    AuthBase,
    LoginFailureRecord,
    SessionRecord,
    UserRecord,
)
from callcenter.auth.tokens import new_secret, plausible_secret, same_secret, secret_digest
from dispatch.engine import create_database_engine

__all__ = ["AuthStore", "SqlAuthStore", "utcnow"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_TOUCH_EVERY = timedelta(seconds=60)  # at most one write per minute per session or token


def utcnow() -> datetime:
    return datetime.now(UTC)


class AuthStore(Protocol):
    """What the web layer needs to authenticate a request."""

    @property
    def session_ttl_s(self) -> float: ...
    async def login(self, username: str, password: str) -> NewSession: ...
    async def logout(self, session_id: str) -> None: ...
    async def session_principal(self, session_id: str) -> Principal | None: ...
    async def token_principal(self, token: str) -> Principal | None: ...


class SqlAuthStore:
    """`AuthStore` on SQLAlchemy 2, plus the account commands the CLI uses.

    Construction connects to nothing; `create_schema()` is the first contact.
    `clock` returns aware UTC times (tests pass a fake one).
    """

    def __init__(
        self,
        database_url: str,
        *,
        passwords: PasswordService | None = None,
        session_ttl_s: float = 12 * 3600,
        max_failures: int = 5,
        lockout_window_s: float = 15 * 60,
        timeout_s: float = 5.0,
        busy_timeout_s: float = 3.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if min(session_ttl_s, lockout_window_s, timeout_s, busy_timeout_s) <= 0:
            raise ValueError("durations must be positive")
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        self._passwords = passwords or PasswordService()
        self._ttl = timedelta(seconds=session_ttl_s)
        self._max_failures = max_failures
        self._window = timedelta(seconds=lockout_window_s)
        self._timeout_s = timeout_s
        self._clock = clock
        try:
            url = make_url(database_url)
            if url.drivername == "postgresql":  # psycopg 3 is the driver we ship
                url = url.set(drivername="postgresql+psycopg")
            self._where = url.render_as_string(hide_password=True)
            if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
                Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)
            self._engine = create_database_engine(url, timeout_s, busy_timeout_s, pool_size=3)
        except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
            raise AuthStoreUnavailable(f"cannot use database URL: {exc}") from exc

    @property
    def session_ttl_s(self) -> float:
        return self._ttl.total_seconds()

    async def create_schema(self) -> None:
        """Create missing auth tables (idempotent); migrations will replace this."""
        await self._run("create_schema", lambda: AuthBase.metadata.create_all(self._engine))

    async def close(self) -> None:
        await self._run("close", self._engine.dispose)

    # -- accounts -------------------------------------------------------------------

    async def create_user(self, username: str, password: str, role: Role) -> None:
        """Add an account; `AccountExists`, `WeakPassword` or `ValueError` (bad name)."""
        name = normalise_username(username)
        encoded = await self._run("hash", lambda: self._passwords.hash(password))
        await self._run("create_user", lambda: self._create_user(name, encoded, Role(role)))
        logger.info("created user %s with role %s", name, Role(role).value)

    async def set_password(self, username: str, password: str) -> None:
        """Replace a password and end the user's sessions; `UnknownAccount` if none."""
        name = normalise_username(username)
        encoded = await self._run("hash", lambda: self._passwords.hash(password))
        await self._run("set_password", lambda: self._set_password(name, encoded))

    async def login(self, username: str, password: str) -> NewSession:
        """Check a password and open a session; `InvalidCredentials` or `AccountLocked`."""
        return await self._run("login", lambda: self._login(username, password))

    async def logout(self, session_id: str) -> None:
        if plausible_secret(session_id):
            await self._run("logout", lambda: self._delete_session(secret_digest(session_id)))

    async def session_principal(self, session_id: str) -> Principal | None:
        """The session's user, sliding its expiry; None if unknown or expired."""
        if not plausible_secret(session_id):
            return None
        return await self._run("session", lambda: self._session_principal(session_id))

    # -- API tokens -----------------------------------------------------------------

    async def create_token(self, name: str, role: Role) -> NewToken:
        """A new bearer token; the returned `token` is the only copy there will be."""
        token_name = normalise_username(name)
        return await self._run("create_token", lambda: self._create_token(token_name, Role(role)))

    async def token_principal(self, token: str) -> Principal | None:
        """The token's principal, or None if unknown or revoked."""
        if not plausible_secret(token):
            return None
        return await self._run("token", lambda: self._token_principal(token))

    async def revoke_tokens(self, name: str) -> int:
        """Revoke every live token with this name; how many were revoked."""
        token_name = normalise_username(name)
        return await self._run("revoke", lambda: self._revoke_tokens(token_name))

    async def list_tokens(self) -> list[TokenInfo]:
        return await self._run("list_tokens", self._list_tokens)

    # -- blocking work, in a worker thread ------------------------------------------

    async def _run(self, what: str, work: Callable[[], T]) -> T:
        try:
            return await asyncio.wait_for(asyncio.to_thread(work), self._timeout_s)
        except TimeoutError:
            raise AuthStoreUnavailable(
                f"{what}: database {self._where} did not answer within {self._timeout_s} s"
            ) from None
        except SQLAlchemyError as exc:
            raise AuthStoreUnavailable(
                f"{what}: database {self._where} failed: {type(exc).__name__}"
            ) from exc

    def _create_user(self, username: str, encoded: str, role: Role) -> None:
        now = self._clock()
        record = UserRecord(
            username=username,
            password_hash=encoded,
            role=role.value,
            disabled=False,
            created_at=now,
            updated_at=now,
        )
        try:
            with Session(self._engine) as db, db.begin():
                db.add(record)
        except IntegrityError:
            raise AccountExists(f"user {username!r} already exists") from None

    def _set_password(self, username: str, encoded: str) -> None:
        with Session(self._engine) as db, db.begin():
            user = db.scalar(select(UserRecord).where(UserRecord.username == username))
            if user is None:
                raise UnknownAccount(f"no user {username!r}")
            user.password_hash = encoded
            user.updated_at = self._clock()
            db.execute(delete(SessionRecord).where(SessionRecord.user_id == user.id))

    def _login(self, username: str, password: str) -> NewSession:
        try:
            name = normalise_username(username)
        except ValueError:
            self._passwords.verify_unknown(password)
            raise InvalidCredentials("wrong username or password") from None
        key = name  # failures are keyed by the normalised name, known or not
        now = self._clock()
        with Session(self._engine) as db:
            recent = db.scalars(
                select(LoginFailureRecord.failed_at)
                .where(LoginFailureRecord.username == key)
                .where(LoginFailureRecord.failed_at > now - self._window)
                .order_by(LoginFailureRecord.failed_at.desc())
                .limit(self._max_failures)
            ).all()
            user = db.scalar(select(UserRecord).where(UserRecord.username == name))
            found = (user.id, user.password_hash, Role(user.role)) if user else None
            if user is not None and user.disabled:
                found = None
        if len(recent) >= self._max_failures:
            unlock_at = recent[self._max_failures - 1] + self._window
            raise AccountLocked(max(0.0, (unlock_at - now).total_seconds()))

        # Hash outside any transaction: argon2 takes tens of milliseconds.
        if found is None:
            ok = self._passwords.verify_unknown(password)
        else:
            ok = self._passwords.verify(found[1], password)
        if not ok or found is None:
            with Session(self._engine) as db, db.begin():
                db.add(LoginFailureRecord(username=key, failed_at=now))
            logger.info("failed login for %s", name if found else "an unknown user")
            raise InvalidCredentials("wrong username or password")

        user_id, encoded, role = found
        session_id, csrf_token = new_secret(), new_secret()
        expires_at = now + self._ttl
        rehashed = self._passwords.hash(password) if self._passwords.needs_rehash(encoded) else None
        with Session(self._engine) as db, db.begin():
            db.execute(delete(LoginFailureRecord).where(LoginFailureRecord.username == key))
            db.execute(
                delete(SessionRecord)
                .where(SessionRecord.user_id == user_id)
                .where(SessionRecord.expires_at <= now)
            )
            if rehashed is not None:
                db.execute(
                    update(UserRecord)
                    .where(UserRecord.id == user_id)
                    .where(UserRecord.password_hash == encoded)
                    .values(password_hash=rehashed, updated_at=now)
                )
            db.add(
                SessionRecord(
                    id_sha256=secret_digest(session_id),
                    user_id=user_id,
                    csrf_token=csrf_token,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
        logger.info("login: %s (%s)%s", name, role.value, ", hash upgraded" if rehashed else "")
        principal = Principal(
            kind="session",
            name=name,
            role=role,
            csrf_token=csrf_token,
            session_expires_at=expires_at,
        )
        return NewSession(
            session_id=session_id,
            csrf_token=csrf_token,
            principal=principal,
            expires_at=expires_at,
        )

    def _session_principal(self, session_id: str) -> Principal | None:
        now = self._clock()
        digest = secret_digest(session_id)
        with Session(self._engine) as db, db.begin():
            row = db.execute(
                select(SessionRecord, UserRecord)
                .join(UserRecord, UserRecord.id == SessionRecord.user_id)
                .where(SessionRecord.id_sha256 == digest)
            ).first()
            if row is None:
                return None
            session, user = row
            if session.expires_at <= now or user.disabled:
                db.delete(session)
                return None
            if now + self._ttl - session.expires_at >= _TOUCH_EVERY:  # sliding expiry
                session.expires_at = now + self._ttl
            return Principal(
                kind="session",
                name=user.username,
                role=Role(user.role),
                csrf_token=session.csrf_token,
                session_expires_at=session.expires_at,
            )

    def _delete_session(self, digest: str) -> None:
        with Session(self._engine) as db, db.begin():
            db.execute(delete(SessionRecord).where(SessionRecord.id_sha256 == digest))

    def _create_token(self, name: str, role: Role) -> NewToken:
        token = new_secret()
        now = self._clock()
        with Session(self._engine) as db, db.begin():
            db.add(
                ApiTokenRecord(
                    name=name,
                    token_sha256=secret_digest(token),
                    role=role.value,
                    created_at=now,
                    last_used_at=None,
                    revoked=False,
                )
            )
        logger.info("created API token %s with role %s", name, role.value)
        return NewToken(token=token, name=name, role=role, created_at=now)

    def _token_principal(self, token: str) -> Principal | None:
        digest = secret_digest(token)
        now = self._clock()
        with Session(self._engine) as db, db.begin():
            record = db.scalar(select(ApiTokenRecord).where(ApiTokenRecord.token_sha256 == digest))
            if record is None or record.revoked or not same_secret(record.token_sha256, digest):
                return None
            if record.last_used_at is None or now - record.last_used_at >= _TOUCH_EVERY:
                record.last_used_at = now
            return Principal(kind="token", name=record.name, role=Role(record.role))

    def _revoke_tokens(self, name: str) -> int:
        with Session(self._engine) as db, db.begin():
            records = db.scalars(
                select(ApiTokenRecord)
                .where(ApiTokenRecord.name == name)
                .where(ApiTokenRecord.revoked.is_(False))
            ).all()
            for record in records:
                record.revoked = True
        if not records:
            raise UnknownAccount(f"no live token named {name!r}")
        logger.info("revoked %d API token(s) named %s", len(records), name)
        return len(records)

    def _list_tokens(self) -> list[TokenInfo]:
        with Session(self._engine) as db:
            records = db.scalars(select(ApiTokenRecord).order_by(ApiTokenRecord.id)).all()
            return [
                TokenInfo(
                    name=r.name,
                    role=Role(r.role),
                    created_at=r.created_at,
                    last_used_at=r.last_used_at,
                    revoked=r.revoked,
                )
                for r in records
            ]
