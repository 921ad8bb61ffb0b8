"""Prometheus metrics as an operator scrapes them: counts, latencies, the queue's depth."""

from __future__ import annotations

import asyncio
import time

import pytest

from callcenter.asr_pool import MeasuredPool
from callcenter.events import DialogTurn
from callcenter.metrics import Metrics
from dialog.base import DialogError
from tests.unit.test_incidents_api import Api, api, report
from tests.unit.test_session import executor, make_session, say, silence, tone, wait_for

__all__ = ["api", "executor"]

pytestmark = pytest.mark.unit


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if found is None else found


async def test_a_call_is_counted_turn_by_turn(executor) -> None:
    metrics = Metrics()
    session, output, _, _ = make_session(
        executor,
        texts=["a man with a knife", "still here"],
        replies=[
            DialogTurn(reply="help is coming", category="weapon_threat", priority=1, handoff=True),
            DialogError("rasa is down"),
        ],
        metrics=metrics,
    )
    task = asyncio.create_task(session.run())
    await wait_for(lambda: "greeting" in output.marks)
    await say(session, silence(0.3) + tone(1.0) + silence(0.6))
    await wait_for(lambda: "reply-1" in output.marks)
    await say(session, tone(1.0) + silence(0.6))
    await wait_for(lambda: "hold" in output.marks)
    session.hangup("caller hung up")
    await asyncio.wait_for(task, 5)

    assert value(metrics, "callbot_calls_total", line="114", channel="test") == 1
    assert value(metrics, "callbot_turns_total", speaker="caller") == 2
    assert value(metrics, "callbot_reply_latency_seconds_count") == 1
    assert value(metrics, "callbot_errors_total", component="dialog") == 1
    assert value(metrics, "callbot_handoffs_total") == 1  # asked once, counted once


async def test_metrics_endpoint_reports_the_queue_without_personal_data(api: Api) -> None:
    await report(api.store, "m1", priority=1)
    await report(api.store, "m2")
    await api.store.acknowledge_incident("inc-m2", "lan")
    answer = await api.client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert 'callbot_incidents_open{status="new"} 1.0' in text
    assert 'callbot_incidents_open{status="acknowledged"} 1.0' in text
    assert "callbot_calls_in_progress 0.0" in text
    assert "0912345678" not in text and "Hàng Bài" not in text


def test_the_asr_pool_reports_how_long_a_job_waited_for_a_worker() -> None:
    metrics = Metrics()
    waits: list[float] = []

    def observe(wait_s: float) -> None:
        waits.append(wait_s)
        metrics.asr_queue_wait.observe(wait_s)

    with MeasuredPool(1, observe) as pool:
        first, second = pool.submit(time.sleep, 0.2), pool.submit(lambda: "decoded")
        first.result(5)
        assert second.result(5) == "decoded"  # the job's own result comes back

    # With one worker, the second job waited for the first one's 0.2 s.
    assert len(waits) == 2 and waits[1] >= 0.19 and waits[0] < waits[1]
    assert value(metrics, "callbot_asr_queue_wait_seconds_count") == 2
    assert value(metrics, "callbot_asr_queue_wait_seconds_bucket", le="0.25") == 2
