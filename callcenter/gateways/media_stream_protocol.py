"""The media-stream WebSocket protocol (Twilio Media Streams JSON), parsed.

A pure, synchronous core: `parse_message` turns one text message into a typed
event or raises `ProtocolError`, which says whether the socket must close.
`media_message`, `mark_message` and `clear_message` build what we send back.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from callcenter.events import CallbotError, Language, Line

# WebSocket close codes (RFC 6455)
CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013

MULAW_RATE_HZ = 8000
MAX_MEDIA_PAYLOAD_BYTES = 8000  # one second of µ-law 8 kHz in one message
_NAME_MAX = 128


class ProtocolError(CallbotError):
    """A message we cannot use. `close_code` is set when the socket must close."""

    def __init__(self, reason: str, close_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close_code = close_code


@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str


@dataclass(frozen=True, slots=True)
class Start:
    stream_sid: str
    call_sid: str
    line: Line
    language: Language
    caller_number: str | None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Media:
    stream_sid: str
    payload: bytes  # µ-law, 8 kHz
    timestamp_ms: int | None


@dataclass(frozen=True, slots=True)
class Mark:
    stream_sid: str
    name: str


@dataclass(frozen=True, slots=True)
class Dtmf:
    stream_sid: str
    digit: str


@dataclass(frozen=True, slots=True)
class Stop:
    stream_sid: str


Message = Connected | Start | Media | Mark | Dtmf | Stop

_DTMF_DIGITS = frozenset("0123456789*#ABCD")


def parse_message(raw: str | bytes) -> Message:
    if isinstance(raw, bytes):
        raise ProtocolError("binary messages are not part of the protocol; send JSON text")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, or a 4,300-digit int
        raise ProtocolError(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("a message must be a JSON object")
    event = data.get("event")
    if not isinstance(event, str):
        raise ProtocolError("missing 'event'")
    if event == "connected":
        return Connected(protocol=str(data.get("protocol", "")))
    if event == "start":
        return _parse_start(data)
    stream_sid = _stream_sid(data)
    if event == "media":
        return _parse_media(data, stream_sid)
    if event == "mark":
        mark = _object(data, "mark")
        return Mark(stream_sid, _short_string(mark.get("name"), "mark.name"))
    if event == "dtmf":
        digit = _object(data, "dtmf").get("digit")
        if not isinstance(digit, str) or digit.upper() not in _DTMF_DIGITS:
            raise ProtocolError("dtmf.digit must be one of 0-9 * # A-D")
        return Dtmf(stream_sid, digit.upper())
    if event == "stop":
        return Stop(stream_sid)
    raise ProtocolError(f"unknown event {event[:_NAME_MAX]!r}")


def _parse_start(data: dict[str, Any]) -> Start:
    start = _object(data, "start")
    stream_sid = start.get("streamSid", data.get("streamSid"))
    stream_sid = _short_string(stream_sid, "start.streamSid", close=CLOSE_POLICY)
    media_format = start.get("mediaFormat")
    if media_format is not None:
        if not isinstance(media_format, dict):
            raise ProtocolError("start.mediaFormat must be an object", CLOSE_POLICY)
        encoding = media_format.get("encoding", "audio/x-mulaw")
        rate = media_format.get("sampleRate", MULAW_RATE_HZ)
        channels = media_format.get("channels", 1)
        if encoding != "audio/x-mulaw" or rate != MULAW_RATE_HZ or channels != 1:
            raise ProtocolError(
                f"unsupported media format {encoding!r} {rate!r} Hz x{channels!r}; "
                "send audio/x-mulaw 8000 Hz mono",
                CLOSE_UNSUPPORTED,
            )
    params = start.get("customParameters") or {}
    if not isinstance(params, dict):
        raise ProtocolError("start.customParameters must be an object", CLOSE_POLICY)
    warnings: list[str] = []
    # A caller is never refused for a platform's configuration mistake: the line
    # and language fall back to defaults and the mistake is logged.
    try:
        line = Line(str(params.get("line", "")))
    except ValueError:
        warnings.append(f"line {params.get('line')!r} is not 113 or 114; answering as 113")
        line = Line.POLICE
    try:
        language = Language(str(params.get("lang", "")))
    except ValueError:
        warnings.append(f"lang {params.get('lang')!r} is not vi or en; answering in vi")
        language = Language.VI
    caller = params.get("from")
    caller_number = caller.strip()[:32] if isinstance(caller, str) and caller.strip() else None
    call_sid = start.get("callSid")
    return Start(
        stream_sid=stream_sid,
        call_sid=call_sid[:_NAME_MAX] if isinstance(call_sid, str) else stream_sid,
        line=line,
        language=language,
        caller_number=caller_number,
        warnings=tuple(warnings),
    )


def _parse_media(data: dict[str, Any], stream_sid: str) -> Media:
    media = _object(data, "media")
    track = media.get("track", "inbound")
    if track != "inbound":
        raise ProtocolError(f"media.track {track!r} is not inbound")
    payload = media.get("payload")
    if not isinstance(payload, str) or not payload:
        raise ProtocolError("media.payload must be a non-empty base64 string")
    if len(payload) > MAX_MEDIA_PAYLOAD_BYTES * 4 // 3 + 4:
        raise ProtocolError(f"media.payload over {MAX_MEDIA_PAYLOAD_BYTES} bytes")
    try:
        audio = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("media.payload is not valid base64") from None
    if len(audio) > MAX_MEDIA_PAYLOAD_BYTES:
        raise ProtocolError(f"media.payload over {MAX_MEDIA_PAYLOAD_BYTES} bytes")
    timestamp = media.get("timestamp")
    try:
        timestamp_ms = int(timestamp) if timestamp is not None else None
    except (TypeError, ValueError, OverflowError):  # e.g. 1e999 (infinity)
        timestamp_ms = None
    return Media(stream_sid, audio, timestamp_ms)


def _object(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise ProtocolError(f"'{key}' must be an object")
    return value


def _stream_sid(data: dict[str, Any]) -> str:
    return _short_string(data.get("streamSid"), "streamSid")


def _short_string(value: object, name: str, *, close: int | None = None) -> str:
    if not isinstance(value, str) or not value or len(value) > _NAME_MAX:
        raise ProtocolError(f"{name} must be a string of 1-{_NAME_MAX} characters", close)
    return value


def media_message(stream_sid: str, mulaw: bytes) -> str:
    payload = base64.b64encode(mulaw).decode("ascii")
    return json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def mark_message(stream_sid: str, name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    return json.dumps({"event": "clear", "streamSid": stream_sid})
