"""The FastAPI application: health, the media-stream gateway, later the consoles."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, WebSocket
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from callcenter.auth.errors import AuthStoreUnavailable
from callcenter.auth.router import auth_router
from callcenter.auth.store import SqlAuthStore
from callcenter.center import CallCenter
from callcenter.events import CallbotError
from callcenter.gateways import Gateway, build_gateways
from callcenter.gateways.media_stream import handle_media_stream
from callcenter.settings import Settings
from callcenter.web.calls_api import calls_router
from callcenter.web.chat_api import chat_router
from callcenter.web.exports import exports_router
from callcenter.web.incidents_api import incidents_router
from callcenter.web.limits import BodyLimit, SecurityHeaders
from callcenter.web.live import LiveEvents, live_router
from callcenter.web.pages import pages_router
from callcenter.web.ratelimit import RateLimiter
from callcenter.web.review_api import review_router

MAX_BODY_BYTES = 64 * 1024  # no request the service takes is near this

log = logging.getLogger(__name__)


class UnsafeConfiguration(CallbotError):
    """Production mode with default or missing secrets: the service does not start."""


def create_app(settings: Settings) -> FastAPI:
    if settings.environment == "production":
        problems = settings.production_problems()
        if problems:
            raise UnsafeConfiguration("refusing to start in production: " + "; ".join(problems))
    center = CallCenter(settings)
    auth_store = SqlAuthStore(
        settings.resolved_database_url,
        session_ttl_s=settings.session_ttl_s,
        max_failures=settings.login_max_failures,
        lockout_window_s=settings.login_lockout_s,
    )

    live = LiveEvents(center.feed, lambda: center.store.store)
    gateways = build_gateways(center)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await auth_store.create_schema()
        except AuthStoreUnavailable:
            log.exception("account tables unavailable; logins answer 503 until it is back")
        loading = asyncio.create_task(_start(center))
        fanning_out = asyncio.create_task(live.run(), name="live-events")
        started: list[Gateway] = []
        for gateway in gateways:
            try:
                await gateway.start()
            except (CallbotError, OSError) as exc:
                log.error("the %s gateway did not start: %s", gateway.name, exc)
                center.gateways[gateway.name] = f"failed: {exc}"
                continue
            started.append(gateway)
            center.gateways[gateway.name] = gateway.address or "listening"
        try:
            yield
        finally:
            for gateway in reversed(started):
                await gateway.stop()
            loading.cancel()
            fanning_out.cancel()
            await center.stop()
            await auth_store.close()

    app = FastAPI(
        title="callbot",
        summary="AI call-taker for the 113 and 114 emergency hotlines",
        lifespan=lifespan,
    )
    app.state.center = center
    app.state.auth_store = auth_store

    @app.get("/health")
    async def health() -> JSONResponse:
        """200 once calls are taken; 503 with 'starting' or 'degraded' otherwise."""
        code, body = center.health()
        return JSONResponse(body, status_code=code)

    app.include_router(chat_router(settings))
    app.include_router(
        auth_router(
            cookie_secure=settings.cookie_secure,
            logins=RateLimiter(settings.logins_per_ip_per_min, burst=10),
        )
    )
    app.include_router(incidents_router())
    app.include_router(calls_router())
    app.include_router(exports_router())
    app.include_router(review_router(settings.review_form_file))
    app.include_router(live_router(live))
    app.include_router(pages_router())
    if settings.webrtc_enabled:
        try:
            from callcenter.web.phone_api import phone_router

            app.include_router(phone_router(center))
        except ImportError as exc:  # aiortc's native parts could not load
            log.error("the browser softphone cannot be loaded: %s", exc)
            center.gateways["webrtc"] = f"failed: cannot load ({exc})"
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(SecurityHeaders)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus metrics (no personal data: counts, latencies, the queue's depth)."""
        try:
            for status, count in (await center.store.store.open_counts()).items():
                center.metrics.queue_depth.labels(status).set(count)
        except CallbotError as exc:  # the store is starting or down: the rest still counts
            log.warning("queue depth not measured: %s", exc)
        return Response(center.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.websocket("/calls/media-stream")
    async def media_stream(websocket: WebSocket) -> None:
        await handle_media_stream(websocket, center)

    return app


async def _start(center: CallCenter) -> None:
    try:
        await center.start()
    except Exception:
        log.exception("start-up failed")
        for name, state in center.components.items():
            if state == "starting":
                center.components[name] = "failed: see the service log"
