"""Staged payments (paybridge.domain.staged): parts that always add up, and the deal's stage for the whole."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paybridge.domain.errors import ScheduleError
from paybridge.domain.invoice import InvoiceState
from paybridge.domain.staged import StageSpec, deal_stage_kind, parts, split_amounts


def pct(*values: int) -> list[StageSpec]:
    return [StageSpec(name=f"p{v}", percent=v) for v in values]


def test_percents_round_down_and_the_last_stage_takes_the_rest() -> None:
    assert split_amounts(100_001, pct(30, 70)) == [30_000, 70_001]
    assert split_amounts(1_000, pct(33, 33, 34)) == [330, 330, 340]


def test_explicit_amounts_must_make_the_total() -> None:
    stages = [StageSpec(name="a", amount=300), StageSpec(name="b", amount=700)]
    assert split_amounts(1_000, stages) == [300, 700]
    with pytest.raises(ScheduleError, match="add up to 1000, not the total 1200"):
        split_amounts(1_200, stages)


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        (pct(30, 60), "must add up to 100"),
        ([StageSpec(name="a", percent=50), StageSpec(name="b", amount=500)], "every stage a percent"),
        (pct(99), "2 to 12 stages"),
    ],
)
def test_bad_schedules_are_refused_with_a_reason(stages: list[StageSpec], message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        split_amounts(1_000, stages)


def test_a_total_too_small_for_its_percents_is_refused() -> None:
    with pytest.raises(ScheduleError, match="would be zero"):
        split_amounts(2, pct(10, 90))


def test_a_stage_gives_exactly_one_of_percent_or_amount() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        StageSpec(name="x", percent=10, amount=5)


@given(total=st.integers(100, 10**12), cut=st.integers(1, 99))
def test_parts_always_add_up_to_the_total(total: int, cut: int) -> None:
    amounts = split_amounts(total, pct(cut, 100 - cut))
    assert sum(amounts) == total and all(a > 0 for a in amounts)


def test_the_deal_stage_reflects_the_whole_schedule() -> None:
    paid, waiting = InvoiceState.PAID, InvoiceState.AWAITING_PAYMENT
    assert deal_stage_kind([waiting, waiting]) is None
    assert deal_stage_kind([paid, waiting]) == "advance_paid"
    assert deal_stage_kind([paid, paid]) == "paid"
    assert [p.index for p in parts("S-1", pct(30, 70))] == [1, 2]
