"""Staff pages: `/login` and the dispatcher console at `/dispatch`, and their assets.

Pages are static files that talk to the API; the console is only served to a
logged-in staff member (anyone else is sent to `/login?next=/dispatch`), and
with a content security policy that allows scripts, styles and connections
from this origin only.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from callcenter.auth.deps import SESSION_COOKIE, AuthStoreDep
from callcenter.auth.errors import AuthStoreUnavailable
from callcenter.auth.models import Role

STAFF = frozenset({Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN})
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; media-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)


def static_text(name: str) -> str:
    return resources.files("callcenter.web").joinpath(f"static/{name}").read_text("utf-8")


def pages_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/login")
    async def login_page() -> HTMLResponse:
        return HTMLResponse(static_text("login.html"), headers=PAGE_HEADERS)

    @router.get("/dispatch")
    async def dispatch_page(request: Request, store: AuthStoreDep) -> Response:
        session_id = request.cookies.get(SESSION_COOKIE)
        try:
            principal = await store.session_principal(session_id) if session_id else None
        except AuthStoreUnavailable:
            return HTMLResponse(
                "The account database is unavailable; try again shortly.",
                status_code=503,
                headers={**PAGE_HEADERS, "Retry-After": "5"},
            )
        if principal is None or principal.role not in STAFF:
            return RedirectResponse("/login?next=/dispatch", status_code=303)
        return HTMLResponse(
            static_text("dispatch.html"),
            headers={**PAGE_HEADERS, "Content-Security-Policy": CONSOLE_CSP},
        )

    @router.get("/static/{name}")
    async def asset(name: str) -> Response:
        kind = _ASSETS.get(name)
        if kind is None:  # a fixed list: no path is ever built from the request
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(static_text(name), media_type=kind, headers=PAGE_HEADERS)

    return router


_ASSETS = {
    "common.js": "text/javascript; charset=utf-8",
    "dispatch.js": "text/javascript; charset=utf-8",
    "dispatch.css": "text/css; charset=utf-8",
    "phone.js": "text/javascript; charset=utf-8",
    "review.js": "text/javascript; charset=utf-8",
    "review-call.js": "text/javascript; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "review.css": "text/css; charset=utf-8",
}
