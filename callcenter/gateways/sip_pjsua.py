"""pjsua2 on a thread of its own: SIP signalling and RTP for the SIP gateway.

One thread creates the pjsua2 `Endpoint` (so it is pjlib's registered main
thread), polls `libHandleEvents` and runs the commands the event loop submits;
every pjsua2 call and every pjsua2 object's destruction happens on it. pjsua2
runs with `threadCnt=0`, `mainThreadOnly=True` (its callbacks arrive on this
thread) and a null sound device, whose clock drives the conference bridge at
16 kHz. Callbacks only post small frozen events to the event loop
(`loop.call_soon_threadsafe`); the media port's frame callbacks, on pjsip's
media clock thread, only touch a `CallAudio`. pjsip's media threads are raised
above the speech recognisers where the OS allows it (`sip_media`).

pjsua holds at most PJSUA_MAX_CALLS calls, fixed when pjproject is compiled
(4 in the pjsua2 wheels on PyPI); the gateway reads the real figure at start
and takes no more calls than it allows (`call_limit`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pjsua2 as pj

from callcenter.events import INTERNAL_RATE_HZ
from callcenter.gateways.sip_audio import CallAudio
from callcenter.gateways.sip_events import (
    CallConfirmed,
    CallEnded,
    CallOffered,
    DtmfReceived,
    PjsipConfig,
    SipError,
    SipEvent,
)
from callcenter.gateways.sip_invite import parse_invite
from callcenter.gateways.sip_media import (
    MediaPort,
    PjLogWriter,
    add_headers,
    pjsua_max_calls,
    raise_media_thread_priority,
    vector_reader,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_PREFERRED_CODECS = ("PCMA/8000/1", "PCMU/8000/1")  # A-law first, as on Vietnam's network
_PJ_ETOOMANY = 70010  # pjlib's "too many objects": every pjsua call slot is taken
_MEDIA_THREADS = frozenset({"clock", "media"})  # pjlib's names for the bridge clock and RTP I/O


# ----- calls ----------------------------------------------------------------
@dataclass(eq=False)
class _Leg:
    key: str
    call: Any  # _Call; dropped the moment the call is disconnected
    incoming: bool
    audio: CallAudio[object] | None = None
    port: MediaPort | None = None
    by_us: bool = False
    ended: bool = False


class _Call(pj.Call):  # type: ignore[misc]
    """Forwards pjsua2's call callbacks (on the SIP thread) to the engine by key.

    It holds the key, not the leg, so that no reference cycle keeps pjsua2
    objects for Python's cyclic collector to free on some other thread.
    """

    def __init__(self, engine: PjsipThread, account: Any, key: str, call_id: int) -> None:
        super().__init__(account, call_id)
        self._engine = engine
        self._key = key

    def onCallState(self, prm: Any) -> None:
        self._engine._guard(self._engine._call_state, self._key)

    def onCallMediaState(self, prm: Any) -> None:
        self._engine._guard(self._engine._media_state, self._key)

    def onDtmfDigit(self, prm: Any) -> None:
        self._engine._post(DtmfReceived(self._key, str(prm.digit)))


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, engine: PjsipThread) -> None:
        super().__init__()
        self._engine = engine

    def onIncomingCall(self, prm: Any) -> None:
        self._engine._guard(self._engine._incoming, prm)


class PjsipThread:
    """The pjsua2 endpoint and its thread; the event loop talks to it by key."""

    _running = False  # pjsua2 allows one Endpoint per process
    _running_lock = threading.Lock()

    def __init__(
        self,
        config: PjsipConfig,
        loop: asyncio.AbstractEventLoop,
        on_event: Callable[[SipEvent], None],
    ) -> None:
        self._config = config
        self._loop = loop
        self._on_event = on_event
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._started: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._legs: dict[str, _Leg] = {}
        self._ports_made: list[MediaPort] = []  # all of them, kept until pjsip stops
        self._spare_ports: list[MediaPort] = []
        self.call_limit = config.max_calls  # lowered at start to what pjsua was built for
        self._read = vector_reader()
        self._boosted: set[int] = set()
        # Created on the SIP thread:
        self._endpoint: Any = None
        self._account: Any = None
        self._writer: Any = None

    # ----- event loop side ---------------------------------------------
    async def start(self) -> str:
        """Start the thread and the SIP stack; returns where it listens ("udp 1.2.3.4:5060")."""
        with PjsipThread._running_lock:
            if PjsipThread._running:
                raise SipError("a pjsua2 endpoint already runs in this process")
            PjsipThread._running = True
        self._thread = threading.Thread(target=self._run, name="pjsip", daemon=True)
        self._thread.start()
        try:
            return await asyncio.wrap_future(self._started)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Hang up every leg, destroy the endpoint and end the thread."""
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10.0)
            if self._thread.is_alive():
                log.error("the SIP thread did not stop within 10 s")
                return
            self._thread = None
        with PjsipThread._running_lock:
            PjsipThread._running = False

    def submit(self, command: Callable[[], _T]) -> concurrent.futures.Future[_T]:
        """Run `command` on the SIP thread; its result or exception in the future."""
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(command())
            except pj.Error as exc:
                log.warning("pjsua2: %s", exc.reason)
                future.set_exception(SipError(str(exc.reason)))
            except Exception as exc:
                log.exception("a SIP command failed")
                future.set_exception(exc)

        if self._stopping.is_set():
            future.set_exception(SipError("the SIP stack is stopping"))
        else:
            self._commands.put(run)
        return future

    def new_audio(self) -> CallAudio[object]:
        """Frame buffers for a new call leg (frames out are pjsua2 ByteVectors)."""
        return CallAudio(self._loop, pj.ByteVector)

    def answer(
        self,
        key: str,
        status_code: int,
        audio: CallAudio[object] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer (200, with `audio` for the call) or refuse (4xx/5xx) an offered call."""
        self.submit(lambda: self._answer(key, status_code, audio, headers or {}))

    def hang_up(self, key: str, status_code: int = 0) -> None:
        """BYE (CANCEL, or a final error code before answering) from our side."""
        self.submit(lambda: self._hang_up(key, status_code))

    def dial(self, uri: str, audio: CallAudio[object], headers: dict[str, str]) -> str:
        """Start an outgoing leg (INVITE) to `uri`; its key for the events that follow."""
        key = f"out-{uuid.uuid4().hex[:12]}"
        self.submit(lambda: self._dial(key, uri, audio, headers))
        return key

    # ----- SIP thread ----------------------------------------------------
    def _run(self) -> None:
        try:
            address = self._create()
        except Exception as exc:  # pj.Error, or a missing/broken library
            self._destroy()
            detail = exc.info() if isinstance(exc, pj.Error) else repr(exc)
            self._started.set_exception(SipError(f"pjsua2 did not start: {detail}"))
            return
        self._started.set_result(address)
        try:
            while not self._stopping.is_set():
                self._run_commands()
                self._endpoint.libHandleEvents(self._config.poll_ms)
        except Exception:  # the loop must not die silently: log, then free the stack
            log.exception("the SIP thread failed; SIP calls are no longer taken")
        finally:
            self._shutdown()

    def _create(self) -> str:
        cfg = self._config
        endpoint = pj.Endpoint()
        endpoint.libCreate()
        self._endpoint = endpoint
        ep_cfg = pj.EpConfig()
        ua = ep_cfg.uaConfig
        ua.threadCnt = 0
        ua.mainThreadOnly = True
        ua.maxCalls = cfg.max_calls + cfg.reserved_legs  # pjsua caps it at PJSUA_MAX_CALLS
        ua.userAgent = "callbot"
        ua.natTypeInSdp = 0
        self._writer = PjLogWriter()
        log_cfg = ep_cfg.logConfig
        log_cfg.writer = self._writer
        log_cfg.level = 3 if cfg.debug else 2
        log_cfg.consoleLevel = log_cfg.level
        log_cfg.msgLogging = 0  # SIP messages carry caller numbers: never logged
        log_cfg.decor = pj.PJ_LOG_HAS_SENDER
        media = ep_cfg.medConfig
        media.clockRate = INTERNAL_RATE_HZ
        media.sndClockRate = INTERNAL_RATE_HZ
        media.channelCount = 1
        media.audioFramePtime = 20
        media.ptime = 20
        media.noVad = True  # a packet every 20 ms, silence included
        media.ecTailLen = 0  # no echo canceller: there is no loudspeaker
        media.sndAutoCloseTime = -1  # one clock thread for the process's life, not one per call
        media.maxMediaPorts = 2 * (ua.maxCalls + 2) + 4
        endpoint.libInit(ep_cfg)
        self._set_call_limit(ua.maxCalls)
        endpoint.audDevManager().setNullDev()
        for codec in endpoint.codecEnum2():
            endpoint.codecSetPriority(codec.codecId, 0)  # priority 0: never offered or taken
        for rank, codec_id in enumerate(_PREFERRED_CODECS):
            endpoint.codecSetPriority(codec_id, 255 - rank)
        transport = pj.TransportConfig()
        transport.port = cfg.port
        if cfg.host not in ("", "0.0.0.0"):
            transport.boundAddress = cfg.host
        if cfg.public_address:
            transport.publicAddress = cfg.public_address
        transport_id = endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        endpoint.libStart()
        local = str(endpoint.transportGetInfo(transport_id).localName)
        account_cfg = pj.AccountConfig()
        account_cfg.idUri = f"sip:callbot@{local}"
        account_cfg.sipConfig.transportId = transport_id
        rtp = account_cfg.mediaConfig.transportConfig
        if cfg.host not in ("", "0.0.0.0"):
            rtp.boundAddress = cfg.host
        if cfg.public_address:
            rtp.publicAddress = cfg.public_address
        self._account = _Account(self)
        self._account.create(account_cfg, True)
        return f"udp {local}"

    def _set_call_limit(self, asked: int) -> None:
        """Take at most what pjsua can hold, less the slots kept for dispatcher legs.

        PJSUA_MAX_CALLS is fixed when pjproject is compiled (4 unless its
        config_site.h raises it) and pjsua silently caps `maxCalls` to it.
        """
        slots = pjsua_max_calls() or asked
        limit = max(1, min(self._config.max_calls, slots - self._config.reserved_legs))
        if limit < self._config.max_calls:
            log.warning(
                "pjsua2 holds %d calls at once (compiled PJSUA_MAX_CALLS)%s: taking %d SIP "
                "calls at once, not sip_max_calls=%d; more get 486",
                slots,
                f", {self._config.reserved_legs} kept for dispatchers"
                if self._config.reserved_legs
                else "",
                limit,
                self._config.max_calls,
            )
        self.call_limit = limit

    def _run_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            command()

    def _guard(self, handler: Callable[..., None], *args: Any) -> None:
        """Run a callback's work; nothing may raise back into pjsua2."""
        try:
            handler(*args)
        except pj.Error as exc:
            log.error("pjsua2 error in %s: %s", handler.__name__, exc.info())
        except Exception:
            log.exception("SIP callback %s failed", handler.__name__)

    def _post(self, event: SipEvent) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop is closed
            self._loop.call_soon_threadsafe(self._on_event, event)

    def _incoming(self, prm: Any) -> None:
        key = f"sip-{uuid.uuid4().hex[:16]}"
        call = _Call(self, self._account, key, prm.callId)
        leg = _Leg(key, call, incoming=True)
        self._legs[key] = leg
        invite = parse_invite(str(prm.rdata.wholeMsg))
        taken = sum(1 for other in self._legs.values() if other.incoming and not other.ended)
        if taken > self.call_limit:
            log.warning("all %d SIP lines busy: 486 Busy Here", self.call_limit)
            self._answer(key, 486, None, {})
            return
        if not invite.acceptable_media:
            log.warning(
                "INVITE offers no G.711 (%s): 488 Not Acceptable Here",
                ", ".join(sorted(invite.offered_codecs or ())),
            )
            self._answer(key, 488, None, {"Warning": '305 callbot "only PCMA and PCMU"'})
            return
        self._answer(key, 180, None, {})
        self._post(CallOffered(key, invite))

    def _answer(
        self, key: str, status_code: int, audio: CallAudio[object] | None, headers: dict[str, str]
    ) -> None:
        leg = self._legs.get(key)
        if leg is None or leg.ended:
            return  # cancelled meanwhile
        if audio is not None:
            leg.audio = audio
        if status_code >= 300:
            leg.by_us = True
        prm = pj.CallOpParam()
        prm.statusCode = status_code
        add_headers(prm, headers)
        leg.call.answer(prm)

    def _hang_up(self, key: str, status_code: int) -> None:
        leg = self._legs.get(key)
        if leg is None or leg.ended:
            return
        leg.by_us = True
        if leg.call.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED:
            return  # its DISCONNECTED callback is on its way
        prm = pj.CallOpParam()
        prm.statusCode = status_code
        leg.call.hangup(prm)

    def _dial(self, key: str, uri: str, audio: CallAudio[object], headers: dict[str, str]) -> None:
        call = _Call(self, self._account, key, pj.PJSUA_INVALID_ID)
        leg = _Leg(key, call, incoming=False, audio=audio, by_us=False)
        self._legs[key] = leg
        prm = pj.CallOpParam(True)
        prm.opt.audioCount = 1
        prm.opt.videoCount = 0
        add_headers(prm, headers)
        try:
            call.makeCall(uri, prm)
        except pj.Error as exc:
            if exc.status == _PJ_ETOOMANY:
                log.warning("no free pjsua call slot to call %s", uri)
            else:
                log.error("could not call %s: %s", uri, exc.reason)
            leg.ended = True
            del self._legs[key]
            self._post(CallEnded(key, 500, "could not place the call", by_us=True))

    def _call_state(self, key: str) -> None:
        leg = self._legs.get(key)
        if leg is None:
            return
        info = leg.call.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self._post(CallConfirmed(key))
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED and not leg.ended:
            leg.ended = True
            if leg.audio is not None:
                leg.audio.closed = True
            del self._legs[key]
            # The Call object goes now, as pjsua2 asks: its destructor hangs up
            # whatever call holds its slot, and pjsua reuses slots at once. The
            # media port is detached and kept for a later leg (see MediaPort).
            leg.call = None
            if leg.port is not None:
                leg.port.detach()
                self._spare_ports.append(leg.port)
                leg.port = None
            self._post(CallEnded(key, int(info.lastStatusCode), str(info.lastReason), leg.by_us))

    def _media_state(self, key: str) -> None:
        leg = self._legs.get(key)
        if leg is None or leg.audio is None:
            return
        info = leg.call.getInfo()
        for index, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO or media.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            call_media = leg.call.getAudioMedia(index)
            if leg.port is None:
                if self._spare_ports:
                    port = self._spare_ports.pop()
                else:
                    port = MediaPort(self._read)
                    fmt = pj.MediaFormatAudio()
                    fmt.init(pj.PJMEDIA_FORMAT_PCM, INTERNAL_RATE_HZ, 1, 20_000, 16)
                    port.createPort(f"bot-{len(self._ports_made)}", fmt)
                    self._ports_made.append(port)
                port.attach(leg.audio)
                leg.port = port
            call_media.startTransmit(leg.port)
            leg.port.startTransmit(call_media)
            raise_media_thread_priority(_MEDIA_THREADS, self._boosted)
            return

    def _shutdown(self) -> None:
        endpoint = self._endpoint
        if endpoint is not None and self._legs:
            endpoint.hangupAllCalls()
            deadline = time.monotonic() + 2.0
            while self._legs and time.monotonic() < deadline:
                endpoint.libHandleEvents(10)
        if endpoint is not None:
            for _ in range(10):  # let the last BYEs and ports go
                endpoint.libHandleEvents(10)
        self._destroy()

    def _destroy(self) -> None:
        """Free pjsua2 objects: calls and the account before the library, media ports
        after it (see MediaPort)."""
        self._legs.clear()
        for port in self._ports_made:
            port.detach()
        if self._account is not None:
            try:
                self._account.shutdown()
            except pj.Error as exc:
                log.warning("account shutdown: %s", exc.info())
            self._account = None
        if self._endpoint is not None:
            try:
                self._endpoint.libDestroy()
            except pj.Error as exc:
                log.warning("pjsua2 libDestroy: %s", exc.info())
            self._endpoint = None
        # Only now, with pjsip's media clock stopped, can ports be freed safely.
        self._spare_ports.clear()
        self._ports_made.clear()
        self._writer = None
