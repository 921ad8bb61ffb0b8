"""Calls over WebRTC from a real browser (Debian's Chromium, driven by Playwright).

Chromium's fake microphone plays a WAV file in a loop: a caller's turn, then
silence. A caller opens `/phone` and calls 114; the bot greets them and the
caller's words reach the transcript. In the second test a dispatcher, logged
in on `/dispatch`, takes over a live call from the console: the bot falls
silent and audio flows both ways between the dispatcher and the caller.
"""

from __future__ import annotations

import json
import sqlite3
import time
import unicodedata
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from bench.corpus import espeak_pcm, read_wav_16k, silence_pcm, vieneu_clips
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, create_user
from tests.e2e.conftest import RunningService
from tests.e2e.test_dispatch_console import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

from playwright.sync_api import Browser, BrowserType, Page, expect, sync_playwright  # noqa: E402

_T = TypeVar("_T")

# Every RTCPeerConnection the page makes, for the test to read its stats.
TRACK_PEERS = """
(() => {
  const Original = window.RTCPeerConnection;
  window.__peers = [];
  window.RTCPeerConnection = class extends Original {
    constructor(...args) { super(...args); window.__peers.push(this); }
  };
})();
"""

# Loudness (RMS of samples in -1..1) of the audio an <audio> element plays: the
# loudest 50 ms seen within `ms`, returned as soon as one reaches HEARD.
HEARD = 0.01
REMOTE_LEVEL = """
async ([selector, ms, enough]) => {
  const element = document.querySelector(selector);
  if (!element || !element.srcObject) return -1;
  const context = new AudioContext();
  await context.resume();
  const analyser = context.createAnalyser();
  analyser.fftSize = 2048;
  context.createMediaStreamSource(element.srcObject).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  let loudest = 0;
  const until = performance.now() + ms;
  while (performance.now() < until && loudest < enough) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    loudest = Math.max(loudest, Math.sqrt(sum / samples.length));
  }
  await context.close();
  return loudest;
}
"""

# Audio bytes the page's connections have received, from getStats().
AUDIO_BYTES_RECEIVED = """
async () => {
  let total = 0;
  for (const pc of window.__peers || []) {
    if (pc.connectionState === "closed") continue;
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") total += s.bytesReceived;
    });
  }
  return total;
}
"""


def write_wav(path: Path, pcm16k: bytes) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(pcm16k)
    return path


def words(text: str) -> set[str]:
    folded = unicodedata.normalize("NFC", text).lower()
    return {w.strip(".,;:!?\"'") for w in folded.split()} - {""}


