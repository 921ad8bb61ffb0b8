"""WebRTC gateway (aiortc): the browser softphone and the dispatcher's take-over audio.

Signalling is one HTTP round trip without trickle ICE: the browser gathers its
candidates, POSTs the whole offer, and gets back an answer that carries ours.
Caller audio (Opus or G.711, decoded by aiortc) is resampled to the internal
16 kHz and cut into 20 ms frames for `CallSession.push_audio`; the bot's
frames wait in a small queue that an outgoing track reads, paced to the clock,
with silence when there is nothing to say.

ICE: no STUN or TURN server (`iceServers=[]`: the default STUN server blocks
gathering for seconds without internet), so we offer host candidates on the
machine's interfaces. aioice never offers 127.0.0.1; a browser on the same
machine reaches us through the host's own interface address, as a browser
on the LAN does. A service behind NAT needs a TURN server or a public
address, which this gateway does not configure yet.

The pure parts (offer checks, frame cutting, the frame clock) come first and
are unit-tested on their own; the aiortc shell follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidAccessError, InvalidStateError
from aiortc.mediastreams import MediaStreamError

from callcenter.center import CallCenter
from callcenter.events import (
    FRAME_BYTES,
    FRAME_MS,
    FRAME_SAMPLES,
    INTERNAL_RATE_HZ,
    CallbotError,
    CallInfo,
    Language,
    Line,
)
from callcenter.logs import call_context
from callcenter.session import CallSession

log = logging.getLogger(__name__)

MAX_SDP_CHARS = 16_000  # a browser's audio offer with candidates is 3-6 kB
AUDIO_CODECS = frozenset({"opus", "pcmu", "pcma"})  # what aiortc decodes for us
CONNECT_TIMEOUT_S = 15.0  # from the answer to media flowing
DRAIN_TIMEOUT_S = 3.0  # the bot's last words still queued when it hangs up
PLAYOUT_TAIL_S = 0.25  # the browser's jitter buffer still holds the last packets sent
_SILENCE = bytes(FRAME_BYTES)
_TIME_BASE = fractions.Fraction(1, INTERNAL_RATE_HZ)


class WebRtcError(CallbotError):
    """Base of this gateway's errors."""


class BadOffer(WebRtcError):
    """The SDP offer cannot make an audio call; the message says why (safe to show)."""


class TooManyCalls(WebRtcError):
    """The gateway is at its limit of concurrent calls."""


class AlreadyBridged(WebRtcError):
    """A dispatcher's audio is already connected to this call."""


# ---------------------------------------------------------------- pure parts


_MEDIA_LINE = re.compile(r"^m=(\w+) (\d+)(?:/\d+)? (\S+)(.*)$")
_RTPMAP = re.compile(r"^a=rtpmap:(\d+) ([^/\s]+)/\d+")


@dataclass(frozen=True, slots=True)
class OfferSummary:
    """What an acceptable offer proposes: its audio codecs and direction."""

    codecs: tuple[str, ...]  # lower-case names in the offer's order, e.g. ("opus", "pcmu")
    direction: str  # "sendrecv" or "sendonly" (from the offerer's side)


def check_offer(sdp: str, kind: str) -> OfferSummary:
    """Refuse an offer that cannot be an audio call, before any connection exists.

    Accepted: one SDP offer with exactly one audio section (and no video or
    data), a codec aiortc decodes (Opus, PCMU, PCMA), audio sent by the
    offerer, and the ICE credentials and DTLS fingerprint a connection needs.
    """
    if kind != "offer":
        raise BadOffer(f"expected an SDP offer, got type {kind!r}")
    if len(sdp) > MAX_SDP_CHARS:
        raise BadOffer(f"the SDP is longer than {MAX_SDP_CHARS} characters")
    lines = [line.strip() for line in sdp.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines or lines[0] != "v=0":
        raise BadOffer("not an SDP description (it must start with v=0)")
    session: list[str] = []
    sections: list[tuple[str, str, list[str]]] = []  # (media, port, lines)
    for line in lines:
        if line.startswith("m="):
            match = _MEDIA_LINE.match(line)
            if match is None:
                raise BadOffer("a malformed m= line")
            sections.append((match.group(1), match.group(2), []))
        elif sections:
            sections[-1][2].append(line)
        else:
            session.append(line)
    others = sorted({media for media, port, _ in sections if media != "audio" and port != "0"})
    if others:
        raise BadOffer(f"only audio is taken, the offer also has {', '.join(others)}")
    audio = [body for media, port, body in sections if media == "audio" and port != "0"]
    if not audio:
        raise BadOffer("the offer has no audio")
    if len(audio) > 1:
        raise BadOffer("the offer has more than one audio stream")
    body = audio[0]
    codecs = tuple(m.group(2).lower() for m in map(_RTPMAP.match, body) if m is not None)
    if not AUDIO_CODECS.intersection(codecs):
        raise BadOffer("no audio codec in common (Opus, PCMU or PCMA needed)")
    direction = next(
        (d for d in ("sendrecv", "sendonly", "recvonly", "inactive") if f"a={d}" in body),
        next((d for d in ("recvonly", "sendonly", "inactive") if f"a={d}" in session), "sendrecv"),
    )
    if direction not in ("sendrecv", "sendonly"):
        raise BadOffer(f"the offer sends no audio (direction {direction})")
    attributes = session + body
    for needed, what in (
        ("a=ice-ufrag:", "ICE credentials"),
        ("a=ice-pwd:", "ICE credentials"),
        ("a=fingerprint:", "a DTLS fingerprint"),
    ):
        if not any(line.startswith(needed) for line in attributes):
            raise BadOffer(f"the offer has no {what}")
    return OfferSummary(codecs=codecs, direction=direction)


class FrameCutter:
    """Cuts a byte stream into fixed-size frames; keeps the remainder for the next push."""

    def __init__(self, frame_bytes: int = FRAME_BYTES) -> None:
        self._frame_bytes = frame_bytes
        self._pending = bytearray()

    def push(self, data: bytes) -> list[bytes]:
        self._pending += data
        size = self._frame_bytes
        whole = len(self._pending) // size * size
        frames = [bytes(self._pending[i : i + size]) for i in range(0, whole, size)]
        del self._pending[:whole]
        return frames

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)


