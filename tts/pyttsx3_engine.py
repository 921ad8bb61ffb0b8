"""pyttsx3 over espeak-ng: one engine, owned by one dedicated thread.

espeak-ng is a process-wide C library and pyttsx3 caches one engine per driver,
so concurrent `pyttsx3.init()` calls crashed the process. Here one daemon
thread creates the engine and runs every synthesis; asyncio callers hand it
jobs through a queue and await a `concurrent.futures.Future` per job. At most
one `Pyttsx3Synthesizer` runs in a process at a time.

Two traps, both handled by `_Espeak`:
- A wrong voice name does not fail: espeak-ng silently speaks English or writes
  an empty WAV. Voices are resolved against the installed list and probed at
  start, and every synthesis checks the voice used and that audio came out.
- pyttsx3 2.99's espeak driver runs espeak-ng in retrieval mode, where
  synthesis and parameter changes run on espeak-ng's own thread: `runAndWait()`
  returns after one 10 ms tick, possibly before the WAV exists, and it cancels
  whatever espeak-ng is still doing. So each step waits for espeak-ng to be
  idle (`espeak_IsPlaying`, from pyttsx3's ctypes binding) and each utterance
  for pyttsx3's "finished-utterance" notification, sent after the WAV is
  written.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import shutil
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from callcenter.audio import array_to_pcm, pcm_to_array, resample
from callcenter.events import INTERNAL_RATE_HZ, Language, Speech
from tts.errors import TtsError

logger = logging.getLogger(__name__)

DEFAULT_VOICES: Mapping[Language, str] = {Language.VI: "vi", Language.EN: "en"}

_PROBE_TEXT = "Một hai ba, xin chào."
_PROBE_MIN_MS = 200

# espeak-ng keeps one global state per process: one running engine at a time.
_ENGINE_SLOT = threading.Lock()


class Pyttsx3Synthesizer:
    """`Synthesizer` backed by one pyttsx3/espeak-ng engine on one thread.

    `start()` blocks (well under a second) and raises `TtsError` when the
    engine or a voice is missing; `close()` stops the thread. Every
    `synthesize()` waits at most `timeout_s`; when the engine thread has died,
    or has been stuck on one job for longer than that, calls fail at once.
    """

    def __init__(
        self,
        *,
        rate_wpm: int = 160,
        timeout_s: float = 10.0,
        start_timeout_s: float = 15.0,
        max_chars: int = 2000,
        voices: Mapping[Language, str] | None = None,
    ) -> None:
        if not 80 <= rate_wpm <= 450:
            raise ValueError(f"rate_wpm must be in 80..450, got {rate_wpm}")
        if timeout_s <= 0 or start_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        voice_names = dict(DEFAULT_VOICES if voices is None else voices)
        missing = [lang.value for lang in Language if lang not in voice_names]
        if missing:
            raise ValueError(f"no voice configured for languages {missing}")
        self._rate_wpm = rate_wpm
        self._timeout_s = timeout_s
        self._start_timeout_s = start_timeout_s
        self._max_chars = max_chars
        self._voice_names: dict[Language, str] = voice_names
        self._voice_ids: dict[Language, str] = {}
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._lock = threading.Lock()  # guards _thread, _accepting, the put in _submit
        self._thread: threading.Thread | None = None
        self._accepting = False
        self._busy_since: float | None = None  # monotonic start of the running job

    @property
    def rate_wpm(self) -> int:
        return self._rate_wpm

    @property
    def voice_ids(self) -> Mapping[Language, str]:
        """espeak-ng voice identifiers in use, e.g. {vi: "aav/vi"}; empty before start."""
        return dict(self._voice_ids)

    @property
    def running(self) -> bool:
        with self._lock:
            return self._accepting

    # -- life cycle: blocking, call from start-up / shutdown code ---------------

    def start(self) -> None:
        """Start the engine thread and probe the voices; `TtsError` on failure."""
        with self._lock:
            if self._thread is not None:
                raise TtsError("a Pyttsx3Synthesizer can be started only once")
            if not _ENGINE_SLOT.acquire(blocking=False):
                raise TtsError(
                    "another Pyttsx3Synthesizer is running in this process; "
                    "espeak-ng allows one engine per process, share it"
                )
            ready: Future[None] = Future()
            self._thread = threading.Thread(
                target=self._run, args=(ready,), name="tts-pyttsx3", daemon=True
            )
        started = time.perf_counter()
        self._thread.start()
        try:
            ready.result(timeout=self._start_timeout_s)
        except FutureTimeoutError:
            self.close()
            raise TtsError(
                f"pyttsx3/espeak-ng did not start within {self._start_timeout_s} s"
            ) from None
        logger.info(
            "tts engine started in %.0f ms: voices %s, %d wpm",
            (time.perf_counter() - started) * 1000,
            ", ".join(f"{lang.value}={vid}" for lang, vid in self._voice_ids.items()),
            self._rate_wpm,
        )

    def close(self, join_timeout_s: float = 2.0) -> None:
        """Stop accepting work, let queued jobs finish, stop the thread."""
        with self._lock:
            self._accepting = False
            thread = self._thread
        if thread is None:
            return
        self._jobs.put(None)
        thread.join(join_timeout_s)
        if thread.is_alive():
            logger.warning("tts engine thread did not stop within %.1f s", join_timeout_s)
        _fail_pending(self._jobs, "speech synthesizer closed")

    # -- the Synthesizer interface ------------------------------------------------

    async def synthesize(self, text: str, language: Language) -> Speech:
        if not text.strip():
            return Speech(pcm=b"", text=text, language=language)
        if len(text) > self._max_chars:
            raise TtsError(f"text of {len(text)} characters exceeds max_chars={self._max_chars}")
        future: Future[bytes] = Future()
        self._submit(_Job(text=text, language=language, future=future))
        try:
            pcm = await asyncio.wait_for(asyncio.wrap_future(future), self._timeout_s)
        except TimeoutError:
            raise TtsError(f"speech synthesis timed out after {self._timeout_s} s") from None
        return Speech(pcm=pcm, text=text, language=language)

    def _submit(self, job: _Job) -> None:
        with self._lock:
            if not self._accepting:
                raise TtsError("speech synthesizer is not running (not started, closed or dead)")
            busy_since = self._busy_since
            if busy_since is not None and time.monotonic() - busy_since > self._timeout_s:
                raise TtsError(
                    f"speech engine is stuck: one synthesis has run for more than "
                    f"{self._timeout_s} s"
                )
            self._jobs.put(job)

    # -- the engine thread -----------------------------------------------------------

    def _run(self, ready: Future[None]) -> None:
        work_dir = Path(tempfile.mkdtemp(prefix="callbot-tts-"))
        espeak: _Espeak | None = None
        current: list[_Job] = []  # the job in hand, failed here if the thread dies
        try:
            try:
                espeak = _Espeak.open(self._rate_wpm, self._voice_names, self._timeout_s)
                self._voice_ids.update(espeak.probe(work_dir / "probe.wav"))
            except TtsError as exc:
                ready.set_exception(exc)
                return
            except Exception as exc:  # any start failure is reported to start()
                error = TtsError(f"pyttsx3/espeak-ng failed to start: {exc!r}")
                error.__cause__ = exc
                ready.set_exception(error)
                return
            with self._lock:
                self._accepting = True
            ready.set_result(None)
            self._serve(espeak, work_dir / "out.wav", current)
        finally:
            with self._lock:
                self._accepting = False
            self._busy_since = None
            for job in current:
                if not job.future.done():
                    job.future.set_exception(TtsError("speech engine thread died"))
            _fail_pending(self._jobs, "speech engine thread stopped")
            if espeak is not None:
                espeak.release()
            shutil.rmtree(work_dir, ignore_errors=True)
            _ENGINE_SLOT.release()

    def _serve(self, espeak: _Espeak, wav_path: Path, current: list[_Job]) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if not job.future.set_running_or_notify_cancel():
                continue  # the caller gave up (cancelled or timed out) before we began
            current.append(job)
            self._busy_since = time.monotonic()
            try:
                pcm = self._render(espeak, wav_path, job)
            except _EngineWedged as exc:
                job.future.set_exception(exc)
                logger.error("tts engine stopped: %s", exc)
                return
            except TtsError as exc:
                job.future.set_exception(exc)
            except Exception as exc:  # pyttsx3 raises assorted types: hand them to the caller
                error = TtsError(f"speech synthesis failed: {exc!r}")
                error.__cause__ = exc
                job.future.set_exception(error)
            else:
                job.future.set_result(pcm)
            self._busy_since = None
            current.clear()  # not in a finally: if the thread dies, _run fails the job

    def _render(self, espeak: _Espeak, wav_path: Path, job: _Job) -> bytes:
        return espeak.render(job.text, job.language, wav_path)


@dataclass(frozen=True, slots=True)
class _Job:
    text: str
    language: Language
    future: Future[bytes]


class _EngineWedged(TtsError):
    """espeak-ng never finished an utterance: the engine thread gives up."""


class _Cancelled(TtsError):
    """pyttsx3 cancelled the utterance (a stale stop request)."""


class _Engine(Protocol):
    """The part of pyttsx3's (untyped) Engine that we use."""

    def setProperty(self, name: str, value: str | float) -> None: ...
    def getProperty(self, name: str) -> object: ...
    def save_to_file(self, text: str, filename: str) -> None: ...
    def runAndWait(self) -> None: ...
    def isBusy(self) -> bool: ...
    def connect(self, topic: str, cb: object) -> object: ...
    def disconnect(self, token: object) -> None: ...


