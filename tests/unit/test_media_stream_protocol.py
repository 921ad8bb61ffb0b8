"""The media-stream parser: every bad input gets a clear, typed answer."""

from __future__ import annotations

import base64
import json

import pytest

from callcenter.events import Language, Line
from callcenter.gateways import media_stream_protocol as proto

pytestmark = pytest.mark.unit

SID = "MZ0001"


def start_message(**params: object) -> str:
    custom = {"line": "114", "lang": "vi", "from": "0912345678", **params}
    return json.dumps(
        {
            "event": "start",
            "streamSid": SID,
            "start": {
                "streamSid": SID,
                "callSid": "CA1",
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": custom,
            },
        }
    )


def media_message(payload: str, sid: str = SID) -> str:
    return json.dumps({"event": "media", "streamSid": sid, "media": {"payload": payload}})


def test_start_carries_line_language_and_caller() -> None:
    message = proto.parse_message(start_message())
    assert message == proto.Start(SID, "CA1", Line.FIRE, Language.VI, "0912345678")


def test_start_with_bad_line_or_language_still_answers_the_caller() -> None:
    message = proto.parse_message(start_message(line="115", lang="fr"))
    assert isinstance(message, proto.Start)
    assert message.line is Line.POLICE and message.language is Language.VI
    assert len(message.warnings) == 2


def test_unsupported_codec_closes_with_1003() -> None:
    raw = json.loads(start_message())
    raw["start"]["mediaFormat"]["encoding"] = "audio/L16"
    with pytest.raises(proto.ProtocolError) as err:
        proto.parse_message(json.dumps(raw))
    assert err.value.close_code == proto.CLOSE_UNSUPPORTED
    assert "audio/x-mulaw" in err.value.reason


def test_media_payload_is_decoded() -> None:
    audio = bytes(range(160))
    message = proto.parse_message(media_message(base64.b64encode(audio).decode()))
    assert message == proto.Media(SID, audio, None)


@pytest.mark.parametrize(
    "raw,words",
    [
        ("{not json", "malformed JSON"),
        ("[1, 2]", "JSON object"),
        ('{"no": "event"}', "missing 'event'"),
        ('{"event": "dance", "streamSid": "MZ0001"}', "unknown event"),
        (media_message("***not base64***"), "base64"),
        (media_message(""), "non-empty"),
        (media_message(base64.b64encode(bytes(9000)).decode()), "over 8000 bytes"),
        (json.dumps({"event": "media", "media": {"payload": "AA=="}}), "streamSid"),
        (json.dumps({"event": "media", "streamSid": SID, "media": "x"}), "'media' must be"),
        (json.dumps({"event": "dtmf", "streamSid": SID, "dtmf": {"digit": "x"}}), "dtmf.digit"),
        (b"\x00\x01", "binary"),
        ("[" * 100_000, "malformed JSON"),
    ],
)
def test_bad_messages_are_rejected_without_closing(raw: str | bytes, words: str) -> None:
    with pytest.raises(proto.ProtocolError) as err:
        proto.parse_message(raw)
    assert words in err.value.reason
    assert err.value.close_code is None


def test_start_without_stream_sid_must_close() -> None:
    raw = json.loads(start_message())
    del raw["start"]["streamSid"], raw["streamSid"]
    with pytest.raises(proto.ProtocolError) as err:
        proto.parse_message(json.dumps(raw))
    assert err.value.close_code == proto.CLOSE_POLICY


def test_mark_dtmf_stop() -> None:
    mark = proto.parse_message(
        json.dumps({"event": "mark", "streamSid": SID, "mark": {"name": "greeting"}})
    )
    assert mark == proto.Mark(SID, "greeting")
    dtmf = proto.parse_message(
        json.dumps({"event": "dtmf", "streamSid": SID, "dtmf": {"digit": "5"}})
    )
    assert dtmf == proto.Dtmf(SID, "5")
    assert proto.parse_message(json.dumps({"event": "stop", "streamSid": SID})) == proto.Stop(SID)


def test_outgoing_messages_follow_the_protocol() -> None:
    media = json.loads(proto.media_message(SID, b"\xff" * 160))
    assert media["event"] == "media" and media["streamSid"] == SID
    assert base64.b64decode(media["media"]["payload"]) == b"\xff" * 160
    assert json.loads(proto.clear_message(SID)) == {"event": "clear", "streamSid": SID}
    assert json.loads(proto.mark_message(SID, "reply-1"))["mark"] == {"name": "reply-1"}