class FrameClock:
    """When each outgoing frame is due: frame n at start + n x frame length.

    A consumer that fell more than `max_lag_s` behind (the event loop was
    busy) starts counting afresh rather than sending a burst to catch up.
    """

    def __init__(self, frame_s: float = FRAME_MS / 1000, max_lag_s: float = 0.2) -> None:
        self.frame_s = frame_s
        self.max_lag_s = max_lag_s
        self._start_s: float | None = None
        self.frames = 0  # frames handed out so far

    def wait_s(self, now_s: float) -> float:
        """How long to wait before handing out the next frame (and count it)."""
        if self._start_s is None:
            self._start_s = now_s
        due_s = self._start_s + self.frames * self.frame_s
        if now_s - due_s > self.max_lag_s:
            self._start_s = now_s - self.frames * self.frame_s
            due_s = now_s
        self.frames += 1
        return max(0.0, due_s - now_s)


def pcm_to_frame(pcm: bytes, pts: int, sample_rate_hz: int = INTERNAL_RATE_HZ) -> av.AudioFrame:
    """int16 mono PCM as an `av.AudioFrame` that aiortc's encoders take."""
    frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
    frame.planes[0].update(pcm)
    frame.sample_rate = sample_rate_hz
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, sample_rate_hz)
    return frame


class ToInternalRate:
    """Any decoded `av.AudioFrame` to 16 kHz mono int16 PCM in 20 ms frames."""

    def __init__(self) -> None:
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=INTERNAL_RATE_HZ)
        self._cutter = FrameCutter()

    def convert(self, frame: av.AudioFrame) -> list[bytes]:
        frame.pts = None  # resample by samples: a gap in the stream is not padded
        frames: list[bytes] = []
        for out in self._resampler.resample(frame):
            frames += self._cutter.push(out.to_ndarray().astype("<i2").tobytes())
        return frames


# ---------------------------------------------------------------- aiortc shell


