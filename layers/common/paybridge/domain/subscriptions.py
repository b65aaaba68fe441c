"""Recurring payments: a subscription charges a saved payment method every period, without the customer.

Lifecycle: `awaiting_first_payment` (the first invoice is paid by the customer through a normal link that saves the
payment method) → `active` (each period: a notice `notice_hours` before, then a charge of the saved method) →
`past_due` after a failed charge (retried on the dunning schedule) → back to `active` when a retry succeeds, or
`blocked` after the last failed retry (the CRM is told to block access). `cancelled` stops it; `paused` holds it
(no notices, no charges) until resumed.

Every period's charge is its own invoice (`<plan>/<period>`), so a charge is idempotent by that invoice's id at the
PSP, and shows in the deal like any payment.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta
from typing import Literal

from pydantic import ConfigDict, Field

from paybridge.domain.errors import InvalidTransition
from paybridge.domain.invoice import Customer
from paybridge.domain.model import Model
from paybridge.domain.money import Currency, PositiveMinorUnits

Period = Literal["week", "month", "year"]
SubscriptionState = Literal["awaiting_first_payment", "active", "past_due", "blocked", "cancelled", "paused"]
#: A subscription in one of these states charges no more: its customer's data is kept only for the retention.
CLOSED_SUBSCRIPTION_STATES: frozenset[SubscriptionState] = frozenset({"cancelled", "blocked"})

#: Default dunning schedule: retry a failed charge after 1, 3 and 7 days; after the third failure, block.
DUNNING_HOURS: tuple[int, ...] = (24, 72, 168)
#: Monthly-normalised factor per period, for MRR.
MONTHLY: dict[str, float] = {"week": 52 / 12, "month": 1.0, "year": 1 / 12}


#: A plan name leaves room in an invoice number (at most 40 characters) for `/<period>.<attempt>`: 9 characters
#: carry period 99999 and attempt 99.
PLAN_MAX_LENGTH = 31


def subscription_id_for(tenant_id: str, deal_id: str, plan: str) -> str:
    digest = hashlib.sha256(f"{tenant_id}\x00{deal_id}\x00{plan}".encode()).digest()
    return "sub_" + base64.b32encode(digest).decode("ascii").lower()[:26]


def add_period(moment: datetime, period: Period, count: int = 1) -> datetime:
    if period == "week":
        return moment + timedelta(weeks=count)
    months = count * (12 if period == "year" else 1)
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(
        moment.day,
        [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][
            month - 1
        ],
    )
    return moment.replace(year=year, month=month, day=day)


class Subscription(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")
    subscription_id: str
    tenant_id: str
    deal_id: str
    plan: str = Field(min_length=1, max_length=40, pattern=r"^[\w.-]+$")
    amount: PositiveMinorUnits
    currency: Currency = "RUB"
    period: Period = "month"
    customer: Customer = Field(default_factory=Customer)
    description: str = Field(default="", max_length=250)
    started_at: datetime
    state: SubscriptionState = "awaiting_first_payment"
    method: str | None = None  # the PSP's saved method (T-Bank RebillId, YooKassa payment_method id, Stripe cus/pm)
    period_index: int = 1  # the period being paid (1 = the first, paid by the customer)
    next_charge_at: datetime | None = None
    failed_attempts: int = 0
    noticed_period: int = 0  # the last period whose notice was sent
    #: When it was cancelled or blocked (the retention period of its customer's data runs from then).
    closed_at: datetime | None = None
    #: When its customer's name, e-mail, phone and INN were erased (retention, or the person's request).
    customer_erased_at: datetime | None = None
    version: int = 0

    def invoice_number(self, period_index: int | None = None) -> str:
        return f"{self.plan}/{period_index or self.period_index}"

    @property
    def holds_closed_customer_data(self) -> bool:
        """Cancelled or blocked and still holding its customer's data: the retention's to erase."""
        return self.state in CLOSED_SUBSCRIPTION_STATES and self.customer.holds_data

    @property
    def monthly_amount(self) -> float:
        return self.amount * MONTHLY[self.period]


def first_paid(sub: Subscription, method: str | None) -> Subscription:
    """The customer paid the first invoice (and the PSP saved the method): charges start next period."""
    if sub.state != "awaiting_first_payment":
        return sub
    return sub.model_copy(
        update={
            "state": "active" if method else "past_due",
            "method": method,
            "period_index": 2,
            "next_charge_at": add_period(sub.started_at, sub.period),
            "failed_attempts": 0,
            "version": sub.version + 1,
        }
    )


def charged(sub: Subscription) -> Subscription:
    """This period's charge succeeded: on to the next period."""
    return sub.model_copy(
        update={
            "state": "active",
            "period_index": sub.period_index + 1,
            "next_charge_at": add_period(sub.started_at, sub.period, sub.period_index),
            "failed_attempts": 0,
            "version": sub.version + 1,
        }
    )


def charge_failed(sub: Subscription, now: datetime, dunning_hours: tuple[int, ...] = DUNNING_HOURS) -> Subscription:
    """A charge failed: retry on the dunning schedule, or block after the last retry."""
    attempts = sub.failed_attempts + 1
    if attempts > len(dunning_hours):
        return sub.model_copy(
            update={
                "state": "blocked",
                "failed_attempts": attempts,
                "next_charge_at": None,
                "closed_at": now,
                "version": sub.version + 1,
            }
        )
    return sub.model_copy(
        update={
            "state": "past_due",
            "failed_attempts": attempts,
            "next_charge_at": now + timedelta(hours=dunning_hours[attempts - 1]),
            "version": sub.version + 1,
        }
    )


def cancel(sub: Subscription, now: datetime) -> Subscription:
    """Stop charging for good (the periods paid stay paid). Cancelling a cancelled subscription changes nothing."""
    if sub.state == "cancelled":
        return sub
    return sub.model_copy(
        update={"state": "cancelled", "next_charge_at": None, "closed_at": now, "version": sub.version + 1}
    )


def erase_customer(sub: Subscription, now: datetime) -> Subscription:
    """The customer's name, e-mail, phone and INN removed from a closed subscription (plan, amounts, periods, the
    saved method's id and the deal stay). Erasing an erased one changes nothing; an open one keeps what its notices
    and receipts need."""
    if sub.state not in CLOSED_SUBSCRIPTION_STATES:
        raise InvalidTransition(f"a subscription that is {sub.state} keeps its customer's data")
    if not sub.customer.holds_data:
        return sub
    return sub.model_copy(update={"customer": Customer(), "customer_erased_at": now, "version": sub.version + 1})


def pause(sub: Subscription) -> Subscription:
    """No notices and no charges until resumed; the next charge's time is kept. Only an active or past-due one."""
    if sub.state == "paused":
        return sub
    if sub.state not in ("active", "past_due"):
        raise InvalidTransition(f"a subscription that is {sub.state} cannot be paused")
    return sub.model_copy(update={"state": "paused", "version": sub.version + 1})


def resume(sub: Subscription, now: datetime) -> Subscription:
    """Charges go on: the kept next charge, or now when it passed during the pause (a retry stays a retry)."""
    if sub.state in ("active", "past_due"):
        return sub
    if sub.state != "paused":
        raise InvalidTransition(f"a subscription that is {sub.state} cannot be resumed")
    due = max(sub.next_charge_at or now, now)
    state: SubscriptionState = "past_due" if sub.failed_attempts else "active"
    return sub.model_copy(update={"state": state, "next_charge_at": due, "version": sub.version + 1})
