"""Faults in the middle of a call, on the real service: whatever dies, the caller
hears the hold prompt (or goes on being served), the call and its incident are
kept once, and the service recovers without a manual step.

Each test starts its own service, since it breaks it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.corpus import espeak_pcm, phone_band
from callcenter.media_client import MediaStreamCall
from tests.e2e.conftest import RunningService, start_service, stop_service

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FIRE = "There is a fire in my kitchen and the smoke is everywhere"
ADDRESS = "Number eighteen Hang Bai street"


def children(pid: int) -> dict[int, str]:
    """Child processes of `pid` with their command lines (from /proc)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == pid:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found[int(entry.name)] = command
        except (OSError, ValueError, IndexError):
            continue
    return found


def child_pid(service: RunningService, *words: str, without: str | None = None) -> int:
    for pid, command in children(service.process.pid).items():
        if all(word in command for word in words) and (without is None or without not in command):
            return pid
    raise AssertionError(f"no child process with {words}: {children(service.process.pid)}")


def rows(service: RunningService, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(service.data_dir / "callbot.db") as db:
        return list(db.execute(sql, args))


def wait_until(probe, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def healthy(service: RunningService) -> bool:
    try:
        return httpx.get(f"{service.base_url}/health", timeout=2).json()["status"] == "ok"
    except (httpx.HTTPError, ValueError):
        return False


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[RunningService]:
    running = start_service(tmp_path / "node", CALLBOT_NODE_NAME="node-under-test")
    try:
        yield running
    finally:
        for pid in children(running.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        stop_service(running)


async def first_turn(call: MediaStreamCall) -> None:
    await call.wait_for_mark("greeting", timeout_s=20)
    await call.speak(phone_band(espeak_pcm(FIRE)))
    await call.wait_for_mark("reply-1", timeout_s=30)


def the_call(service: RunningService, caller: str) -> tuple[str, str, str | None, str]:
    found = rows(
        service,
        "select id, status, handoff_reason, coalesce(end_reason, '') from calls "
        "where caller_number = ?",
        caller,
    )
    assert len(found) == 1, found
    return found[0]  # type: ignore[return-value]


async def test_rasa_killed_mid_call_the_caller_holds_and_the_dialog_comes_back(
    fresh: RunningService,
) -> None:
    caller = "0911000001"
    async with MediaStreamCall(fresh.ws_url, line="114", lang="en", caller_number=caller) as call:
        await first_turn(call)
        os.kill(child_pid(fresh, "rasa", "run", without="rasa_sdk"), signal.SIGKILL)
        await call.speak(phone_band(espeak_pcm(ADDRESS)))
        await call.wait_for_mark("hold", timeout_s=20)
    call_id, status, reason, _ = wait_until(
        lambda: (c := the_call(fresh, caller))[1] != "in_progress" and c, 15, "the call's end"
    )
    assert status == "handed_off" and "dialog" in (reason or "")
    incidents = rows(fresh, "select category from incidents where call_id = ?", call_id)
    assert incidents == [("fire",)]  # what was gathered before Rasa died, once
    # Rasa is restarted by the service: new calls are served by the dialog again
    wait_until(lambda: healthy(fresh), 90, "the dialog to come back")
    async with MediaStreamCall(
        fresh.ws_url, line="114", lang="en", caller_number="0911000002"
    ) as call:
        await first_turn(call)


async def test_action_server_killed_mid_call_no_call_is_lost(fresh: RunningService) -> None:
    caller = "0911000003"
    async with MediaStreamCall(fresh.ws_url, line="114", lang="en", caller_number=caller) as call:
        await first_turn(call)
        os.kill(child_pid(fresh, "rasa_sdk"), signal.SIGKILL)
        heard_at = await call.speak(phone_band(espeak_pcm(ADDRESS)))
        # the caller is not left in silence: the bot answers or asks them to hold
        await call.wait_for_media(heard_at, timeout_s=20)
    call_id, _, _, _ = wait_until(
        lambda: (c := the_call(fresh, caller))[1] != "in_progress" and c, 15, "the call's end"
    )
    assert rows(fresh, "select count(*) from incidents where call_id = ?", call_id) == [(1,)]
    wait_until(lambda: healthy(fresh), 90, "the action server to come back")
    async with MediaStreamCall(
        fresh.ws_url, line="114", lang="en", caller_number="0911000004"
    ) as call:
        await first_turn(call)


async def test_sigterm_hands_calls_in_progress_to_a_human(fresh: RunningService) -> None:
    caller = "0911000005"
    async with MediaStreamCall(fresh.ws_url, line="114", lang="en", caller_number=caller) as call:
        await first_turn(call)
        fresh.process.send_signal(signal.SIGTERM)
        await call.wait_for_mark("hold", timeout_s=15)  # the caller hears it before the end
        assert await call.wait_closed(timeout_s=20) is not None
    # uvicorn re-raises the signal once it has shut down cleanly
    assert fresh.process.wait(timeout=30) in (0, -signal.SIGTERM)
    call_id, status, reason, _ = the_call(fresh, caller)
    assert status == "handed_off" and "shut down" in (reason or "")
    assert rows(fresh, "select count(*) from incidents where call_id = ?", call_id) == [(1,)]


async def test_sigkill_mid_call_then_restart_hands_the_call_over(fresh: RunningService) -> None:
    caller = "0911000006"
    async with MediaStreamCall(fresh.ws_url, line="114", lang="en", caller_number=caller) as call:
        await first_turn(call)
        orphans = children(fresh.process.pid)
        fresh.process.kill()  # no goodbye, no clean-up
        fresh.process.wait(timeout=10)
    for pid in orphans:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    call_id, status, _, _ = the_call(fresh, caller)
    assert status == "in_progress"  # what the dead process left behind
    turns = rows(fresh, "select speaker from turns where call_id = ? order by seq", call_id)
    assert ("caller",) in turns  # the caller's words were already stored

    again = start_service(fresh.data_dir, CALLBOT_NODE_NAME="node-under-test")
    try:
        _, status, reason, _ = wait_until(
            lambda: (c := the_call(again, caller))[1] != "in_progress" and c, 30, "the hand-over"
        )
        assert status == "handed_off" and "restarted" in (reason or "")
        assert rows(again, "select count(*) from incidents where call_id = ?", call_id) == [(1,)]
        async with MediaStreamCall(
            again.ws_url, line="114", lang="en", caller_number="0911000007"
        ) as call:
            await call.wait_for_mark("greeting", timeout_s=20)
    finally:
        for pid in children(again.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        stop_service(again)
