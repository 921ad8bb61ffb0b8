"""A softphone in the terminal: talk to a running service with a microphone and speaker.

For demos and call-taker training. `callbot phone --line 114 --lang vi` calls
the service over its media-stream WebSocket (`MediaStreamCall`), sends the
microphone as 20 ms µ-law frames and plays the bot on the speaker until Ctrl-C
or until the bot ends the call. With `--wav FILE` the `callbot call` path plays
recordings as the caller instead (no sound card needed).

The sound card sits behind `AudioDevice`: `SoundDevice` is PortAudio through
`sounddevice`; `WavFileDevice` is a microphone that says recordings and a
speaker that is a buffer (tests, machines without a sound card). Devices run
at the internal 16 kHz; the line side is 8 kHz µ-law.

PortAudio calls us on its own audio thread: the callback only copies bytes,
hands the microphone frame to asyncio with `loop.call_soon_threadsafe` into a
bounded queue (the oldest frame is dropped when the loop falls behind) and
fills the speaker from a locked buffer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TextIO

from callcenter.audio import (
    StreamResampler,
    array_to_pcm,
    mulaw_decode,
    mulaw_encode,
    pcm_to_array,
    read_wav_16k,
    write_wav,
)
from callcenter.events import FRAME_BYTES, INTERNAL_RATE_HZ, CallbotError
from callcenter.media_client import (
    LINE_FRAME_BYTES,
    LINE_RATE_HZ,
    MediaStreamCall,
    MediaStreamError,
)

MicSink = Callable[[bytes], None]

FRAME_S = 0.020
_BYTES_PER_S = INTERNAL_RATE_HZ * 2
_MIC_QUEUE_FRAMES = 25  # 0.5 s: beyond that the loop is stalled and old audio is useless
_BACKLOG_FRAMES = 5  # more microphone frames than this waiting: send them without pacing
_SPEAKER_MAX_S = 30.0
_DRAIN_MAX_S = 5.0  # after the call, let the speaker finish at most this much
_FOREVER_S = 365 * 24 * 3600.0


class AudioDeviceError(CallbotError):
    """No usable microphone/speaker."""


class AudioDevice(Protocol):
    """A microphone and a speaker at 16 kHz mono int16, 20 ms at a time."""

    def open(self, on_mic: MicSink) -> None:
        """Start capture and playback; `on_mic(pcm)` gets each 20 ms microphone frame,
        on the device's own thread. Raises `AudioDeviceError`."""
        ...

    def play(self, pcm: bytes) -> None:
        """Queue audio for the speaker; returns at once."""
        ...

    def clear(self) -> None:
        """Drop audio queued for the speaker (the caller barged in)."""
        ...

    def pending_s(self) -> float:
        """Seconds of queued speaker audio not played yet."""
        ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- line codec


class LineEncoder:
    """16 kHz int16 PCM in any chunks -> 160-byte µ-law 8 kHz frames, streaming."""

    def __init__(self) -> None:
        self._down = StreamResampler(INTERNAL_RATE_HZ, LINE_RATE_HZ)
        self._odd = b""
        self._pending = b""

    def encode(self, pcm16k: bytes) -> list[bytes]:
        data = self._odd + pcm16k
        whole = len(data) - len(data) % 4  # whole pairs of 16 kHz samples
        self._odd = data[whole:]
        if whole:
            self._pending += mulaw_encode(self._down.process(pcm_to_array(data[:whole])))
        cut = len(self._pending) - len(self._pending) % LINE_FRAME_BYTES
        frames = [self._pending[i : i + LINE_FRAME_BYTES] for i in range(0, cut, LINE_FRAME_BYTES)]
        self._pending = self._pending[cut:]
        return frames


class LineDecoder:
    """µ-law 8 kHz -> 16 kHz int16 PCM, streaming (no clicks between chunks)."""

    def __init__(self) -> None:
        self._up = StreamResampler(LINE_RATE_HZ, INTERNAL_RATE_HZ)

    def decode(self, mulaw: bytes) -> bytes:
        return array_to_pcm(self._up.process(mulaw_decode(mulaw)))


# ---------------------------------------------------------------- devices


