"""Prometheus metrics: calls in progress, turns, reply latency, ASR queue wait, errors,
queue, hand-offs.

One `Metrics` per service (its own registry, made in `create_app`), handed to
every call through `SessionServices`. Labels carry no personal data: the line,
the channel, the speaker, the failing component.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS_S = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0)
QUEUE_WAIT_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "callbot_calls", "Calls answered", ["line", "channel"], registry=self.registry
        )
        self.in_progress = Gauge(
            "callbot_calls_in_progress", "Calls in progress on this node", registry=self.registry
        )
        self.turns = Counter(
            "callbot_turns", "Utterances recorded", ["speaker"], registry=self.registry
        )
        self.reply_latency = Histogram(
            "callbot_reply_latency_seconds",
            "End of the caller's speech to the first audio of the reply",
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.asr_queue_wait = Histogram(
            "callbot_asr_queue_wait_seconds",
            "Time a speech-recognition job waited for a free worker",
            buckets=QUEUE_WAIT_BUCKETS_S,
            registry=self.registry,
        )
        self.errors = Counter(
            "callbot_errors", "Failures that sent a call to a human", ["component"],
            registry=self.registry,
        )
        self.handoffs = Counter(
            "callbot_handoffs", "Calls handed to a dispatcher", registry=self.registry
        )
        self.queue_depth = Gauge(
            "callbot_incidents_open", "Incidents not yet closed", ["status"],
            registry=self.registry,
        )

    def watch_calls(self, count: Callable[[], int]) -> None:
        self.in_progress.set_function(lambda: float(count()))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
