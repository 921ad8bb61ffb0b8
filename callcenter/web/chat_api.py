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


def chat_router() -> APIRouter:
    router = APIRouter()

    @router.post("/api/v1/chat/sessions", status_code=201, tags=["chat"])
    async def open_chat(body: NewChat, chat: Chat) -> ChatOpened:
        """Open a chat with the 113 or 114 line; the answer holds the greeting."""
        try:
            session_id, messages, state = await chat.open(
                Line(body.line), Language(body.lang), body.caller
            )
        except ChatError as exc:
            raise HTTPException(exc.status_code, exc.detail) from exc
        return ChatOpened(session_id=session_id, messages=messages, state=state)

    @router.post("/api/v1/chat/sessions/{session_id}/messages", tags=["chat"])
    async def send_message(session_id: str, body: ChatMessage, chat: Chat) -> ChatReply:
        """One resident message in, the bot's replies and the incident state out."""
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
