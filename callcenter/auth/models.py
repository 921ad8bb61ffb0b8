"""Roles and the authenticated principal: plain values, no database, no web."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal


class Role(StrEnum):
    DISPATCHER = "dispatcher"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


PrincipalKind = Literal["session", "token"]

_USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,62}")
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024  # longer input is refused before hashing (no hashing DoS)


def normalise_username(name: str) -> str:
    """Lower-case, trimmed; `ValueError` unless 2-63 of `a-z 0-9 . _ -`."""
    username = name.strip().lower()
    if not _USERNAME.fullmatch(username):
        raise ValueError("a username is 2-63 characters of a-z, 0-9, '.', '_', '-'")
    return username


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        choices = ", ".join(role.value for role in Role)
        raise ValueError(f"unknown role {value!r}: use one of {choices}") from None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is making a request: a logged-in user (session) or an API token."""

    kind: PrincipalKind
    name: str  # the username, or the token's name
    role: Role
    csrf_token: str | None = None  # sessions only
    session_expires_at: datetime | None = None  # sessions only


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just opened by a login: `session_id` goes in the cookie, once."""

    session_id: str
    csrf_token: str
    principal: Principal
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class NewToken:
    """An API token just created: `token` is shown once and never stored."""

    token: str
    name: str
    role: Role
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A stored API token, without its secret."""

    name: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool
