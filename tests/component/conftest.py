"""Shared fixtures of the component tests: the real Rasa dialog, started once."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from dialog.rasa_dialog import RasaDialog
from dialog.rasa_process import RasaProcesses, RasaSettings, new_auth_token

_DATA_DIR = Path(os.environ.get("CALLBOT_DATA_DIR", "var"))
_TIMEOUT_S = 2.5


def _settings() -> RasaSettings:
    return RasaSettings.for_data_dir(
        _DATA_DIR, port=0, action_port=0, timeout_s=_TIMEOUT_S, auth_token=new_auth_token()
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def rasa() -> AsyncIterator[RasaProcesses]:
    settings = _settings()
    if not (settings.venv / "bin" / "python").exists():
        pytest.skip(f"no Rasa environment at {settings.venv}: run scripts/setup_rasa.sh")
    if not settings.model_path.exists():
        pytest.skip(f"no Rasa model at {settings.model_path}: run scripts/setup_rasa.sh")
    processes = RasaProcesses(settings)
    await processes.start()
    try:
        yield processes
    finally:
        await processes.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def dialog(rasa: RasaProcesses) -> AsyncIterator[RasaDialog]:
    engine = RasaDialog(rasa.url, timeout_s=_TIMEOUT_S, token=rasa.settings.auth_token)
    try:
        yield engine
    finally:
        await engine.aclose()


