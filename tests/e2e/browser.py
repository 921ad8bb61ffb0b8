"""What the browser tests (and the dispatch benchmark) share: Debian's Chromium,
staff accounts made with the real CLI, and logging in through the login page.

Playwright drives the system's Chromium (`apt-get install chromium`); it never
downloads a browser.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
PASSWORD = "a long staff member's password"


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if CHROMIUM.exists() and shutil.which("chromium") is not None:
        return None
    return (
        "Debian's chromium is not installed (make test installs it when run as root: "
        "apt-get install chromium chromium-driver)"
    )


def create_user(data_dir: Path, name: str, role: str, password: str = PASSWORD) -> None:
    """A staff account, made with `callbot users create` on the service's data dir."""
    subprocess.run(
        [sys.executable, "-m", "callcenter.cli", "users", "create", name, "--role", role],
        input=password + "\n",
        text=True,
        check=True,
        cwd=REPO,
        env={"CALLBOT_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=60,
    )


def launched_chromium() -> Iterator[Browser]:
    """Headless Chromium for one module (use as a fixture's body)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def log_in(page: Page, base_url: str, name: str, path: str, password: str = PASSWORD) -> None:
    """Open `path`, get sent to the login page, log in, and land on `path`."""
    from playwright.sync_api import expect

    page.goto(f"{base_url}{path}")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.fill("#username", name)
    page.fill("#password", password)
    page.click("#login-button")
    expect(page).to_have_url(f"{base_url}{path}")


def skip_without_chromium() -> None:
    """Skip the calling test module, with the reason, where Chromium is missing."""
    reason = chromium_missing()
    if reason is not None:
        pytest.skip(reason, allow_module_level=True)
