"""Hostile byte streams for the AudioSocket parser (`AudioSocketParser`).

The socket hands the parser whatever the peer sends, split however TCP splits
it. The parser must answer only with its own messages or `BadMessage`, give
the same answer however the bytes are split, hold at most one message's worth
of bytes, stop for good after a fatal error, and keep its framing through
every well-framed message it drops (unknown types, oversized, malformed).
"""

from __future__ import annotations

import itertools
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.events import Line
from callcenter.gateways import audiosocket_protocol as proto
from tests.fuzz.budget import fuzz_settings

pytestmark = [pytest.mark.unit, pytest.mark.timeout(120)]

CALL = uuid.UUID("40325ec2-5efd-4bd3-805f-000000000114")
RESULT_TYPES = (
    proto.Hangup,
    proto.CallId,
    proto.Dtmf,
    proto.Audio,
    proto.PeerError,
    proto.BadMessage,
)
KNOWN_KINDS = {
    proto.KIND_HANGUP,
    proto.KIND_UUID,
    proto.KIND_DTMF,
    proto.KIND_AUDIO,
    proto.KIND_ERROR,
}
DTMF_DIGITS = "0123456789*#ABCD"


def frame(kind: int, payload: bytes) -> bytes:
    return bytes((kind,)) + len(payload).to_bytes(2, "big") + payload


def pattern(seed: bytes, length: int) -> bytes:
    """`length` bytes repeating `seed` (drawing kilobytes one by one is slow)."""
    return (seed * (length // len(seed) + 1))[:length]


@st.composite
def chunked(draw: st.DrawFn, stream: bytes) -> list[bytes]:
    """`stream` split at arbitrary points, as reads off a socket."""
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=24)))
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


def run(
    parser: proto.AudioSocketParser, reads: list[bytes], max_payload: int
) -> list[proto.Parsed]:
    """Feed every read, checking what must hold after each one."""
    out: list[proto.Parsed] = []
    for data in reads:
        got = parser.feed(data)
        assert all(isinstance(item, RESULT_TYPES) for item in got), got
        # at most one incomplete message is held: a header and part of its payload
        assert parser.buffered_bytes < proto.HEADER_BYTES + max_payload
        out.extend(got)
    fatal = [i for i, item in enumerate(out) if isinstance(item, proto.BadMessage) and item.fatal]
    assert fatal in ([], [len(out) - 1]), "a fatal error must be the last thing said"
    if fatal:  # the stream is over: nothing more, ever
        assert parser.feed(b"\x10\x00\x02ab") == []
        assert parser.finish() is None
    return out


def check_item(item: proto.Parsed, max_payload: int) -> None:
    if isinstance(item, proto.Audio):
        assert 0 < len(item.pcm) <= max_payload and len(item.pcm) % 2 == 0
    elif isinstance(item, proto.Dtmf):
        assert len(item.digit) == 1 and item.digit in DTMF_DIGITS
    elif isinstance(item, proto.PeerError):
        assert item.code is None or 0 <= item.code <= 255
    elif isinstance(item, proto.BadMessage):
        assert isinstance(item.reason, str) and item.reason


# The service uses the default; smaller limits make oversized messages cheap to
# generate. A limit under 16 bytes could not take the UUID itself.
max_payloads = st.sampled_from([proto.MAX_PAYLOAD_BYTES]) | st.integers(16, 400)


# -- arbitrary bytes, arbitrary reads ------------------------------------------------


@fuzz_settings(400)
@given(st.binary(max_size=600), max_payloads, st.booleans(), st.data())
def test_any_bytes_split_any_way_give_the_same_documented_answers(
    junk: bytes, max_payload: int, after_uuid: bool, data: st.DataObject
) -> None:
    stream = (proto.uuid_message(CALL) if after_uuid else b"") + junk
    whole = proto.AudioSocketParser(max_payload)
    expected = run(whole, [stream], max_payload)
    expected_end = whole.finish()

    split = proto.AudioSocketParser(max_payload)
    got = run(split, data.draw(chunked(stream), label="reads"), max_payload)
    assert got == expected
    assert split.finish() == expected_end
    for item in got:
        check_item(item, max_payload)
    if expected_end is not None:
        assert expected_end.fatal


@fuzz_settings(200)
@given(st.integers(0, 255).filter(lambda kind: kind not in (0x00, 0x01)), st.binary(max_size=40))
def test_a_stream_that_does_not_start_with_the_uuid_is_refused_at_once(
    kind: int, rest: bytes
) -> None:
    parser = proto.AudioSocketParser()
    out = parser.feed(bytes((kind,)) + rest)
    if len(rest) >= 2:  # a whole header: refused now
        assert len(out) == 1 and isinstance(out[0], proto.BadMessage) and out[0].fatal
    else:
        assert out == [] and parser.finish() is not None


# -- valid streams: round trip and resynchronisation ---------------------------------


