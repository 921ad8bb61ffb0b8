"""The AudioSocket parser: every message type, any split, and every bad input."""

from __future__ import annotations

import uuid

import pytest

from callcenter.events import Line
from callcenter.gateways import audiosocket_protocol as proto

pytestmark = pytest.mark.unit

CALL = uuid.UUID("40325ec2-5efd-4bd3-805f-000000000114")
AUDIO = bytes(range(256)) + bytes(64)  # 320 bytes, 20 ms


def frame(kind: int, payload: bytes = b"") -> bytes:
    return bytes((kind,)) + len(payload).to_bytes(2, "big") + payload


def started() -> proto.AudioSocketParser:
    parser = proto.AudioSocketParser()
    assert parser.feed(proto.uuid_message(CALL)) == [proto.CallId(CALL)]
    return parser


def test_every_message_type_in_one_read() -> None:
    stream = (
        proto.uuid_message(CALL)
        + proto.audio_message(AUDIO)
        + proto.dtmf_message("5")
        + frame(proto.KIND_ERROR, b"\x02")
        + frame(proto.KIND_ERROR)
        + proto.hangup_message()
    )
    assert proto.AudioSocketParser().feed(stream) == [
        proto.CallId(CALL),
        proto.Audio(AUDIO),
        proto.Dtmf("5"),
        proto.PeerError(2),
        proto.PeerError(None),
        proto.Hangup(),
    ]


def test_wire_format_is_type_length_big_endian_payload() -> None:
    assert proto.hangup_message() == b"\x00\x00\x00"
    assert proto.audio_message(AUDIO)[:3] == b"\x10\x01\x40"  # 320 = 0x0140
    assert proto.uuid_message(CALL) == b"\x01\x00\x10" + CALL.bytes
    assert proto.error_message(proto.ERROR_NOT_READY) == b"\xff\x00\x01\x10"
    assert proto.dtmf_message("#") == b"\x03\x00\x01#"


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64, 319, 1000])
def test_messages_split_across_reads_come_out_whole_and_in_order(chunk: int) -> None:
    stream = (
        proto.uuid_message(CALL)
        + proto.audio_message(AUDIO)
        + proto.dtmf_message("9")
        + proto.audio_message(AUDIO[::-1])
        + proto.hangup_message()
    )
    parser = proto.AudioSocketParser()
    out: list[proto.Parsed] = []
    for start in range(0, len(stream), chunk):
        out += parser.feed(stream[start : start + chunk])
    assert out == [
        proto.CallId(CALL),
        proto.Audio(AUDIO),
        proto.Dtmf("9"),
        proto.Audio(AUDIO[::-1]),
        proto.Hangup(),
    ]
    assert parser.finish() is None


def test_a_partial_message_waits_for_the_rest() -> None:
    parser = started()
    message = proto.audio_message(AUDIO)
    assert parser.feed(message[:2]) == []
    assert parser.feed(message[2:100]) == []
    assert parser.feed(message[100:]) == [proto.Audio(AUDIO)]


@pytest.mark.parametrize("cut", [1, 2, 3, 200])
def test_a_stream_cut_mid_message_is_reported_at_the_end(cut: int) -> None:
    parser = started()
    assert parser.feed(proto.audio_message(AUDIO)[:cut]) == []
    bad = parser.finish()
    assert bad is not None and bad.fatal
    assert "mid-message" in bad.reason


def test_the_uuid_must_come_first() -> None:
    parser = proto.AudioSocketParser()
    out = parser.feed(proto.audio_message(AUDIO) + proto.uuid_message(CALL))
    assert len(out) == 1
    assert isinstance(out[0], proto.BadMessage) and out[0].fatal
    assert "UUID" in out[0].reason
    # Nothing more is read from a stream that did not start right.
    assert parser.feed(proto.uuid_message(CALL)) == []
    assert parser.finish() is None


def test_garbage_instead_of_a_uuid_is_fatal() -> None:
    out = proto.AudioSocketParser().feed(b"GET / HTTP/1.1\r\n\r\n")
    assert len(out) == 1 and isinstance(out[0], proto.BadMessage) and out[0].fatal


def test_a_uuid_of_the_wrong_size_is_fatal() -> None:
    out = proto.AudioSocketParser().feed(frame(proto.KIND_UUID, b"short"))
    assert len(out) == 1 and isinstance(out[0], proto.BadMessage) and out[0].fatal


