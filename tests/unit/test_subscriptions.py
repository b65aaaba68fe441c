"""Recurring payments' rules (paybridge.domain.subscriptions): periods, dunning, blocking, MRR."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from paybridge.domain.subscriptions import (
    Subscription,
    add_period,
    charge_failed,
    charged,
    first_paid,
    subscription_id_for,
)

T0 = datetime(2026, 1, 31, 9, 0, tzinfo=UTC)


def sub(**changes: object) -> Subscription:
    base = Subscription(
        subscription_id=subscription_id_for("t", "d", "pro"),
        tenant_id="t",
        deal_id="d",
        plan="pro",
        amount=99_000,
        started_at=T0,
    )
    return base.model_copy(update=changes)


def test_periods_keep_the_day_and_clamp_to_the_month_end() -> None:
    assert add_period(T0, "month") == datetime(2026, 2, 28, 9, 0, tzinfo=UTC)
    assert add_period(T0, "month", 2) == datetime(2026, 3, 31, 9, 0, tzinfo=UTC)
    assert add_period(datetime(2027, 11, 30, tzinfo=UTC), "month", 3) == datetime(2028, 2, 29, tzinfo=UTC)
    assert add_period(T0, "week") == T0 + timedelta(days=7)
    assert add_period(T0, "year") == datetime(2027, 1, 31, 9, 0, tzinfo=UTC)


def test_the_first_payment_with_a_saved_method_activates_charges_from_the_next_period() -> None:
    active = first_paid(sub(), "sm_1")
    assert (active.state, active.method, active.period_index) == ("active", "sm_1", 2)
    assert active.next_charge_at == datetime(2026, 2, 28, 9, 0, tzinfo=UTC)
    assert first_paid(active, "sm_2") == active  # only once
    assert first_paid(sub(), None).state == "past_due"  # the PSP saved nothing: no charges possible


def test_each_period_is_counted_from_the_start_not_from_the_last_charge() -> None:
    second = charged(first_paid(sub(), "sm_1"))
    assert second.period_index == 3 and second.next_charge_at == datetime(2026, 3, 31, 9, 0, tzinfo=UTC)


def test_dunning_retries_then_blocks_after_the_last_retry() -> None:
    now = datetime(2026, 2, 28, 9, 1, tzinfo=UTC)
    state = first_paid(sub(), "sm_1")
    seen = []
    for _ in range(4):
        state = charge_failed(state, now, (24, 72, 168))
        seen.append((state.state, state.next_charge_at - now if state.next_charge_at else None))
    assert seen == [
        ("past_due", timedelta(hours=24)),
        ("past_due", timedelta(hours=72)),
        ("past_due", timedelta(hours=168)),
        ("blocked", None),
    ]
    assert charged(charge_failed(first_paid(sub(), "sm_1"), now)).failed_attempts == 0


def test_mrr_normalises_periods_to_a_month() -> None:
    assert sub(period="month").monthly_amount == 99_000
    assert round(sub(period="year", amount=1_200_000).monthly_amount) == 100_000
    assert round(sub(period="week", amount=12_000).monthly_amount) == 52_000
