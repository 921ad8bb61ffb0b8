"""FastAPI dependencies: who is calling, and may they.

`current_principal` accepts `Authorization: Bearer <token>` (API clients) or
the session cookie (pages). A cookie-authenticated request that changes state
(any method but GET, HEAD, OPTIONS) must also carry the session's CSRF token,
in the `X-CSRF-Token` header or a `csrf_token` form field (synchronizer
token); bearer requests need none, as browsers never add them on their own.

Answers: no or bad credentials -> 401 with `WWW-Authenticate: Bearer`; wrong
role or missing CSRF token -> 403; account database down -> 503. Tokens,
session ids and passwords never reach a log or an error message.

The store is `app.state.auth_store` (an `AuthStore`), set by `create_app`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, cast
from urllib.parse import parse_qs

from fastapi import Depends, HTTPException, Request, status

from callcenter.auth.errors import AuthStoreUnavailable
from callcenter.auth.models import Principal, Role
from callcenter.auth.store import AuthStore
from callcenter.auth.tokens import same_secret

__all__ = [
    "AdminPrincipal",
    "AuthStoreDep",
    "CurrentPrincipal",
    "StaffPrincipal",
    "SupervisorPrincipal",
    "current_principal",
    "require_role",
]

logger = logging.getLogger(__name__)

SESSION_COOKIE = "callbot_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FORM_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_FORM_BYTES = 64 * 1024  # a form body larger than this is not read for a CSRF field


def get_auth_store(request: Request) -> AuthStore:
    store = getattr(request.app.state, "auth_store", None)
    if store is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "authentication is not set up")
    return cast(AuthStore, store)


AuthStoreDep = Annotated[AuthStore, Depends(get_auth_store)]


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
    )


def store_unavailable(exc: AuthStoreUnavailable) -> HTTPException:
    logger.error("authentication store unavailable: %s", exc)
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "the account database is unavailable; try again shortly",
        headers={"Retry-After": "5"},
    )


async def current_principal(request: Request, store: AuthStoreDep) -> Principal:
    """The caller, from a bearer token or a session cookie (with CSRF on writes)."""
    authorization = request.headers.get("Authorization")
    try:
        if authorization is not None:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise unauthorized("use 'Authorization: Bearer <token>'")
            principal = await store.token_principal(token.strip())
            if principal is None:
                raise unauthorized("invalid or revoked token")
            return principal
        session_id = request.cookies.get(SESSION_COOKIE)
        if not session_id:
            raise unauthorized("authentication required: log in or send a bearer token")
        principal = await store.session_principal(session_id)
    except AuthStoreUnavailable as exc:
        raise store_unavailable(exc) from None
    if principal is None:
        raise unauthorized("session expired or unknown; log in again")
    if request.method not in SAFE_METHODS and not await _csrf_ok(request, principal):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_role(*roles: Role | str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets in only principals holding one of `roles`."""
    allowed = frozenset(Role(role) for role in roles)
    if not allowed:
        raise ValueError("require_role needs at least one role")
    names = ", ".join(sorted(role.value for role in allowed))

    async def check_role(principal: CurrentPrincipal) -> Principal:
        if principal.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {principal.role.value!r} may not do this; needs one of: {names}",
            )
        return principal

    return check_role


StaffPrincipal = Annotated[
    Principal, Depends(require_role(Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN))
]
SupervisorPrincipal = Annotated[Principal, Depends(require_role(Role.SUPERVISOR, Role.ADMIN))]
AdminPrincipal = Annotated[Principal, Depends(require_role(Role.ADMIN))]


async def _csrf_ok(request: Request, principal: Principal) -> bool:
    given = request.headers.get(CSRF_HEADER)
    if given is None and _is_urlencoded_form(request) and _declared_small(request):
        body = await request.body()  # cached: the endpoint can still read it
        values = parse_qs(body.decode("utf-8", "replace")).get(CSRF_FORM_FIELD)
        given = values[0] if values else None
    return same_secret(given, principal.csrf_token)


def _is_urlencoded_form(request: Request) -> bool:
    content_type = request.headers.get("Content-Type", "")
    return content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded"


def _declared_small(request: Request) -> bool:
    length = request.headers.get("Content-Length", "")
    return length.isdigit() and int(length) <= MAX_FORM_BYTES
