"""When to ask a provider about an invoice whose money has not been notified: a backoff after the link is published
(10 min, 1 h, 6 h, 24 h, then daily) and once more just before the deadline (the expiry itself asks at it)."""

from __future__ import annotations

from datetime import datetime, timedelta

#: After the link is published; then once a day while the link lives.
AFTER_PUBLISH = (timedelta(minutes=10), timedelta(hours=1), timedelta(hours=6), timedelta(hours=24))
DAILY = timedelta(hours=24)
#: The last look before the deadline.
BEFORE_EXPIRY = timedelta(minutes=5)


def recheck_times(published_at: datetime, expires_at: datetime) -> list[datetime]:
    """Every time the sweep asks, in order; none at or after the deadline."""
    times = [published_at + offset for offset in AFTER_PUBLISH]
    while times[-1] + DAILY < expires_at:
        times.append(times[-1] + DAILY)
    last = expires_at - BEFORE_EXPIRY
    times = [t for t in times if t < last]
    if last > published_at:
        times.append(last)
    return times


def next_recheck(published_at: datetime, expires_at: datetime, step: int) -> datetime | None:
    """The time of check number `step` (0-based); None when there is no such check."""
    times = recheck_times(published_at, expires_at)
    return times[step] if step < len(times) else None
