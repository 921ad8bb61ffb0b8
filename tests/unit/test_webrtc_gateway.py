"""The WebRTC gateway with real aiortc peers on this machine's network address.

The browser side is an aiortc client sending a tone; the call centre and the
call session are fakes with the same surface (`open_call`, `run_call`,
`calls`; `push_audio`, `hangup`, `take_over`). Then the HTTP API of the real
application (not started: it answers 503 to calls) for what it refuses.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from aioice.ice import get_host_addresses
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from callcenter.app import create_app
from callcenter.auth.models import Role
from callcenter.center import NotReady
from callcenter.events import FRAME_BYTES, CallInfo, Language, Line
from callcenter.gateways.webrtc import AlreadyBridged, Answer, TooManyCalls, WebRtcGateway
from callcenter.playback import CallOutput
from callcenter.settings import Settings
from tests.unit.test_webrtc import CHROMIUM_OFFER

pytestmark = pytest.mark.component

if not get_host_addresses(use_ipv4=True, use_ipv6=False):
    pytest.skip(
        "no network interface but loopback: aioice gathers no candidate", allow_module_level=True
    )


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0


class FakeSession:
    """A call that plays a 0.6 s tone as its greeting and records what it hears."""

    def __init__(self, info: CallInfo, output: CallOutput) -> None:
        self.info = info
        self.output = output
        self.heard: list[bytes] = []
        self.hung_up = asyncio.Event()
        self.end_reason = ""
        self.taken_over_by: str | None = None
        self._taps: list[Callable[[int, bytes], None]] = []
        self.bot_hangs_up = asyncio.Event()
        self.ended = asyncio.Event()
        self.released_by: list[str] = []

    async def push_audio(self, pcm16k: bytes) -> None:
        self.heard.append(pcm16k)
        for tap in self._taps:
            tap(len(self.heard) * 20, pcm16k)

    def hangup(self, reason: str) -> None:
        if not self.hung_up.is_set():
            self.end_reason = reason
            self.hung_up.set()

    async def take_over(
        self, dispatcher: str, on_caller_audio: Callable[[int, bytes], None]
    ) -> Callable[[bytes], Awaitable[None]]:
        self.taken_over_by = dispatcher
        self._taps.append(on_caller_audio)
        await self.output.clear()
        return self.output.send_audio

    async def release(self, on_caller_audio: Callable[[int, bytes], None]) -> None:
        self._taps.remove(on_caller_audio)
        self.released_by.append(self.taken_over_by or "")
        self.taken_over_by = None

    async def run(self) -> None:
        greeting = (6000 * np.sin(2 * np.pi * 440 * np.arange(9600) / 16000)).astype("<i2")
        pcm = greeting.tobytes()
        for offset in range(0, len(pcm), FRAME_BYTES):
            await self.output.send_audio(pcm[offset : offset + FRAME_BYTES])
            await asyncio.sleep(0.02)
        hung_up = asyncio.create_task(self.hung_up.wait())
        bot = asyncio.create_task(self.bot_hangs_up.wait())
        await asyncio.wait({hung_up, bot}, return_when=asyncio.FIRST_COMPLETED)
        hung_up.cancel()
        bot.cancel()
        if self.bot_hangs_up.is_set():
            await self.output.close("bot ended the call")
            self.hangup("bot ended the call")


class FakeCenter:
    def __init__(self, *, ready: bool = True) -> None:
        self.ready = ready
        self.calls: dict[str, Any] = {}
        self.gateways: dict[str, str] = {}

    def open_call(self, info: CallInfo, output: CallOutput) -> FakeSession:
        if not self.ready:
            raise NotReady("service starting")
        session = FakeSession(info, output)
        self.calls[info.call_id] = session
        return session

    async def run_call(self, session: FakeSession) -> None:
        try:
            await session.run()
        finally:
            self.calls.pop(session.info.call_id, None)
            session.ended.set()


class Tone(MediaStreamTrack):
    """A browser's microphone: a 48 kHz tone in 20 ms frames, paced to the clock."""

    kind = "audio"

    def __init__(self, freq_hz: float) -> None:
        super().__init__()
        self.freq_hz = freq_hz
        self._frames = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        delay = self._start + self._frames * 0.02 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t = (np.arange(960) + self._frames * 960) / 48_000
        samples = (6000 * np.sin(2 * np.pi * self.freq_hz * t)).astype("<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 48_000
        frame.pts = self._frames * 960
        frame.time_base = fractions.Fraction(1, 48_000)
        self._frames += 1
        return frame


class Browser:
    """An aiortc peer standing in for a browser: sends a tone, keeps what it hears."""

    def __init__(self, freq_hz: float = 300.0) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(Tone(freq_hz))
        self.heard: list[bytes] = []
        self.pc.on("track", self._on_track)
        self._readers: list[asyncio.Task[None]] = []

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._readers.append(asyncio.create_task(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16_000)
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            for out in resampler.resample(frame):
                self.heard.append(out.to_ndarray().tobytes())

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def connect(self, answer: Answer) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
        await until(lambda: self.pc.connectionState == "connected", 5.0)

    def loud_frames(self, since: int = 0) -> int:
        return sum(rms(pcm) > 1000 for pcm in self.heard[since:])

    async def close(self) -> None:
        await self.pc.close()
        for reader in self._readers:
            reader.cancel()


async def until(check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[WebRtcGateway, FakeCenter]]:
    center = FakeCenter()
    gateway = WebRtcGateway(center, max_calls=2, connect_timeout_s=3.0)  # type: ignore[arg-type]
    yield gateway, center
    await gateway.close()


async def call(gateway: WebRtcGateway, browser: Browser, line: Line = Line.FIRE) -> str:
    answer = await gateway.place_call(await browser.offer(), "offer", line, Language.VI, None)
    await browser.connect(answer)
    return answer.call_id


async def test_a_call_carries_audio_both_ways_and_the_caller_hangs_up(gateway) -> None:
    gw, center = gateway
    browser = Browser()
    started = time.monotonic()
    call_id = await call(gw, browser)
    connected_ms = (time.monotonic() - started) * 1000
    session: FakeSession = center.calls[call_id]
    assert session.info.channel == "webrtc" and session.info.line is Line.FIRE
    assert connected_ms < 2000

    await until(lambda: browser.loud_frames() >= 20, 3.0)  # the greeting
    await until(lambda: sum(rms(p) > 1000 for p in session.heard) >= 25, 3.0)
    assert {len(p) for p in session.heard} == {FRAME_BYTES}

    await browser.close()
    await asyncio.wait_for(session.hung_up.wait(), 3.0)
    assert session.end_reason == "caller hung up"
    await until(lambda: gw.active_calls == 0 and not center.calls, 3.0)


async def test_the_bot_hanging_up_closes_the_connection(gateway) -> None:
    gw, center = gateway
    browser = Browser()
    call_id = await call(gw, browser)
    center.calls[call_id].bot_hangs_up.set()
    await until(lambda: browser.pc.connectionState == "closed", 5.0)
    assert browser.loud_frames() >= 20  # the greeting played out before the hang-up
    await until(lambda: gw.active_calls == 0, 3.0)


async def test_calls_beyond_the_limit_and_while_starting_are_refused(gateway) -> None:
    gw, center = gateway
    first, second, third = Browser(), Browser(), Browser()
    await call(gw, first)
    await call(gw, second)
    with pytest.raises(TooManyCalls):
        await gw.place_call(await third.offer(), "offer", Line.POLICE, Language.EN, None)
    assert gw.active_calls == 2
    for browser in (first, second, third):
        await browser.close()
    await until(lambda: gw.active_calls == 0, 3.0)

    center.ready = False
    with pytest.raises(NotReady):
        await gw.place_call(await Browser().offer(), "offer", Line.POLICE, Language.EN, None)
    assert gw.active_calls == 0 and not center.calls


async def test_a_browser_that_never_connects_is_hung_up() -> None:
    center = FakeCenter()
    gw = WebRtcGateway(center, connect_timeout_s=0.5)  # type: ignore[arg-type]
    browser = Browser()
    answer = await gw.place_call(await browser.offer(), "offer", Line.FIRE, Language.VI, None)
    session: FakeSession = center.calls[answer.call_id]
    await asyncio.wait_for(session.hung_up.wait(), 3.0)  # the answer never reached it
    assert session.end_reason == "webrtc connection failed"
    await until(lambda: gw.active_calls == 0, 3.0)
    await browser.close()


async def test_a_dispatcher_takes_over_and_audio_is_bridged(gateway) -> None:
    gw, center = gateway
    caller = Browser(freq_hz=300.0)
    call_id = await call(gw, caller)
    session: FakeSession = center.calls[call_id]
    await asyncio.sleep(0.7)  # the greeting is over

    dispatcher = Browser(freq_hz=600.0)
    answer = await gw.take_over(call_id, "hoa", await dispatcher.offer(), "offer")
    assert gw.bridged(call_id) and session.taken_over_by is None  # not before audio flows
    await dispatcher.connect(answer)
    await until(lambda: session.taken_over_by == "hoa", 3.0)

    with pytest.raises(AlreadyBridged):
        await gw.take_over(call_id, "lan", await Browser().offer(), "offer")
    with pytest.raises(KeyError):
        await gw.take_over("webrtc-nosuchcall", "lan", await Browser().offer(), "offer")

    heard_by_caller = len(caller.heard)
    await until(lambda: dispatcher.loud_frames() >= 25, 3.0)  # the caller's voice
    await until(lambda: caller.loud_frames(heard_by_caller) >= 25, 3.0)  # the dispatcher's

    await dispatcher.close()
    await until(lambda: not gw.bridged(call_id), 3.0)
    assert not session.hung_up.is_set()  # the caller's call goes on
    assert session.released_by == ["hoa"]  # ... and is told to hold
    assert caller.pc.connectionState == "connected"

    # a dispatcher can join again (e.g. after a dropped connection)
    again = Browser(freq_hz=600.0)
    await again.connect(await gw.take_over(call_id, "lan", await again.offer(), "offer"))
    await until(lambda: session.taken_over_by == "lan", 3.0)
    # the caller hangs up: the dispatcher's connection is closed too
    await caller.close()
    await until(lambda: again.pc.connectionState == "closed", 5.0)
    await until(lambda: not gw.bridged(call_id) and gw.active_calls == 0, 3.0)


# ---------------------------------------------------------------- the HTTP API


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The real application, its call centre not started (calls get 503)."""
    app = create_app(Settings(data_dir=tmp_path, dialog_engine="scripted"))
    auth = app.state.auth_store
    await auth.create_schema()
    await app.state.center.open_store()
    token = (await auth.create_token("console", Role.DISPATCHER)).token
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://callbot.local") as client:
        yield client, token
    await app.state.center.stop()
    await auth.close()


async def test_the_phone_page_is_public_and_locked_down(api) -> None:
    client, _ = api
    page = await client.get("/phone")
    assert page.status_code == 200 and 'id="call-button"' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    script = await client.get("/static/phone.js")
    assert script.status_code == 200 and "RTCPeerConnection" in script.text


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"type": "offer", "line": "114", "lang": "vi"}, "sdp"),
        ({"sdp": CHROMIUM_OFFER, "type": "offer", "line": "115", "lang": "vi"}, "line"),
        ({"sdp": CHROMIUM_OFFER, "type": "offer", "line": "114", "lang": "fr"}, "lang"),
        ({"sdp": CHROMIUM_OFFER, "type": "answer", "line": "114", "lang": "vi"}, "type"),
        ({"sdp": "not an sdp", "type": "offer", "line": "114", "lang": "vi"}, "v=0"),
        (
            {
                "sdp": CHROMIUM_OFFER.replace("m=audio 55208", "m=video 55208"),
                "type": "offer",
                "line": "113",
                "lang": "en",
            },
            "only audio",
        ),
        (
            {"sdp": CHROMIUM_OFFER, "type": "offer", "line": "114", "lang": "vi", "from": "x"},
            "from",
        ),
    ],
)
async def test_bad_call_requests_are_refused_with_a_reason(api, body: dict[str, str], says: str):
    client, _ = api
    response = await client.post("/api/v1/phone/calls", json=body)
    assert response.status_code == 422
    assert says in response.text


async def test_a_call_while_the_service_starts_gets_503_and_starts_nothing(api) -> None:
    client, _ = api
    browser = Browser()
    body = {"sdp": await browser.offer(), "type": "offer", "line": "114", "lang": "vi"}
    response = await client.post("/api/v1/phone/calls", json=body)
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    await browser.close()
    huge = await client.post("/api/v1/phone/calls", json={**body, "sdp": "v=0\r\n" * 20_000})
    assert huge.status_code == 413


async def test_take_over_needs_staff_and_a_live_call(api) -> None:
    client, token = api
    offer = {"sdp": CHROMIUM_OFFER, "type": "offer"}
    url = "/api/v1/incidents/inc-webrtc-0123456789abcdef/takeover"
    assert (await client.post(url, json=offer)).status_code == 401
    bearer = {"Authorization": f"Bearer {token}"}
    not_live = await client.post(url, json=offer, headers=bearer)
    assert not_live.status_code == 404 and "not in progress" in not_live.text
    odd = await client.post("/api/v1/incidents/other-id/takeover", json=offer, headers=bearer)
    assert odd.status_code == 404
    missing = await client.post(url, json={"type": "offer"}, headers=bearer)
    assert missing.status_code == 422