class SoundDevice:
    """The machine's sound card through PortAudio (`sounddevice`), full duplex."""

    def __init__(self, device: str | int | None = None) -> None:
        self._device = device
        self._lock = threading.Lock()
        self._speaker = bytearray()
        self._on_mic: MicSink | None = None
        self._stream: Any = None  # sounddevice.RawStream
        self.overflows = 0  # callbacks PortAudio flagged (input overflow, output underflow)

    def open(self, on_mic: MicSink) -> None:
        try:
            import sounddevice as sd
        except OSError as exc:  # the PortAudio library itself is missing
            raise AudioDeviceError(
                f"no audio device found: PortAudio is not installed ({exc})"
            ) from exc
        self._on_mic = on_mic
        stream = None
        try:
            stream = sd.RawStream(
                samplerate=INTERNAL_RATE_HZ,
                blocksize=FRAME_BYTES // 2,
                device=self._device,
                channels=1,
                dtype="int16",
                latency="low",
                callback=self._callback,
            )
            stream.start()
        except sd.PortAudioError as exc:
            if stream is not None:
                with contextlib.suppress(sd.PortAudioError):
                    stream.close()
            raise AudioDeviceError(_describe_failure(sd, exc)) from exc
        except ValueError as exc:  # no device matches --device
            raise AudioDeviceError(f"no audio device found: {exc}") from exc
        self._stream = stream

    def _callback(
        self, indata: Any, outdata: Any, frames: int, time_info: Any, status: Any
    ) -> None:
        # PortAudio's audio thread: copy bytes, hand over, nothing slow.
        if status:
            self.overflows += 1
        on_mic = self._on_mic
        if on_mic is not None:
            on_mic(bytes(indata))
        need = frames * 2
        with self._lock:
            chunk = bytes(self._speaker[:need])
            del self._speaker[:need]
        outdata[: len(chunk)] = chunk
        if len(chunk) < need:
            outdata[len(chunk) : need] = bytes(need - len(chunk))

    def play(self, pcm: bytes) -> None:
        with self._lock:
            self._speaker += pcm
            excess = len(self._speaker) - int(_SPEAKER_MAX_S * _BYTES_PER_S)
            if excess > 0:
                del self._speaker[: excess + excess % 2]

    def clear(self) -> None:
        with self._lock:
            self._speaker.clear()

    def pending_s(self) -> float:
        with self._lock:
            return len(self._speaker) / _BYTES_PER_S

    def close(self) -> None:
        stream, self._stream = self._stream, None
        self._on_mic = None
        if stream is None:
            return
        import sounddevice as sd

        with contextlib.suppress(sd.PortAudioError):
            stream.stop()
            stream.close()


def _describe_failure(sd: ModuleType, exc: Exception) -> str:
    try:
        devices = len(sd.query_devices())
    except sd.PortAudioError:  # PortAudio cannot even list devices
        devices = 0
    if devices == 0:
        return f"no audio device found (PortAudio: {exc})"
    return f"the audio device cannot be opened for 16 kHz mono audio (PortAudio: {exc})"


