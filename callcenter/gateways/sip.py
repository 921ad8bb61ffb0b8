"""SIP gateway: phone calls over SIP/RTP with G.711 (PCMA, PCMU), through pjsua2.

An INVITE to 113 or 114 rings (180) at once; the session is opened and the
call is answered (200) when the greeting's first frame is ready, so the caller
hears no dead air (at most `_ANSWER_WITHIN_S` after the INVITE, whatever the
greeting does). While the service is starting, INVITEs get 503 with
Retry-After; past `sip_max_calls`, 486; an offer without G.711, 488.

When the session asks for a human (`handoff_requested`) and a dispatcher URI
is set, the gateway calls the dispatcher on a second leg and bridges the two
through the session (`CallSession.take_over`), rather than sending the caller a
REFER: emergency callers arrive through trunks and SBCs that often refuse
REFER, a REFER hands the caller's fate to their own phone, and with a bridge
the caller never leaves us: when no dispatcher answers within
`sip_transfer_timeout_s`, the caller is still with the bot
(`dispatcher_unavailable`), and the recording and transcript go on.

The pjsua2 side lives in `sip_pjsua` (its own thread); this module is the
asyncio side and touches no pjsua2 object.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from callcenter.center import CallCenter, NotReady
from callcenter.events import CallInfo
from callcenter.gateways.sip_audio import CallAudio, SipCallOutput
from callcenter.gateways.sip_events import (
    CallConfirmed,
    CallEnded,
    CallOffered,
    DtmfReceived,
    PjsipConfig,
    SipEvent,
)
from callcenter.gateways.sip_pjsua import PjsipThread
from callcenter.logs import call_context
from callcenter.session import CallSession

log = logging.getLogger(__name__)

RETRY_AFTER_S = 10  # what a 503 tells callers' proxies while the service starts
_ANSWER_WITHIN_S = 2.0  # answer even if the greeting has not started by then
_STOP_CALLS_S = 5.0

_Deliver = Callable[[bytes], Awaitable[None]]


class SipEngine(Protocol):
    """The SIP stack as this module uses it (`PjsipThread`; a fake in unit tests)."""

    call_limit: int

    async def start(self) -> str: ...
    async def stop(self) -> None: ...
    def new_audio(self) -> CallAudio[object]: ...
    def answer(
        self,
        key: str,
        status_code: int,
        audio: CallAudio[object] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None: ...
    def hang_up(self, key: str, status_code: int = 0) -> None: ...
    def dial(self, uri: str, audio: CallAudio[object], headers: dict[str, str]) -> str: ...


EngineFactory = Callable[
    [PjsipConfig, asyncio.AbstractEventLoop, Callable[[SipEvent], None]], SipEngine
]


@dataclass(eq=False)
class _Leg:
    """Our view of one SIP leg: the caller's, or a dispatcher's."""

    key: str
    audio: CallAudio[object]
    confirmed: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    end_status: int = 0


@dataclass(eq=False)
class _SipCall:
    leg: _Leg
    session: CallSession
    output: SipCallOutput[object]
    answered: bool = False
    task: asyncio.Task[None] | None = None


class SipGateway:
    """Takes SIP calls on `sip_host:sip_port` (UDP) and runs a session for each."""

    name = "sip"

    def __init__(self, center: CallCenter, engine_factory: EngineFactory = PjsipThread) -> None:
        self._center = center
        self._settings = center.settings
        self._engine_factory = engine_factory
        self._engine: SipEngine | None = None
        self._address: str | None = None
        self._calls: dict[str, _SipCall] = {}
        self._dispatcher_legs: dict[str, _Leg] = {}

    @property
    def address(self) -> str | None:
        return self._address

    async def start(self) -> None:
        settings = self._settings
        config = PjsipConfig(
            host=settings.sip_host,
            port=settings.sip_port,
            public_address=settings.sip_public_address,
            max_calls=settings.sip_max_calls,
            reserved_legs=1 if settings.sip_dispatcher_uri else 0,
            debug=log.isEnabledFor(logging.DEBUG),
        )
        engine = self._engine_factory(config, asyncio.get_running_loop(), self._on_event)
        self._address = await engine.start()
        self._engine = engine
        log.info(
            "SIP gateway listening on %s (G.711 PCMA/PCMU, %d calls at once)",
            self._address,
            engine.call_limit,
        )

    async def stop(self) -> None:
        engine = self._engine
        if engine is None:
            return
        tasks = [call.task for call in self._calls.values() if call.task is not None]
        for call in list(self._calls.values()):
            await call.output.close("service shutting down")
            call.session.hangup("service shutting down")
        if tasks:
            await asyncio.wait(tasks, timeout=_STOP_CALLS_S)
        await engine.stop()
        self._engine = None
        self._address = None

    # ----- events from the SIP thread --------------------------------------
    def _on_event(self, event: SipEvent) -> None:
        if isinstance(event, CallOffered):
            self._offered(event)
            return
        call = self._calls.get(event.key)
        leg = call.leg if call is not None else self._dispatcher_legs.get(event.key)
        if leg is None:
            return
        if isinstance(event, CallConfirmed):
            leg.confirmed.set()
        elif isinstance(event, CallEnded):
            leg.end_status = event.status_code
            leg.ended.set()
            if call is not None:
                self._caller_left(call, event)
        elif isinstance(event, DtmfReceived) and call is not None:
            with call_context(event.key):
                call.session.dtmf(event.digit)

    def _offered(self, event: CallOffered) -> None:
        engine = self._engine
        assert engine is not None
        invite = event.invite
        with call_context(event.key):
            if not invite.line_recognised:
                log.warning(
                    "dialled %r is neither 113 nor 114: the call goes to line 113",
                    invite.dialled,
                )
            info = CallInfo(
                call_id=event.key,
                line=invite.line,
                language=invite.language,
                caller_number=invite.caller_number,
                channel="sip",
            )
            leg = _Leg(event.key, engine.new_audio())
            output: SipCallOutput[object] = SipCallOutput(
                leg.audio,
                hang_up=lambda reason: engine.hang_up(event.key),
                on_first_audio=lambda: self._answer(event.key),
            )
            try:
                session = self._center.open_call(info, output)
            except NotReady as exc:
                log.warning("SIP call refused with 503: %s", exc)
                engine.answer(event.key, 503, headers={"Retry-After": str(RETRY_AFTER_S)})
                return
            log.info("SIP call ringing on line %s (%s)", info.line, info.language)
            log.debug("caller %s", info.caller_number)
            call = _SipCall(leg, session, output)
            self._calls[event.key] = call
            call.task = asyncio.create_task(self._run(call), name=f"sip-{event.key}")

    def _answer(self, key: str) -> None:
        call = self._calls.get(key)
        if call is None or call.answered or call.leg.ended.is_set() or self._engine is None:
            return
        call.answered = True
        self._engine.answer(key, 200, call.leg.audio)

    def _caller_left(self, call: _SipCall, event: CallEnded) -> None:
        with call_context(event.key):
            if event.by_us:
                reason = "call ended"
            elif not call.answered or event.status_code == 487:
                reason = "caller hung up before answer"
            elif event.status_code in (200, 0):
                reason = "caller hung up"
            else:
                reason = f"SIP call ended: {event.status_code} {event.reason}"
            call.output.closed = True
            call.session.hangup(reason)

    # ----- one call ----------------------------------------------------------
    async def _run(self, call: _SipCall) -> None:
        key = call.leg.key
        with call_context(key):
            helpers = [
                asyncio.create_task(self._pump(call.leg.audio, call.session.push_audio)),
                asyncio.create_task(self._answer_anyway(key)),
                asyncio.create_task(self._watch_handoff(call)),
            ]
            try:
                await self._center.run_call(call.session)
            finally:
                for helper in helpers:
                    helper.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
                if not call.leg.ended.is_set():
                    await call.output.close("session ended")
                call.leg.audio.closed = True
                self._calls.pop(key, None)
                counters = call.leg.audio.counters
                log.info(
                    "SIP call closed (%s): %d frames in (%d dropped), %d out (%d underruns)",
                    call.session.outcome.end_reason or "ended",
                    counters.frames_in,
                    counters.dropped_in,
                    counters.frames_out,
                    counters.underruns,
                )

    async def _answer_anyway(self, key: str) -> None:
        await asyncio.sleep(_ANSWER_WITHIN_S)
        call = self._calls.get(key)
        if call is not None and not call.answered:
            log.warning("no greeting within %.1f s: answering anyway", _ANSWER_WITHIN_S)
            self._answer(key)

    @staticmethod
    async def _pump(audio: CallAudio[object], deliver: _Deliver) -> None:
        while True:
            await deliver(await audio.inbound.get())

    async def _watch_handoff(self, call: _SipCall) -> None:
        uri = self._settings.sip_dispatcher_uri
        if not uri:
            return  # the session already tells the caller to hold
        await call.session.handoff_requested.wait()
        if call.session.taken_over_by is not None:
            return  # a dispatcher took the call from the console
        if not self._center.accepting:
            return  # shutting down: the caller is told to hold and called back
        await self._bridge_to_dispatcher(call, uri)

    async def _bridge_to_dispatcher(self, call: _SipCall, uri: str) -> None:
        engine = self._engine
        assert engine is not None
        session = call.session
        leg = _Leg("", engine.new_audio())
        headers = {"X-Callbot-Call-Id": call.leg.key, "X-Callbot-Line": str(session.info.line)}
        leg.key = engine.dial(uri, leg.audio, headers)
        self._dispatcher_legs[leg.key] = leg
        log.info("calling a dispatcher at %s", uri)
        try:
            answered = await self._wait_answer(leg, self._settings.sip_transfer_timeout_s)
            if not answered:
                if leg.ended.is_set():
                    log.warning("the call to the dispatcher failed (SIP status %d)", leg.end_status)
                else:
                    log.warning(
                        "the dispatcher did not answer within %.0f s",
                        self._settings.sip_transfer_timeout_s,
                    )
                    engine.hang_up(leg.key)  # CANCEL
                    leg.ended.set()  # as far as this call is concerned
                await session.dispatcher_unavailable()
                return

            def to_dispatcher(_call_ms: int, pcm: bytes) -> None:
                leg.audio.play(pcm)

            speak = await session.take_over(uri, to_dispatcher)
            log.info("the dispatcher answered: caller and dispatcher are bridged")
            async with asyncio.TaskGroup() as group:
                voice = group.create_task(self._pump(leg.audio, speak))
                await leg.ended.wait()
                voice.cancel()
            if leg.end_status == 200:  # the dispatcher hung up: the conversation is over
                log.info("the dispatcher hung up: ending the call")
                await call.output.close("dispatcher hung up")
                session.hangup("dispatcher hung up")
            else:  # the dispatcher's leg failed: the caller holds for another one
                log.warning("the dispatcher's leg dropped (SIP status %d)", leg.end_status)
                await session.release(to_dispatcher)
        finally:
            if not leg.ended.is_set() and self._engine is not None:
                self._engine.hang_up(leg.key)
            self._dispatcher_legs.pop(leg.key, None)
            leg.audio.closed = True

    @staticmethod
    async def _wait_answer(leg: _Leg, timeout_s: float) -> bool:
        """True once the leg is confirmed; False if it ended or the time ran out."""
        waits = [asyncio.create_task(leg.confirmed.wait()), asyncio.create_task(leg.ended.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*waits, return_exceptions=True)
        return leg.confirmed.is_set() and not leg.ended.is_set()
