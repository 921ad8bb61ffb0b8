"""The speech recognisers' worker pool, which reports how long each job queued.

Every call's decoder work (viet-asr's streaming chunks, Whisper's utterances)
shares one pool sized to the cores. When more callers speak at once than
there are workers, jobs wait for a free one; that wait is part of every turn's
latency, and this pool measures it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_T = TypeVar("_T")


class MeasuredPool(ThreadPoolExecutor):
    """A thread pool that reports each job's wait for a worker, in seconds."""

    def __init__(self, workers: int, observe_wait_s: Callable[[float], None]) -> None:
        super().__init__(workers, thread_name_prefix="asr")
        self._observe_wait_s = observe_wait_s

    def submit(
        self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> Future[_T]:
        queued_at = time.perf_counter()

        def timed() -> _T:
            self._observe_wait_s(time.perf_counter() - queued_at)
            return fn(*args, **kwargs)

        return super().submit(timed)
