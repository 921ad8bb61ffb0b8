"""Hostile input for the media-stream protocol core (`parse_message`).

Whatever a telephony platform (or anyone who reaches the WebSocket) sends, the
parser returns one of its messages or raises its own `ProtocolError`; only a
bad `start` may close the socket, so a call that can go on is never ended by
a bad message. The gateway relies on this: it catches `ProtocolError` only.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from hypothesis import given, reject
from hypothesis import strategies as st

from callcenter.events import Language, Line
from callcenter.gateways.media_stream_protocol import (
    CLOSE_POLICY,
    CLOSE_UNSUPPORTED,
    MAX_MEDIA_PAYLOAD_BYTES,
    Connected,
    Dtmf,
    Mark,
    Media,
    Message,
    ProtocolError,
    Start,
    Stop,
    mark_message,
    media_message,
    parse_message,
)
from tests.fuzz.budget import fuzz_settings

pytestmark = [pytest.mark.unit, pytest.mark.timeout(120)]

# Bugs still open, as (exception, message): an example that hits one is
# discarded so that the search goes on looking for others. The two this suite
# found (media.timestamp 1e999, a JSON integer over 4,300 digits) are fixed and
# kept as the regression tests at the bottom.
KNOWN_BUGS: tuple[tuple[type[BaseException], str], ...] = ()
# The payload limit once let 8,001 bytes through; fixed.
KNOWN_PAYLOAD_SLACK_BYTES = 0

SID = "MZ0123456789abcdef"
DTMF_DIGITS = "0123456789*#ABCD"
EVENT_TYPES: dict[str, type[Message]] = {
    "connected": Connected,
    "start": Start,
    "media": Media,
    "mark": Mark,
    "dtmf": Dtmf,
    "stop": Stop,
}

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and ±Infinity too: Python's json reads them
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
# the values a mutated field is most likely to get wrong
wrong_types = (
    json_values
    | st.sampled_from(["", " ", "\x00", "113", "114", "en", "vi", "audio/x-mulaw", "=", "AAAA"])
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.text(min_size=129, max_size=300)
)


# JSON number literals that Python reads but that are hostile as values: they
# cannot be produced with json.dumps, so they are spliced into the text.
hostile_literals = st.sampled_from(
    [
        "1e999",
        "-1e999",
        "NaN",
        "Infinity",
        "-Infinity",
        "1" * 4301,
        "-" + "9" * 5000,
        "1e-999",
        "0.1e309",
        "123456789012345678901234567890",
        "-0",
        "[]",
        "{}",
        "null",
    ]
)
RAW = "@@raw-{}@@"


def parse(raw: str | bytes) -> Message | ProtocolError:
    """The parser's answer: a message or its own error; anything else fails the test."""
    try:
        return parse_message(raw)
    except ProtocolError as exc:
        return exc
    except Exception as exc:
        if any(isinstance(exc, kind) and text in str(exc) for kind, text in KNOWN_BUGS):
            reject()
        raise


def check_message(message: Message) -> None:
    """What the gateway may assume about any message the parser returns."""
    if isinstance(message, Connected):
        assert isinstance(message.protocol, str)
    elif isinstance(message, Start):
        assert isinstance(message.stream_sid, str) and 1 <= len(message.stream_sid) <= 128
        assert isinstance(message.call_sid, str) and len(message.call_sid) <= 128
        assert message.line in (Line.POLICE, Line.FIRE)
        assert message.language in (Language.VI, Language.EN)
        number = message.caller_number
        assert number is None or (0 < len(number) <= 32 and number == number.strip())
        assert all(isinstance(warning, str) for warning in message.warnings)
    elif isinstance(message, Media):
        check_sid(message.stream_sid)
        assert isinstance(message.payload, bytes)
        assert 0 < len(message.payload) <= MAX_MEDIA_PAYLOAD_BYTES + KNOWN_PAYLOAD_SLACK_BYTES
        assert message.timestamp_ms is None or isinstance(message.timestamp_ms, int)
    elif isinstance(message, Mark):
        check_sid(message.stream_sid)
        assert isinstance(message.name, str) and 1 <= len(message.name) <= 128
    elif isinstance(message, Dtmf):
        check_sid(message.stream_sid)
        assert len(message.digit) == 1 and message.digit in DTMF_DIGITS
    else:
        assert isinstance(message, Stop)
        check_sid(message.stream_sid)


def check_sid(sid: object) -> None:
    assert isinstance(sid, str) and 1 <= len(sid) <= 128


def check_answer(raw: str | bytes, answer: Message | ProtocolError) -> None:
    if isinstance(answer, ProtocolError):
        assert isinstance(answer.reason, str) and answer.reason
        event = _event_of(raw)
        if event == "start":
            # only a start the call cannot be taken with closes the socket
            assert answer.close_code in (None, CLOSE_POLICY, CLOSE_UNSUPPORTED)
        else:
            assert answer.close_code is None, "a bad message other than start closed the call"
    else:
        check_message(answer)


