"""Business metrics of invoices, counted in one place: where a change is applied (`InvoiceChanges.apply`) and where an
invoice is created (`Issuing`). Every path — a PSP notification, a bank line, a re-check, a person's lever, a
subscription's charge, a staged part — therefore counts the same.

Dimensions are the provider and the method only (each dimension value is a billed metric); the tenant travels as a
property of the record (for Logs Insights), never as a dimension."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from paybridge.domain.events import InvoiceEvent, MoneyReceived, PaidOutside, RefundConfirmed
from paybridge.domain.invoice import Invoice, InvoiceState

MetricUnitName = Literal["Count", "Seconds", "None"]
#: The method dimension when a fact names none (an invoice's issue, an expiry, a refund).
NO_METHOD = "none"
#: Invoices paid in full, counted at their issue time (the dashboard's honest paid share: this over InvoicesIssued).
COHORT_PAID = "InvoicesPaidByIssueTime"


class InvoiceMetrics(Protocol):
    def record(
        self,
        name: str,
        value: float,
        unit: MetricUnitName,
        *,
        tenant_id: str,
        provider: str,
        method: str,
        at: datetime | None = None,
    ) -> None:
        """`at`: the data point's time when it is not now (CloudWatch takes up to two weeks back)."""


class NoMetrics:
    def record(
        self,
        name: str,
        value: float,
        unit: MetricUnitName,
        *,
        tenant_id: str,
        provider: str,
        method: str,
        at: datetime | None = None,
    ) -> None:
        return None


@dataclass(frozen=True)
class Recorded:
    name: str
    value: float
    unit: MetricUnitName
    tenant_id: str
    provider: str
    method: str
    at: datetime | None = None


@dataclass
class RecordingMetrics:
    """A fake for tests: keeps what was recorded."""

    recorded: list[Recorded] = field(default_factory=list)

    def record(
        self,
        name: str,
        value: float,
        unit: MetricUnitName,
        *,
        tenant_id: str,
        provider: str,
        method: str,
        at: datetime | None = None,
    ) -> None:
        self.recorded.append(Recorded(name, value, unit, tenant_id, provider, method, at))

    def names(self) -> list[str]:
        return [r.name for r in self.recorded]


def issued(metrics: InvoiceMetrics, invoice: Invoice) -> None:
    metrics.record(
        "InvoicesIssued", 1, "Count", tenant_id=invoice.tenant_id, provider=invoice.provider, method=NO_METHOD
    )


def changed(metrics: InvoiceMetrics, before: Invoice, after: Invoice, event: InvoiceEvent, at: datetime) -> None:
    """Count one applied change (called only when `apply` changed the invoice)."""

    def count(name: str, value: float, unit: MetricUnitName, method: str, at: datetime | None = None) -> None:
        metrics.record(name, value, unit, tenant_id=after.tenant_id, provider=after.provider, method=method, at=at)

    method = NO_METHOD
    if isinstance(event, MoneyReceived | PaidOutside):
        method = after.receipt_methods.get(event.ref, NO_METHOD)
        count("MoneyReceived", 1, "Count", method)
        count("MoneyReceivedAmount", event.amount, "None", method)
    if isinstance(event, RefundConfirmed) and event.ref not in before.refunds:
        count("Refunds", 1, "Count", NO_METHOD)
        count("RefundsAmount", event.amount, "None", NO_METHOD)
    if before.paid_at is None and after.paid_at is not None:  # paid in full, the first (and only) time
        count("InvoicesPaid", 1, "Count", method)
        seconds = max((after.paid_at - after.created_at).total_seconds(), 0.0)
        count("TimeToPay", seconds, "Seconds", method)
        # The cohort: the same count at the invoice's issue time, so that a period's paid share is the share of the
        # invoices issued in it that were paid (CloudWatch takes points up to 14 days old; the report counts all)
        count(COHORT_PAID, 1, "Count", method, at=after.created_at)
    old, new = before.state, after.state
    if old == new:
        return
    if new is InvoiceState.PARTIALLY_PAID:
        count("InvoicesPartiallyPaid", 1, "Count", method)
    elif new is InvoiceState.EXPIRED:
        count("InvoicesExpired", 1, "Count", NO_METHOD)
    elif new is InvoiceState.CANCELLED:
        count("InvoicesCancelled", 1, "Count", NO_METHOD)
    elif new is InvoiceState.FAILED:
        count("InvoicesFailed", 1, "Count", NO_METHOD)
