"""SQLAlchemy 2 tables of the auth package, in their own metadata.

Tables: `auth_users`, `auth_api_tokens`, `auth_sessions`,
`auth_login_failures`. Created by `SqlAuthStore.create_schema()` for now; they
belong in the project's Alembic migrations (include `AuthBase.metadata`).
Roles are plain strings (no database ENUM). Times are UTC, read back aware.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    MetaData,
    String,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dispatch.models import UtcDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite autoincrements only an INTEGER PRIMARY KEY.
_BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class AuthBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UserRecord(AuthBase):
    """A staff account: dispatcher, supervisor or admin."""

    __tablename__ = "auth_users"

    id: Mapped[int] = mapped_column(_BigIntId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(63), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ApiTokenRecord(AuthBase):
    """A bearer token for the API; only the SHA-256 of the token is kept."""

    __tablename__ = "auth_api_tokens"

    id: Mapped[int] = mapped_column(_BigIntId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class SessionRecord(AuthBase):
    """A logged-in page session; the cookie holds the id, the table its SHA-256."""

    __tablename__ = "auth_sessions"

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        _BigIntId, ForeignKey("auth_users.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class LoginFailureRecord(AuthBase):
    """One failed login, kept for the lockout window (also for unknown usernames)."""

    __tablename__ = "auth_login_failures"

    id: Mapped[int] = mapped_column(_BigIntId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(255), index=True)
    failed_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
