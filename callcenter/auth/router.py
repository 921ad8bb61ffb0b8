"""`/auth`: log in (sets the session cookie), log out, and who am I.

`POST /auth/login` takes JSON or an urlencoded form (`username`, `password`)
and answers the role and the session's CSRF token, which pages send back in
`X-CSRF-Token` (or a `csrf_token` form field) on every state-changing request.
Read without python-multipart: the body is small and parsed here, capped.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel

from callcenter.auth.deps import (
    SESSION_COOKIE,
    AuthStoreDep,
    CurrentPrincipal,
    store_unavailable,
    unauthorized,
)
from callcenter.auth.errors import AccountLocked, AuthStoreUnavailable, InvalidCredentials
from callcenter.auth.models import Principal, Role
from callcenter.web.ratelimit import RateLimiter, client_address

__all__ = ["CookieSecure", "auth_router"]

logger = logging.getLogger(__name__)

CookieSecure = Literal["auto", "always", "never"]
MAX_LOGIN_BYTES = 8 * 1024

_LOGIN_BODY = {
    "type": "object",
    "required": ["username", "password"],
    "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
}


class LoginAnswer(BaseModel):
    username: str
    role: Role
    csrf_token: str
    expires_at: datetime


class PrincipalAnswer(BaseModel):
    name: str
    role: Role
    kind: Literal["session", "token"]
    csrf_token: str | None = None
    expires_at: datetime | None = None


def auth_router(
    *, cookie_secure: CookieSecure = "auto", logins: RateLimiter | None = None
) -> APIRouter:
    """The `/auth` routes; `cookie_secure="auto"` marks the cookie Secure over https;
    `logins` limits login attempts per client address (on top of account lockout)."""
    router = APIRouter(prefix="/auth", tags=["auth"])

    @router.post(
        "/login",
        responses={
            401: {"description": "wrong username or password"},
            413: {"description": "body too large"},
            422: {"description": "username or password missing"},
            429: {"description": "too many failed logins; see Retry-After"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": _LOGIN_BODY},
                    "application/x-www-form-urlencoded": {"schema": _LOGIN_BODY},
                },
            }
        },
    )
    async def login(request: Request, response: Response, store: AuthStoreDep) -> LoginAnswer:
        """Open a session: sets the HttpOnly session cookie, answers the CSRF token."""
        if logins is not None:
            logins.check(client_address(request), "login attempts from this address")
        username, password = _credentials(await _read_capped(request, MAX_LOGIN_BYTES), request)
        try:
            old_session = request.cookies.get(SESSION_COOKIE)
            if old_session:
                await store.logout(old_session)
            opened = await store.login(username, password)
        except InvalidCredentials:
            raise unauthorized("wrong username or password") from None
        except AccountLocked as exc:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                str(exc),
                headers={"Retry-After": str(int(exc.retry_after_s) + 1)},
            ) from None
        except AuthStoreUnavailable as exc:
            raise store_unavailable(exc) from None
        secure = cookie_secure == "always" or (
            cookie_secure == "auto" and request.url.scheme == "https"
        )
        response.set_cookie(
            SESSION_COOKIE,
            opened.session_id,
            max_age=int(store.session_ttl_s),
            path="/",
            httponly=True,
            samesite="strict",
            secure=secure,
        )
        response.headers["Cache-Control"] = "no-store"
        return LoginAnswer(
            username=opened.principal.name,
            role=opened.principal.role,
            csrf_token=opened.csrf_token,
            expires_at=opened.expires_at,
        )

    @router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
    async def logout(
        request: Request, principal: CurrentPrincipal, store: AuthStoreDep
    ) -> Response:
        """End the session (CSRF token required) and clear the cookie."""
        session_id = request.cookies.get(SESSION_COOKIE)
        if principal.kind == "session" and session_id:
            try:
                await store.logout(session_id)
            except AuthStoreUnavailable as exc:
                raise store_unavailable(exc) from None
        answer = Response(status_code=status.HTTP_204_NO_CONTENT)
        answer.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return answer

    @router.get("/me")
    async def me(principal: CurrentPrincipal, response: Response) -> PrincipalAnswer:
        """Who is logged in (and the session's CSRF token, for pages)."""
        response.headers["Cache-Control"] = "no-store"
        return _principal_answer(principal)

    return router


def _principal_answer(principal: Principal) -> PrincipalAnswer:
    return PrincipalAnswer(
        name=principal.name,
        role=principal.role,
        kind=principal.kind,
        csrf_token=principal.csrf_token,
        expires_at=principal.session_expires_at,
    )


async def _read_capped(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "login body too large")
    return bytes(body)


def _credentials(body: bytes, request: Request) -> tuple[str, str]:
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    fields: dict[str, object]
    if content_type == "application/json":
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "malformed JSON") from None
        fields = parsed if isinstance(parsed, dict) else {}
    elif content_type == "application/x-www-form-urlencoded":
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        fields = {key: values[0] for key, values in form.items()}
    else:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "send JSON or an urlencoded form with username and password",
        )
    username, password = fields.get("username"), fields.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "username and password are required"
        )
    return username, password
