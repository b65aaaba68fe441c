"""The token bucket's arithmetic (paybridge.domain.ratelimit), with hypothesis properties for the bound it keeps."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paybridge.domain.ratelimit import Bucket, take

T0 = 1_700_000_000.0
SETTINGS = settings(max_examples=300, deadline=None)
EPSILON = 1e-6  # float rounding in the refill


def drain(bucket: Bucket | None, now: float, per_second: float, burst: int) -> tuple[Bucket | None, int]:
    """Take at `now` until refused; the last bucket and how many takes were granted."""
    granted = 0
    while True:
        after, wait = take(bucket, now, per_second, burst)
        if after is None:
            assert wait > 0
            return bucket, granted
        bucket, granted = after, granted + 1


def test_a_missing_bucket_starts_full() -> None:
    bucket, wait = take(None, T0, per_second=2, burst=50)

    assert bucket == Bucket(tokens=49.0, at=T0) and wait == 0.0


def test_burst_then_exactly_per_second() -> None:
    bucket, granted = drain(None, T0, per_second=2, burst=50)
    assert granted == 50

    for second in range(1, 11):  # steady state: exactly 2 per second
        bucket, granted = drain(bucket, T0 + second, per_second=2, burst=50)
        assert granted == 2


def test_wait_is_the_time_until_the_next_token() -> None:
    bucket, _ = drain(None, T0, per_second=4, burst=3)
    assert bucket is not None

    refused, wait = take(bucket, T0 + 0.1, per_second=4, burst=3)  # 0.4 tokens refilled: 0.6 missing

    assert refused is None
    assert wait == pytest.approx(0.15)
    assert take(bucket, T0 + 0.1 + wait, per_second=4, burst=3)[0] is not None


def test_refill_is_capped_at_burst() -> None:
    bucket, _ = drain(None, T0, per_second=2, burst=5)

    bucket, granted = drain(bucket, T0 + 3600, per_second=2, burst=5)

    assert granted == 5


def test_a_partial_bucket_refills_to_burst_not_beyond() -> None:
    bucket = Bucket(tokens=4.5, at=T0)

    after, _ = take(bucket, T0 + 10, per_second=1, burst=5)

    assert after == Bucket(tokens=4.0, at=T0 + 10)


def test_a_clock_going_backwards_creates_no_tokens() -> None:
    bucket, _ = drain(None, T0, per_second=2, burst=5)
    assert bucket is not None

    refused, wait = take(bucket, T0 - 100, per_second=2, burst=5)

    assert refused is None
    assert wait == pytest.approx(100.5)  # back to the stored instant, then half a second for one token
    assert take(bucket, T0 + 0.5, per_second=2, burst=5)[0] is not None


def test_a_clock_going_backwards_does_not_move_the_bucket_back() -> None:
    bucket = Bucket(tokens=3.0, at=T0)

    after, wait = take(bucket, T0 - 10, per_second=1, burst=5)

    assert after == Bucket(tokens=2.0, at=T0) and wait == 0.0  # the tokens it had; `at` stays


def test_a_bucket_that_never_refills_says_so() -> None:
    assert take(Bucket(tokens=0.0, at=T0), T0 + 10, per_second=0, burst=5) == (None, math.inf)


rates = st.floats(min_value=0.05, max_value=100, allow_nan=False, allow_infinity=False)
bursts = st.integers(min_value=1, max_value=60)
steps = st.lists(st.floats(min_value=0, max_value=5, allow_nan=False, allow_infinity=False), max_size=200)


@SETTINGS
@given(per_second=rates, burst=bursts, gaps=steps, tries=st.lists(st.integers(1, 4), min_size=200, max_size=200))
def test_granted_takes_never_exceed_burst_plus_the_rate(
    per_second: float, burst: int, gaps: list[float], tries: list[int]
) -> None:
    now = t0 = T0
    bucket: Bucket | None = None
    granted = 0
    for gap, attempts in zip([0.0, *gaps], tries, strict=False):
        now += gap
        for _ in range(attempts):
            after, wait = take(bucket, now, per_second, burst)
            if after is None:
                assert wait > 0
                continue
            bucket, granted = after, granted + 1
            assert granted <= burst + (now - t0) * per_second + EPSILON


@SETTINGS
@given(
    per_second=rates,
    burst=bursts,
    offsets=st.lists(st.floats(min_value=-50, max_value=50, allow_nan=False, allow_infinity=False), max_size=200),
)
def test_a_clock_jumping_around_never_beats_the_latest_time_seen(
    per_second: float, burst: int, offsets: list[float]
) -> None:
    bucket: Bucket | None = None
    granted = 0
    latest = T0
    for offset in [0.0, *offsets]:
        now = T0 + offset
        latest = max(latest, now)
        after, _ = take(bucket, now, per_second, burst)
        if after is not None:
            bucket, granted = after, granted + 1
        assert granted <= burst + (latest - T0) * per_second + EPSILON


@SETTINGS
@given(per_second=rates, burst=bursts, tokens=st.floats(0, 1, exclude_max=True), later=st.floats(0, 0.5))
def test_waiting_the_answered_time_is_enough(per_second: float, burst: int, tokens: float, later: float) -> None:
    bucket = Bucket(tokens=tokens, at=T0)

    now = T0 + later
    refused, wait = take(bucket, now, per_second, burst)

    if refused is None:
        assert take(bucket, now + wait + EPSILON, per_second, burst)[0] is not None  # a few ulps of epoch seconds
        if wait > 2 * EPSILON:
            assert take(bucket, now + wait - EPSILON, per_second, burst)[0] is None
