"""The dispatcher console in a real browser (Debian's Chromium, driven by Playwright).

A dispatcher logs in, watches the queue, a resident reports a fire through the
chat channel (the real Rasa dialog), the incident appears on the page without
a reload, the dispatcher acknowledges it with the keyboard, and the database
says who did.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import REPO, RunningService

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "a long dispatcher password"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not CHROMIUM.exists() or shutil.which("chromium") is None:
    pytest.skip(
        "Debian's chromium is not installed (make test installs it when run as root: "
        "apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402


def create_user(service: RunningService, name: str, role: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "callcenter.cli", "users", "create", name, "--role", role],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        cwd=REPO,
        env={"CALLBOT_DATA_DIR": str(service.data_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def log_in(page: Page, service: RunningService, name: str) -> None:
    page.goto(f"{service.base_url}/dispatch")
    expect(page).to_have_url(f"{service.base_url}/login?next=/dispatch")
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    expect(page).to_have_url(f"{service.base_url}/dispatch")
    expect(page.locator("body")).to_have_attribute("data-live", "1", timeout=10_000)


def report_fire(service: RunningService) -> str:
    """A resident reports a fire with someone trapped, over the chat channel."""
    with httpx.Client(base_url=service.base_url, timeout=10.0) as client:
        opened = client.post(
            "/api/v1/chat/sessions", json={"line": "114", "lang": "vi", "from": "0912345678"}
        )
        opened.raise_for_status()
        session_id = opened.json()["session_id"]
        reply = client.post(
            f"/api/v1/chat/sessions/{session_id}/messages",
            json={"text": "cháy nhà ở số 18 Hàng Bài, có người bị kẹt trên tầng hai"},
        )
        reply.raise_for_status()
        incident_id = reply.json()["state"]["incident_id"]
    assert incident_id, reply.json()
    return str(incident_id)


def test_a_new_incident_appears_live_and_is_acknowledged(
    service: RunningService, browser: Browser
) -> None:
    create_user(service, "hoa", "dispatcher")
    context = browser.new_context()
    page = context.new_page()
    try:
        log_in(page, service, "hoa")
        page.evaluate("window.__notReloaded = true")

        incident_id = report_fire(service)

        row = page.locator(f'tr.incident[data-id="{incident_id}"]')
        expect(row).to_be_visible(timeout=5_000)
        expect(row).to_have_class(re.compile(r"\bp1\b"))
        assert page.evaluate("window.__notReloaded") is True  # it arrived live

        row.click()
        expect(row).to_have_class(re.compile(r"\bselected\b"))
        # the live transcript and the evidence for what the bot wrote
        expect(page.locator("#transcript .turn-caller").first).to_contain_text("Hàng Bài")
        expect(page.locator("dd.evidence").first).to_contain_text("Hàng Bài")
        page.keyboard.press("a")  # acknowledge
        expect(page.locator("#act-dispatch")).to_be_enabled(timeout=5_000)
        page.screenshot(path=str(service.data_dir / "dispatch-console.png"), full_page=True)
    finally:
        context.close()

    with sqlite3.connect(service.data_dir / "callbot.db") as db:
        stored = db.execute(
            "select status, acknowledged_by, priority from incidents where id = ?", (incident_id,)
        ).fetchone()
        details = json.loads(
            db.execute("select details from incidents where id = ?", (incident_id,)).fetchone()[0]
        )
        reads = db.execute(
            "select actor, action from access_log where subject like 'call:%'"
        ).fetchall()
    assert stored == ("acknowledged", "hoa", 1)
    category = details["evidence"]["category"]
    assert "Hàng Bài" in category["utterance"] and category["model"].startswith("rasa")
    assert ("hoa", "read_transcript") in reads  # opening the incident read its transcript
