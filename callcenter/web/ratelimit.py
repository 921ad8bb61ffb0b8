"""Rate limits for the public entry points: token buckets kept in this process.

A bucket per key (a client address, a caller number) refills at `per_minute`
and holds at most `burst`. Keys not seen for a while are forgotten, and at
most `max_keys` are kept (the oldest go first), so a flood of distinct keys
cannot exhaust memory. Limits are per node: with N nodes behind a balancer a
client may get up to N times the rate, which is still bounded.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request, status


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(
        self,
        per_minute: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("need per_minute > 0 and burst >= 1")
        self._rate_per_s = per_minute / 60
        self._burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str) -> float:
        """Spend one token for `key`: 0 if allowed, else the seconds until it would be."""
        now = self._clock()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(tokens=float(self._burst), at=now)
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._rate_per_s)
        bucket.at = now
        self._buckets[key] = bucket  # most recent last
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1 - 1e-9:  # float slack: a client that waited as told gets in
            bucket.tokens = max(0.0, bucket.tokens - 1)
            return 0.0
        return (1 - bucket.tokens) / self._rate_per_s

    def check(self, key: str, what: str) -> None:
        """Raise 429 with Retry-After when `key` is over its limit."""
        wait_s = self.take(key)
        if wait_s > 0:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"too many {what}; try again in {math.ceil(wait_s)} s",
                headers={"Retry-After": str(math.ceil(wait_s))},
            )


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