@st.composite
def valid_messages(draw: st.DrawFn, max_payload: int) -> tuple[proto.Message, bytes]:
    kind = draw(st.sampled_from(["audio", "dtmf", "error", "error-empty", "hangup"]))
    if kind == "audio":
        samples = draw(st.integers(1, max(1, max_payload // 2)))
        pcm = pattern(draw(st.binary(min_size=1, max_size=64)), 2 * samples)
        return proto.Audio(pcm), proto.audio_message(pcm)
    if kind == "dtmf":
        digit = draw(st.sampled_from(DTMF_DIGITS))
        return proto.Dtmf(digit), proto.dtmf_message(digit)
    if kind == "error":
        code = draw(st.integers(0, 255))
        return proto.PeerError(code), proto.error_message(code)
    if kind == "error-empty":
        return proto.PeerError(None), frame(proto.KIND_ERROR, b"")
    return proto.Hangup(), proto.hangup_message()


@st.composite
def junk_frames(draw: st.DrawFn, max_payload: int) -> bytes:
    """A well-framed message the parser must drop without losing its place."""
    kind = draw(st.sampled_from(["unknown", "oversized", "audio", "dtmf", "uuid", "high-rate"]))
    small = st.binary(max_size=min(max_payload, 64))
    if kind == "unknown":
        code = draw(st.integers(0, 255).filter(lambda k: k not in KNOWN_KINDS))
        return frame(code, draw(small))
    if kind == "oversized":  # any type: the length alone decides
        length = draw(st.integers(max_payload + 1, min(max_payload + 300, 0xFFFF)))
        payload = pattern(draw(st.binary(min_size=1, max_size=16)), length)
        return frame(draw(st.integers(0, 255)), payload)
    if kind == "audio":  # empty, or an odd number of bytes
        odd = draw(st.integers(0, (min(max_payload, 321) - 1) // 2)) * 2 + 1
        return frame(proto.KIND_AUDIO, b"" if draw(st.booleans()) else bytes(odd))
    if kind == "dtmf":
        payload = draw(
            st.binary(max_size=min(max_payload, 8)).filter(
                lambda p: len(p) != 1 or p.decode("ascii", "replace").upper() not in DTMF_DIGITS
            )
        )
        return frame(proto.KIND_DTMF, payload)
    if kind == "uuid":  # a second UUID, of any size
        return frame(proto.KIND_UUID, draw(small))
    return frame(draw(st.integers(0x11, 0x18)), draw(small))


@fuzz_settings(300)
@given(max_payloads, st.data())
def test_valid_streams_round_trip_however_they_are_split(
    max_payload: int, data: st.DataObject
) -> None:
    messages = data.draw(st.lists(valid_messages(max_payload), max_size=12), label="messages")
    stream = proto.uuid_message(CALL) + b"".join(encoded for _, encoded in messages)
    parser = proto.AudioSocketParser(max_payload)
    got = run(parser, data.draw(chunked(stream), label="reads"), max_payload)
    assert got == [proto.CallId(CALL), *(message for message, _ in messages)]
    assert parser.finish() is None


@fuzz_settings(400)
@given(st.sampled_from([proto.MAX_PAYLOAD_BYTES, 16, 64, 321]), st.data())
def test_dropped_messages_never_cost_the_framing(max_payload: int, data: st.DataObject) -> None:
    items = data.draw(
        st.lists(
            st.tuples(st.just("valid"), valid_messages(max_payload))
            | st.tuples(st.just("junk"), junk_frames(max_payload)),
            max_size=12,
        ),
        label="stream",
    )
    stream = proto.uuid_message(CALL)
    valid: list[proto.Message] = []
    junk = 0
    for what, item in items:
        if what == "valid":
            message, encoded = item  # type: ignore[misc]
            valid.append(message)
            stream += encoded
        else:
            junk += 1
            stream += item  # type: ignore[operator]
    parser = proto.AudioSocketParser(max_payload)
    got = run(parser, data.draw(chunked(stream), label="reads"), max_payload)
    dropped = [item for item in got if isinstance(item, proto.BadMessage)]
    assert [item for item in got if not isinstance(item, proto.BadMessage)] == [
        proto.CallId(CALL),
        *valid,
    ]
    assert len(dropped) == junk and not any(item.fatal for item in dropped)
    assert parser.finish() is None


@fuzz_settings(100)
@given(st.integers(1, 0xFFFF), st.binary(max_size=64))
def test_a_stream_ending_inside_any_message_is_reported(length: int, partial: bytes) -> None:
    parser = proto.AudioSocketParser()
    parser.feed(proto.uuid_message(CALL))
    parser.feed(bytes((proto.KIND_AUDIO,)) + length.to_bytes(2, "big") + partial[: length - 1])
    end = parser.finish()
    assert end is not None and end.fatal
    assert parser.finish() is None  # said once


# -- the line, from the UUID --------------------------------------------------------


@fuzz_settings(300)
@given(st.uuids(), st.sampled_from(["", "113", "114"]))
def test_any_uuid_is_answered_as_113_or_114(call_uuid: uuid.UUID, suffix: str) -> None:
    if suffix:
        call_uuid = uuid.UUID(call_uuid.hex[: 32 - len(suffix)] + suffix)
    line = proto.line_from_uuid(call_uuid)
    assert line is (Line.FIRE if call_uuid.hex.endswith("114") else Line.POLICE)
