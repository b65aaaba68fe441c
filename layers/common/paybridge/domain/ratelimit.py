"""A token bucket (a leaky bucket seen from the sender's side): pure arithmetic, the caller stores the bucket.

A bucket holds up to `burst` tokens and gains `per_second` tokens per second of elapsed time; each request takes
one. A bucket nobody has used yet (none stored) is full. Time only moves the bucket forward: a clock that goes
backwards (another host's clock, NTP steps) adds no tokens and does not move `at` back, so the same seconds are
never refilled twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Bucket:
    tokens: float
    at: float  # epoch seconds the `tokens` count is valid at


def refill(bucket: Bucket | None, now: float, per_second: float, burst: int) -> Bucket:
    """The bucket as of `now` (or of its own `at`, if `now` is earlier)."""
    if bucket is None:
        return Bucket(tokens=float(burst), at=now)
    if now <= bucket.at:
        return Bucket(tokens=min(float(burst), bucket.tokens), at=bucket.at)
    tokens = min(float(burst), bucket.tokens + (now - bucket.at) * max(per_second, 0.0))
    return Bucket(tokens=tokens, at=now)


def take(bucket: Bucket | None, now: float, per_second: float, burst: int) -> tuple[Bucket | None, float]:
    """Take one token: `(bucket after the take, 0.0)`, or `(None, seconds until a token is there)` when the bucket
    is empty (`inf` if it never refills)."""
    current = refill(bucket, now, per_second, burst)
    if current.tokens >= 1.0:
        return Bucket(tokens=current.tokens - 1.0, at=current.at), 0.0
    if per_second <= 0 or burst < 1:
        return None, math.inf
    # The refill starts at `current.at`, which is later than `now` when the clock went backwards.
    return None, (current.at - now) + (1.0 - current.tokens) / per_second