class _IsPlaying(Protocol):
    def __call__(self) -> int: ...


class _Espeak:
    """The pyttsx3 engine as used from the engine thread only (blocking calls)."""

    def __init__(
        self,
        engine: _Engine,
        is_playing: _IsPlaying,
        voice_names: Mapping[Language, str],
        voice_ids: Mapping[Language, str],
        timeout_s: float,
    ) -> None:
        self._engine = engine
        self._is_playing = is_playing
        self._voice_names = voice_names
        self._voice_ids = voice_ids
        self._timeout_s = timeout_s
        # Set from pyttsx3 callbacks, which run on espeak-ng's own thread.
        self._errors: list[BaseException] = []
        self._finished = threading.Event()
        self._completed = False
        self._tokens = [
            engine.connect("error", self._on_error),
            engine.connect("finished-utterance", self._on_finished),
        ]

    @classmethod
    def open(cls, rate_wpm: int, voice_names: Mapping[Language, str], timeout_s: float) -> _Espeak:
        # Imported here: `import tts` must not load the engine.
        import pyttsx3
        from pyttsx3.drivers import _espeak

        engine: _Engine = pyttsx3.init("espeak")  # reuses a still-alive engine
        _route_driver_prints_to_log()
        installed = _installed_voice_ids(engine)
        voice_ids = {lang: _resolve_voice(name, installed) for lang, name in voice_names.items()}
        espeak = cls(engine, _espeak.IsPlaying, voice_names, voice_ids, timeout_s)
        try:
            espeak._prepare(rate_wpm)
        except BaseException:
            espeak.release()
            raise
        return espeak

    def _prepare(self, rate_wpm: int) -> None:
        engine = self._engine
        deadline = time.monotonic() + self._timeout_s
        # The driver's own settings are still in flight on espeak-ng's thread.
        self._wait_idle(deadline)
        if engine.isBusy():
            # A fresh pyttsx3 engine starts "busy" and would run the next
            # property changes inside a runAndWait() that cancels them: one
            # empty run (no utterance queued) leaves it idle.
            engine.runAndWait()
            self._wait_idle(deadline)
        engine.setProperty("rate", rate_wpm)
        engine.setProperty("volume", 1.0)
        self._wait_idle(deadline)
        if engine.getProperty("rate") != rate_wpm:
            raise TtsError(f"espeak-ng did not accept a rate of {rate_wpm} wpm")

    def probe(self, wav_path: Path) -> dict[Language, str]:
        """Speak a probe in every language; fail loudly on silent or same voices."""
        probes: dict[Language, bytes] = {}
        for language in self._voice_names:
            pcm = self.render(_PROBE_TEXT, language, wav_path)
            duration_ms = len(pcm) // 2 * 1000 // INTERNAL_RATE_HZ
            if duration_ms < _PROBE_MIN_MS:
                raise TtsError(
                    f"voice {self._voice_ids[language]!r} produced only {duration_ms} ms "
                    f"of audio for a probe sentence"
                )
            probes[language] = pcm
        if len(set(probes.values())) < len(probes):
            raise TtsError("two languages produced identical audio: a voice was not applied")
        return dict(self._voice_ids)

    def render(self, text: str, language: Language, wav_path: Path) -> bytes:
        """Synthesise one text to 16 kHz mono int16 pcm."""
        deadline = time.monotonic() + self._timeout_s
        try:
            return self._render_once(text, language, wav_path, deadline)
        except _Cancelled:
            # pyttsx3 latches a stop request it saw while espeak-ng was busy and
            # spends it on the next utterance; the retry runs clean.
            logger.warning("espeak-ng cancelled an utterance; retrying once")
            return self._render_once(text, language, wav_path, deadline)

    def _render_once(self, text: str, language: Language, wav_path: Path, deadline: float) -> bytes:
        expected = self._voice_ids[language]
        self._errors.clear()
        self._finished.clear()
        wav_path.unlink(missing_ok=True)
        self._wait_idle(deadline)
        self._engine.setProperty("voice", self._voice_names[language])
        self._wait_idle(deadline)
        self._engine.save_to_file(text, str(wav_path))
        self._engine.runAndWait()  # starts the utterance; returns before it ends
        if not self._finished.wait(max(0.0, deadline - time.monotonic())):
            raise _EngineWedged(f"espeak-ng did not finish an utterance within {self._timeout_s} s")
        self._wait_idle(deadline)
        if self._errors:
            raise TtsError(f"espeak-ng reported an error: {self._errors[0]!r}")
        if not self._completed:
            raise _Cancelled("espeak-ng cancelled the utterance")
        used = self._engine.getProperty("voice")
        if used != expected:
            raise TtsError(f"espeak-ng spoke with voice {used!r} instead of {expected!r}")
        pcm = _read_wav_at_internal_rate(wav_path)
        if not pcm:
            raise TtsError(f"espeak-ng produced no audio with voice {expected!r}")
        return pcm

    def release(self) -> None:
        for token in self._tokens:
            self._engine.disconnect(token)

    def _wait_idle(self, deadline: float) -> None:
        while self._is_playing():
            if time.monotonic() > deadline:
                raise _EngineWedged("espeak-ng stayed busy")
            time.sleep(0.001)

    def _on_finished(self, **event: object) -> None:
        self._completed = bool(event.get("completed"))
        self._finished.set()

    def _on_error(self, **event: object) -> None:
        exc = event.get("exception")
        if isinstance(exc, BaseException):
            self._errors.append(exc)


