"""The dispatcher console in a real browser (Debian's Chromium, driven by Playwright).

A dispatcher logs in, watches the queue, a resident reports a fire through the
chat channel (the real Rasa dialog), the incident appears on the page without
a reload, the dispatcher acknowledges it with the keyboard, and the database
says who did.
"""

from __future__ import annotations

import json
import re
import sqlite3

import httpx
import pytest

from tests.e2e import browser as browser_tests
from tests.e2e.browser import create_user, skip_without_chromium
from tests.e2e.conftest import RunningService

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

skip_without_chromium()

from playwright.sync_api import Browser, Page, expect  # noqa: E402


def log_in(page: Page, service: RunningService, name: str) -> None:
    """Log in to the console and wait for its live feed."""
    browser_tests.log_in(page, service.base_url, name, "/dispatch")
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
    create_user(service.data_dir, "hoa", "dispatcher")
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
            "select status, acknowledged_by, priority, category from incidents where id = ?",
            (incident_id,),
        ).fetchone()
        details = json.loads(
            db.execute("select details from incidents where id = ?", (incident_id,)).fetchone()[0]
        )
        reads = db.execute(
            "select actor, action from access_log where subject like 'call:%'"
        ).fetchall()
    # A house fire with someone trapped is a fire, not a generic rescue.
    assert stored == ("acknowledged", "hoa", 1, "fire")
    category = details["evidence"]["category"]
    assert "Hàng Bài" in category["utterance"] and category["model"].startswith("rasa")
    assert ("hoa", "read_transcript") in reads  # opening the incident read its transcript