def _event_of(raw: str | bytes) -> object:
    if isinstance(raw, bytes):
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return data.get("event") if isinstance(data, dict) else None


# -- arbitrary input -----------------------------------------------------------------


@fuzz_settings(400)
@given(st.text(max_size=300))
def test_any_text_is_a_message_or_a_protocol_error(raw: str) -> None:
    check_answer(raw, parse(raw))


@fuzz_settings(200)
@given(st.binary(max_size=300))
def test_any_binary_frame_is_refused_without_closing_the_call(raw: bytes) -> None:
    answer = parse(raw)
    assert isinstance(answer, ProtocolError) and answer.close_code is None


@fuzz_settings(400)
@given(json_values)
def test_any_json_value_is_a_message_or_a_protocol_error(value: Any) -> None:
    raw = json.dumps(value)
    check_answer(raw, parse(raw))


@fuzz_settings(300)
@given(st.sampled_from(["connected", "start", "media", "mark", "dtmf", "stop"]), json_values)
def test_any_body_for_a_known_event_is_a_message_or_a_protocol_error(event: str, body: Any) -> None:
    payload = body if isinstance(body, dict) else {"x": body}
    raw = json.dumps({**payload, "event": event})
    check_answer(raw, parse(raw))


# -- valid-looking messages, mutated -------------------------------------------------


def _start(sid: str, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "event": "start",
        "streamSid": sid,
        "start": {
            "streamSid": sid,
            "callSid": "CA0123",
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": params,
        },
    }


