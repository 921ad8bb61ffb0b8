"""The Asterisk AudioSocket protocol, parsed.

A pure, synchronous core. Every message is a 3-byte header (one type byte, a
big-endian 16-bit payload length) and the payload:

    0x00  hang-up (no payload)
    0x01  the call's UUID (16 bytes, always the first message)
    0x03  a DTMF digit (1 ASCII byte)
    0x10  audio: signed linear 16-bit little-endian, 8 kHz mono (320 bytes = 20 ms)
    0xff  an error (optional 1-byte code)

`AudioSocketParser.feed(data)` takes bytes as they come off the socket (a
message may be split over any number of reads, or one read may carry many) and
returns the messages completed so far, with a `BadMessage` in their place for
anything unusable. `finish()` says whether the stream ended mid-message.
`hangup_message`, `audio_message` and `error_message` build what we send.

Which line the caller dialled is not part of the protocol: `line_from_uuid`
reads it from the UUID's last group (see its docstring).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final

from callcenter.events import Line

KIND_HANGUP: Final = 0x00
KIND_UUID: Final = 0x01
KIND_DTMF: Final = 0x03
KIND_AUDIO: Final = 0x10
KIND_ERROR: Final = 0xFF

HEADER_BYTES: Final = 3
LINE_RATE_HZ: Final = 8000
AUDIO_FRAME_BYTES: Final = 320  # 20 ms of 8 kHz slin16
# The length field cannot exceed 65,535; a sane peer sends 20 ms (320 bytes).
# We take up to one second of audio in a message and drop anything bigger.
MAX_PAYLOAD_BYTES: Final = 16_000

# Error codes (application specific; Asterisk's own are 0x01 caller hung up,
# 0x02 frame forwarding error, 0x04 memory error, bit-packed).
ASTERISK_ERROR_HANGUP: Final = 0x01
ERROR_NOT_READY: Final = 0x10  # we send it: the service is starting, route the call elsewhere

_DTMF_DIGITS: Final = frozenset("0123456789*#ABCD")
# Newer Asterisk sends slin at higher rates with types 0x11-0x18 when the
# channel's codec is not 8 kHz slin; we take only 0x10.
_HIGHER_RATE_AUDIO: Final = range(0x11, 0x19)


@dataclass(frozen=True, slots=True)
class Hangup:
    pass


@dataclass(frozen=True, slots=True)
class CallId:
    uuid: uuid.UUID


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class Audio:
    pcm: bytes  # int16 little-endian, 8 kHz mono


@dataclass(frozen=True, slots=True)
class PeerError:
    code: int | None  # None: the error message carried no code


@dataclass(frozen=True, slots=True)
class BadMessage:
    """Something we could not use. `fatal`: the stream cannot go on (close it)."""

    reason: str
    fatal: bool = False


Message = Hangup | CallId | Dtmf | Audio | PeerError
Parsed = Message | BadMessage


class AudioSocketParser:
    """Incremental: bytes in, messages out. The first message must be the UUID."""

    def __init__(self, max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> None:
        self._buffer = bytearray()
        self._max_payload = max_payload_bytes
        self._skip = 0  # bytes of a dropped (oversized) payload still to discard
        self._seen_uuid = False
        self._broken = False

    @property
    def seen_uuid(self) -> bool:
        return self._seen_uuid

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Parsed]:
        """Messages completed by `data`; after a fatal `BadMessage` nothing more."""
        if self._broken:
            return []
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        self._buffer += data
        out: list[Parsed] = []
        while len(self._buffer) >= HEADER_BYTES:
            kind = self._buffer[0]
            length = int.from_bytes(self._buffer[1:3], "big")
            if not self._seen_uuid and kind not in (KIND_UUID, KIND_HANGUP):
                # Not an AudioSocket stream (or not one that started right).
                out.append(
                    BadMessage(
                        f"first message has type 0x{kind:02x}; expected the UUID (0x01)", True
                    )
                )
                self._broken = True
                self._buffer.clear()
                break
            if length > self._max_payload:
                # The framing is intact: skip the payload and carry on.
                available = len(self._buffer) - HEADER_BYTES
                dropped = min(length, available)
                del self._buffer[: HEADER_BYTES + dropped]
                self._skip = length - dropped
                bad = self._bad(
                    f"type 0x{kind:02x}: {length}-byte payload over the "
                    f"{self._max_payload}-byte limit"
                )
                out.append(bad)
                if bad.fatal:
                    self._broken = True
                    self._buffer.clear()
                    self._skip = 0
                    break
                if self._skip:
                    break
                continue
            if len(self._buffer) < HEADER_BYTES + length:
                break
            payload = bytes(self._buffer[HEADER_BYTES : HEADER_BYTES + length])
            del self._buffer[: HEADER_BYTES + length]
            parsed = self._message(kind, payload)
            out.append(parsed)
            if isinstance(parsed, BadMessage) and parsed.fatal:
                self._broken = True
                self._buffer.clear()
                break
        return out

    def finish(self) -> BadMessage | None:
        """The peer closed the stream: a `BadMessage` when it stopped mid-message."""
        if self._broken:
            return None
        if self._skip:
            short = self._skip
            self._skip = 0
            return BadMessage(f"stream ended inside a dropped payload ({short} bytes short)", True)
        if self._buffer:
            if len(self._buffer) < HEADER_BYTES:
                what = f"{len(self._buffer)} of {HEADER_BYTES} header bytes"
            else:
                length = int.from_bytes(self._buffer[1:3], "big")
                got = len(self._buffer) - HEADER_BYTES
                what = f"type 0x{self._buffer[0]:02x}, {got} of {length} payload bytes"
            self._buffer.clear()
            return BadMessage(f"stream ended mid-message ({what})", True)
        return None

    def _bad(self, reason: str, fatal: bool = False) -> BadMessage:
        if not self._seen_uuid:
            # Until the UUID arrives we do not know the stream is AudioSocket at all.
            return BadMessage(f"{reason}; expected the UUID first", True)
        return BadMessage(reason, fatal)

    def _message(self, kind: int, payload: bytes) -> Parsed:
        if kind == KIND_UUID:
            if self._seen_uuid:
                return BadMessage("second UUID message ignored")
            if len(payload) != 16:
                return BadMessage(f"UUID message of {len(payload)} bytes (expected 16)", True)
            self._seen_uuid = True
            return CallId(uuid.UUID(bytes=payload))
        if kind == KIND_AUDIO:
            if not payload:
                return BadMessage("empty audio message")
            if len(payload) % 2:
                return BadMessage(
                    f"audio message of odd length {len(payload)}; 16-bit samples expected"
                )
            return Audio(payload)
        if kind == KIND_HANGUP:
            return Hangup()
        if kind == KIND_DTMF:
            digit = payload.decode("ascii", errors="replace").upper() if len(payload) == 1 else ""
            if digit not in _DTMF_DIGITS:
                return BadMessage(f"DTMF message of {len(payload)} bytes is not one of 0-9 * # A-D")
            return Dtmf(digit)
        if kind == KIND_ERROR:
            return PeerError(payload[0] if payload else None)
        if kind in _HIGHER_RATE_AUDIO:
            return BadMessage(
                f"audio type 0x{kind:02x} (slin above 8 kHz) is not supported; "
                "give the channel 8 kHz slin (type 0x10)"
            )
        return BadMessage(f"unknown message type 0x{kind:02x} ({len(payload)} bytes) dropped")


def hangup_message() -> bytes:
    return bytes((KIND_HANGUP, 0, 0))


def audio_message(pcm: bytes) -> bytes:
    if len(pcm) > 0xFFFF:
        raise ValueError(f"{len(pcm)} bytes do not fit one AudioSocket message")
    return bytes((KIND_AUDIO,)) + len(pcm).to_bytes(2, "big") + pcm


def error_message(code: int) -> bytes:
    return bytes((KIND_ERROR, 0, 1, code & 0xFF))


def uuid_message(call_uuid: uuid.UUID) -> bytes:
    return bytes((KIND_UUID, 0, 16)) + call_uuid.bytes


def dtmf_message(digit: str) -> bytes:
    return bytes((KIND_DTMF, 0, 1)) + digit.encode("ascii")


def line_from_uuid(call_uuid: uuid.UUID) -> Line:
    """The hotline a call came in on, from the UUID the dialplan chose.

    AudioSocket carries no dialled number, so the dialplan encodes it in the
    UUID's last group, e.g. `AudioSocket(00000000-0000-0000-0000-000000000114,
    callbot:9092)` for a call to 114 (any UUID whose last group ends in the
    digits 114 or 113; the rest of the UUID can stay unique per call). Any
    other UUID is answered as line 113.
    """
    last_group = call_uuid.hex[-12:]
    if last_group.endswith(Line.FIRE.value):
        return Line.FIRE
    return Line.POLICE
