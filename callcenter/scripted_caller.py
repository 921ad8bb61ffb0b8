"""A scripted caller on the media-stream WebSocket: recorded turns, one per bot answer.

    async with MediaStreamCall(url, line="114", lang="en") as call:
        for turn in await play_turns(call, [turn1_pcm16k, turn2_pcm16k]):
            print(turn.mark, turn.latency_s)

Used by `callbot call`, the load benchmark and the end-to-end tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from callcenter.media_client import BotMark, MediaStreamCall, MediaStreamError


@dataclass(frozen=True, slots=True)
class TurnTiming:
    """One caller turn: end of speech, first reply audio, and the mark that ended it."""

    index: int
    speech_end_s: float
    first_reply_s: float | None
    mark: str | None  # "reply-1", "reprompt-1", "goodbye", ...; None on timeout

    @property
    def latency_s(self) -> float | None:
        """End of caller speech to the first audio of the reply."""
        if self.first_reply_s is None:
            return None
        return self.first_reply_s - self.speech_end_s


async def play_turns(
    call: MediaStreamCall,
    turns: Sequence[bytes],
    *,
    greeting_timeout_s: float = 10.0,
    reply_timeout_s: float = 15.0,
    skip_marks: Sequence[str] = ("hold",),
    realtime: bool = True,
) -> list[TurnTiming]:
    """Wait for the greeting, then say each turn after the previous answer was played.

    Stops early at a `goodbye` mark, when the service closes the call, or when
    no answer comes within `reply_timeout_s` (that turn has `mark=None`).
    A `hold` prompt counts as the first reply audio but not as the answer.
    """
    await call.wait_for_mark("greeting", greeting_timeout_s)
    timings: list[TurnTiming] = []
    for index, pcm in enumerate(turns, start=1):
        end_s = await call.speak(pcm, realtime=realtime)
        try:
            mark: BotMark | None = await call.wait_for_mark(
                None, reply_timeout_s, after_s=end_s, skip=skip_marks
            )
        except MediaStreamError:
            mark = None
        timings.append(
            TurnTiming(
                index, end_s, call.first_media_after(end_s), None if mark is None else mark.name
            )
        )
        if mark is None or mark.name == "goodbye" or call.record.closed_s is not None:
            break
    return timings
