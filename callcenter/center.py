"""The call centre: loads the parts once, then opens and supervises calls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import time
from concurrent.futures import ThreadPoolExecutor

from asr.factory import AsrEngines, load_engines
from asr.model import ensure_whisper_model
from callcenter.chat import ChatService
from callcenter.events import CallbotError, CallInfo, Language
from callcenter.playback import CallOutput
from callcenter.prompts import all_prompts
from callcenter.session import CallOutcome, CallSession, SessionServices
from callcenter.settings import Settings
from dialog.base import Dialog
from dialog.scripted import ScriptedDialog
from dispatch.store import SqlCallStore
from tts.cache import PromptCache
from tts.pyttsx3_engine import Pyttsx3Synthesizer

log = logging.getLogger(__name__)


class NotReady(CallbotError):
    """The service is still starting (or a required part failed to load)."""


class CallCenter:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.components: dict[str, str] = {
            "asr": "starting",
            "tts": "starting",
            "dialog": "starting",
            "store": "starting",
        }
        self.calls: dict[str, CallSession] = {}
        self.started_at = time.monotonic()
        self.ready_after_s: float | None = None
        self._services: SessionServices | None = None
        self._engines: AsrEngines | None = None
        self._synth: Pyttsx3Synthesizer | None = None
        self._store: SqlCallStore | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._chat: ChatService | None = None
        self._no_calls = asyncio.Event()
        self._no_calls.set()

    @property
    def ready(self) -> bool:
        return self._services is not None

    @property
    def store(self) -> SqlCallStore:
        if self._store is None:
            raise NotReady("the store is not open yet")
        return self._store

    @property
    def chat(self) -> ChatService:
        if self._chat is None:
            raise NotReady("the chat channel is starting")
        return self._chat

    async def start(self) -> None:
        """Load models and open the store; the HTTP server answers meanwhile."""
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            store = SqlCallStore(settings.resolved_database_url)
            await store.create_schema()
            self._store = store
            self.components["store"] = "ok"

            synth = Pyttsx3Synthesizer()
            await asyncio.to_thread(synth.start)
            self._synth = synth
            dialog: Dialog = ScriptedDialog()
            self.components["dialog"] = f"ok ({dialog.name})"
            self._chat = ChatService(dialog, store, dialog_timeout_s=settings.dialog_timeout_s)
            cache = PromptCache(synth)
            await cache.warm(
                (text, language)
                for language in Language
                for text in [*dialog.fixed_prompts(language), *all_prompts(language)]
            )
            self.components["tts"] = f"ok ({len(cache)} prompts cached)"

            model_dir = settings.whisper_model_dir
            if model_dir is None:
                model_dir = await asyncio.to_thread(
                    ensure_whisper_model, settings.models_dir / "whisper-base"
                )
            engines = await asyncio.to_thread(load_engines, settings, model_dir)
            self._engines = engines
            self.components["asr"] = ", ".join(f"{k}: {v}" for k, v in engines.status().items())
        except CallbotError as exc:
            log.error("start-up failed: %s", exc)
            for name, state in self.components.items():
                if state == "starting":
                    self.components[name] = f"failed: {exc}"
            return

        self._executor = ThreadPoolExecutor(settings.asr_workers, thread_name_prefix="asr")
        self._services = SessionServices(
            settings=settings,
            transcriber_for=engines.for_language,
            asr_executor=self._executor,
            dialog=dialog,
            speech=cache,
            store=store,
        )
        self.ready_after_s = time.monotonic() - self.started_at
        log.info("ready to take calls after %.1f s", self.ready_after_s)

    def open_call(self, info: CallInfo, output: CallOutput) -> CallSession:
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
        if self._store is not None:
            await self._store.close()

    def health(self) -> tuple[int, dict[str, object]]:
        failed = [k for k, v in self.components.items() if v.startswith("failed")]
        if self.ready:
            status = "ok"
        elif failed:
            status = "degraded"
        else:
            status = "starting"
        body: dict[str, object] = {
            "status": status,
            "components": dict(self.components),
            "calls_in_progress": len(self.calls),
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
