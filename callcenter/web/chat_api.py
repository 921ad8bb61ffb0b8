"""HTTP API of the text chat channel, and its page at /chat."""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from callcenter.center import CallCenter, NotReady
from callcenter.chat import MAX_MESSAGE_CHARS, ChatError, ChatService, ChatState
from callcenter.events import Language, Line
from callcenter.settings import Settings
from callcenter.web.ratelimit import RateLimiter, client_address


class NewChat(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    line: Literal["113", "114"]
    lang: Literal["vi", "en"] = "vi"
    caller: str | None = Field(default=None, alias="from", max_length=32)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Twice the limit here so that the service can answer with its own clear
    # message after dropping control characters and spaces.
    text: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS * 2)


class ChatOpened(BaseModel):
    session_id: str
    messages: list[str]
    state: ChatState


class ChatReply(BaseModel):
    messages: list[str]
    state: ChatState


def _chat_service(request: Request) -> ChatService:
    center: CallCenter = request.app.state.center
    try:
        return center.chat
    except NotReady as exc:
        raise HTTPException(503, str(exc)) from exc


Chat = Annotated[ChatService, Depends(_chat_service)]


def chat_router(settings: Settings) -> APIRouter:
    """The chat routes; opening chats and sending messages are rate-limited (429)."""
    router = APIRouter()
    opens_by_address = RateLimiter(settings.chat_opens_per_ip_per_min, burst=20)
    opens_by_number = RateLimiter(settings.chat_opens_per_number_per_min, burst=5)
    messages_by_chat = RateLimiter(settings.chat_messages_per_chat_per_min, burst=15)
    messages_by_address = RateLimiter(settings.chat_opens_per_ip_per_min * 5, burst=100)

    @router.post(
        "/api/v1/chat/sessions",
        status_code=201,
        tags=["chat"],
        responses={429: {"description": "too many chats from this address or number"}},
    )
    async def open_chat(body: NewChat, chat: Chat, request: Request) -> ChatOpened:
        """Open a chat with the 113 or 114 line; the answer holds the greeting."""
        opens_by_address.check(client_address(request), "chats from this address")
        if body.caller:
            opens_by_number.check(body.caller, "chats from this number")
        try:
            session_id, messages, state = await chat.open(
                Line(body.line), Language(body.lang), body.caller
            )
        except ChatError as exc:
            raise HTTPException(exc.status_code, exc.detail) from exc
        return ChatOpened(session_id=session_id, messages=messages, state=state)

    @router.post(
        "/api/v1/chat/sessions/{session_id}/messages",
        tags=["chat"],
        responses={429: {"description": "messages sent too fast"}},
    )
    async def send_message(
        session_id: str, body: ChatMessage, chat: Chat, request: Request
    ) -> ChatReply:
        """One resident message in, the bot's replies and the incident state out."""
        messages_by_address.check(client_address(request), "messages from this address")
        messages_by_chat.check(session_id[:128], "messages in this chat")
        try:
            messages, state = await chat.message(session_id, body.text)
        except ChatError as exc:
            raise HTTPException(exc.status_code, exc.detail) from exc
        return ChatReply(messages=messages, state=state)

    @router.get("/chat", response_class=HTMLResponse, include_in_schema=False)
    async def chat_page() -> HTMLResponse:
        page = resources.files("callcenter.web").joinpath("static/chat.html").read_text("utf-8")
        return HTMLResponse(page)

    return router