def wait_until(what: str, probe: Callable[[], _T | None], timeout_s: float) -> _T:
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def rows(service: RunningService, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(service.data_dir / "callbot.db") as db:
        return list(db.execute(sql, args))


def turns(service: RunningService, call_id: str) -> list[tuple[str, str]]:
    found = rows(
        service,
        "select t.speaker, t.text from turns t join calls c on c.id = t.call_id "
        "where c.id = ? and c.channel = 'webrtc' order by t.seq",
        call_id,
    )
    return [(str(speaker), str(text)) for speaker, text in found]


@pytest.fixture(scope="module")
def caller_audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The fake microphone's loops: a Vietnamese caller (a real recording) and an
    English one reporting a fire (espeak-ng), each followed by 5 s of silence."""
    folder = tmp_path_factory.mktemp("caller-audio")
    clips = {path.stem.split(" ")[0]: (path, text) for path, text in vieneu_clips()}
    if "Tuyên" not in clips:
        pytest.skip("the vieneu test clips are missing (var/test-audio/vieneu)")
    path, text = clips["Tuyên"]
    (folder / "vi.txt").write_text(text, encoding="utf-8")
    return {
        "vi": write_wav(folder / "vi.wav", read_wav_16k(path) + silence_pcm(5000)),
        "en": write_wav(
            folder / "en.wav",
            espeak_pcm("There is a fire in my kitchen and the smoke is everywhere")
            + silence_pcm(5000),
        ),
    }


def launch(chromium: BrowserType, wav: Path) -> Browser:
    return chromium.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}",
        ],
    )


@pytest.fixture
def chromium_with(caller_audio: dict[str, Path]) -> Iterator[Callable[[str], Browser]]:
    """Starts Chromium whose microphone plays `caller_audio[lang]`."""
    launched: list[Browser] = []
    with sync_playwright() as playwright:

        def start(lang: str) -> Browser:
            browser = launch(playwright.chromium, caller_audio[lang])
            launched.append(browser)
            return browser

        try:
            yield start
        finally:
            for browser in launched:
                browser.close()


def place_call(page: Page, service: RunningService, line: str, lang: str) -> tuple[str, int]:
    """Call from /phone; (call id, ms from the press to a connected call)."""
    page.add_init_script(TRACK_PEERS)
    page.goto(f"{service.base_url}/phone")
    page.select_option("#line", line)
    page.select_option("#lang", lang)
    page.click("#call-button")
    status = page.locator("#status")
    expect(status).to_have_attribute("data-state", "connected", timeout=15_000)
    page.screenshot(path=str(service.data_dir / f"phone-{lang}.png"))
    call_id = page.locator("body").get_attribute("data-call-id")
    connect_ms = status.get_attribute("data-connect-ms")
    assert call_id and call_id.startswith("webrtc-") and connect_ms is not None
    return call_id, int(connect_ms)


def test_a_caller_on_the_phone_page_is_greeted_and_heard(
    service: RunningService, chromium_with: Callable[[str], Browser], caller_audio: dict[str, Path]
) -> None:
    browser = chromium_with("vi")
    page = browser.new_context().new_page()
    call_id, connect_ms = place_call(page, service, "114", "vi")
    print(f"\nWebRTC call connected {connect_ms} ms after pressing Call")
    assert connect_ms < 5000

    # The caller hears the bot through the <audio> element: the greeting, or, when
    # the caller talks over it (barge-in silences the bot), the reply to their turn.
    level = page.evaluate(REMOTE_LEVEL, ["#remote", 20_000, HEARD])
    assert level >= HEARD, f"the caller heard nothing from the bot (level {level})"

    expected = words((caller_audio["vi"].parent / "vi.txt").read_text(encoding="utf-8"))

    def caller_words_heard() -> list[tuple[str, str]] | None:
        said = turns(service, call_id)
        heard = set().union(*(words(text) for who, text in said if who == "caller"))
        return said if len(heard & expected) >= 3 else None

    said = wait_until(f"the caller's words in call {call_id}", caller_words_heard, 60)
    assert said[0][0] == "bot"  # the greeting comes first
    caller_text = " ".join(text for who, text in said if who == "caller")
    print(f"caller heard as: {caller_text!r}; expected words {sorted(expected)}")

    page.click("#hangup-button")
    expect(page.locator("#status")).to_have_attribute("data-state", "ended")

    def ended() -> tuple[object, ...] | None:
        found = rows(service, "select status, end_reason from calls where id = ?", call_id)
        return found[0] if found and found[0][1] else None

    status, reason = wait_until("the call record to close", ended, 15)
    assert reason == "caller hung up"
    assert status in ("completed", "handed_off")


def test_a_dispatcher_takes_over_a_live_call(
    service: RunningService, chromium_with: Callable[[str], Browser]
) -> None:
    browser = chromium_with("en")
    caller = browser.new_context().new_page()
    call_id, _ = place_call(caller, service, "114", "en")
    incident_id = f"inc-{call_id}"
    # The bot understood the caller: the incident exists, and the call is live.
    wait_until(
        f"incident {incident_id}",
        lambda: rows(service, "select id from incidents where id = ?", incident_id),
        60,
    )

    create_user(service.data_dir, "tuan", "dispatcher")
    dispatcher = browser.new_context().new_page()
    dispatcher.add_init_script(TRACK_PEERS)
    log_in(dispatcher, service, "tuan")
    row = dispatcher.locator(f'tr.incident[data-id="{incident_id}"]')
    expect(row).to_be_visible(timeout=10_000)
    row.click()
    button = dispatcher.locator("#act-takeover")
    expect(button).to_be_enabled(timeout=10_000)
    pressed_at = time.monotonic()
    dispatcher.keyboard.press("t")
    expect(dispatcher.locator("body")).to_have_attribute(
        "data-takeover", "connected", timeout=15_000
    )
    bridged_ms = (time.monotonic() - pressed_at) * 1000
    print(f"\ndispatcher connected to the caller {bridged_ms:.0f} ms after pressing T")
    expect(dispatcher.locator("#takeover-text")).to_have_text("Bạn đang nói chuyện với người gọi")
    dispatcher.screenshot(path=str(service.data_dir / "takeover.png"), full_page=True)

    def taken_over_by() -> str | None:
        found = rows(service, "select details from incidents where id = ?", incident_id)
        return json.loads(str(found[0][0])).get("taken_over_by") if found else None

    assert wait_until("taken_over_by in the incident", taken_over_by, 15) == "tuan"

    # The caller's voice reaches the dispatcher's speaker ...
    has_live_track = dispatcher.evaluate(
        "() => { const s = document.querySelector('#takeover-audio').srcObject;"
        " return !!s && s.getAudioTracks().some((t) => t.readyState === 'live'); }"
    )
    assert has_live_track
    first = dispatcher.evaluate(AUDIO_BYTES_RECEIVED)
    level_at_dispatcher = dispatcher.evaluate(REMOTE_LEVEL, ["#takeover-audio", 12_000, HEARD])
    assert dispatcher.evaluate(AUDIO_BYTES_RECEIVED) > first > 0
    assert level_at_dispatcher >= HEARD, f"the dispatcher heard nothing ({level_at_dispatcher})"
    # ... and the dispatcher's (the same fake microphone's) reaches the caller.
    level_at_caller = caller.evaluate(REMOTE_LEVEL, ["#remote", 12_000, HEARD])
    assert level_at_caller >= HEARD, f"the caller heard nothing ({level_at_caller})"

    # Ending the take-over ends the dispatcher's audio, not the caller's call.
    dispatcher.click("#takeover-end")
    expect(dispatcher.locator("#takeover-bar")).to_be_hidden()
    expect(dispatcher.locator("#action-result")).to_contain_text(incident_id)
    time.sleep(1.0)
    expect(caller.locator("#status")).to_have_attribute("data-state", "connected")
    assert rows(service, "select status from calls where id = ?", call_id) == [("in_progress",)]
    reads = rows(service, "select actor, action, subject from access_log where actor = 'tuan'")
    assert ("tuan", "take_over_call", f"call:{call_id}") in reads

    caller.click("#hangup-button")
    wait_until(
        "the call record to close",
        lambda: rows(service, "select 1 from calls where id = ? and ended_at is not null", call_id),
        15,
    )
