"""Reading an INVITE: which line, which language, who calls, which codecs."""

from __future__ import annotations

import pytest

from callcenter.events import Language, Line
from callcenter.gateways.sip_invite import (
    parse_headers,
    parse_invite,
    sdp_audio_codecs,
    select_language,
    select_line,
    uri_params,
    uri_user,
)

pytestmark = pytest.mark.unit

SDP_G711 = (
    "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
)


def invite(
    request_uri: str = "sip:114@10.0.0.1",
    *,
    from_value: str = '"Nguyen" <sip:0912345678@carrier.vn>;tag=1',
    to_value: str = "<sip:114@10.0.0.1>",
    extra: str = "",
    sdp: str | None = SDP_G711,
) -> str:
    body = sdp or ""
    head = (
        f"INVITE {request_uri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1\r\n"
        f"From: {from_value}\r\nTo: {to_value}\r\nCall-ID: abc@10.0.0.5\r\nCSeq: 1 INVITE\r\n"
        f"{extra}"
    )
    if sdp is not None:
        head += "Content-Type: application/sdp\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n{body}"


def test_a_call_to_114_is_fire_and_rescue_in_vietnamese_with_the_caller_number() -> None:
    request = parse_invite(invite())
    assert request.line is Line.FIRE and request.line_recognised
    assert request.language is Language.VI
    assert request.caller_number == "0912345678"
    assert request.offered_codecs == frozenset({"PCMA", "PCMU"})
    assert request.acceptable_media


@pytest.mark.parametrize(
    ("uri", "line"),
    [
        ("sip:113@host", Line.POLICE),
        ("sip:114@host:5060;transport=udp", Line.FIRE),
        ("sip:+84114@host", Line.FIRE),
        ("sips:113@host", Line.POLICE),
        ("tel:114", Line.FIRE),
    ],
)
def test_113_or_114_anywhere_in_the_dialled_number_picks_the_line(uri: str, line: Line) -> None:
    assert select_line(uri) == (line, uri_user(uri), True)


def test_an_unknown_number_goes_to_113_and_is_flagged() -> None:
    assert select_line("sip:911@host") == (Line.POLICE, "911", False)
    assert select_line("sip:host") == (Line.POLICE, "", False)
    request = parse_invite(invite("sip:hotline@10.0.0.1", to_value="<sip:hotline@10.0.0.1>"))
    assert request.line is Line.POLICE and not request.line_recognised
    assert request.dialled == "hotline"


def test_a_proxy_that_rewrote_the_request_uri_keeps_the_line_in_to() -> None:
    request = parse_invite(invite("sip:callbot@10.0.0.1:5060", to_value="<sip:114@carrier.vn>"))
    assert request.line is Line.FIRE and request.line_recognised


@pytest.mark.parametrize(
    ("uri", "header", "language"),
    [
        ("sip:114@host", None, Language.VI),
        ("sip:114@host", "en", Language.EN),
        ("sip:114@host", "EN-gb", Language.EN),
        ("sip:114@host", "vi", Language.VI),
        ("sip:114@host;lang=en", None, Language.EN),
        ("sip:114@host;transport=udp;lang=en", None, Language.EN),
        ("sip:114@host;lang=fr", None, Language.VI),
    ],
)
def test_english_only_when_asked(uri: str, header: str | None, language: Language) -> None:
    assert select_language(uri, header) is language


def test_the_language_header_is_read_from_the_invite() -> None:
    assert parse_invite(invite(extra="X-Callbot-Lang: en\r\n")).language is Language.EN
    assert parse_invite(invite(extra="x-callbot-lang:  en \r\n")).language is Language.EN


@pytest.mark.parametrize(
    ("from_value", "number"),
    [
        ("<sip:0912345678@carrier.vn>;tag=1", "0912345678"),
        ("sip:0912345678@carrier.vn;tag=1", "0912345678"),
        ('"A, B" <sip:+84912345678@carrier.vn;user=phone>;tag=9', "+84912345678"),
        ("<tel:+84912345678>;tag=1", "+84912345678"),
        ("<sip:anonymous.invalid>;tag=1", None),
        ('"Anonymous" <sip:anonymous@anonymous.invalid>;tag=1', None),
        ("", None),
    ],
)
def test_the_caller_number_is_the_from_user(from_value: str, number: str | None) -> None:
    assert parse_invite(invite(from_value=from_value)).caller_number == number


def test_the_network_asserted_identity_wins_over_from() -> None:
    withheld = '"Anonymous" <sip:anonymous@anonymous.invalid>;tag=1'
    asserted = "P-Asserted-Identity: <sip:+84912345678@carrier.vn>, <tel:+84912345678>\r\n"
    request = parse_invite(invite(from_value=withheld, extra=asserted))
    assert request.caller_number == "+84912345678"
    assert parse_invite(invite(from_value=withheld)).caller_number is None


def test_compact_and_folded_headers() -> None:
    headers = parse_headers(
        ["f: <sip:1@a>;tag=x", "t: <sip:114@b>", "Subject: a", "  long", "junk"]
    )
    assert headers == {"from": "<sip:1@a>;tag=x", "to": "<sip:114@b>", "subject": "a long"}
    message = invite(from_value="x").replace("From: x", "f: <sip:0987654321@a>;tag=2")
    assert parse_invite(message).caller_number == "0987654321"


def test_uri_params() -> None:
    assert uri_params("sip:114@host:5060;lang=en;transport=UDP?X=1") == {
        "lang": "en",
        "transport": "UDP",
    }
    assert uri_params("sip:114@host") == {}


@pytest.mark.parametrize(
    ("sdp", "codecs"),
    [
        (SDP_G711, {"PCMA", "PCMU"}),
        ("m=audio 4000 RTP/AVP 0 8\r\n", {"PCMU", "PCMA"}),  # static types, no rtpmap
        ("m=audio 4000 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n", {"G722"}),
        ("m=audio 4000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n", {"OPUS"}),
        ("m=audio 0 RTP/AVP 0\r\n", set()),  # a disabled stream offers nothing
        ("m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=audio 4000 RTP/AVP 8\r\n",
         {"PCMA"}),
        ("m=audio 4000 RTP/AVP 101\r\na=rtpmap:101 telephone-event/8000\r\n", set()),
    ],
)  # fmt: skip
def test_offered_codecs(sdp: str, codecs: set[str]) -> None:
    assert sdp_audio_codecs(sdp) == codecs


def test_an_offer_without_g711_is_not_acceptable_but_no_offer_is() -> None:
    opus_only = "v=0\r\nm=audio 4000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n"
    assert not parse_invite(invite(sdp=opus_only)).acceptable_media
    late_offer = parse_invite(invite(sdp=None))
    assert late_offer.offered_codecs is None and late_offer.acceptable_media


def test_garbage_does_not_raise() -> None:
    for message in ("", "\r\n\r\n", "INVITE\r\n", "hello world", "INVITE a b c d\r\n\r\nm=audio x"):
        request = parse_invite(message)
        assert request.line is Line.POLICE and request.caller_number is None
