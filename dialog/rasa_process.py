"""Runs the Rasa server and the action server as child processes on loopback.

Rasa 3.6 lives in its own Python 3.10 environment (`.venv-rasa`, built by
scripts/setup_rasa.sh) and is never imported here. The action server runs
`rasa_sdk` in the service's own interpreter. Both are started, checked for
readiness, restarted with back-off when they die, and stopped with SIGTERM
then SIGKILL. Used only when no external Rasa URL is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

import httpx

from dialog.base import DialogError

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RASA_PROJECT_DIR = Path(__file__).resolve().parent / "rasa"
LAUNCHER = Path(__file__).resolve().parent / "rasa_launcher.py"


@dataclass(frozen=True, slots=True)
class RasaSettings:
    """Where Rasa runs and how long to wait for it.

    `url` set: connect to that Rasa server and start nothing. Otherwise a Rasa
    server and an action server are started on `host` (loopback); a port of 0
    picks a free one.
    """

    url: str | None = None
    host: str = "127.0.0.1"
    port: int = 5005
    action_port: int = 5055
    timeout_s: float = 2.5  # every HTTP request to Rasa
    start_timeout_s: float = 90.0  # from spawn to answering
    venv: Path = PROJECT_ROOT / ".venv-rasa"
    model_path: Path = PROJECT_ROOT / "var" / "rasa" / "models" / "callbot.tar.gz"
    run_dir: Path = PROJECT_ROOT / "var" / "rasa" / "run"  # generated endpoints/credentials
    log_dir: Path = PROJECT_ROOT / "var" / "logs"
    endpoints_file: Path | None = None  # e.g. a shared PostgreSQL tracker store
    # Closes Rasa's conversation API to other local processes; give the same
    # token to RasaDialog(token=...). None: no token (Rasa's default).
    auth_token: str | None = None
    action_python: Path = Path(sys.executable)
    restart_backoff_s: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0)

    @classmethod
    def for_data_dir(cls, data_dir: Path, **overrides: object) -> RasaSettings:
        data_dir = data_dir.resolve()
        base = cls(
            model_path=data_dir / "rasa" / "models" / "callbot.tar.gz",
            run_dir=data_dir / "rasa" / "run",
            log_dir=data_dir / "logs",
        )
        return replace(base, **overrides)  # type: ignore[arg-type]

    @property
    def domain_path(self) -> Path:
        return RASA_PROJECT_DIR / "domain.yml"


def new_auth_token() -> str:
    return secrets.token_urlsafe(24)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the child gets SIGTERM when the service dies, so no port stays taken."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass(slots=True)
class _Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    health_url: str
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    log_file: IO[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class RasaProcesses:
    """The Rasa server and the action server, kept alive while the service runs."""

    def __init__(self, settings: RasaSettings) -> None:
        if settings.url is not None:
            raise ValueError("an external Rasa URL is configured: nothing to start")
        port = settings.port or free_port(settings.host)
        action_port = settings.action_port or free_port(settings.host)
        self.settings = replace(settings, port=port, action_port=action_port)
        self._children: list[_Child] = []
        self._monitor: asyncio.Task[None] | None = None
        self._stopping = False


    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    @property
    def action_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.action_port}"

    def restarts(self, name: str) -> int:
        return next(c.restarts for c in self._children if c.name == name)

    def pid(self, name: str) -> int | None:
        child = next(c for c in self._children if c.name == name)
        return child.process.pid if child.process is not None else None

    async def __aenter__(self) -> RasaProcesses:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- start ------------------------------------------------------------

    async def start(self) -> None:
        """Start both servers and return when both answer; DialogError otherwise."""
        s = self.settings
        python = s.venv / "bin" / "python"
        if not python.exists():
            raise DialogError(f"no Rasa environment at {s.venv}: run scripts/setup_rasa.sh")
        if not s.model_path.exists():
            raise DialogError(f"no Rasa model at {s.model_path}: run scripts/setup_rasa.sh")
        for port in (s.port, s.action_port):
            if _port_in_use(s.host, port):
                raise DialogError(f"port {s.host}:{port} is already in use")
        s.log_dir.mkdir(parents=True, exist_ok=True)
        endpoints = s.endpoints_file or self._write_run_files()
        quiet = {"TF_CPP_MIN_LOG_LEVEL": "2", "RASA_TELEMETRY_ENABLED": "false"}
        base_env = dict(os.environ)
        self._children = [
            _Child(
                name="actions",
                argv=[str(s.action_python), "-m", "rasa_sdk", "--actions", "dialog.actions",
                      "--port", str(s.action_port)],
                env={**base_env, "SANIC_HOST": s.host,
                     "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT),
                                                                 base_env.get("PYTHONPATH")]))},
                health_url=f"{self.action_url}/health",
                log_path=s.log_dir / "rasa-actions.log",
            ),
            _Child(
                name="rasa",
                argv=[str(python), str(LAUNCHER), "run", "--enable-api",
                      "-i", s.host, "-p", str(s.port), "--model", str(s.model_path),
                      "--endpoints", str(endpoints),
                      "--credentials", str(s.run_dir / "credentials.yml"),
                      # "=": a token may start with "-", which argparse would take
                      # for an option (Rasa then refused to start, 1 start in 64)
                      *([f"--auth-token={s.auth_token}"] if s.auth_token else [])],
                env={**base_env, **quiet},
                health_url=f"{self.url}/status"
                + (f"?token={s.auth_token}" if s.auth_token else ""),
                log_path=s.log_dir / "rasa-server.log",
            ),
        ]
        self._stopping = False
        started = time.monotonic()
        for child in self._children:
            await self._spawn(child)
        try:
            await asyncio.wait_for(
                asyncio.gather(*(self._wait_ready(c) for c in self._children)),
                s.start_timeout_s,
            )
        except (TimeoutError, DialogError) as exc:
            await self.stop()
            raise DialogError(
                f"Rasa did not become ready within {s.start_timeout_s:.0f} s "
                f"(logs in {s.log_dir}): {exc!r}"
            ) from exc
        log.info("Rasa ready at %s after %.1f s", self.url, time.monotonic() - started)
        self._monitor = asyncio.create_task(self._watch(), name="rasa-monitor")

    def _write_run_files(self) -> Path:
        run_dir = self.settings.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        endpoints = run_dir / "endpoints.yml"
        endpoints.write_text(
            "# generated by dialog/rasa_process.py\n"
            f"action_endpoint:\n  url: \"{self.action_url}/webhook\"\n"
        )
        (run_dir / "credentials.yml").write_text("# generated by dialog/rasa_process.py\nrest:\n")
        return endpoints

    async def _spawn(self, child: _Child) -> None:
        if child.log_file is None:
            child.log_file = child.log_path.open("ab")
        child.ready.clear()
        child.started_at = time.monotonic()
        child.process = await asyncio.create_subprocess_exec(
            *child.argv,
            cwd=str(PROJECT_ROOT),
            env=child.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=child.log_file,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            # Its own process group: sanic (in Rasa and the action server) kills its
            # whole group with SIGKILL when a shutdown is interrupted, which would
            # otherwise take the service, and whatever started it, down too.
            start_new_session=True,
        )
        log.info("started %s (pid %d), log %s", child.name, child.process.pid, child.log_path)

    async def _wait_ready(self, child: _Child) -> None:
        async with httpx.AsyncClient(timeout=1.0) as client:
            while True:
                process = child.process
                if process is None or process.returncode is not None:
                    code = None if process is None else process.returncode
                    raise DialogError(f"{child.name} exited with code {code} while starting")
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(child.health_url)
                    if response.status_code == 200 and (
                        child.name != "rasa" or response.json().get("model_file")
                    ):
                        child.ready.set()
                        log.info(
                            "%s ready after %.1f s", child.name, time.monotonic() - child.started_at
                        )
                        return
                await asyncio.sleep(0.2)

    # --- monitor and restart ----------------------------------------------

    async def _watch(self) -> None:
        waits = {asyncio.create_task(self._exit_of(c)): c for c in self._children}
        while waits:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                child = waits.pop(task)
                if self._stopping:
                    continue
                await self._restart(child)
                waits[asyncio.create_task(self._exit_of(child))] = child

    async def _exit_of(self, child: _Child) -> int:
        assert child.process is not None
        return await child.process.wait()

    async def _restart(self, child: _Child) -> None:
        backoff = self.settings.restart_backoff_s
        ran_s = time.monotonic() - child.started_at
        code = child.process.returncode if child.process is not None else None
        attempt = 0 if ran_s > 60 else min(child.restarts, len(backoff) - 1)
        delay = backoff[attempt]
        log.error(
            "%s exited with code %s after %.1f s; restarting in %.1f s",
            child.name, code, ran_s, delay,
        )
        child.ready.clear()
        while not self._stopping:
            await asyncio.sleep(delay)
            child.restarts += 1
            try:
                await self._spawn(child)
                await asyncio.wait_for(self._wait_ready(child), self.settings.start_timeout_s)
                return
            except (TimeoutError, DialogError, OSError) as exc:
                log.error("%s restart failed: %r", child.name, exc)
                await self._terminate(child)
                attempt = min(attempt + 1, len(backoff) - 1)
                delay = backoff[attempt]

    async def wait_ready(self, timeout_s: float) -> None:
        """Return when both servers answer their health checks (after a restart)."""
        async with asyncio.timeout(timeout_s), httpx.AsyncClient(timeout=1.0) as client:
            while True:
                if self.ready and await self._all_answer(client):
                    return
                await asyncio.sleep(0.2)

    async def _all_answer(self, client: httpx.AsyncClient) -> bool:
        for child in self._children:
            try:
                response = await client.get(child.health_url)
            except httpx.HTTPError:
                return False
            if response.status_code != 200:
                return False
        return True

    @property
    def ready(self) -> bool:
        return bool(self._children) and all(
            c.ready.is_set() and c.process is not None and c.process.returncode is None
            for c in self._children
        )

    # --- stop ---------------------------------------------------------------

    async def stop(self, grace_s: float = 5.0) -> None:
        self._stopping = True
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        await asyncio.gather(*(self._terminate(c, grace_s) for c in reversed(self._children)))
        for child in self._children:
            if child.log_file is not None:
                child.log_file.close()
                child.log_file = None

    async def _terminate(self, child: _Child, grace_s: float = 5.0) -> None:
        process = child.process
        child.ready.clear()
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace_s)
        except TimeoutError:
            log.warning("%s did not stop within %.0f s; killing it", child.name, grace_s)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
