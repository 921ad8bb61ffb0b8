"""The FastAPI application: health, the media-stream gateway, later the consoles."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, WebSocket
from fastapi.responses import JSONResponse

from callcenter.center import CallCenter
from callcenter.gateways.media_stream import handle_media_stream
from callcenter.settings import Settings
from callcenter.web.chat_api import chat_router

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    center = CallCenter(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(_start(center))
        try:
            yield
        finally:
            loading.cancel()
            await center.stop()

    app = FastAPI(
        title="callbot",
        summary="AI call-taker for the 113 and 114 emergency hotlines",
        lifespan=lifespan,
    )
    app.state.center = center

    @app.get("/health")
    async def health() -> JSONResponse:
        """200 once calls are taken; 503 with 'starting' or 'degraded' otherwise."""
        code, body = center.health()
        return JSONResponse(body, status_code=code)

    app.include_router(chat_router())

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
