"""One `CallSession` per call: listens, understands, answers, records.

The session owns every task of its call in one TaskGroup. Gateways push caller
audio in (`push_audio`, `hangup`) and give it a `CallOutput` for the bot's side.
When any part fails mid-call, the caller hears the hold prompt, the call is
marked for a human, and what was gathered is kept.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from asr.base import Transcriber
from asr.recognizer import CallRecognizer
from callcenter.events import (
    INTERNAL_RATE_HZ,
    AudioFrame,
    CallbotError,
    CallInfo,
    DialogTurn,
    Language,
    Speech,
    SpeechStarted,
    Transcript,
)
from callcenter.incidents import EvidenceLog, Utterance, incident_from_turn
from callcenter.logs import call_context
from callcenter.metrics import Metrics
from callcenter.playback import CallOutput, Player
from callcenter.prompts import Prompt, prompt_text
from callcenter.recording import CallRecorder, CallRecording
from callcenter.settings import Settings
from callcenter.turn_log import TurnLog, write_safely
from dialog.base import Dialog, DialogError
from dispatch.records import CallStatus, JsonValue
from dispatch.store import CallStore

log = logging.getLogger(__name__)

_ARRIVALS_KEPT = 3000  # 60 s of 20 ms frames
_HOLD_REPEAT_S = 10.0  # a caller waiting for a dispatcher hears "please hold" at most this often


class SpeechSource(Protocol):
    async def speak(self, text: str, language: Language) -> Speech: ...


@dataclass(frozen=True, slots=True)
class SessionServices:
    """What every call needs, built once at start-up."""

    settings: Settings
    transcriber_for: Callable[[Language], Transcriber]
    asr_executor: Executor
    dialog: Dialog
    speech: SpeechSource
    store: CallStore
    dialog_model: str = "unknown"  # which dialog model fills incidents (for evidence)
    recorder: CallRecorder | None = None  # None: calls are not recorded
    metrics: Metrics | None = None
    lines: asyncio.Semaphore | None = None  # calls this node answers at once (FIFO)


@dataclass(slots=True)
class CallOutcome:
    status: CallStatus = "in_progress"
    end_reason: str = ""
    handoff_reason: str | None = None
    turn_latencies_ms: list[float] = field(default_factory=list)
    greeting_ms: float | None = None


class CallSession:
    def __init__(self, info: CallInfo, services: SessionServices, output: CallOutput) -> None:
        self.info = info
        self._svc = services
        self._settings = services.settings
        self._output = output
        self._player = Player(output)
        self._frames: asyncio.Queue[AudioFrame | None] = asyncio.Queue(maxsize=250)
        self._transcripts: asyncio.Queue[Transcript] = asyncio.Queue()
        self._turns = TurnLog(info.call_id, services.store, services.metrics)
        self._audio_ms = 0
        self._arrival_ms: deque[int] = deque(maxlen=_ARRIVALS_KEPT)
        self._arrival_at: deque[float] = deque(maxlen=_ARRIVALS_KEPT)
        self._started_at = time.monotonic()
        self._last_activity = self._started_at
        self._caller_hung_up = asyncio.Event()
        self._finished = asyncio.Event()
        self._muted = False
        self._busy = False
        self._reprompts = 0
        self._replies = 0
        self._last_turn: DialogTurn | None = None
        self._evidence = EvidenceLog(services.dialog_model)
        self._end_marker: asyncio.Task[None] | None = None
        self._last_hold_at = float("-inf")
        self.outcome = CallOutcome()
        # Set once the call should go to a human (red flag, request, failure):
        # a gateway that can transfer calls (SIP) watches it.
        self.handoff_requested = asyncio.Event()
        self.ended = asyncio.Event()  # set once the call is over and its record closed
        self._waiting_for_dispatcher = False
        self._taken_over_by: str | None = None
        self._holding_line = False
        self._waiting_for_line = False
        self._caller_taps: list[Callable[[int, bytes], None]] = []
        if services.recorder is not None:
            self._recording: CallRecording | None = services.recorder.open(info)
            self._caller_taps.append(self._recording.caller_audio)
            output = self._recording.bot_output(output, self._call_ms)
            self._output = output
            self._player = Player(output)
        else:
            self._recording = None

    # ----- gateway side ------------------------------------------------
    async def push_audio(self, pcm16k: bytes) -> None:
        """Caller audio at 16 kHz; waits when the call is behind (backpressure)."""
        if self._caller_hung_up.is_set():
            return
        frame = AudioFrame(pcm=pcm16k, start_ms=self._audio_ms)
        for tap in self._caller_taps:
            tap(self._audio_ms, pcm16k)
        self._arrival_ms.append(self._audio_ms)
        self._arrival_at.append(time.monotonic())
        self._audio_ms += len(pcm16k) // 2 * 1000 // INTERNAL_RATE_HZ
        await self._frames.put(frame)

    def hangup(self, reason: str) -> None:
        """The caller's side ended (hang-up, socket dropped)."""
        if not self._caller_hung_up.is_set():
            # the first reason given stands ("caller silent" is not overwritten by
            # the hang-up that follows it)
            self.outcome.end_reason = self.outcome.end_reason or reason
            self._caller_hung_up.set()
            try:
                self._frames.put_nowait(None)
            except asyncio.QueueFull:
                self._end_marker = asyncio.get_running_loop().create_task(self._frames.put(None))

    @property
    def taken_over_by(self) -> str | None:
        return self._taken_over_by

    async def dispatcher_unavailable(self) -> None:
        """No dispatcher answered a transfer: the caller stays with the bot, hears
        the hold prompt, and the incident says it waits for a dispatcher."""
        self._waiting_for_dispatcher = True
        log.warning("no dispatcher answered the transfer; the caller waits with the bot")
        await self._say_prompt(Prompt.HOLD, "hold")
        if self._last_turn is not None:
            await self._save_incident(self._last_turn)

    async def take_over(
        self, dispatcher: str, on_caller_audio: Callable[[int, bytes], None]
    ) -> Callable[[bytes], Awaitable[None]]:
        """A dispatcher takes the call: the bot falls silent (it keeps transcribing),
        the caller's audio goes to `on_caller_audio(call_ms, pcm16k)`, and the
        returned coroutine function sends the dispatcher's voice (16 kHz, 20 ms
        frames) to the caller."""
        self._taken_over_by = dispatcher
        self._muted = True
        await self._player.interrupt()
        self._caller_taps.append(on_caller_audio)
        self.outcome.status = "handed_off"
        self.outcome.handoff_reason = f"taken over by dispatcher {dispatcher}"
        self._request_handoff()
        log.info("call taken over by a dispatcher")
        if self._last_turn is not None:
            await self._save_incident(self._last_turn)
        output = self._output

        async def speak(pcm16k: bytes) -> None:
            await output.send_audio(pcm16k)

        return speak

    async def shut_down(self, wait_s: float = 8.0) -> None:
        """The service is stopping: the caller hears the hold prompt, the call and
        what was gathered go to a human (a dispatcher calls back), then it ends."""
        if self.ended.is_set():
            return
        await self._fail_to_human("the service shut down mid-call: call the caller back")
        self.outcome.end_reason = self.outcome.end_reason or "service shutting down"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._player.wait_heard(), wait_s)
        await self._output.close("service shutting down")
        self.hangup("service shutting down")

    async def release(self, on_caller_audio: Callable[[int, bytes], None]) -> None:
        """The dispatcher's audio ended (they hung up, or their connection dropped):
        the caller is told to hold, the call stays with the human queue (the bot
        stays silent but for the hold prompt), and the incident says it waits."""
        with contextlib.suppress(ValueError):
            self._caller_taps.remove(on_caller_audio)
        if self._taken_over_by is None:
            return
        log.info("the dispatcher left the call; the caller holds for a dispatcher")
        self._taken_over_by = None
        self._waiting_for_dispatcher = True
        if not self.ended.is_set():
            await self._say_prompt(Prompt.HOLD, "hold")
        if self._last_turn is not None:
            await self._save_incident(self._last_turn)

    def dtmf(self, digit: str) -> None:
        log.debug("DTMF %s", digit)
        self._last_activity = time.monotonic()
        self._reprompts = 0

    # ----- the call --------------------------------------------------
    async def run(self) -> CallOutcome:
        with call_context(self.info.call_id):
            try:
                await self._run()
            except Exception:
                # The per-call supervisor: whatever broke, the call is handed to a
                # human and its record is closed with what was gathered.
                log.exception("call failed; handing it to a human")
                self.outcome.status = "handed_off"
                self.outcome.handoff_reason = "internal error"
            finally:
                if self._holding_line and self._svc.lines is not None:
                    self._svc.lines.release()
                    self._holding_line = False
                await self._close_record()
                self.ended.set()
        return self.outcome

    async def _run(self) -> None:
        if self._svc.metrics is not None:
            self._svc.metrics.calls.labels(self.info.line.value, self.info.channel).inc()
        store = self._svc.store
        await write_safely(store.start_call(self.info, datetime.now(UTC)), "store start_call")
        recognizer = CallRecognizer(
            self._svc.transcriber_for(self.info.language),
            self.info.language,
            self._svc.asr_executor,
            endpoint_silence_ms=self._settings.endpoint_silence_ms,
            min_utterance_ms=self._settings.min_utterance_ms,
            max_utterance_s=self._settings.max_utterance_s,
            speculative_after_ms=self._settings.speculative_after_ms,
            call_id=self.info.call_id,
        )
        async with asyncio.TaskGroup() as tg:
            player = tg.create_task(self._player.run())
            writer = tg.create_task(self._turns.run())
            watchdog = tg.create_task(self._silence_watchdog())
            turns = tg.create_task(self._take_turns())
            if not await self._wait_for_a_line():
                for idle in (player, watchdog, turns):
                    idle.cancel()
                self._turns.close()
                await writer
                return
            await self._greet()
            listening = tg.create_task(self._listen(recognizer))
            done = tg.create_task(self._finished.wait())
            hung_up = tg.create_task(self._caller_hung_up.wait())
            await asyncio.wait({done, hung_up}, return_when=asyncio.FIRST_COMPLETED)
            if self._caller_hung_up.is_set():
                # Let the recogniser finish the last words, then the turn queue.
                await listening
                await self._transcripts.join()
            else:
                await self._player.wait_heard()
                await self._output.close(self.outcome.end_reason or "completed")
                self.hangup("bot ended the call")
                await listening
            for task in (player, watchdog, turns, done, hung_up):
                task.cancel()
            self._turns.close()
            await writer

    async def _wait_for_a_line(self) -> bool:
        """Take one of the node's lines; while all are busy, the caller hears "all
        lines busy, stay on the line" (at once, then every `busy_prompt_every_s`)
        and waits in order. False if the caller hung up while waiting."""
        lines = self._svc.lines
        if lines is None:
            return True
        if not lines.locked():
            await lines.acquire()
            self._holding_line = True
            return True
        log.warning("all lines busy: the caller waits for a free line")
        self._waiting_for_line = True
        drain = asyncio.create_task(self._drain_caller_audio())
        acquire = asyncio.create_task(lines.acquire())
        try:
            while True:
                await self._say_prompt(Prompt.ALL_BUSY, "busy")
                await asyncio.wait(
                    {acquire, drain},
                    timeout=self._settings.busy_prompt_every_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if acquire.done():
                    self._holding_line = True
                    await self._player.interrupt()
                    return True
                if drain.done():  # the caller hung up while waiting
                    self.outcome.status = "handed_off"
                    self.outcome.handoff_reason = (
                        "caller hung up while all lines were busy: call back"
                    )
                    return False
        finally:
            self._waiting_for_line = False
            drain.cancel()
            if not acquire.done():
                acquire.cancel()
            elif not self._holding_line and not acquire.cancelled():
                lines.release()  # got a line just as the caller left

    async def _drain_caller_audio(self) -> None:
        """While queued: nothing listens yet, so drop the caller's audio (it is still
        recorded); return when the caller hangs up."""
        while await self._frames.get() is not None:
            pass

    async def _greet(self) -> None:
        try:
            turn = await asyncio.wait_for(
                self._svc.dialog.start(self.info), self._settings.dialog_timeout_s
            )
            speech = await self._speak(turn.reply)
        except (CallbotError, TimeoutError) as exc:
            self._count_error("dialog" if isinstance(exc, DialogError) else "tts")
            await self._fail_to_human(f"greeting failed: {exc!r}")
            return
        self._last_turn = turn

        def greeted(at: float) -> None:
            self.outcome.greeting_ms = (at - self._started_at) * 1000
            log.info("greeting audio started after %.0f ms", self.outcome.greeting_ms)

        self._player.enqueue(speech, "greeting", greeted)
        await write_safely(
            self._svc.store.mark_answered(self.info.call_id, datetime.now(UTC)), "mark answered"
        )
        self._turns.bot(turn, start_ms=self._call_ms(), latency_ms=None)

    async def _listen(self, recognizer: CallRecognizer) -> None:
        try:
            await recognizer.run(self._caller_frames(), self._on_asr_event)
        except CallbotError as exc:
            self._count_error("asr")
            await self._fail_to_human(f"speech recognition failed: {exc!r}")
            # Keep draining caller audio so the gateway never blocks.
            async for _ in self._caller_frames():
                pass

    async def _caller_frames(self) -> AsyncIterator[AudioFrame]:
        while True:
            frame = await self._frames.get()
            if frame is None:
                return
            yield frame

    async def _on_asr_event(self, event: SpeechStarted | Transcript) -> None:
        self._last_activity = time.monotonic()
        if isinstance(event, SpeechStarted):
            if not self._muted and await self._player.interrupt():
                log.info("caller barged in at %d ms", event.start_ms)
            return
        self._reprompts = 0
        await self._transcripts.put(event)

    async def _take_turns(self) -> None:
        while True:
            transcript = await self._transcripts.get()
            try:
                await self._take_turn(transcript)
            finally:
                self._transcripts.task_done()

    async def _take_turn(self, transcript: Transcript) -> None:
        speech_end_at = self._arrival_time(transcript.end_ms)
        self._turns.caller(transcript)
        if self._caller_hung_up.is_set():
            return
        if self._muted:
            # The bot failed and a dispatcher is coming: never leave a caller
            # talking to silence (unless a dispatcher is already talking).
            if (
                self._taken_over_by is None
                and time.monotonic() - self._last_hold_at > _HOLD_REPEAT_S
            ):
                await self._say_prompt(Prompt.HOLD, "hold")
            return
        self._busy = True
        try:
            turn = await asyncio.wait_for(
                self._svc.dialog.respond(self.info.call_id, transcript.text),
                self._settings.dialog_timeout_s,
            )
        except (CallbotError, TimeoutError, KeyError) as exc:
            self._busy = False
            self._count_error("dialog")
            await self._fail_to_human(f"dialog turn failed: {exc!r}")
            return
        # What the dialog understood is kept even if the reply cannot be spoken.
        self._last_turn = turn
        self._evidence.note(
            turn, Utterance(transcript.text, transcript.engine, transcript.confidence)
        )
        try:
            speech = await self._speak(turn.reply)
        except (CallbotError, TimeoutError) as exc:
            self._count_error("tts")
            await self._fail_to_human(f"speech synthesis failed: {exc!r}")
            return
        finally:
            self._busy = False
        if self._taken_over_by is not None:
            # A dispatcher took the call while the dialog was thinking: keep
            # what it understood, say nothing over the dispatcher.
            await self._save_incident(turn)
            return
        self._replies += 1
        start_ms = self._call_ms()

        def first_audio(at: float) -> None:
            latency_ms = (at - speech_end_at) * 1000
            self.outcome.turn_latencies_ms.append(latency_ms)
            if self._svc.metrics is not None:
                self._svc.metrics.reply_latency.observe(latency_ms / 1000)
            log.info(
                "reply %d: end of speech to first audio %.0f ms (asr %.0f ms)",
                self._replies,
                latency_ms,
                transcript.decode_ms,
            )
            self._turns.bot(turn, start_ms=start_ms, latency_ms=latency_ms)

        self._player.enqueue(speech, f"reply-{self._replies}", first_audio)
        await self._save_incident(turn)
        if turn.handoff and self.outcome.status != "handed_off":
            # A dispatcher is asked to take the call; until one does, the bot
            # keeps gathering details and the incident keeps growing.
            self.outcome.status = "handed_off"
            self.outcome.handoff_reason = turn.slots.get("handoff_reason") or (
                "red flag: " + ", ".join(turn.red_flags)
                if turn.red_flags
                else "dialog requested a dispatcher"
            )
            log.info("dispatcher requested: %s", self.outcome.handoff_reason)
            self._request_handoff()

    async def _silence_watchdog(self) -> None:
        limit_s = self._settings.silence_reprompt_s
        while True:
            await asyncio.sleep(0.25)
            waiting_for_dispatcher = self.outcome.status == "handed_off"
            busy = self._busy or self._waiting_for_line or self._player.speaking
            if self._muted or waiting_for_dispatcher or busy:
                self._last_activity = max(self._last_activity, self._player.finished_at)
                continue
            quiet_s = time.monotonic() - max(self._last_activity, self._player.finished_at)
            if quiet_s < limit_s:
                continue
            self._last_activity = time.monotonic()
            if self._reprompts < self._settings.silence_max_reprompts:
                self._reprompts += 1
                await self._say_prompt(Prompt.STILL_THERE, f"reprompt-{self._reprompts}")
                continue
            log.info("caller silent after %d re-prompts; ending the call", self._reprompts)
            self._muted = True
            self.outcome.status = "handed_off"
            self.outcome.handoff_reason = "silent call: a dispatcher should call back"
            self.outcome.end_reason = "caller silent"
            await self._say_prompt(Prompt.SILENT_GOODBYE, "goodbye")
            self._finished.set()
            return

    # ----- failing toward a human -------------------------------------
    async def _fail_to_human(self, reason: str) -> None:
        log.error("handing the call to a human: %s", reason)
        self._muted = True
        self.outcome.status = "handed_off"
        self.outcome.handoff_reason = reason
        self._request_handoff()
        await self._player.interrupt()
        await self._say_prompt(Prompt.HOLD, "hold")
        if self._last_turn is not None:
            await self._save_incident(self._last_turn)

    async def _say_prompt(self, prompt: Prompt, mark: str) -> None:
        if prompt is Prompt.HOLD:
            self._last_hold_at = time.monotonic()
        text = prompt_text(prompt, self.info.language)
        try:
            speech = await self._speak(text)
        except (CallbotError, TimeoutError) as exc:
            log.error("could not play the %s prompt: %r", prompt.value, exc)
            return
        self._player.enqueue(speech, mark)
        self._turns.prompt(text, start_ms=self._call_ms())

    async def _speak(self, text: str) -> Speech:
        return await asyncio.wait_for(
            self._svc.speech.speak(text, self.info.language), self._settings.tts_timeout_s
        )

    # ----- records ----------------------------------------------------
    def _count_error(self, component: str) -> None:
        if self._svc.metrics is not None:
            self._svc.metrics.errors.labels(component).inc()

    def _request_handoff(self) -> None:
        if not self.handoff_requested.is_set() and self._svc.metrics is not None:
            self._svc.metrics.handoffs.inc()
        self.handoff_requested.set()

    async def _save_incident(self, turn: DialogTurn) -> None:
        incident = incident_from_turn(self.info, turn, self._evidence)
        if incident is not None:
            extra: dict[str, JsonValue] = {}
            if self._waiting_for_dispatcher:
                extra["waiting_for_dispatcher"] = True
            if self._taken_over_by is not None:
                extra["taken_over_by"] = self._taken_over_by
            if extra:
                incident = replace(incident, details={**incident.details, **extra})
            await write_safely(
                self._svc.store.upsert_incident(incident, actor=f"bot:{self._svc.dialog.name}"),
                "upsert incident",
            )

    async def _close_record(self) -> None:
        if self._recording is not None:
            await write_safely(self._recording.finish(self._svc.store), "save recording")
        outcome = self.outcome
        if outcome.status == "in_progress":
            outcome.status = "completed"
        with contextlib.suppress(Exception):
            await self._svc.dialog.end(self.info.call_id)
        await write_safely(
            self._svc.store.end_call(
                self.info.call_id,
                outcome.status,
                outcome.end_reason or "ended",
                datetime.now(UTC),
                handoff_reason=outcome.handoff_reason,
            ),
            "end call",
        )

    # ----- clocks -----------------------------------------------------
    def _call_ms(self) -> int:
        return int((time.monotonic() - self._started_at) * 1000)

    def _arrival_time(self, audio_ms: int) -> float:
        """Wall-clock time at which the caller audio at `audio_ms` reached us."""
        if not self._arrival_ms:
            return time.monotonic()
        index = bisect.bisect_right(self._arrival_ms, audio_ms) - 1
        return self._arrival_at[max(0, index)]
