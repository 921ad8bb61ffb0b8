"""Turn numbers of calls in progress, handed out in the order they are asked for.

The store numbers a call's turns 1, 2, 3... without a database round trip per
turn: the next number of recent calls is kept in memory (bounded), seeded from
the database the first time a call is seen, and never below a number already
written explicitly (a replayed journal entry, say).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

CACHED_CALLS = 4096  # calls whose next turn number is kept in memory


@dataclass(slots=True)
class _Counter:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    next_seq: int | None = None  # None until seeded from the database
    floor: int = 1  # above every explicit seq seen, seeded or not


class TurnNumbers:
    def __init__(self, cached_calls: int = CACHED_CALLS) -> None:
        self._cached_calls = cached_calls
        self._counters: OrderedDict[str, _Counter] = OrderedDict()

    def note_new_call(self, call_id: str) -> None:
        """`call_id` is brand new: its turns start at 1."""
        counter = self._counter(call_id)
        if counter.next_seq is None:
            counter.next_seq = 1

    def note_written(self, call_id: str, seq: int) -> None:
        """Turn `seq` was written with its number given: never hand it out again."""
        counter = self._counter(call_id)
        counter.floor = max(counter.floor, seq + 1)

    async def allocate(self, call_id: str, highest_stored: Callable[[], Awaitable[int]]) -> int:
        """The call's next number; `highest_stored` seeds a call not seen yet."""
        counter = self._counter(call_id)
        async with counter.lock:  # FIFO: callers get numbers in the order they asked
            if counter.next_seq is None:
                counter.next_seq = await highest_stored() + 1
            return self._take(counter)

    async def allocate_known(self, call_id: str) -> int | None:
        """Like `allocate` without seeding: None if the call's numbering is not known."""
        counter = self._counter(call_id)
        async with counter.lock:
            return None if counter.next_seq is None else self._take(counter)

    @staticmethod
    def _take(counter: _Counter) -> int:
        seq = max(counter.next_seq or 1, counter.floor)
        counter.next_seq = seq + 1
        return seq

    def _counter(self, call_id: str) -> _Counter:
        counter = self._counters.get(call_id)
        if counter is None:
            counter = self._counters[call_id] = _Counter()
            while len(self._counters) > self._cached_calls:
                oldest_id, oldest = next(iter(self._counters.items()))
                if oldest.lock.locked():
                    break
                del self._counters[oldest_id]
        else:
            self._counters.move_to_end(call_id)
        return counter