@st.composite
def valid_messages(draw: st.DrawFn) -> dict[str, Any]:
    sid = draw(st.text(min_size=1, max_size=128) | st.just(SID))
    kind = draw(st.sampled_from(["connected", "start", "media", "mark", "dtmf", "stop"]))
    if kind == "connected":
        return {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    if kind == "start":
        params = {
            "line": draw(st.sampled_from(["113", "114"])),
            "lang": draw(st.sampled_from(["vi", "en"])),
            "from": draw(st.from_regex(r"\+?[0-9]{3,15}", fullmatch=True)),
        }
        return _start(sid, params)
    if kind == "media":
        audio = draw(st.binary(min_size=1, max_size=320))
        media = {
            "track": "inbound",
            "payload": base64.b64encode(audio).decode(),
            "timestamp": draw(st.sampled_from(["20", 20, "0"])),
        }
        return {"event": "media", "streamSid": sid, "media": media}
    if kind == "mark":
        return {"event": "mark", "streamSid": sid, "mark": {"name": "reply-1"}}
    if kind == "dtmf":
        return {
            "event": "dtmf",
            "streamSid": sid,
            "dtmf": {"digit": draw(st.sampled_from(DTMF_DIGITS))},
        }
    return {"event": "stop", "streamSid": sid}


def _paths(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path into nested objects ("start", "mediaFormat", "encoding")."""
    found: list[tuple[str, ...]] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            found.append((*prefix, key))
            found.extend(_paths(inner, (*prefix, key)))
    return found


@fuzz_settings(500)
@given(valid_messages(), st.data())
def test_valid_messages_with_mutated_fields_never_break_the_parser(
    message: dict[str, Any], data: st.DataObject
) -> None:
    literals: list[str] = []
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = _paths(message)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths), label="field")
        parent = message
        for key in path[:-1]:
            parent = parent[key]
        if not isinstance(parent, dict) or path[-1] not in parent:
            continue
        action = data.draw(st.sampled_from(["replace", "delete", "add", "literal"]), label="action")
        if action == "delete":
            del parent[path[-1]]
        elif action == "literal":
            literal = data.draw(hostile_literals, label="literal")
            parent[path[-1]] = RAW.format(len(literals))
            literals.append(literal)
        elif action == "replace":
            parent[path[-1]] = data.draw(wrong_types, label="value")
        else:
            parent[data.draw(st.text(max_size=10), label="key")] = data.draw(json_values)
    raw = json.dumps(message)
    for number, literal in enumerate(literals):
        raw = raw.replace(json.dumps(RAW.format(number)), literal)
    check_answer(raw, parse(raw))


@fuzz_settings(400)
@given(valid_messages(), st.data())
def test_valid_messages_with_mangled_text_never_break_the_parser(
    message: dict[str, Any], data: st.DataObject
) -> None:
    raw = json.dumps(message)
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        at = data.draw(st.integers(0, len(raw)), label="at")
        cut = data.draw(st.integers(0, 3), label="cut")
        insert = data.draw(
            st.text(max_size=4) | st.sampled_from(['"', "{", "}", "[", ",", ":", "\\"])
        )
        raw = raw[:at] + insert + raw[at + cut :]
    check_answer(raw, parse(raw))


@fuzz_settings(300)
@given(valid_messages())
def test_valid_messages_parse_as_what_they_say(message: dict[str, Any]) -> None:
    answer = parse(json.dumps(message))
    assert not isinstance(answer, ProtocolError), answer.reason
    check_message(answer)
    assert isinstance(answer, EVENT_TYPES[message["event"]])


# -- the start message: a caller is never refused for a platform's mistake ----------


@fuzz_settings(400)
@given(st.dictionaries(st.sampled_from(["line", "lang", "from", "x"]), wrong_types, max_size=4))
def test_a_start_with_any_custom_parameters_is_answered_as_113_or_114(
    params: dict[str, Any],
) -> None:
    answer = parse(json.dumps(_start(SID, params)))
    assert isinstance(answer, Start), answer
    line, lang = str(params.get("line", "")), str(params.get("lang", ""))
    assert answer.line == (Line(line) if line in ("113", "114") else Line.POLICE)
    assert answer.language == (Language(lang) if lang in ("vi", "en") else Language.VI)
    # every fallback is logged
    assert len(answer.warnings) == (line not in ("113", "114")) + (lang not in ("vi", "en"))


# -- media payloads: size and encoding -----------------------------------------------


@fuzz_settings(200)
@given(
    st.integers(1, 320)
    | st.integers(MAX_MEDIA_PAYLOAD_BYTES - 4, MAX_MEDIA_PAYLOAD_BYTES + 4)
    | st.integers(MAX_MEDIA_PAYLOAD_BYTES, 40_000),
    st.text(min_size=1, max_size=128),
)
def test_media_round_trips_and_oversized_payloads_are_refused(size: int, sid: str) -> None:
    audio = bytes(i % 251 for i in range(size))
    answer = parse(media_message(sid, audio))
    if size <= MAX_MEDIA_PAYLOAD_BYTES:
        assert answer == Media(sid, audio, None)
    elif size > MAX_MEDIA_PAYLOAD_BYTES + KNOWN_PAYLOAD_SLACK_BYTES:
        assert isinstance(answer, ProtocolError) and answer.close_code is None


@fuzz_settings(200)
@given(st.text(min_size=1, max_size=128), st.text(min_size=1, max_size=128))
def test_marks_round_trip(sid: str, name: str) -> None:
    assert parse(mark_message(sid, name)) == Mark(sid, name)


@fuzz_settings(300)
@given(st.text(min_size=1, max_size=200))
def test_a_payload_that_is_not_base64_is_refused(payload: str) -> None:
    raw = json.dumps({"event": "media", "streamSid": SID, "media": {"payload": payload}})
    answer = parse(raw)
    if isinstance(answer, Media):  # it was base64 after all
        assert base64.b64decode(payload, validate=True) == answer.payload
    else:
        assert answer.close_code is None


# -- never hangs: the worst messages the gateway lets through (64 KiB) --------------

GATEWAY_LIMIT = 65_536  # Settings.media_max_message_bytes


@pytest.mark.parametrize(
    "raw",
    [
        "[" * GATEWAY_LIMIT,
        '{"a":' * (GATEWAY_LIMIT // 5),
        '"' + "\\u0000" * (GATEWAY_LIMIT // 6 - 1) + '"',
        json.dumps(
            {"event": "media", "streamSid": SID, "media": {"payload": "A" * (GATEWAY_LIMIT - 80)}}
        ),
        json.dumps(
            {"event": "media", "streamSid": SID, "media": {"payload": "=" * (GATEWAY_LIMIT - 80)}}
        ),
        json.dumps({str(i): i for i in range(GATEWAY_LIMIT // 12)}),
        json.dumps({"event": "x" * (GATEWAY_LIMIT - 20)}),
        '{"event":"connected","protocol":' + "9" * 4000 + "}",
        "1e" + "9" * (GATEWAY_LIMIT - 2),
        " " * GATEWAY_LIMIT,
    ],
    ids=[
        "deep-array",
        "deep-object",
        "escapes",
        "payload-too-big",
        "payload-padding",
        "many-keys",
        "long-event",
        "long-number",
        "huge-exponent",
        "blank",
    ],
)
def test_the_largest_hostile_messages_are_answered_at_once(raw: str) -> None:
    started = time.perf_counter()
    answer = parse(raw)
    elapsed_s = time.perf_counter() - started
    assert isinstance(answer, ProtocolError | Connected)
    assert elapsed_s < 2.0, f"{elapsed_s:.2f} s for one message"


# -- bugs found by this suite, fixed; kept as regression tests ------------------------


def test_a_media_timestamp_of_infinity_is_dropped_not_fatal() -> None:
    raw = '{"event":"media","streamSid":"MZ1","media":{"payload":"AAAA","timestamp":1e999}}'
    answer = parse_message(raw)
    assert isinstance(answer, Media) and answer.timestamp_ms is None


def test_a_message_with_a_huge_integer_is_a_protocol_error() -> None:
    raw = (
        '{"event":"media","streamSid":"MZ1","media":{"payload":"AAAA","timestamp":'
        + "1" * 4301
        + "}}"
    )
    with pytest.raises(ProtocolError):
        parse_message(raw)


def test_a_payload_one_byte_over_the_limit_is_refused() -> None:
    answer = parse(media_message(SID, bytes(MAX_MEDIA_PAYLOAD_BYTES + 1)))
    assert isinstance(answer, ProtocolError)