def test_a_hang_up_before_the_uuid_is_a_hang_up() -> None:
    assert proto.AudioSocketParser().feed(proto.hangup_message()) == [proto.Hangup()]


def test_a_second_uuid_is_dropped() -> None:
    out = started().feed(proto.uuid_message(uuid.uuid4()))
    assert len(out) == 1 and isinstance(out[0], proto.BadMessage) and not out[0].fatal


def test_an_unknown_type_is_dropped_and_the_stream_goes_on() -> None:
    parser = started()
    out = parser.feed(frame(0x42, b"xyz") + proto.audio_message(AUDIO))
    assert len(out) == 2
    assert isinstance(out[0], proto.BadMessage) and not out[0].fatal
    assert "0x42" in out[0].reason
    assert out[1] == proto.Audio(AUDIO)


def test_higher_rate_audio_is_refused_with_a_hint() -> None:
    out = started().feed(frame(0x12, bytes(640)))
    assert len(out) == 1 and isinstance(out[0], proto.BadMessage) and not out[0].fatal
    assert "8 kHz" in out[0].reason


def test_an_oversized_message_is_skipped_even_when_split() -> None:
    parser = proto.AudioSocketParser(max_payload_bytes=1000)
    parser.feed(proto.uuid_message(CALL))
    big = frame(proto.KIND_AUDIO, bytes(5000))
    out = parser.feed(big[:1500])
    assert len(out) == 1 and isinstance(out[0], proto.BadMessage) and not out[0].fatal
    assert "5000-byte" in out[0].reason
    assert parser.feed(big[1500:4000]) == []
    assert parser.feed(big[4000:] + proto.audio_message(AUDIO)) == [proto.Audio(AUDIO)]


def test_the_default_limit_takes_a_second_of_audio_and_no_more() -> None:
    parser = started()
    assert parser.feed(proto.audio_message(bytes(16_000))) == [proto.Audio(bytes(16_000))]
    out = parser.feed(frame(proto.KIND_AUDIO, bytes(16_002)))
    assert len(out) == 1 and isinstance(out[0], proto.BadMessage)


def test_a_stream_ending_inside_a_skipped_payload_is_reported() -> None:
    parser = proto.AudioSocketParser(max_payload_bytes=100)
    parser.feed(proto.uuid_message(CALL))
    parser.feed(frame(proto.KIND_AUDIO, bytes(500))[:200])
    bad = parser.finish()
    assert bad is not None and bad.fatal


def test_odd_length_audio_is_dropped() -> None:
    out = started().feed(frame(proto.KIND_AUDIO, bytes(321)) + proto.audio_message(AUDIO))
    assert isinstance(out[0], proto.BadMessage) and not out[0].fatal
    assert "odd" in out[0].reason
    assert out[1] == proto.Audio(AUDIO)


def test_empty_audio_is_dropped() -> None:
    out = started().feed(frame(proto.KIND_AUDIO))
    assert len(out) == 1 and isinstance(out[0], proto.BadMessage)


@pytest.mark.parametrize("payload", [b"", b"12", b"x", b"\xff"])
def test_bad_dtmf_is_dropped(payload: bytes) -> None:
    out = started().feed(frame(proto.KIND_DTMF, payload))
    assert len(out) == 1 and isinstance(out[0], proto.BadMessage) and not out[0].fatal


@pytest.mark.parametrize("digit", list("0123456789*#ABCD"))
def test_every_dtmf_digit(digit: str) -> None:
    assert started().feed(proto.dtmf_message(digit)) == [proto.Dtmf(digit)]


def test_audio_message_refuses_what_the_length_field_cannot_hold() -> None:
    with pytest.raises(ValueError):
        proto.audio_message(bytes(70_000))


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("00000000-0000-0000-0000-000000000114", Line.FIRE),
        ("00000000-0000-0000-0000-000000000113", Line.POLICE),
        ("9f1c2a44-1d2e-4a5b-8c7d-5e6f70000114", Line.FIRE),
        ("40325ec2-5efd-4bd3-805f-53576e581d13", Line.POLICE),
        ("00000000-0000-0000-0000-000000001140", Line.POLICE),
    ],
)
def test_the_line_comes_from_the_uuid_last_group(text: str, line: Line) -> None:
    assert proto.line_from_uuid(uuid.UUID(text)) == line
