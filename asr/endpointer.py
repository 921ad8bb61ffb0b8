"""Energy endpointer: finds where caller utterances begin and end.

Pure and synchronous (no clock, no I/O): feed it 20 ms frames with their call
time and it returns events. A frame counts as voiced when its level (RMS after
removing DC, in dBFS) is a margin above the noise floor and above an absolute
minimum. The floor is a low percentile of the last few seconds of levels, so it
follows steady line noise within a few seconds while staying low during speech,
which has quiet gaps between syllables.

- Onset: voiced frames, with gaps shorter than `onset_gap_ms`, must add up to
  `min_utterance_ms` before speech is declared; shorter bursts (clicks, a
  cough on the line) are ignored. The declared start is the first voiced frame,
  and the audio handed over starts `preroll_ms` before it.
- Pause: when `pause_after_ms` is set and shorter than `endpoint_silence_ms`,
  `SpeechPaused` reports once per pause that the trailing silence inside an
  utterance reached it. A voiced `SpeechContinues` after it means the caller
  resumed; otherwise the next event that closes the pause is `SpeechEnded`.
  The recogniser uses this to decode early (speculatively).
- End: `endpoint_silence_ms` of unvoiced frames (the hangover), or
  `max_utterance_s` of speech, whichever comes first; `flush` ends a pending
  utterance when the input stops (hang-up).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

from callcenter.events import INTERNAL_RATE_HZ

EndReason = Literal["silence", "max_length", "end_of_input"]

_BYTES_PER_MS = INTERNAL_RATE_HZ * 2 // 1000  # 32


@dataclass(frozen=True, slots=True)
class SpeechBegan:
    """Speech confirmed; `preroll` is the audio from the pre-roll start up to now."""

    start_ms: int
    preroll: bytes


@dataclass(frozen=True, slots=True)
class SpeechContinues:
    """Audio inside the current utterance (after `SpeechBegan`, up to `SpeechEnded`).

    `voiced` says whether the frame counted as speech (not as a pause in it).
    """

    pcm: bytes
    voiced: bool


@dataclass(frozen=True, slots=True)
class SpeechPaused:
    """The silence inside the current utterance reached `pause_after_ms`.

    Follows the `SpeechContinues` of the frame that reached it, so the audio
    handed over so far runs up to `at_ms` (call time). `speech_end_ms` is the end
    of the last voiced frame: the utterance's `end_ms` if it ends in this pause.
    """

    at_ms: int
    speech_end_ms: int

    @property
    def silence_ms(self) -> int:
        """How long the caller has been silent."""
        return self.at_ms - self.speech_end_ms


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """The utterance is over; `end_ms` is the end of its last voiced frame (call time)."""

    end_ms: int
    reason: EndReason


EndpointEvent = SpeechBegan | SpeechContinues | SpeechPaused | SpeechEnded


@dataclass(frozen=True, slots=True)
class EndpointerConfig:
    endpoint_silence_ms: int = 500
    pause_after_ms: int | None = None  # report SpeechPaused; None or 0: never
    min_utterance_ms: int = 200
    max_utterance_s: float = 15.0
    preroll_ms: int = 300
    onset_gap_ms: int = 100
    onset_margin_db: float = 10.0
    hold_margin_db: float = 6.0
    min_speech_dbfs: float = -55.0
    floor_window_s: float = 3.0
    floor_percentile: float = 10.0
    initial_floor_dbfs: float = -60.0


@dataclass(slots=True)
class _Frame:
    start_ms: int
    end_ms: int
    pcm: bytes


class Endpointer:
    """Speech/silence segmentation of one call's audio (16 kHz mono int16)."""

    def __init__(self, config: EndpointerConfig | None = None) -> None:
        self.config = config or EndpointerConfig()
        c = self.config
        floor_frames = max(1, round(c.floor_window_s * 1000 / 20))
        self._levels = np.full(floor_frames, c.initial_floor_dbfs, dtype=np.float64)
        self._level_index = 0
        self._floor_rank = min(floor_frames - 1, int(floor_frames * c.floor_percentile / 100))
        self._floor_dbfs = c.initial_floor_dbfs
        self._recent: deque[_Frame] = deque()
        self._recent_ms_max = c.preroll_ms + 4 * max(c.min_utterance_ms, c.onset_gap_ms)
        self._sent_until_ms: int | None = None  # audio already handed to an utterance
        # Onset candidate
        self._candidate_start_ms: int | None = None
        self._candidate_voiced_ms = 0
        self._candidate_gap_ms = 0
        # Current utterance
        self._speech_start_ms: int | None = None
        self._last_voiced_end_ms = 0
        self._silence_ms = 0
        self._pause_reported = False

    @property
    def in_speech(self) -> bool:
        return self._speech_start_ms is not None

    @property
    def noise_floor_dbfs(self) -> float:
        return self._floor_dbfs

    def process(self, pcm: bytes, start_ms: int) -> list[EndpointEvent]:
        """Feed one frame (normally 20 ms) starting at `start_ms` call time."""
        duration_ms = len(pcm) // _BYTES_PER_MS
        if duration_ms <= 0:
            return []
        frame = _Frame(start_ms, start_ms + duration_ms, pcm)
        level = _level_dbfs(pcm)
        voiced = self._is_voiced(level)
        self._update_floor(level)
        if self._speech_start_ms is not None:
            return self._in_speech(frame, voiced)
        self._remember(frame)
        return self._idle(frame, voiced)

    def flush(self) -> list[EndpointEvent]:
        """The input stopped: end the current utterance, drop an unconfirmed onset."""
        self._candidate_start_ms = None
        if self._speech_start_ms is None:
            return []
        return [self._end(self._last_voiced_end_ms, "end_of_input")]

    # -- states ------------------------------------------------------------

    def _idle(self, frame: _Frame, voiced: bool) -> list[EndpointEvent]:
        c = self.config
        if self._candidate_start_ms is None:
            if not voiced:
                return []
            self._candidate_start_ms = frame.start_ms
            self._candidate_voiced_ms = 0
            self._candidate_gap_ms = 0
        if voiced:
            self._candidate_voiced_ms += frame.end_ms - frame.start_ms
            self._candidate_gap_ms = 0
            self._last_voiced_end_ms = frame.end_ms
        else:
            self._candidate_gap_ms += frame.end_ms - frame.start_ms
            if self._candidate_gap_ms >= c.onset_gap_ms:
                self._candidate_start_ms = None
            return []
        if self._candidate_voiced_ms < c.min_utterance_ms:
            return []
        start_ms = self._candidate_start_ms
        self._candidate_start_ms = None
        self._speech_start_ms = start_ms
        self._silence_ms = 0
        self._pause_reported = False
        preroll_from_ms = start_ms - c.preroll_ms
        if self._sent_until_ms is not None:
            preroll_from_ms = max(preroll_from_ms, self._sent_until_ms)
        preroll = b"".join(f.pcm for f in self._recent if f.start_ms >= preroll_from_ms)
        self._recent.clear()
        self._sent_until_ms = frame.end_ms
        return [SpeechBegan(start_ms=start_ms, preroll=preroll)]

    def _in_speech(self, frame: _Frame, voiced: bool) -> list[EndpointEvent]:
        c = self.config
        assert self._speech_start_ms is not None
        events: list[EndpointEvent] = [SpeechContinues(frame.pcm, voiced)]
        self._sent_until_ms = frame.end_ms
        if voiced:
            self._silence_ms = 0
            self._pause_reported = False
            self._last_voiced_end_ms = frame.end_ms
        else:
            self._silence_ms += frame.end_ms - frame.start_ms
        if self._silence_ms >= c.endpoint_silence_ms:
            events.append(self._end(self._last_voiced_end_ms, "silence"))
        elif frame.end_ms - self._speech_start_ms >= c.max_utterance_s * 1000:
            events.append(self._end(frame.end_ms, "max_length"))
        elif c.pause_after_ms and self._silence_ms >= c.pause_after_ms and not self._pause_reported:
            self._pause_reported = True
            events.append(SpeechPaused(at_ms=frame.end_ms, speech_end_ms=self._last_voiced_end_ms))
        return events

    def _end(self, end_ms: int, reason: EndReason) -> SpeechEnded:
        self._speech_start_ms = None
        self._silence_ms = 0
        self._pause_reported = False
        return SpeechEnded(end_ms=end_ms, reason=reason)

    # -- level and noise floor -----------------------------------------------

    def _is_voiced(self, level_dbfs: float) -> bool:
        c = self.config
        margin = c.hold_margin_db if self._speech_start_ms is not None else c.onset_margin_db
        return level_dbfs > max(self._floor_dbfs + margin, c.min_speech_dbfs)

    def _update_floor(self, level_dbfs: float) -> None:
        """The floor is a low percentile of the last `floor_window_s` of frame levels."""
        self._levels[self._level_index] = level_dbfs
        self._level_index = (self._level_index + 1) % self._levels.size
        rank = self._floor_rank
        self._floor_dbfs = float(np.partition(self._levels, rank)[rank])

    def _remember(self, frame: _Frame) -> None:
        self._recent.append(frame)
        while self._recent and frame.end_ms - self._recent[0].start_ms > self._recent_ms_max:
            self._recent.popleft()


def _level_dbfs(pcm: bytes) -> float:
    """RMS level in dBFS after removing DC; -100 for digital silence."""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64)
    if samples.size == 0:
        return -100.0
    samples -= samples.mean()
    rms = float(np.sqrt(np.dot(samples, samples) / samples.size))
    if rms < 1e-3:
        return -100.0
    return 20.0 * float(np.log10(rms / 32768.0))
