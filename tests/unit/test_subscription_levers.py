"""Cancel, pause and resume a subscription (pure): idempotent, refused where they make no sense, and a resume after
the kept charge time charges now, a retry staying a retry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from paybridge.domain.errors import InvalidTransition
from paybridge.domain.subscriptions import Subscription, cancel, pause, resume

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def sub(**update: object) -> Subscription:
    base = Subscription(
        subscription_id="sub_x", tenant_id="acme", deal_id="D1", plan="pro", amount=99_000, started_at=T0
    )
    return base.model_copy(update={"state": "active", "next_charge_at": T0 + timedelta(days=30), **update})


def test_pause_keeps_the_next_charge_and_resume_goes_on_from_it() -> None:
    paused = pause(sub())
    assert paused.state == "paused" and paused.next_charge_at == T0 + timedelta(days=30)
    assert pause(paused) is paused  # again: nothing
    resumed = resume(paused, T0 + timedelta(days=3))
    assert resumed.state == "active" and resumed.next_charge_at == T0 + timedelta(days=30)
    assert resume(resumed, T0) is resumed


def test_a_resume_after_the_charge_time_charges_now_and_a_retry_stays_a_retry() -> None:
    late = T0 + timedelta(days=45)
    assert resume(pause(sub()), late).next_charge_at == late
    retrying = resume(pause(sub(state="past_due", failed_attempts=1)), T0)
    assert retrying.state == "past_due" and retrying.failed_attempts == 1


def test_cancel_is_final_and_what_cannot_be_paused_or_resumed_is_refused() -> None:
    cancelled = cancel(sub())
    assert cancelled.state == "cancelled" and cancelled.next_charge_at is None and cancel(cancelled) is cancelled
    for state in ("cancelled", "blocked", "awaiting_first_payment"):
        with pytest.raises(InvalidTransition):
            pause(sub(state=state))
    with pytest.raises(InvalidTransition):
        resume(cancelled, T0)
