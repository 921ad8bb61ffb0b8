"""Media-stream WebSocket gateway: a call streamed in Twilio's JSON format.

Caller audio (µ-law 8 kHz, 20 ms) is decoded, resampled to the internal
16 kHz and pushed into a `CallSession`; the bot's audio goes back the same way.
Bad messages get a log line and are dropped; only messages that make the call
impossible close the socket, with a close code that says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from fastapi import WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from callcenter.audio import StreamResampler, array_to_pcm, mulaw_decode, mulaw_encode, pcm_to_array
from callcenter.center import CallCenter, NotReady
from callcenter.events import CallInfo
from callcenter.gateways import media_stream_protocol as proto
from callcenter.logs import call_context
from callcenter.session import CallSession

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 10.0
_AHEAD_WARN_S = 2.0


class _SocketOutput:
    """The bot's side of the call, written to the WebSocket."""

    def __init__(self, websocket: WebSocket, stream_sid: str) -> None:
        self._ws = websocket
        self._sid = stream_sid
        self._down = StreamResampler(16_000, 8_000)
        self._lock = asyncio.Lock()
        self.closed = False

    async def _send(self, text: str) -> None:
        if self.closed:
            return
        try:
            async with self._lock:
                await self._ws.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.closed = True

    async def send_audio(self, pcm: bytes) -> None:
        mulaw = mulaw_encode(self._down.process(pcm_to_array(pcm)))
        await self._send(proto.media_message(self._sid, mulaw))

    async def send_mark(self, name: str) -> None:
        await self._send(proto.mark_message(self._sid, name))

    async def clear(self) -> None:
        await self._send(proto.clear_message(self._sid))

    async def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        if self._ws.client_state is WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, OSError):
                await self._ws.close(proto.CLOSE_NORMAL, reason[:120])


async def handle_media_stream(websocket: WebSocket, center: CallCenter) -> None:
    await websocket.accept()
    max_bytes = center.settings.media_max_message_bytes
    max_errors = center.settings.media_max_errors
    errors = 0
    session: CallSession | None = None
    session_task: asyncio.Task[object] | None = None
    stream_sid = ""
    upsample = StreamResampler(8_000, 16_000)
    first_media_at: float | None = None
    audio_s = 0.0
    warned_ahead = False

    async def fail(code: int, reason: str) -> None:
        log.warning("closing media stream: %s", reason)
        if websocket.client_state is WebSocketState.CONNECTED:
            await websocket.close(code, reason[:120])

    try:
        while True:
            timeout = _START_TIMEOUT_S if session is None else None
            try:
                raw = await asyncio.wait_for(_receive(websocket), timeout)
            except TimeoutError:
                await fail(proto.CLOSE_POLICY, "no start event within 10 s")
                return
            if raw is None:  # the caller's socket dropped
                break
            if len(raw) > max_bytes:
                errors += 1
                log.warning("dropped a %d-byte message (limit %d)", len(raw), max_bytes)
                if errors >= max_errors:
                    await fail(proto.CLOSE_TOO_BIG, "too many oversized messages")
                    break
                continue
            try:
                message = proto.parse_message(raw)
            except proto.ProtocolError as exc:
                errors += 1
                log.warning("bad media-stream message: %s", exc.reason)
                if exc.close_code is not None:
                    await fail(exc.close_code, exc.reason)
                    break
                if errors >= max_errors:
                    await fail(proto.CLOSE_POLICY, f"{errors} bad messages")
                    break
                continue

            if isinstance(message, proto.Connected):
                continue
            if isinstance(message, proto.Start):
                if session is not None:
                    log.warning("second start event ignored")
                    continue
                for warning in message.warnings:
                    log.warning("start: %s", warning)
                stream_sid = message.stream_sid
                info = CallInfo(
                    call_id=f"ms-{uuid.uuid4().hex[:16]}",
                    line=message.line,
                    language=message.language,
                    caller_number=message.caller_number,
                    channel="media-stream",
                )
                try:
                    session = center.open_call(info, _SocketOutput(websocket, stream_sid))
                except NotReady as exc:
                    await fail(proto.CLOSE_TRY_AGAIN, str(exc))
                    return
                session_task = asyncio.create_task(center.run_call(session))
                log.info("media-stream call %s started on line %s", info.call_id, info.line)
                continue
            if session is None:
                errors += 1
                log.warning("%s before start ignored", type(message).__name__.lower())
                continue
            if message.stream_sid != stream_sid:
                errors += 1
                log.warning("message for another streamSid ignored")
                continue
            if isinstance(message, proto.Media):
                now = time.monotonic()
                first_media_at = first_media_at or now
                audio_s += len(message.payload) / proto.MULAW_RATE_HZ
                if not warned_ahead and audio_s - (now - first_media_at) > _AHEAD_WARN_S:
                    warned_ahead = True
                    with call_context(session.info.call_id):
                        log.warning("caller audio arrives faster than real time; pacing it")
                pcm = array_to_pcm(upsample.process(mulaw_decode(message.payload)))
                await session.push_audio(pcm)
            elif isinstance(message, proto.Dtmf):
                session.dtmf(message.digit)
            elif isinstance(message, proto.Stop):
                session.hangup("caller hung up")
                break
            # Mark echoes need no action: playback is paced on our side.
    finally:
        if session is not None:
            session.hangup("socket closed")
        if session_task is not None:
            await session_task


async def _receive(websocket: WebSocket) -> str | bytes | None:
    """Next text or binary message; None once the peer has gone."""
    if websocket.client_state is not WebSocketState.CONNECTED:
        return None
    try:
        message = await websocket.receive()
    except (WebSocketDisconnect, RuntimeError):
        return None
    if message["type"] == "websocket.disconnect":
        return None
    text = message.get("text")
    if text is not None:
        return str(text)
    data = message.get("bytes")
    return bytes(data) if data is not None else b""
