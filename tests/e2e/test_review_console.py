"""The supervisor review console in a real browser (Debian's Chromium, driven by Playwright).

A caller phones 114 over the media stream and says two things; the service
records the call. A supervisor logs in, finds the call by a word of what the
caller said typed without diacritics, opens it, clicks the second turn and the
player jumps to that moment of the recording. A dispatcher is not allowed in.
Screenshots of the call page and the dashboard are left in the service's data
directory.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
import unicodedata
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.corpus import espeak_pcm, phone_band, read_wav_16k, vieneu_clips
from callcenter.media_client import MediaStreamCall
from callcenter.scripted_caller import play_turns
from tests.e2e import browser as browser_tests
from tests.e2e.browser import PASSWORD, create_user, skip_without_chromium
from tests.e2e.conftest import REPO, RunningService

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

skip_without_chromium()

from playwright.sync_api import Browser, ConsoleMessage, Page, expect  # noqa: E402


def fold(text: str) -> str:
    """Lower-case without Vietnamese diacritics, đ -> d (as the server searches)."""
    text = text.lower().replace("đ", "d")
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize(
        "NFC", "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    )


def log_in(page: Page, service: RunningService, name: str, path: str) -> None:
    browser_tests.log_in(page, service.base_url, name, path)


def caller_turns() -> list[bytes]:
    """Two caller turns: real Vietnamese speech (vieneu) when present, else espeak-ng."""
    clips = vieneu_clips(REPO / "var" / "test-audio" / "vieneu") or vieneu_clips()
    if len(clips) >= 2:
        return [phone_band(read_wav_16k(path)) for path, _ in clips[:2]]
    return [
        phone_band(espeak_pcm("Cháy nhà ở số 18 phố Hàng Bài, khói rất nhiều", voice="vi")),
        phone_band(espeak_pcm("Có một người bị kẹt trên tầng hai", voice="vi")),
    ]


async def place_call(service: RunningService, caller: str) -> None:
    turns = caller_turns()
    async with MediaStreamCall(service.ws_url, line="114", lang="vi", caller_number=caller) as call:
        timings = await play_turns(call, turns, greeting_timeout_s=30, reply_timeout_s=60)
        await call.hangup()
    assert timings, "the bot never greeted"


def recorded_call(service: RunningService, caller: str, wait_s: float = 60.0) -> str:
    """The id of this caller's call, once it has ended and its recording is stored."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        with sqlite3.connect(service.data_dir / "callbot.db") as db:
            row = db.execute(
                "select id from calls where caller_number = ? and ended_at is not null "
                "and recording is not null order by started_at desc limit 1",
                (caller,),
            ).fetchone()
        if row is not None:
            return str(row[0])
        time.sleep(0.5)
    raise AssertionError(f"no recorded call from {caller}:\n{service.log_tail()}")


def search_word(service: RunningService, call_id: str) -> str:
    """The longest word the caller said, preferring one with diacritics, folded."""
    with sqlite3.connect(service.data_dir / "callbot.db") as db:
        texts = [
            str(text)
            for (text,) in db.execute(
                "select text from turns where call_id = ? and speaker = 'caller' order by seq",
                (call_id,),
            )
        ]
    words = [w for text in texts for w in re.findall(r"\w+", text) if len(w) >= 3]
    words = [w for w in words if not w.isdigit()]
    assert words, f"the caller's words were not recognised: {texts}"
    words.sort(key=lambda w: (fold(w) != w.lower(), len(w)), reverse=True)
    return fold(words[0])


def test_supervisor_finds_hears_and_reads_a_call(service: RunningService, browser: Browser) -> None:
    caller = "09" + str(uuid.uuid4().int)[:8]
    # Playwright's sync API holds this thread's event loop: the call runs in another thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, place_call(service, caller)).result(timeout=240)
    call_id = recorded_call(service, caller)
    word = search_word(service, call_id)  # folded: typed without diacritics

    create_user(service.data_dir, "lan", "supervisor")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    problems: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error" and "Content Security Policy" in msg.text:
            problems.append(f"console: {msg.text}")

    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", on_console)
    try:
        log_in(page, service, "lan", "/review")

        # Find the call by a word of the transcript, typed without diacritics.
        page.fill("#q", word)
        page.press("#q", "Enter")
        row = page.locator(f'tr.call[data-id="{call_id}"]')
        expect(row).to_be_visible(timeout=10_000)
        match_cell = row.locator("td.match")
        if match_cell.inner_text().strip():
            expect(match_cell.locator("mark").first).to_be_visible()
        page.screenshot(path=str(service.data_dir / "review-list.png"), full_page=True)

        # Open it.
        row.locator("td.duration").click()
        expect(page).to_have_url(f"{service.base_url}/review/calls/{call_id}")
        turns = page.locator("#transcript .turn")
        expect(turns.nth(2)).to_be_visible(timeout=10_000)
        expect(page.locator("#facts")).to_contain_text("114")
        player = page.locator("#player")
        expect(player).to_have_attribute("src", re.compile(r".+"))
        page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=15_000)

        # Click the second turn: the player seeks to its start and plays.
        second = turns.nth(1)
        start_ms = second.get_attribute("data-start-ms")
        assert start_ms is not None, "the second turn has no start time"
        target_s = int(start_ms) / 1000
        second.locator(".turn-text").click()
        page.wait_for_function(
            "target => Math.abs(document.getElementById('player').currentTime - target) < 0.5",
            arg=target_s,
            timeout=5_000,
        )
        expect(second).to_have_class(re.compile(r"\bcurrent\b"))
        page.screenshot(path=str(service.data_dir / "review-call.png"), full_page=True)

        page.goto(f"{service.base_url}/review/dashboard")
        expect(page.locator("#calls-total")).not_to_have_text("—", timeout=10_000)
        expect(page.locator("#chart-hourly svg rect.bar").first).to_be_attached()
        page.screenshot(path=str(service.data_dir / "review-dashboard.png"), full_page=True)
    finally:
        context.close()
    assert not problems, problems

    # A dispatcher is not allowed: the API says 403 and the page says so.
    create_user(service.data_dir, "minh", "dispatcher")
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{service.base_url}/login?next=/dispatch")
        page.fill("#username", "minh")
        page.fill("#password", PASSWORD)
        page.click("#login-button")
        expect(page).to_have_url(f"{service.base_url}/dispatch")
        answer = page.request.get(f"{service.base_url}/api/v1/review/calls")
        assert answer.status == 403
        response = page.goto(f"{service.base_url}/review")
        assert response is not None
        if response.status != 403:
            expect(page.locator("#forbidden")).to_be_visible(timeout=10_000)
            expect(page.locator("#forbidden")).to_contain_text("Không được phép")
            expect(page.locator("tr.call")).to_have_count(0)
    finally:
        context.close()
