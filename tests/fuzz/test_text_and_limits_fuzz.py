"""Hostile search text (`dispatch.text`) and abusive request patterns (`RateLimiter`).

A supervisor's search box takes any text: folding must be stable (the stored
folded transcript and the folded query meet), and the LIKE pattern must take
`%`, `_` and the escape character literally, checked against SQLite's own LIKE.
The rate limiter faces any sequence of keys and times: it must never answer
with a negative wait, never tell a client a Retry-After that is not honoured,
and never keep more keys than its bound.
"""

from __future__ import annotations

import math
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.web.ratelimit import RateLimiter
from dispatch.text import fold, like_pattern
from tests.fuzz.budget import fuzz_settings

pytestmark = [pytest.mark.unit, pytest.mark.timeout(120)]

# Vietnamese with and without diacritics, SQL and LIKE metacharacters, and anything else
search_text = st.text(
    alphabet=st.sampled_from(
        [
            *"aăâbcdđeêghiklmnoôơpqrstuưvxyAĂÂĐÊÔƠƯ%_\\'\"; -*?[]^$.",
            *["á", "à", "ả", "ã", "ạ", "ế", "ề", "ể", "ễ", "ệ", "ố", "ờ", "ữ", "Đ", "\u0301"],
        ]
    ),
    max_size=30,
) | st.text(max_size=30)


@fuzz_settings(500)
@given(search_text)
def test_folding_is_stable(text: str) -> None:
    once = fold(text)
    assert fold(once) == once
    assert once.lower() == once
    assert "đ" not in once


def _unescape(pattern: str, escape: str) -> str:
    """The literal text a `%...%` LIKE pattern matches; fails on any bare wildcard."""
    assert pattern.startswith("%") and pattern.endswith("%") and len(pattern) >= 2
    inner, literal, i = pattern[1:-1], [], 0
    while i < len(inner):
        char = inner[i]
        if char == escape:
            assert i + 1 < len(inner), "a dangling escape character"
            literal.append(inner[i + 1])
            i += 2
            continue
        assert char not in "%_", f"an unescaped {char!r} from the query at {i}"
        literal.append(char)
        i += 1
    return "".join(literal)


@fuzz_settings(500)
@given(search_text, st.sampled_from(["\\", "!", "#", "^"]))
def test_a_search_pattern_takes_every_wildcard_literally(query: str, escape: str) -> None:
    pattern = like_pattern(query, escape)
    assert _unescape(pattern, escape) == fold(query)


# SQLite takes neither NUL nor lone surrogates in bound text
sqlite_text = search_text.map(lambda t: t.replace("\x00", "")) | st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30
)


@fuzz_settings(400)
@given(sqlite_text, sqlite_text)
def test_sqlite_like_finds_exactly_the_folded_substring(query: str, haystack: str) -> None:
    pattern = like_pattern(query)
    with sqlite3.connect(":memory:") as db:
        for text in (fold(haystack), fold(haystack + query)):  # the second holds the query
            (found,) = db.execute("SELECT ? LIKE ? ESCAPE '\\'", (text, pattern)).fetchone()
            assert bool(found) == (fold(query) in text), (text, pattern)


# -- the rate limiter ----------------------------------------------------------------




class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1_000.0

    def __call__(self) -> float:
        return self.now_s


steps = st.lists(
    st.tuples(
        st.integers(0, 30).map(lambda n: f"10.0.0.{n}"),  # a few clients, repeating
        st.floats(0, 120, allow_nan=False) | st.just(0.0),  # seconds since the last request
    ),
    max_size=80,
)


@fuzz_settings(300)
@given(
    st.floats(0.01, 10_000, allow_nan=False),
    st.integers(1, 50),
    st.integers(1, 20),
    steps,
)
def test_waits_are_never_negative_and_memory_is_bounded(
    per_minute: float, burst: int, max_keys: int, requests: list[tuple[str, float]]
) -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute, burst, max_keys=max_keys, clock=clock)
    one_token_s = 60 / per_minute
    for key, gap_s in requests:
        clock.now_s += gap_s
        wait_s = limiter.take(key)
        assert 0 <= wait_s <= one_token_s * (1 + 1e-9)
        assert not math.isnan(wait_s)
        assert len(limiter._buckets) <= max_keys  # bounded memory, whatever the keys


@fuzz_settings(300)
@given(st.floats(0.01, 10_000, allow_nan=False), st.integers(1, 20), st.integers(1, 60), st.data())
def test_retry_after_is_honoured(
    per_minute: float, burst: int, attempts: int, data: st.DataObject
) -> None:
    """A client that waits the whole seconds it was told gets through."""
    clock = FakeClock()
    limiter = RateLimiter(per_minute, burst, clock=clock)
    allowed = 0
    for _ in range(attempts):
        wait_s = limiter.take("client")
        if wait_s == 0:
            allowed += 1
            continue
        clock.now_s += math.ceil(wait_s)  # what Retry-After says
        again_s = limiter.take("client")
        # float rounding once left the bucket a hair short of a token (fixed)
        assert again_s == 0, f"refused again after Retry-After {math.ceil(wait_s)}"
        clock.now_s += data.draw(st.floats(0, 5), label="pause")
    assert allowed <= attempts


@fuzz_settings(200)
@given(st.floats(0.01, 10_000, allow_nan=False), st.integers(1, 50), st.integers(1, 200))
def test_a_burst_is_allowed_and_no_more(per_minute: float, burst: int, attempts: int) -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute, burst, clock=clock)
    allowed = sum(limiter.take("client") == 0 for _ in range(attempts))  # all at one instant
    assert allowed == min(attempts, burst)


@fuzz_settings(200)
@given(st.integers(1, 5), st.lists(st.text(max_size=20), min_size=1, max_size=200))
def test_a_flood_of_distinct_keys_keeps_at_most_max_keys(max_keys: int, keys: list[str]) -> None:
    limiter = RateLimiter(60, 1, max_keys=max_keys, clock=FakeClock())
    for key in keys:
        assert limiter.take(key) >= 0
    assert len(limiter._buckets) == min(max_keys, len(set(keys)))


# -- bugs found by this suite, fixed; kept as regression tests ------------------------


def test_a_client_that_waits_the_retry_after_gets_through() -> None:
    clock = FakeClock()
    clock.now_s = 1022.198  # a monotonic clock reading where the rounding shows
    limiter = RateLimiter(30, 1, clock=clock)  # the login limit's rate
    assert limiter.take("10.0.0.7") == 0
    wait_s = limiter.take("10.0.0.7")
    assert wait_s == 2.0
    clock.now_s += math.ceil(wait_s)
    assert limiter.take("10.0.0.7") == 0
