"""The WebRTC gateway's pure parts: which offers are taken, cutting and pacing frames."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from importlib import resources

import av
import numpy as np
import pytest

from callcenter.events import FRAME_BYTES
from callcenter.gateways.webrtc import (
    BadOffer,
    FrameClock,
    FrameCutter,
    OutgoingAudio,
    ToInternalRate,
    check_offer,
    pcm_to_frame,
)
from callcenter.web.phone_api import phone_csp

pytestmark = pytest.mark.unit

# What Debian's Chromium offers for a microphone with `iceServers: []`, all
# candidates gathered (captured on the test machine).
_FINGERPRINT = (
    "1B:49:E4:72:39:FE:C6:D8:14:A3:8E:09:15:3C:14:EC:"
    "E3:9A:24:A1:C9:EE:C8:6A:42:E9:49:FC:43:50:AD:C5"
)
CHROMIUM_OFFER = """v=0
o=- 4260867699945483943 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=extmap-allow-mixed
a=msid-semantic: WMS 2573f224-09ea-44e0-be5c-d71d6b80fa87
m=audio 55208 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 192.0.2.2
a=rtcp:9 IN IP4 0.0.0.0
a=candidate:2520017715 1 udp 2122194687 192.0.2.2 55208 typ host generation 0 network-id 1
a=candidate:1565698771 1 udp 2122265343 fd00::2 60926 typ host generation 0 network-id 2
a=ice-ufrag:kZcx
a=ice-pwd:jTRRDWCBE3w1vDJG7a5At9dQ
a=ice-options:trickle
a=fingerprint:sha-256 FINGERPRINT
a=setup:actpass
a=mid:0
a=sendrecv
a=msid:2573f224-09ea-44e0-be5c-d71d6b80fa87 a3707b0b-ecfc-4f4b-9260-ca66e83f4bcd
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
a=ssrc:3327431388 cname:Bs8d3A6afKpN/TA3
""".replace("FINGERPRINT", _FINGERPRINT).replace("\n", "\r\n")


def tone(seconds: float, rate_hz: int, freq_hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    return (8000 * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def peak_hz(pcm: bytes, rate_hz: int) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * rate_hz / len(samples))


# ---------------------------------------------------------------- offers


def test_a_browser_offer_is_taken_with_its_codecs() -> None:
    summary = check_offer(CHROMIUM_OFFER, "offer")
    assert summary.codecs[0] == "opus"
    assert {"pcmu", "pcma"} <= set(summary.codecs)
    assert summary.direction == "sendrecv"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda sdp: "hello", "must start with v=0"),
        (lambda sdp: "", "must start with v=0"),
        (lambda sdp: sdp.replace("m=audio 55208", "m=video 55208"), "only audio"),
        (lambda sdp: sdp.replace("m=audio 55208", "m=audio 0"), "no audio"),
        (
            lambda sdp: sdp + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
            "only audio",
        ),
        (
            lambda sdp: sdp + "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n",
            "more than",
        ),
        (lambda sdp: re.sub(r"a=rtpmap:(111|0|8) [^\r]*\r\n", "", sdp), "no audio codec"),
        (lambda sdp: sdp.replace("a=sendrecv", "a=recvonly"), "sends no audio"),
        (lambda sdp: sdp.replace("a=sendrecv", "a=inactive"), "sends no audio"),
        (lambda sdp: re.sub(r"a=fingerprint:[^\r]*\r\n", "", sdp), "fingerprint"),
        (lambda sdp: re.sub(r"a=ice-ufrag:[^\r]*\r\n", "", sdp), "ICE credentials"),
        (lambda sdp: sdp.replace("m=audio 55208 UDP", "m=audio x UDP"), "malformed m= line"),
        (lambda sdp: sdp + "a=x:" + "y" * 20_000 + "\r\n", "longer than"),
    ],
)
def test_offers_that_cannot_make_an_audio_call_are_refused(change, reason: str) -> None:
    with pytest.raises(BadOffer, match=reason):
        check_offer(change(CHROMIUM_OFFER), "offer")


def test_an_answer_is_not_an_offer() -> None:
    with pytest.raises(BadOffer, match="expected an SDP offer"):
        check_offer(CHROMIUM_OFFER, "answer")


def test_plain_newlines_and_a_session_level_direction_are_understood() -> None:
    sdp = CHROMIUM_OFFER.replace("\r\n", "\n").replace("a=sendrecv\n", "")
    assert check_offer(sdp, "offer").direction == "sendrecv"
    recvonly = sdp.replace("t=0 0\n", "t=0 0\na=recvonly\n")
    with pytest.raises(BadOffer, match="sends no audio"):
        check_offer(recvonly, "offer")


# ---------------------------------------------------------------- frames


def test_the_cutter_makes_whole_frames_and_keeps_the_rest() -> None:
    cutter = FrameCutter()
    data = bytes(range(256)) * 10  # 2560 bytes = 4 frames exactly, pushed unevenly
    frames = cutter.push(data[:1000]) + cutter.push(data[1000:1001]) + cutter.push(data[1001:])
    assert [len(f) for f in frames] == [FRAME_BYTES] * 4
    assert b"".join(frames) == data
    assert cutter.push(b"\x01\x02") == [] and cutter.pending_bytes == 2


def test_the_clock_spaces_frames_and_never_bursts_after_a_stall() -> None:
    clock = FrameClock(frame_s=0.02, max_lag_s=0.2)
    assert clock.wait_s(10.0) == 0.0  # the first frame goes at once
    assert clock.wait_s(10.0) == pytest.approx(0.02)
    assert clock.wait_s(10.005) == pytest.approx(0.035)
    assert clock.wait_s(10.05) == pytest.approx(0.01)
    # a little late: the next frames go at once, catching up
    assert clock.wait_s(10.1) == 0.0
    # a stall of a second: counting starts afresh from now, no burst of 50 frames
    assert clock.wait_s(11.1) == 0.0
    assert clock.wait_s(11.1) == pytest.approx(0.02)


def test_pcm_becomes_an_audio_frame_for_the_encoders() -> None:
    pcm = tone(0.02, 16_000).tobytes()
    frame = pcm_to_frame(pcm, pts=640)
    assert (frame.samples, frame.sample_rate, frame.pts) == (320, 16_000, 640)
    assert frame.format.name == "s16" and frame.layout.name == "mono"
    assert frame.to_ndarray().tobytes() == pcm


def test_browser_audio_becomes_16_khz_mono_in_20_ms_frames() -> None:
    """Opus decodes to 48 kHz stereo in 20 ms frames: one out for one in, same pitch."""
    converter = ToInternalRate()
    samples = tone(1.0, 48_000)
    stereo = np.stack([samples, samples], axis=1).reshape(1, -1)  # packed s16: L R L R
    out: list[bytes] = []
    for index in range(50):
        chunk = np.ascontiguousarray(stereo[:, index * 1920 : (index + 1) * 1920])
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
        frame.sample_rate = 48_000
        frame.pts = index * 960
        out += converter.convert(frame)
    assert all(len(f) == FRAME_BYTES for f in out)
    assert 48 <= len(out) <= 50  # the resampler holds back a few samples
    assert peak_hz(b"".join(out), 16_000) == pytest.approx(440, abs=2)


def test_a_gap_in_the_stream_is_not_padded() -> None:
    """A lost packet leaves a pts gap; the call clock counts samples, not pts."""
    converter = ToInternalRate()
    out: list[bytes] = []
    for index, pts in enumerate([0, 320, 3200, 3520]):  # a jump of 2560 samples
        frame = pcm_to_frame(tone(0.02, 16_000, 300 + index).tobytes(), pts=pts)
        out += converter.convert(frame)
    assert len(out) in (3, 4)


# ---------------------------------------------------------------- outgoing track


async def test_the_outgoing_track_plays_queued_frames_then_silence() -> None:
    track = OutgoingAudio(max_queued_ms=1000)
    speech = [bytes([n]) * FRAME_BYTES for n in (1, 2, 3)]
    for frame in speech:
        track.push(frame)
    got = [(await track.recv()).to_ndarray().tobytes() for _ in range(5)]
    assert got[:3] == speech
    assert got[3:] == [bytes(FRAME_BYTES)] * 2
    assert track.audio_frames_sent == 3 and track.frames_sent == 5


async def test_clear_drops_what_was_queued_and_a_full_queue_drops_the_oldest() -> None:
    track = OutgoingAudio(max_queued_ms=60)  # 3 frames
    for n in range(5):
        track.push(bytes([n + 1]) * FRAME_BYTES)
    assert track.queued_ms == 60
    assert (await track.recv()).to_ndarray().tobytes() == bytes([3]) * FRAME_BYTES
    track.clear()
    await asyncio.wait_for(track.drained(), 0.1)
    assert (await track.recv()).to_ndarray().tobytes() == bytes(FRAME_BYTES)


async def test_short_frames_are_padded_and_the_track_is_paced_to_the_clock() -> None:
    track = OutgoingAudio(max_queued_ms=1000)
    track.push(b"\x05\x00" * 10)
    first = await track.recv()
    assert first.samples == 320 and first.to_ndarray().tobytes()[:4] == b"\x05\x00\x05\x00"
    started = time.monotonic()
    for _ in range(10):
        await track.recv()
    elapsed_s = time.monotonic() - started
    assert 0.17 <= elapsed_s <= 0.6  # 10 frames of 20 ms after the first (a busy machine: more)


# ---------------------------------------------------------------- the page


def test_the_phone_page_policy_allows_exactly_its_own_style() -> None:
    page = resources.files("callcenter.web").joinpath("static/phone.html").read_text("utf-8")
    style = re.search(r"<style>(.*?)</style>", page, flags=re.DOTALL)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    policy = phone_csp(page)
    assert f"'sha256-{digest}'" in policy
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    assert '<script src="/static/phone.js"' in page and "<script>" not in page