class WavFileDevice:
    """Recordings for a microphone, a buffer for a speaker: a caller who waits to talk.

    Like PortAudio, a thread of its own calls `on_mic` with a 20 ms frame every
    20 ms: silence, except that each turn is said once the bot has spoken and
    then been quiet for `reply_gap_s`. What the speaker gets is kept in `heard`
    with arrival times; `turn_spans` says when each turn was said.
    """

    def __init__(self, turns: Sequence[bytes], *, reply_gap_s: float = 0.8) -> None:
        self._turns = [bytes(t) + bytes(-len(t) % FRAME_BYTES) for t in turns]
        self._gap_s = reply_gap_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saying: list[bytes] = []
        self._bot_spoke = False
        self._play_end = 0.0
        self.heard: list[tuple[float, bytes]] = []
        self.turn_spans: list[tuple[float, float | None]] = []  # (started, ended)
        self.clears = 0

    @classmethod
    def from_wavs(cls, paths: Sequence[Path], *, reply_gap_s: float = 0.8) -> WavFileDevice:
        return cls([read_wav_16k(path) for path in paths], reply_gap_s=reply_gap_s)

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    @property
    def turns_said(self) -> int:
        return sum(1 for _, ended in self.turn_spans if ended is not None)

    def open(self, on_mic: MicSink) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(on_mic,), name="wav-microphone", daemon=True
        )
        self._thread.start()

    def _run(self, on_mic: MicSink) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            on_mic(self._next_frame())
            next_tick += FRAME_S
            self._stop.wait(max(0.0, next_tick - time.monotonic()))

    def _next_frame(self) -> bytes:
        now = time.monotonic()
        with self._lock:
            if (
                not self._saying
                and len(self.turn_spans) < len(self._turns)
                and self._bot_spoke
                and now - self._play_end >= self._gap_s
            ):
                turn = self._turns[len(self.turn_spans)]
                self._saying = [turn[i : i + FRAME_BYTES] for i in range(0, len(turn), FRAME_BYTES)]
                self.turn_spans.append((now, None))
                self._bot_spoke = False
            if not self._saying:
                return bytes(FRAME_BYTES)
            frame = self._saying.pop(0)
            if not self._saying:
                self.turn_spans[-1] = (self.turn_spans[-1][0], now + FRAME_S)
            return frame

    def play(self, pcm: bytes) -> None:
        now = time.monotonic()
        with self._lock:
            self.heard.append((now, pcm))
            self._bot_spoke = True
            self._play_end = max(self._play_end, now) + len(pcm) / _BYTES_PER_S

    def clear(self) -> None:
        with self._lock:
            self.clears += 1
            self._play_end = time.monotonic()

    def pending_s(self) -> float:
        with self._lock:
            return max(0.0, self._play_end - time.monotonic())

    def speaker_pcm(self, after_s: float = 0.0, before_s: float = float("inf")) -> bytes:
        """What the speaker received between two monotonic times."""
        with self._lock:
            return b"".join(pcm for at, pcm in self.heard if after_s < at < before_s)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


# ---------------------------------------------------------------- the call


class _PhoneCall(MediaStreamCall):
    """A `MediaStreamCall` whose bot audio goes to a device as it arrives and whose
    caller audio is the device's microphone (frames sent as they come)."""

    def __init__(
        self, url: str, device: AudioDevice, *, line: str, lang: str, caller_number: str | None
    ) -> None:
        super().__init__(url, line=line, lang=lang, caller_number=caller_number, continuous=False)
        self._device = device
        self._decoder = LineDecoder()

    def _handle(self, message: str | bytes) -> None:
        media_before, clears_before = len(self.record.media), len(self.record.clears)
        super()._handle(message)
        if len(self.record.clears) > clears_before:
            self._device.clear()
        for chunk in self.record.media[media_before:]:
            self._device.play(self._decoder.decode(chunk.payload))

    async def send_line(self, frames: list[bytes]) -> None:
        """Send µ-law frames as the line's next audio, paced 20 ms apart; a backlog
        (the loop was held up) goes at once, so the delay does not stay."""
        await self._say(frames, None, realtime=len(frames) <= _BACKLOG_FRAMES)


@dataclass(frozen=True, slots=True)
class LiveOutcome:
    ended_by: str  # "service", "caller" (Ctrl-C / stop), "time limit", "connection"
    bot_pcm16k: bytes  # the bot's side, as received
    mic_frames: int  # microphone frames taken from the device
    mic_frames_dropped: int  # frames dropped because the event loop fell behind


@dataclass(slots=True)
class _MicStats:
    taken: int = 0
    dropped: int = 0


def _offer(queue: asyncio.Queue[bytes], pcm: bytes, stats: _MicStats) -> None:
    """On the event loop: queue a microphone frame, dropping the oldest when full."""
    stats.taken += 1
    if queue.full():
        queue.get_nowait()
        stats.dropped += 1
    queue.put_nowait(pcm)


async def _send_microphone(call: _PhoneCall, queue: asyncio.Queue[bytes]) -> None:
    encoder = LineEncoder()
    try:
        while True:
            chunks = [await queue.get()]
            while not queue.empty():
                chunks.append(queue.get_nowait())
            frames = encoder.encode(b"".join(chunks))
            if frames:
                await call.send_line(frames)
    except MediaStreamError:
        return  # the call closed