def _fail_pending(jobs: queue.Queue[_Job | None], reason: str) -> None:
    while True:
        try:
            job = jobs.get_nowait()
        except queue.Empty:
            return
        if job is not None and job.future.set_running_or_notify_cancel():
            job.future.set_exception(TtsError(reason))


def _installed_voice_ids(engine: _Engine) -> list[str]:
    voices = engine.getProperty("voices")
    if not isinstance(voices, list):
        raise TtsError("pyttsx3 returned no voice list; is espeak-ng installed?")
    return [str(getattr(voice, "id", "")) for voice in voices]


def _resolve_voice(name: str, installed: list[str]) -> str:
    """'vi' -> 'aav/vi': the installed identifier the name selects, or TtsError."""
    matches = [vid for vid in installed if vid == name or vid.rsplit("/", 1)[-1] == name]
    if not matches:
        raise TtsError(
            f"espeak-ng has no voice {name!r} ({len(installed)} voices installed); "
            f"install the Debian package espeak-ng"
        )
    return matches[0]


def _read_wav_at_internal_rate(path: Path) -> bytes:
    try:
        with wave.open(str(path), "rb") as wav:
            channels = wav.getnchannels()
            sample_width = wav.getsampwidth()
            rate_hz = wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except FileNotFoundError:
        raise TtsError("espeak-ng wrote no WAV file") from None
    except (wave.Error, EOFError) as exc:
        raise TtsError(f"espeak-ng wrote an unreadable WAV file: {exc}") from exc
    if sample_width != 2:
        raise TtsError(f"expected 16-bit WAV from espeak-ng, got {8 * sample_width}-bit")
    samples = pcm_to_array(raw)
    if channels > 1:
        samples = samples[: samples.size - samples.size % channels : channels]
    return array_to_pcm(resample(samples, rate_hz, INTERNAL_RATE_HZ))


def _route_driver_prints_to_log() -> None:
    """pyttsx3's espeak driver print()s "Audio saved to <file>" on every synthesis.

    Shadow `print` in that one module's namespace so the line goes to our debug
    log; redirecting `sys.stdout` would be process-wide and racy across threads.
    """
    module = sys.modules.get("pyttsx3.drivers.espeak")
    if module is not None:
        vars(module)["print"] = _driver_print


def _driver_print(*args: object, **_kwargs: object) -> None:
    logger.debug("pyttsx3: %s", " ".join(str(arg) for arg in args))