class OutgoingAudio(MediaStreamTrack):
    """An audio track that plays queued 20 ms frames in real time, silence when none."""

    kind = "audio"

    def __init__(self, max_queued_ms: int) -> None:
        super().__init__()
        self._queue: deque[bytes] = deque(maxlen=max(1, max_queued_ms // FRAME_MS))
        self._clock = FrameClock()
        self._drained = asyncio.Event()  # set while nothing is queued
        self._drained.set()
        self.frames_sent = 0
        self.audio_frames_sent = 0  # frames that were not filler silence

    def push(self, pcm: bytes) -> None:
        """Queue one frame; when the queue is full the oldest frame is dropped."""
        if len(pcm) != FRAME_BYTES:
            pcm = pcm[:FRAME_BYTES].ljust(FRAME_BYTES, b"\0")
        self._queue.append(pcm)
        self._drained.clear()

    def clear(self) -> None:
        self._queue.clear()
        self._drained.set()

    async def drained(self) -> None:
        """Returns once everything queued has been handed to the encoder."""
        await self._drained.wait()

    @property
    def queued_ms(self) -> int:
        return len(self._queue) * FRAME_MS

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        wait_s = self._clock.wait_s(time.monotonic())
        if wait_s > 0:
            await asyncio.sleep(wait_s)
        if self._queue:
            pcm = self._queue.popleft()
            self.audio_frames_sent += 1
            if not self._queue:
                self._drained.set()
        else:
            pcm = _SILENCE
        pts = self.frames_sent * FRAME_SAMPLES
        self.frames_sent += 1
        return pcm_to_frame(pcm, pts)


class PeerOutput:
    """The bot's side of a WebRTC call (`CallOutput`)."""

    def __init__(self, track: OutgoingAudio, pc: RTCPeerConnection) -> None:
        self._track = track
        self._pc = pc

    async def send_audio(self, pcm: bytes) -> None:
        self._track.push(pcm)

    async def send_mark(self, name: str) -> None:
        pass  # playback is paced on our side; nothing to echo back

    async def clear(self) -> None:
        self._track.clear()

    async def close(self, reason: str) -> None:
        """Let the last words play out (bounded), then hang up the connection."""
        if self._pc.connectionState == "connected":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._track.drained(), DRAIN_TIMEOUT_S)
                await asyncio.sleep(PLAYOUT_TAIL_S)
        log.info("closing the WebRTC call: %s", reason)
        await self._pc.close()


async def pump_audio(track: MediaStreamTrack, deliver: Callable[[bytes], Awaitable[None]]) -> int:
    """Read a remote audio track until it ends; deliver 16 kHz 20 ms frames. Frames read."""
    converter = ToInternalRate()
    frames = 0
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return frames
        if not isinstance(frame, av.AudioFrame):
            continue
        for pcm in converter.convert(frame):
            frames += 1
            await deliver(pcm)


@dataclass(frozen=True, slots=True)
class Answer:
    sdp: str
    call_id: str


class _Peer:
    """One peer connection with our outgoing track on its audio transceiver."""

    def __init__(self, max_queued_ms: int) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.outgoing = OutgoingAudio(max_queued_ms)
        self.created_at = time.monotonic()
        self.connected_after_ms: float | None = None
        self.connected = asyncio.Event()
        self.ended = asyncio.Event()
        self.pc.on("connectionstatechange", self._state_changed)

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and not self.connected.is_set():
            self.connected_after_ms = (time.monotonic() - self.created_at) * 1000
            self.connected.set()
        elif state in ("failed", "closed"):
            self.ended.set()

    async def answer(self, sdp: str) -> tuple[str, MediaStreamTrack]:
        """Our answer (all candidates gathered) and the remote audio track."""
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            incoming = next(
                (t.receiver.track for t in self.pc.getTransceivers() if t.kind == "audio"), None
            )
            if incoming is None:
                raise BadOffer("the offer has no audio")
            self.pc.addTrack(self.outgoing)
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        except (
            InvalidAccessError,
            InvalidStateError,
            ValueError,
            TypeError,
            KeyError,
            IndexError,
            AssertionError,
        ) as exc:
            # aiortc's parser and negotiation say what they could not take.
            raise BadOffer(f"the offer could not be negotiated: {exc}") from exc
        local = self.pc.localDescription
        return local.sdp, incoming

    async def wait_connected(self, timeout_s: float) -> bool:
        connected = asyncio.ensure_future(self.connected.wait())
        ended = asyncio.ensure_future(self.ended.wait())
        try:
            await asyncio.wait(
                {connected, ended}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            connected.cancel()
            ended.cancel()
        return self.connected.is_set() and not self.ended.is_set()

    async def close(self) -> None:
        self.outgoing.stop()
        await self.pc.close()


class WebRtcGateway:
    """The softphone's calls and the dispatchers' take-over bridges on this node."""

    def __init__(
        self,
        center: CallCenter,
        *,
        max_calls: int = 20,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self._center = center
        self.max_calls = max_calls
        self._connect_timeout_s = connect_timeout_s
        self._calls: dict[str, _Peer] = {}  # call id -> the caller's connection
        # call id -> the dispatcher's connection (None while it is set up)
        self._bridges: dict[str, _Peer | None] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.connect_times_ms: deque[float] = deque(maxlen=100)

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    def bridged(self, call_id: str) -> bool:
        return call_id in self._bridges

    # ----- the softphone -------------------------------------------------
    async def place_call(
        self, sdp: str, kind: str, line: Line, language: Language, caller_number: str | None
    ) -> Answer:
        """Answer a browser's offer and start the call (`NotReady` while starting)."""
        check_offer(sdp, kind)
        if len(self._calls) >= self.max_calls:
            raise TooManyCalls(f"{self.max_calls} WebRTC calls in progress; try again shortly")
        peer = _Peer(max_queued_ms=5000)  # holds the greeting until media flows
        call_id = f"webrtc-{uuid.uuid4().hex[:16]}"
        self._calls[call_id] = peer  # reserved before the first await
        try:
            answer_sdp, incoming = await peer.answer(sdp)
            info = CallInfo(
                call_id=call_id,
                line=line,
                language=language,
                caller_number=caller_number,
                channel="webrtc",
            )
            session = self._center.open_call(info, PeerOutput(peer.outgoing, peer.pc))
        except BaseException:
            self._calls.pop(call_id, None)
            await peer.close()
            raise
        self._spawn(self._run_call(peer, session, incoming), f"webrtc-call-{call_id}")
        with call_context(call_id):
            log.info("WebRTC call on line %s answered", line.value)
        return Answer(answer_sdp, call_id)

    async def _run_call(
        self, peer: _Peer, session: CallSession, incoming: MediaStreamTrack
    ) -> None:
        call_id = session.info.call_id
        with call_context(call_id):
            running = asyncio.create_task(self._center.run_call(session))
            reader: asyncio.Task[int] | None = None
            try:
                if await peer.wait_connected(self._connect_timeout_s):
                    self._note_connected(peer)
                    reader = asyncio.create_task(pump_audio(incoming, session.push_audio))
                    ended = asyncio.create_task(peer.ended.wait())
                    await asyncio.wait(
                        {reader, running, ended}, return_when=asyncio.FIRST_COMPLETED
                    )
                    ended.cancel()
                    if not running.done():
                        session.hangup("caller hung up")
                else:
                    log.warning("the WebRTC connection did not come up")
                    session.hangup("webrtc connection failed")
                await running
            finally:
                session.hangup("webrtc call ended")  # no-op once hung up
                if reader is not None:
                    reader.cancel()
                    await asyncio.gather(reader, return_exceptions=True)
                await asyncio.gather(running, return_exceptions=True)
                await peer.close()
                self._calls.pop(call_id, None)
                log.info("WebRTC call closed")

    # ----- a dispatcher takes over ------------------------------------
    async def take_over(self, call_id: str, dispatcher: str, sdp: str, kind: str) -> Answer:
        """Connect a dispatcher's browser to a live call; the bot falls silent once
        the dispatcher's audio flows. `KeyError`: the call is not live here."""
        check_offer(sdp, kind)
        session = self._center.calls.get(call_id)
        if session is None:
            raise KeyError(call_id)
        if call_id in self._bridges:
            raise AlreadyBridged(f"a dispatcher is already talking on call {call_id}")
        self._bridges[call_id] = None  # reserved before the first await
        peer = _Peer(max_queued_ms=200)  # live audio: at most 200 ms behind
        try:
            answer_sdp, incoming = await peer.answer(sdp)
        except BaseException:
            self._bridges.pop(call_id, None)
            await peer.close()
            raise
        self._bridges[call_id] = peer
        self._spawn(
            self._run_bridge(peer, session, dispatcher, incoming), f"webrtc-bridge-{call_id}"
        )
        return Answer(answer_sdp, call_id)

    async def _run_bridge(
        self, peer: _Peer, session: CallSession, dispatcher: str, incoming: MediaStreamTrack
    ) -> None:
        call_id = session.info.call_id
        bridge_open = True

        def to_dispatcher(call_ms: int, pcm16k: bytes) -> None:
            if bridge_open:
                peer.outgoing.push(pcm16k)

        with call_context(call_id):
            try:
                if not await peer.wait_connected(self._connect_timeout_s):
                    log.warning("the dispatcher's WebRTC connection did not come up")
                    return
                if self._center.calls.get(call_id) is not session:
                    log.info("the call ended before the dispatcher's audio connected")
                    return
                self._note_connected(peer)
                speak = await session.take_over(dispatcher, to_dispatcher)
                log.info("dispatcher audio bridged after %.0f ms", peer.connected_after_ms or 0)
                reader = asyncio.create_task(pump_audio(incoming, speak))
                call_over = asyncio.create_task(self._call_over(session))
                ended = asyncio.create_task(peer.ended.wait())
                tasks = (reader, call_over, ended)
                try:
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                log.info("the dispatcher's audio bridge ended")
            finally:
                # The call stays with the human queue: the caller is told to hold.
                bridge_open = False
                await peer.close()
                self._bridges.pop(call_id, None)
                if session.taken_over_by == dispatcher:
                    await session.release(to_dispatcher)

    async def _call_over(self, session: CallSession) -> None:
        """Returns once the call has ended."""
        await session.ended.wait()

    # ----- housekeeping -------------------------------------------------
    def _note_connected(self, peer: _Peer) -> None:
        if peer.connected_after_ms is not None:
            self.connect_times_ms.append(peer.connected_after_ms)
            log.info("WebRTC media connected %.0f ms after the offer", peer.connected_after_ms)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(self._supervised(work), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _supervised(work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("a WebRTC call task failed")

    async def close(self) -> None:
        """Hang up every connection (service shutdown)."""
        for peer in [*self._calls.values(), *(p for p in self._bridges.values() if p)]:
            with contextlib.suppress(Exception):
                await peer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
