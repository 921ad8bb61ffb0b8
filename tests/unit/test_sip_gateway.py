"""The SIP gateway's call handling, with the SIP stack and the session faked at their edges."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from callcenter.center import NotReady
from callcenter.events import FRAME_BYTES, CallInfo, Language, Line
from callcenter.gateways import sip as sip_module
from callcenter.gateways.sip import SipGateway
from callcenter.gateways.sip_audio import CallAudio
from callcenter.gateways.sip_events import (
    CallConfirmed,
    CallEnded,
    CallOffered,
    DtmfReceived,
    PjsipConfig,
    SipEvent,
)
from callcenter.gateways.sip_invite import InviteRequest
from callcenter.playback import CallOutput
from callcenter.settings import Settings

pytestmark = pytest.mark.unit

FRAME = b"\x01" * FRAME_BYTES
INVITE = InviteRequest(Line.FIRE, True, "114", Language.EN, "0912345678", frozenset({"PCMA"}))


class FakeEngine:
    """Records what the gateway asks of the SIP stack."""

    call_limit = 4

    def __init__(self, config: PjsipConfig, loop: asyncio.AbstractEventLoop,
                 on_event: Callable[[SipEvent], None]) -> None:  # fmt: skip
        self.config = config
        self.loop = loop
        self.on_event = on_event
        self.answers: list[tuple[str, int, dict[str, str]]] = []
        self.hang_ups: list[str] = []
        self.dials: list[tuple[str, dict[str, str]]] = []
        self.audios: dict[str, CallAudio[object]] = {}

    async def start(self) -> str:
        return "udp 127.0.0.1:5099"

    async def stop(self) -> None:
        pass

    def new_audio(self) -> CallAudio[object]:
        return CallAudio(self.loop, lambda pcm: pcm)

    def answer(self, key: str, status_code: int, audio: CallAudio[object] | None = None,
               headers: dict[str, str] | None = None) -> None:  # fmt: skip
        self.answers.append((key, status_code, headers or {}))

    def hang_up(self, key: str, status_code: int = 0) -> None:
        self.hang_ups.append(key)

    def dial(self, uri: str, audio: CallAudio[object], headers: dict[str, str]) -> str:
        key = f"out-{len(self.dials)}"
        self.dials.append((uri, headers))
        self.audios[key] = audio
        return key


@dataclass
class FakeOutcome:
    end_reason: str = ""


@dataclass
class FakeSession:
    info: CallInfo
    output: CallOutput
    handoff_requested: asyncio.Event = field(default_factory=asyncio.Event)
    taken_over_by: str | None = None
    outcome: FakeOutcome = field(default_factory=FakeOutcome)
    heard: list[bytes] = field(default_factory=list)
    digits: list[str] = field(default_factory=list)
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)
    unavailable: int = 0
    caller_tap: Callable[[int, bytes], None] | None = None
    released: bool = False

    async def push_audio(self, pcm: bytes) -> None:
        self.heard.append(pcm)
        if self.caller_tap is not None:
            self.caller_tap(0, pcm)

    def dtmf(self, digit: str) -> None:
        self.digits.append(digit)

    def hangup(self, reason: str) -> None:
        if not self.hung_up.is_set():
            self.outcome.end_reason = reason
            self.hung_up.set()

    async def dispatcher_unavailable(self) -> None:
        self.unavailable += 1

    async def release(self, on_caller_audio: Callable[[int, bytes], None]) -> None:
        self.taken_over_by = None
        self.caller_tap = None
        self.released = True

    async def take_over(self, dispatcher: str,
                        on_caller_audio: Callable[[int, bytes], None]
                        ) -> Callable[[bytes], Awaitable[None]]:  # fmt: skip
        self.taken_over_by = dispatcher
        self.caller_tap = on_caller_audio
        return self.output.send_audio

    async def run(self) -> None:
        await self.output.send_audio(FRAME)  # the greeting's first frame
        await self.hung_up.wait()


class FakeCenter:
    def __init__(self, settings: Settings, *, ready: bool = True) -> None:
        self.settings = settings
        self.ready = ready
        self.accepting = True
        self.sessions: list[FakeSession] = []

    def open_call(self, info: CallInfo, output: CallOutput) -> FakeSession:
        if not self.ready:
            raise NotReady("service starting: asr=starting")
        session = FakeSession(info, output)
        self.sessions.append(session)
        return session

    async def run_call(self, session: FakeSession) -> None:
        await session.run()


async def started(**settings: object) -> tuple[SipGateway, FakeEngine, FakeCenter]:
    center = FakeCenter(Settings(**settings))  # type: ignore[arg-type]
    engines: list[FakeEngine] = []

    def factory(config: PjsipConfig, loop: asyncio.AbstractEventLoop,
                on_event: Callable[[SipEvent], None]) -> FakeEngine:  # fmt: skip
        engines.append(FakeEngine(config, loop, on_event))
        return engines[0]

    gateway = SipGateway(center, engine_factory=factory)  # type: ignore[arg-type]
    await gateway.start()
    return gateway, engines[0], center


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_call_is_answered_when_the_greeting_starts() -> None:
    gateway, engine, center = await started(sip_max_calls=7)
    assert gateway.address == "udp 127.0.0.1:5099"
    assert engine.config.max_calls == 7 and engine.config.reserved_legs == 0
    engine.on_event(CallOffered("sip-1", INVITE))
    [session] = center.sessions
    assert session.info == CallInfo("sip-1", Line.FIRE, Language.EN, "0912345678", "sip")
    await settle()
    assert engine.answers == [("sip-1", 200, {})]
    engine.on_event(CallEnded("sip-1", 200, "Normal call clearing", by_us=False))
    await settle()
    assert session.outcome.end_reason == "caller hung up"
    assert engine.hang_ups == []  # the caller's BYE ended it; nothing more to send
    await gateway.stop()


async def test_calls_while_starting_get_503_with_retry_after() -> None:
    gateway, engine, center = await started()
    center.ready = False
    engine.on_event(CallOffered("sip-1", INVITE))
    assert engine.answers == [("sip-1", 503, {"Retry-After": "10"})]
    await gateway.stop()


async def test_cancel_before_answer_and_dtmf_and_caller_audio() -> None:
    gateway, engine, center = await started()
    engine.on_event(CallOffered("sip-1", INVITE))
    session = center.sessions[0]
    engine.on_event(DtmfReceived("sip-1", "5"))
    assert session.digits == ["5"]
    engine.on_event(CallEnded("sip-1", 487, "Request Terminated", by_us=False))
    await settle()
    assert session.outcome.end_reason == "caller hung up before answer"
    assert engine.answers == []  # the greeting came after the CANCEL: never answered
    await gateway.stop()


async def test_caller_audio_reaches_the_session_in_order() -> None:
    gateway, engine, center = await started()
    engine.on_event(CallOffered("sip-1", INVITE))
    await settle()
    audio = gateway._calls["sip-1"].leg.audio
    for value in range(3):
        audio.received(bytes([value]) * FRAME_BYTES)
    await settle()
    assert [pcm[0] for pcm in center.sessions[0].heard] == [0, 1, 2]
    await gateway.stop()


async def test_when_the_session_ends_the_gateway_hangs_up(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway, engine, center = await started()
    engine.on_event(CallOffered("sip-1", INVITE))
    await settle()
    center.sessions[0].hangup("bot ended the call")
    await settle()
    assert engine.hang_ups == ["sip-1"]
    await gateway.stop()


async def test_a_silent_greeting_is_answered_anyway(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sip_module, "_ANSWER_WITHIN_S", 0.05)
    monkeypatch.setattr(FakeSession, "run", lambda self: self.hung_up.wait())
    gateway, engine, _center = await started()
    engine.on_event(CallOffered("sip-1", INVITE))
    await settle()
    assert engine.answers == []
    await asyncio.sleep(0.1)
    assert engine.answers == [("sip-1", 200, {})]
    await gateway.stop()


async def test_handoff_bridges_caller_and_dispatcher() -> None:
    gateway, engine, center = await started(sip_dispatcher_uri="sip:desk@pbx")
    assert engine.config.reserved_legs == 1
    engine.on_event(CallOffered("sip-1", INVITE))
    await settle()
    session = center.sessions[0]
    session.handoff_requested.set()
    await settle()
    assert engine.dials == [("sip:desk@pbx", {"X-Callbot-Call-Id": "sip-1",
                                               "X-Callbot-Line": "114"})]  # fmt: skip
    engine.on_event(CallConfirmed("out-0"))
    await settle()
    assert session.taken_over_by == "sip:desk@pbx"
    # The dispatcher's voice goes to the caller; the caller's to the dispatcher.
    caller_audio = gateway._calls["sip-1"].leg.audio
    dispatcher_audio = engine.audios["out-0"]
    queued = caller_audio.queued_frames
    dispatcher_audio.received(FRAME)
    await settle()
    assert caller_audio.queued_frames == queued + 1
    caller_audio.received(FRAME)
    await settle()
    assert dispatcher_audio.queued_frames == 1
    # The dispatcher hangs up: so does the caller's leg.
    engine.on_event(CallEnded("out-0", 200, "Normal call clearing", by_us=False))
    await settle()
    assert session.outcome.end_reason == "dispatcher hung up"
    assert "sip-1" in engine.hang_ups
    await gateway.stop()


async def test_a_dropped_dispatcher_leg_puts_the_caller_back_on_hold() -> None:
    gateway, engine, center = await started(sip_dispatcher_uri="sip:desk@pbx")
    engine.on_event(CallOffered("sip-1", INVITE))
    await settle()
    session = center.sessions[0]
    session.handoff_requested.set()
    await settle()
    engine.on_event(CallConfirmed("out-0"))
    await settle()
    engine.on_event(CallEnded("out-0", 408, "Request Timeout", by_us=False))
    await settle()
    assert session.released and not session.hung_up.is_set()
    assert "sip-1" not in engine.hang_ups  # the caller stays on the line
    await gateway.stop()


async def test_no_dispatcher_answer_keeps_the_caller_with_the_bot() -> None:
    gateway, engine, center = await started(
        sip_dispatcher_uri="sip:desk@pbx", sip_transfer_timeout_s=0.05
    )
    engine.on_event(CallOffered("sip-1", INVITE))
    await settle()
    session = center.sessions[0]
    session.handoff_requested.set()
    await asyncio.sleep(0.15)
    assert session.unavailable == 1
    assert engine.hang_ups == ["out-0"]  # the ringing dispatcher leg is cancelled
    assert session.taken_over_by is None
    await gateway.stop()


async def test_a_failed_dispatcher_call_keeps_the_caller_with_the_bot() -> None:
    gateway, engine, center = await started(sip_dispatcher_uri="sip:desk@pbx")
    engine.on_event(CallOffered("sip-1", INVITE))
    await settle()
    center.sessions[0].handoff_requested.set()
    await settle()
    engine.on_event(CallEnded("out-0", 486, "Busy Here", by_us=False))
    await settle()
    assert center.sessions[0].unavailable == 1
    assert engine.hang_ups == []
    await gateway.stop()


async def test_no_transfer_without_a_dispatcher_uri_or_after_a_console_take_over() -> None:
    gateway, engine, center = await started()
    engine.on_event(CallOffered("sip-1", INVITE))
    await settle()
    center.sessions[0].handoff_requested.set()
    await settle()
    assert engine.dials == []
    await gateway.stop()

    gateway, engine, center = await started(sip_dispatcher_uri="sip:desk@pbx")
    engine.on_event(CallOffered("sip-2", INVITE))
    await settle()
    center.sessions[0].taken_over_by = "dispatcher-7"
    center.sessions[0].handoff_requested.set()
    await settle()
    assert engine.dials == []
    await gateway.stop()


async def test_stop_hangs_up_every_call() -> None:
    gateway, engine, center = await started()
    for key in ("sip-1", "sip-2"):
        engine.on_event(CallOffered(key, INVITE))
    await settle()
    await gateway.stop()
    assert sorted(engine.hang_ups) == ["sip-1", "sip-2"]
    assert {s.outcome.end_reason for s in center.sessions} == {"service shutting down"}
    assert gateway.address is None
