"""Beyond the node's capacity, callers hear "all lines busy, stay on the line" at once
and wait in order for a free line: never refused, never left in silence."""

from __future__ import annotations

import asyncio
import time

import pytest

from callcenter.events import DialogTurn
from tests.unit.test_session import executor, make_session, say, silence, tone, wait_for

__all__ = ["executor"]

pytestmark = pytest.mark.unit


def reply() -> list[DialogTurn | Exception]:
    return [DialogTurn(reply="where are you", category="fire")]


async def test_a_caller_beyond_capacity_waits_with_a_prompt_then_is_answered(executor) -> None:
    lines = asyncio.Semaphore(1)
    first, first_out, _, _ = make_session(executor, texts=["fire"], replies=reply(), lines=lines)
    second, second_out, _, second_store = make_session(
        executor,
        texts=["fire"],
        replies=reply(),
        lines=lines,
        busy_prompt_every_s=1.0,
        silence_reprompt_s=1.0,
    )
    first_task = asyncio.create_task(first.run())
    await wait_for(lambda: "greeting" in first_out.marks)

    opened = time.monotonic()
    second_task = asyncio.create_task(second.run())
    await wait_for(lambda: second_out.frames > 0, 1.0)  # the busy prompt, within 1 s
    assert time.monotonic() - opened < 1.0
    await say(second, tone(0.5) + silence(2.5), realtime=True)  # the caller waits, talking
    assert second_out.marks.count("busy") >= 2  # repeated while waiting
    assert "greeting" not in second_out.marks and "reprompt-1" not in second_out.marks

    first.hangup("caller hung up")
    await asyncio.wait_for(first_task, 5)
    await wait_for(lambda: "greeting" in second_out.marks, 3.0)  # a line came free
    await say(second, silence(0.3) + tone(1.0) + silence(0.6))
    await wait_for(lambda: "reply-1" in second_out.marks)
    second.hangup("caller hung up")
    outcome = await asyncio.wait_for(second_task, 5)
    assert outcome.status == "completed"
    assert [t.speaker for t in second_store.turns][-3:] == ["bot", "caller", "bot"]
    assert not lines.locked()  # every line given back


async def test_a_caller_who_hangs_up_while_waiting_is_called_back(executor) -> None:
    lines = asyncio.Semaphore(1)
    first, first_out, _, _ = make_session(executor, texts=[], replies=reply(), lines=lines)
    second, second_out, _, store = make_session(executor, texts=[], replies=reply(), lines=lines)
    first_task = asyncio.create_task(first.run())
    await wait_for(lambda: "greeting" in first_out.marks)
    second_task = asyncio.create_task(second.run())
    await wait_for(lambda: "busy" in second_out.marks or second_out.frames > 0)
    second.hangup("caller hung up")
    outcome = await asyncio.wait_for(second_task, 5)
    assert outcome.status == "handed_off" and "call back" in (outcome.handoff_reason or "")
    assert store.ended and store.ended[0][0] == "handed_off"  # recorded for a call-back
    first.hangup("caller hung up")
    await asyncio.wait_for(first_task, 5)
    assert not lines.locked()
