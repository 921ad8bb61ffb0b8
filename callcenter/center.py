"""The call centre: loads the parts once, then opens and supervises calls."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import resource
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from asr.factory import AsrEngines, load_engines
from asr.model import ensure_whisper_model
from callcenter.asr_pool import MeasuredPool
from callcenter.chat import ChatService
from callcenter.events import CallbotError, CallInfo, Language
from callcenter.metrics import Metrics
from callcenter.playback import CallOutput
from callcenter.prompts import all_prompts
from callcenter.quality import Assessment, assess, review_reason
from callcenter.recording import CallRecorder
from callcenter.session import CallOutcome, CallSession, SessionServices
from callcenter.settings import Settings
from dialog.base import Dialog
from dialog.rasa_dialog import RasaDialog
from dialog.rasa_process import RasaProcesses, RasaSettings, free_port, new_auth_token
from dialog.scripted import ScriptedDialog
from dispatch.feed import ChangeFeed, PgChangeListener
from dispatch.journal import JournaledStore
from dispatch.store import SqlCallStore
from tts.cache import PromptCache
from tts.pyttsx3_engine import Pyttsx3Synthesizer

log = logging.getLogger(__name__)
_T = TypeVar("_T")
RETENTION_ACTOR = "system:retention"


class NotReady(CallbotError):
    """The service is still starting (or a required part failed to load)."""


class CallCenter:
    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.components: dict[str, str] = {
            "asr": "starting",
            "tts": "starting",
            "dialog": "starting",
            "store": "starting",
        }
        self.calls: dict[str, CallSession] = {}
        self.metrics.watch_calls(lambda: len(self.calls))
        self.gateways: dict[str, str] = {}  # name -> where it listens, or why it failed
        self.started_at = time.monotonic()
        self.ready_after_s: float | None = None
        self._services: SessionServices | None = None
        self._engines: AsrEngines | None = None
        self._synth: Pyttsx3Synthesizer | None = None
        self._store: JournaledStore | None = None
        self._replayer: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._purger: asyncio.Task[None] | None = None
        self._assessor: asyncio.Task[None] | None = None
        self._orphans: asyncio.Task[None] | None = None
        self.started_wall = datetime.now(UTC)
        self.accepting = True  # False once shutting down: new calls are refused (try again)
        self.recorder = (
            CallRecorder(settings.data_dir / "recordings") if settings.recordings_enabled else None
        )
        self.feed = ChangeFeed()  # every committed change to incidents and turns
        self._executor: ThreadPoolExecutor | None = None
        self._chat: ChatService | None = None
        self._rasa: RasaProcesses | None = None
        self._rasa_dialog: RasaDialog | None = None
        self._rasa_settings = RasaSettings()
        self._no_calls = asyncio.Event()
        self._no_calls.set()

    @property
    def ready(self) -> bool:
        """Calls are taken: speech, store and dialog all answered at start-up."""
        return self._services is not None and self._dialog_ok()

    @property
    def store(self) -> JournaledStore:
        if self._store is None:
            raise NotReady("the store is not open yet")
        return self._store

    @property
    def chat(self) -> ChatService:
        if self._chat is None:
            raise NotReady("the chat channel is starting")
        return self._chat

    async def start(self) -> None:
        """Open the store, start the dialog and load the speech models, in parallel.

        The HTTP server answers meanwhile (health says "starting"). When the
        dialog cannot start, calls are still answered and handed to a human
        with the hold prompt; health says "degraded".
        """
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        dialog = self._make_dialog()
        dialog_started = asyncio.create_task(self._start_dialog())
        try:
            store = await self._step("store", self.open_store())
            cache = await self._step("tts", self._start_speech_output(dialog))
            engines = await self._step("asr", self._load_asr())
        except CallbotError:
            dialog_started.cancel()
            for name, state in self.components.items():
                if state == "starting":
                    self.components[name] = "not started: an earlier part failed"
            return
        await dialog_started
        self._executor = MeasuredPool(settings.asr_workers, self.metrics.asr_queue_wait.observe)
        dialog_model = await asyncio.to_thread(self._dialog_model, dialog)
        self._chat = ChatService(
            dialog, store, dialog_timeout_s=settings.dialog_timeout_s, dialog_model=dialog_model
        )
        self._services = SessionServices(
            settings=settings,
            transcriber_for=engines.for_language,
            asr_executor=self._executor,
            dialog=dialog,
            speech=cache,
            store=store,
            dialog_model=dialog_model,
            recorder=self.recorder,
            metrics=self.metrics,
            lines=asyncio.Semaphore(settings.max_concurrent_calls),
        )
        self._purger = asyncio.create_task(self._purge_expired(), name="retention-purge")
        self.ready_after_s = time.monotonic() - self.started_at
        log.info(
            "taking calls after %.1f s (dialog: %s)", self.ready_after_s, self.components["dialog"]
        )

    async def _step(self, component: str, work: Awaitable[_T]) -> _T:
        try:
            result = await work
        except CallbotError as exc:
            self.components[component] = f"failed: {exc}"
            log.error("%s failed to start: %s", component, exc)
            raise
        if self.components[component] == "starting":
            self.components[component] = "ok"
        return result

    async def open_store(self) -> JournaledStore:
        """The database, with a journal that keeps writes while it is unreachable."""
        url = self.settings.resolved_database_url
        database = SqlCallStore(url, feed=self.feed, node=self.settings.node_name)
        await database.create_schema()
        if database.dialect == "postgresql":  # other nodes' changes, live
            listener = PgChangeListener(url, self.feed)
            self._listener = asyncio.create_task(listener.run(), name="change-listener")
        store = JournaledStore(database, self.settings.data_dir / "journal")
        self._store = store
        self._replayer = asyncio.create_task(store.run_replayer(), name="journal-replayer")
        self._assessor = asyncio.create_task(self._assess_ended_calls(), name="quality-checks")
        self._orphans = asyncio.create_task(self._hand_over_orphans(), name="orphaned-calls")
        if store.pending:
            log.warning("journaled writes from an earlier run are being replayed")
        return store

    async def _start_speech_output(self, dialog: Dialog) -> PromptCache:
        synth = Pyttsx3Synthesizer()
        await asyncio.to_thread(synth.start)
        self._synth = synth
        cache = PromptCache(synth)
        await cache.warm(
            (text, language)
            for language in Language
            for text in [*dialog.fixed_prompts(language), *all_prompts(language)]
        )
        self.components["tts"] = f"ok ({len(cache)} prompts cached)"
        return cache

    async def _load_asr(self) -> AsrEngines:
        model_dir = self.settings.whisper_model_dir
        if model_dir is None:
            model_dir = await asyncio.to_thread(
                ensure_whisper_model, self.settings.models_dir / "whisper-base"
            )
        engines = await asyncio.to_thread(load_engines, self.settings, model_dir)
        self._engines = engines
        self.components["asr"] = ", ".join(f"{k}: {v}" for k, v in engines.status().items())
        return engines

    def _make_dialog(self) -> Dialog:
        settings = self.settings
        if settings.dialog_engine == "scripted":
            return ScriptedDialog()
        # A Rasa server we start gets a fresh token, so that no other local
        # process can read or change its conversations.
        token = settings.rasa_token or (None if settings.rasa_url else new_auth_token())
        overrides: dict[str, object] = {}
        if settings.rasa_model is not None:
            overrides["model_path"] = settings.rasa_model.resolve()
        self._rasa_settings = RasaSettings.for_data_dir(
            settings.data_dir,
            url=settings.rasa_url,
            port=settings.rasa_port or free_port(),
            action_port=settings.rasa_action_port or free_port(),
            timeout_s=settings.rasa_timeout_s,
            start_timeout_s=settings.rasa_start_timeout_s,
            venv=settings.rasa_venv.resolve(),
            endpoints_file=settings.rasa_endpoints_file,
            auth_token=token,
            **overrides,
        )
        url = settings.rasa_url or f"http://{self._rasa_settings.host}:{self._rasa_settings.port}"
        self._rasa_dialog = RasaDialog(url, timeout_s=settings.rasa_timeout_s, token=token)
        return self._rasa_dialog

    async def _start_dialog(self) -> None:
        settings = self.settings
        if settings.dialog_engine == "scripted":
            self.components["dialog"] = "ok (scripted STAND-IN, not the product)"
            return
        if settings.rasa_url is not None:
            self.components["dialog"] = f"ok (rasa at {settings.rasa_url})"
            return
        processes = RasaProcesses(self._rasa_settings)
        try:
            await processes.start()
        except CallbotError as exc:
            self.components["dialog"] = f"failed: {exc}"
            log.error("the Rasa dialog did not start; calls go to a human: %s", exc)
            return
        self._rasa = processes
        self.components["dialog"] = "ok (rasa)"

    async def _hand_over_orphans(self) -> None:
        """Calls this node was taking when it died: once the journal is replayed,
        mark them for a dispatcher to call back (their record and incident stay)."""
        store = self.store
        try:
            await store.replay()
            if store.pending:
                return  # the database is away: the next start will look again
            closed = await store.store.close_orphaned_calls(
                self.started_wall, "the service restarted mid-call: call the caller back"
            )
        except CallbotError as exc:
            log.error("calls left open by an earlier run not yet handed over: %s", exc)
            return
        if closed:
            log.warning("%d calls left open by an earlier run handed to dispatchers", len(closed))

    async def _assess_ended_calls(self) -> None:
        """Run the quality checks on every call that ends on this node."""
        async for change in self.feed.changes():
            if change.kind == "call" and change.call_id is not None:
                try:
                    await self.assess_call(change.call_id)
                except CallbotError as exc:
                    log.error("quality checks not stored for a call: %s", exc)

    async def assess_call(self, call_id: str) -> Assessment | None:
        """Check a call's quality and pick it for review or not; None if unknown."""
        database = self.store.store
        call = await database.get_call(call_id)
        if call is None:
            return None
        incident = await database.get_incident(call.incident_id) if call.incident_id else None
        assessment = assess(call, incident)
        await database.review.set_quality(
            call_id,
            assessment.as_json(),
            len(assessment.failed),
            review_reason(call, assessment),
            assessment.min_asr_confidence,
        )
        return assessment

    async def _purge_expired(self, every_s: float = 3600.0) -> None:
        """Delete recordings and transcripts past retention, now and every hour; what
        was purged goes to the access log (admins read it), and a count to the log."""
        while True:
            try:
                await self.purge_expired()
            except CallbotError as exc:
                log.error("retention purge failed, will retry: %s", exc)
            await asyncio.sleep(every_s)

    async def purge_expired(self) -> tuple[int, int]:
        """(recordings, transcripts) purged past their retention."""
        settings, database = self.settings, self.store.store
        recordings = 0
        if self.recorder is not None:
            deleted = await asyncio.to_thread(
                self.recorder.purge_expired, settings.recording_retention_days
            )
            recordings = await database.forget_recordings(deleted, RETENTION_ACTOR)
        cutoff = datetime.now(UTC) - timedelta(days=settings.transcript_retention_days)
        transcripts = len(await database.purge_transcripts(cutoff, RETENTION_ACTOR))
        if recordings or transcripts:
            log.info(
                "retention: purged %d recordings (older than %g days) and %d transcripts "
                "(older than %g days)",
                recordings,
                settings.recording_retention_days,
                transcripts,
                settings.transcript_retention_days,
            )
        return recordings, transcripts

    def _dialog_model(self, dialog: Dialog) -> str:
        """Which model fills incidents: the dialog, and the trained file's digest."""
        if self.settings.dialog_engine == "scripted":
            return f"{dialog.name} (stand-in)"
        if self.settings.rasa_url is not None:
            return f"rasa at {self.settings.rasa_url}"
        path = self._rasa_settings.model_path
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        except OSError:
            return f"rasa, model {path.name} (unreadable)"
        return f"rasa, model {path.name} sha256:{digest}"

    def _dialog_ok(self) -> bool:
        if self._rasa is not None and not self._rasa.ready:
            return False
        return self.components["dialog"].startswith("ok")

    def open_call(self, info: CallInfo, output: CallOutput) -> CallSession:
        """A new call; answered whenever speech works, even with the dialog down."""
        if not self.accepting:
            raise NotReady("service shutting down: call another node")
        if self._services is None:
            raise NotReady(
                "service starting: "
                + ", ".join(
                    f"{k}={v}" for k, v in self.components.items() if not v.startswith("ok")
                )
            )
        session = CallSession(info, self._services, output)
        self.calls[info.call_id] = session
        self._no_calls.clear()
        return session

    async def run_call(self, session: CallSession) -> CallOutcome:
        try:
            return await session.run()
        finally:
            self.calls.pop(session.info.call_id, None)
            if not self.calls:
                self._no_calls.set()

    async def hand_off_all(self, wait_s: float = 8.0) -> None:
        """Before stopping: every caller hears the hold prompt and every call goes to
        a human with what was gathered (at most `wait_s`)."""
        self.accepting = False
        sessions = list(self.calls.values())
        if sessions:
            log.warning("shutting down: handing %d calls to dispatchers", len(sessions))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(s.shut_down(wait_s) for s in sessions)), wait_s + 1
                )

    async def stop(self) -> None:
        for session in list(self.calls.values()):
            session.hangup("service shutting down")
        if self.calls:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._no_calls.wait(), 5.0)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        if self._engines is not None:
            self._engines.close()
        if self._synth is not None:
            await asyncio.to_thread(self._synth.close)
        if self._rasa_dialog is not None:
            await self._rasa_dialog.aclose()
        if self._rasa is not None:
            await self._rasa.stop()
        for task in (self._replayer, self._listener, self._purger, self._assessor, self._orphans):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._store is not None:
            await self._store.close()

    def health(self) -> tuple[int, dict[str, object]]:
        components = dict(self.components)
        if self._rasa is not None and not self._rasa.ready:
            components["dialog"] = "restarting (rasa)"
        if self.ready:
            status = "ok"
        elif "starting" in components.values():
            status = "starting"
        else:
            status = "degraded"
        body: dict[str, object] = {
            "status": status,
            "components": components,
            "calls_in_progress": len(self.calls),
            "max_concurrent_calls": self.settings.max_concurrent_calls,
            "gateways": dict(self.gateways),
            "ready_after_s": self.ready_after_s,
            "rss_mb": _rss_mb(),
            "pid": os.getpid(),
        }
        return (200 if status == "ok" else 503), body


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except OSError:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
