"""The text chat channel: the same dialog as a voice call, one message at a time.

Each chat is recorded like a call (channel "chat"): every message is a turn,
and the incident the dialog gathers is written as it grows. When the dialog
fails, the resident is told a dispatcher is taking over, and what was said is
kept.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from callcenter.events import CallbotError, CallInfo, DialogTurn, Language, Line
from callcenter.incidents import EvidenceLog, Utterance, incident_from_turn, incident_id_for
from callcenter.logs import call_context
from callcenter.prompts import Prompt, prompt_text
from dialog.base import Dialog
from dispatch.records import CallStatus, Speaker
from dispatch.store import CallStore, TurnData

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000


class ChatError(CallbotError):
    """A request the chat channel cannot take; `status_code` is the HTTP answer."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ChatState:
    category: str | None
    priority: int | None
    requested_slot: str | None
    slots: dict[str, str]
    red_flags: list[str]
    handoff: bool
    done: bool
    incident_id: str | None


@dataclass(slots=True)
class _Chat:
    info: CallInfo
    last_active_s: float
    evidence: EvidenceLog
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    turn: DialogTurn = field(default_factory=lambda: DialogTurn(reply=""))
    muted: bool = False  # the dialog failed: a dispatcher answers from here on
    dispatcher_requested: bool = False
    incident_written: bool = False


class ChatService:
    def __init__(
        self,
        dialog: Dialog,
        store: CallStore,
        *,
        dialog_timeout_s: float,
        max_sessions: int = 10_000,
        idle_timeout_s: float = 3600.0,
        dialog_model: str = "unknown",
    ) -> None:
        self._dialog = dialog
        self._dialog_model = dialog_model
        self._store = store
        self._timeout_s = dialog_timeout_s
        self._max_sessions = max_sessions
        self._idle_timeout_s = idle_timeout_s
        self._chats: dict[str, _Chat] = {}

    async def open(
        self, line: Line, language: Language, caller_number: str | None
    ) -> tuple[str, list[str], ChatState]:
        await self._expire_idle()
        if len(self._chats) >= self._max_sessions:
            raise ChatError(503, "too many open chats; call 113 or 114")
        session_id = "chat-" + secrets.token_urlsafe(12)
        info = CallInfo(session_id, line, language, caller_number, "chat")
        chat = _Chat(
            info=info,
            last_active_s=time.monotonic(),
            evidence=EvidenceLog(self._dialog_model),
        )
        self._chats[session_id] = chat
        with call_context(session_id):
            await self._safe(self._store.start_call(info, datetime.now(UTC)), "start chat")
            try:
                turn = await asyncio.wait_for(self._dialog.start(info), self._timeout_s)
            except (CallbotError, TimeoutError) as exc:
                return (
                    session_id,
                    [await self._hand_off(chat, f"greeting failed: {exc!r}")],
                    self._state(chat),
                )
            chat.turn = turn
            await self._record(chat, "bot", turn.reply, turn)
        return session_id, [turn.reply], self._state(chat)

    async def message(self, session_id: str, text: str) -> tuple[list[str], ChatState]:
        chat = self._chats.get(session_id)
        if chat is None:
            raise ChatError(404, "unknown chat session (it may have expired)")
        cleaned = _clean(text)
        if not cleaned:
            raise ChatError(422, "text must contain something other than spaces")
        if len(cleaned) > MAX_MESSAGE_CHARS:
            raise ChatError(422, f"text is longer than {MAX_MESSAGE_CHARS} characters")
        async with chat.lock:
            chat.last_active_s = time.monotonic()
            with call_context(session_id):
                await self._record(chat, "caller", cleaned, None)
                if chat.muted:
                    return [], self._state(chat)
                try:
                    turn = await asyncio.wait_for(
                        self._dialog.respond(session_id, cleaned), self._timeout_s
                    )
                except (CallbotError, TimeoutError, KeyError) as exc:
                    return [await self._hand_off(chat, f"dialog failed: {exc!r}")], self._state(
                        chat
                    )
                chat.turn = turn
                chat.evidence.note(turn, Utterance(cleaned))
                await self._record(chat, "bot", turn.reply, turn)
                await self._write_incident(chat, turn)
                # A hand-off asks a dispatcher to take over; the dialog keeps
                # gathering details (and the incident keeps growing) until one does.
                chat.dispatcher_requested = chat.dispatcher_requested or turn.handoff
                if turn.done:
                    await self._close(chat, self._status(chat), "dialog finished")
        return [turn.reply], self._state(chat)

    async def _hand_off(self, chat: _Chat, reason: str) -> str:
        log.error("chat handed to a human: %s", reason)
        chat.muted = True
        text = prompt_text(Prompt.HOLD, chat.info.language)
        await self._record(chat, "bot", text, None)
        await self._write_incident(chat, chat.turn)
        await self._close(chat, "handed_off", "dialog failed", reason)
        return text

    async def _write_incident(self, chat: _Chat, turn: DialogTurn) -> None:
        incident = incident_from_turn(chat.info, turn, chat.evidence)
        if incident is not None:
            await self._safe(
                self._store.upsert_incident(incident, actor=f"bot:{self._dialog.name}"),
                "upsert incident",
            )
            chat.incident_written = True

    async def _record(
        self, chat: _Chat, speaker: Speaker, text: str, turn: DialogTurn | None
    ) -> None:
        await self._safe(
            self._store.add_turn(
                chat.info.call_id,
                TurnData(
                    speaker=speaker,
                    text=text,
                    start_ms=None,
                    end_ms=None,
                    intent=turn.category if turn else None,
                    intent_confidence=turn.intent_confidence if turn else None,
                    slots=dict(turn.slots) if turn else {},
                ),
            ),
            "add turn",
        )

    async def _close(
        self, chat: _Chat, status: CallStatus, reason: str, handoff_reason: str | None = None
    ) -> None:
        await self._safe(
            self._store.end_call(
                chat.info.call_id, status, reason, datetime.now(UTC), handoff_reason=handoff_reason
            ),
            "end chat",
        )

    async def _expire_idle(self) -> None:
        now = time.monotonic()
        for session_id, chat in list(self._chats.items()):
            if now - chat.last_active_s > self._idle_timeout_s and not chat.lock.locked():
                del self._chats[session_id]
                await self._close(chat, self._status(chat), "chat idle")
                await self._dialog.end(session_id)

    def _state(self, chat: _Chat) -> ChatState:
        turn = chat.turn
        return ChatState(
            category=turn.category,
            priority=turn.priority,
            requested_slot=turn.requested_slot,
            slots=dict(turn.slots),
            red_flags=list(turn.red_flags),
            handoff=chat.muted or chat.dispatcher_requested,
            done=turn.done,
            incident_id=incident_id_for(chat.info.call_id) if chat.incident_written else None,
        )

    @staticmethod
    def _status(chat: _Chat) -> CallStatus:
        return "handed_off" if chat.muted or chat.dispatcher_requested else "completed"

    async def _safe(self, write: object, what: str) -> None:
        try:
            await write  # type: ignore[misc]
        except (CallbotError, TimeoutError) as exc:
            log.error("store write failed (%s): %r", what, exc)


def _clean(text: str) -> str:
    """Drop control characters (keep new lines) and surrounding spaces."""
    return "".join(ch for ch in text if ch.isprintable() or ch == "\n").strip()
