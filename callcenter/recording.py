"""Call recordings: both sides of every call, kept as compressed audio.

Each call's recording is a stereo FLAC file at 8 kHz (the telephone band every
gateway delivers): the caller on the left channel, the bot (or the dispatcher
who took over) on the right, each placed at the moment it was heard. While the
call lasts, audio is kept in memory (at most `MAX_CALL_S`, about 2 MB per
minute); when it ends, the file is encoded in a worker thread under
`DATA_DIR/recordings/YYYY/MM/DD/<call id>.flac`, and its path is written to the
call's record. Files are named by call id only, never by anything the caller
said or their number. `purge_expired` deletes recordings past retention.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol

import numpy as np
import soundfile

from callcenter.audio import StreamResampler, pcm_to_array
from callcenter.events import CallInfo
from callcenter.playback import CallOutput

log = logging.getLogger(__name__)

RECORDING_RATE_HZ: Final = 8000
MAX_CALL_S: Final = 2 * 3600  # audio past two hours is not kept
_SAMPLES_PER_MS: Final = RECORDING_RATE_HZ // 1000


class RecordingStore(Protocol):
    async def set_recording(self, call_id: str, path: str, duration_s: float) -> None: ...


@dataclass(slots=True)
class _Track:
    """One side of the call: (offset in samples, samples) pieces, in arrival order."""

    resampler: StreamResampler = field(default_factory=lambda: StreamResampler(16_000, 8_000))
    pieces: list[tuple[int, np.ndarray]] = field(default_factory=list)
    end: int = 0  # where the next piece goes if it is contiguous

    def add(self, at_ms: int, pcm16k: bytes) -> None:
        offset = max(at_ms * _SAMPLES_PER_MS, 0)
        if offset >= MAX_CALL_S * RECORDING_RATE_HZ:
            return
        samples = self.resampler.process(pcm_to_array(pcm16k))
        # Contiguous audio (the usual case) is laid end to end, so that the
        # millisecond rounding of its timestamps leaves no clicks.
        if abs(offset - self.end) < 4 * _SAMPLES_PER_MS:
            offset = self.end
        self.pieces.append((offset, samples))
        self.end = offset + len(samples)

    def render(self, length: int) -> np.ndarray:
        track = np.zeros(length, dtype=np.int16)
        for offset, samples in self.pieces:
            stop = min(offset + len(samples), length)
            if stop > offset:
                track[offset:stop] = samples[: stop - offset]
        return track


class _RecordingOutput:
    """A `CallOutput` that also records what it sends, at the call time it is sent."""

    def __init__(self, inner: CallOutput, track: _Track, clock_ms: Callable[[], int]) -> None:
        self._inner = inner
        self._track = track
        self._clock_ms = clock_ms

    async def send_audio(self, pcm: bytes) -> None:
        self._track.add(self._clock_ms(), pcm)
        await self._inner.send_audio(pcm)

    async def send_mark(self, name: str) -> None:
        await self._inner.send_mark(name)

    async def clear(self) -> None:
        await self._inner.clear()

    async def close(self, reason: str) -> None:
        await self._inner.close(reason)


class CallRecording:
    """The recording of one call in progress."""

    def __init__(self, call_id: str, path: Path, relative: str) -> None:
        self.call_id = call_id
        self.path = path
        self.relative = relative
        self._caller = _Track()
        self._bot = _Track()

    def caller_audio(self, at_ms: int, pcm16k: bytes) -> None:
        self._caller.add(at_ms, pcm16k)

    def bot_output(self, output: CallOutput, clock_ms: Callable[[], int]) -> CallOutput:
        return _RecordingOutput(output, self._bot, clock_ms)

    async def finish(self, store: RecordingStore) -> None:
        """Encode the file and note it on the call's record (nothing if no audio)."""
        length = max(self._caller.end, self._bot.end)
        if length == 0:
            return
        await asyncio.to_thread(self._write, length)
        await store.set_recording(self.call_id, self.relative, length / RECORDING_RATE_HZ)

    def _write(self, length: int) -> None:
        stereo = np.stack([self._caller.render(length), self._bot.render(length)], axis=1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".part")
        soundfile.write(partial, stereo, RECORDING_RATE_HZ, format="FLAC", subtype="PCM_16")
        os.replace(partial, self.path)
        log.debug("recording saved: %d s", length // RECORDING_RATE_HZ)


class CallRecorder:
    """Makes a `CallRecording` for each call, under `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def open(self, info: CallInfo) -> CallRecording:
        day = datetime.now(UTC).strftime("%Y/%m/%d")
        relative = f"{day}/{_safe_name(info.call_id)}.flac"
        return CallRecording(info.call_id, self.directory / relative, relative)

    def resolve(self, relative: str) -> Path | None:
        """The file of a stored recording path, or None if it is not inside the directory."""
        root = self.directory.resolve()
        path = (root / relative).resolve()
        return path if path.is_relative_to(root) and path.is_file() else None

    def purge_expired(self, retention_days: float, now: float | None = None) -> list[str]:
        """Delete recordings older than `retention_days`; the relative paths deleted."""
        cutoff = (time.time() if now is None else now) - retention_days * 86400
        deleted: list[str] = []
        if not self.directory.exists():
            return deleted
        for path in sorted(self.directory.rglob("*.flac")):
            if path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                deleted.append(path.relative_to(self.directory).as_posix())
        return deleted


def _safe_name(call_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in call_id)[:80]
