"""Staged payments: one deal paid in parts (e.g. 30 % advance, 70 % on delivery), each part its own invoice with its
own lifecycle, and the deal's stage reflecting the whole."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ConfigDict, Field, model_validator

from paybridge.domain.errors import ScheduleError
from paybridge.domain.invoice import InvoicePart, InvoiceState
from paybridge.domain.model import Model
from paybridge.domain.money import PositiveMinorUnits


class StageSpec(Model):
    """One part: a share of the total in percent, or an amount."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1, max_length=100, examples=["Аванс 30%"])
    percent: int | None = Field(default=None, gt=0, lt=100)
    amount: PositiveMinorUnits | None = None

    @model_validator(mode="after")
    def _one_of(self) -> StageSpec:
        if (self.percent is None) == (self.amount is None):
            raise ValueError("give exactly one of 'percent' or 'amount'")
        return self


def split_amounts(total: int, stages: Sequence[StageSpec]) -> list[int]:
    """Minor units per stage: explicit amounts as given, percents rounded down, the last stage taking what remains —
    so the parts always add up to the total exactly."""
    if not 2 <= len(stages) <= 12:
        raise ScheduleError("a staged payment has 2 to 12 stages")
    if all(s.amount is not None for s in stages):
        amounts = [int(s.amount or 0) for s in stages]
        if sum(amounts) != total:
            raise ScheduleError(f"the stages add up to {sum(amounts)}, not the total {total}")
        return amounts
    if all(s.percent is not None for s in stages):
        if sum(int(s.percent or 0) for s in stages) != 100:
            raise ScheduleError("the stages' percents must add up to 100")
        amounts = [total * int(s.percent or 0) // 100 for s in stages[:-1]]
        amounts.append(total - sum(amounts))
        if min(amounts) <= 0:
            raise ScheduleError("a stage would be zero: the total is too small for these percents")
        return amounts
    raise ScheduleError("give every stage a percent, or every stage an amount")


def parts(schedule_number: str, stages: Sequence[StageSpec]) -> list[InvoicePart]:
    return [
        InvoicePart(index=i, count=len(stages), name=s.name, schedule_number=schedule_number)
        for i, s in enumerate(stages, start=1)
    ]


def part_number(schedule_number: str, index: int) -> str:
    return f"{schedule_number}/{index}"


PAID_LIKE = frozenset({InvoiceState.PAID})


def deal_stage_kind(states: Sequence[InvoiceState]) -> str | None:
    """What the deal shows for the whole schedule: "paid" when every part is paid, "advance_paid" when some are,
    None when no part is paid yet (each part's own state decides)."""
    paid = sum(1 for state in states if state in PAID_LIKE)
    if paid == len(states) and states:
        return "paid"
    if paid:
        return "advance_paid"
    return None