async def run_live(
    url: str,
    device: AudioDevice,
    *,
    line: str = "114",
    lang: str = "vi",
    caller_number: str | None = None,
    stop: asyncio.Event | None = None,
    max_s: float | None = None,
    on_connected: Callable[[], None] | None = None,
) -> LiveOutcome:
    """A live call: microphone to the service, the bot to the speaker, until the
    service ends the call, `stop` is set, or `max_s` passes.

    The device is opened first, so a missing sound card (`AudioDeviceError`)
    places no call. Raises `MediaStreamError` when the service cannot be reached.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=_MIC_QUEUE_FRAMES)
    stats = _MicStats()

    def on_mic(pcm: bytes) -> None:  # the device's thread
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(_offer, queue, pcm, stats)

    device.open(on_mic)
    try:
        call = _PhoneCall(url, device, line=line, lang=lang, caller_number=caller_number)
        await call.dial()
        if on_connected is not None:
            on_connected()
        while not queue.empty():  # what the microphone heard before the call was up
            queue.get_nowait()
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(_send_microphone(call, queue)),
            asyncio.create_task(call.wait_closed(max_s or _FOREVER_S)),
        ]
        if stop is not None:
            tasks.append(asyncio.create_task(stop.wait()))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if stop is not None and stop.is_set():
                ended_by = "caller"
            elif call.record.closed_s is not None:
                ended_by = "service" if call.record.close_code == 1000 else "connection"
            else:
                ended_by = "time limit"
        finally:
            await _cancel(tasks)
            await call.hangup()
        # Let the speaker finish what the bot said last (e.g. its goodbye).
        await asyncio.sleep(min(device.pending_s(), _DRAIN_MAX_S))
    finally:
        device.close()
    return LiveOutcome(ended_by, call.bot_audio_pcm16k(), stats.taken, stats.dropped)


async def _cancel(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel and wait; cancel again any task that swallowed it (Python 3.11's
    `wait_for` drops a cancellation that arrives as its inner future completes)."""
    pending = {task for task in tasks if not task.done()}
    for _ in range(10):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)
    await asyncio.gather(*(task for task in tasks if task.done()), return_exceptions=True)


# ---------------------------------------------------------------- `callbot phone`

_ENDINGS = {
    "service": "the service ended the call",
    "caller": "you hung up",
    "time limit": "time limit reached; hung up",
    "connection": "the connection to the service was lost",
}


def run_phone(args: argparse.Namespace, *, err: TextIO | None = None) -> int:
    """`callbot phone` in live mode (microphone and speaker); 0 ok, 1 no service, 2 no device."""
    out = err or sys.stderr
    device_name: str | int | None = args.device
    if isinstance(device_name, str) and device_name.isdigit():
        device_name = int(device_name)
    try:
        outcome = asyncio.run(_live(args, SoundDevice(device_name), out))
    except AudioDeviceError as exc:
        print(
            f"callbot phone: {exc}\n"
            "Without a sound card, play recordings as the caller instead:\n"
            "  callbot phone --wav turn1.wav [--wav turn2.wav ...] --save bot.wav",
            file=out,
        )
        return 2
    except MediaStreamError as exc:
        print(f"callbot phone: {exc}", file=out)
        return 1
    print(f"Call over: {_ENDINGS.get(outcome.ended_by, outcome.ended_by)}.", file=out)
    if outcome.mic_frames_dropped:
        print(
            f"{outcome.mic_frames_dropped} of {outcome.mic_frames} microphone frames were "
            "dropped (the machine was too busy).",
            file=out,
        )
    if args.save:
        write_wav(args.save, outcome.bot_pcm16k)
        print(f"Bot audio saved to {args.save}", file=out)
    return 0


async def _live(args: argparse.Namespace, device: AudioDevice, out: TextIO) -> LiveOutcome:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        return await run_live(
            args.url,
            device,
            line=args.line,
            lang=args.lang,
            caller_number=args.caller,
            stop=stop,
            on_connected=lambda: print(
                f"Connected to line {args.line} ({args.lang}) at {args.url}. "
                "Speak after the greeting; Ctrl-C hangs up.",
                file=out,
            ),
        )
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
