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
    cancelled = cancel(sub(), T0 + timedelta(days=3))
    assert cancelled.state == "cancelled" and cancelled.next_charge_at is None
    assert cancelled.closed_at == T0 + timedelta(days=3) and cancel(cancelled, T0 + timedelta(days=4)) is cancelled
    for state in ("cancelled", "blocked", "awaiting_first_payment"):
        with pytest.raises(InvalidTransition):
            pause(sub(state=state))
    with pytest.raises(InvalidTransition):
        resume(cancelled, T0)


def test_erasing_a_closed_subscriptions_customer_keeps_its_money_and_an_open_one_refuses() -> None:
    from paybridge.domain.invoice import Customer
    from paybridge.domain.subscriptions import erase_customer

    anna = Customer(name="Анна", email="anna@example.com", phone="+79161234567", inn="771234567890")
    closed = cancel(sub(customer=anna), T0)
    erased = erase_customer(closed, T0 + timedelta(days=31))
    assert erased.customer == Customer() and erased.customer_erased_at == T0 + timedelta(days=31)
    assert (erased.plan, erased.amount, erased.state, erased.version) == (
        "pro",
        99_000,
        "cancelled",
        closed.version + 1,
    )
    assert erase_customer(erased, T0 + timedelta(days=32)) is erased
    for open_state in ("active", "past_due", "paused", "awaiting_first_payment"):
        with pytest.raises(InvalidTransition):
            erase_customer(sub(customer=anna, state=open_state), T0)
