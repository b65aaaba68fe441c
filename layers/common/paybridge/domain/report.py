"""The owner's monthly figures, computed from the invoices issued in a month (a cohort) as they stand now.

An invoice belongs to the month it was issued in (in the tenant's time zone), whenever it was paid: "paid share" is
the share of that month's invoices paid so far, not paid-per-hour over issued-per-hour. Pure: the caller reads the
invoices (by index, never a scan) and the bank lines; nothing here knows of storage or HTTP."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from pydantic import ConfigDict, Field

from paybridge.domain.invoice import Invoice, InvoiceState
from paybridge.domain.model import Model

MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
_MONTH = re.compile(MONTH_PATTERN)


def parse_month(month: str) -> tuple[int, int]:
    """`YYYY-MM` → (year, month); ValueError otherwise."""
    if not _MONTH.fullmatch(month):
        raise ValueError(f"month {month!r} is not YYYY-MM")
    year, number = int(month[:4]), int(month[5:])
    if year < 2000 or year > 2999:
        raise ValueError(f"month {month!r} is out of range (years 2000-2999)")
    return year, number


def previous_month(month: str) -> str:
    year, number = parse_month(month)
    return f"{year - 1}-12" if number == 1 else f"{year}-{number - 1:02d}"


def month_of(moment: datetime, timezone: str) -> str:
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m")


def month_bounds(month: str, timezone: str) -> tuple[datetime, datetime]:
    """The month's first instant and the next month's first instant, in UTC, for a month in `timezone`."""
    year, number = parse_month(month)
    zone = ZoneInfo(timezone)
    start = datetime(year, number, 1, tzinfo=zone)
    end = datetime(year + 1, 1, 1, tzinfo=zone) if number == 12 else datetime(year, number + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def percentile(values: list[float], share: float) -> int | None:
    """Nearest-rank percentile (the smallest value with at least `share` of the values at or below it), rounded to
    whole seconds; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(share * len(ordered)), 1)
    return round(ordered[rank - 1])


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _add(totals: dict[str, int], key: str, amount: int) -> None:
    totals[key] = totals.get(key, 0) + amount


class Refunds(Model):
    model_config = ConfigDict(frozen=True)
    #: Confirmed refunds of the month's invoices (one provider refund each).
    count: int = 0
    #: Invoices with at least one confirmed refund.
    invoices: int = 0
    #: Refunded money by currency, minor units.
    amount: dict[str, int] = Field(default_factory=dict)
    #: Refunded money over paid money, per currency.
    share_of_paid: dict[str, float] = Field(default_factory=dict)


class MonthFigures(Model):
    """One month's figures. Counts are of invoices issued in the month; money is minor units by currency."""

    model_config = ConfigDict(frozen=True)
    month: str
    issued: int = 0
    #: Paid in full (at any time since; refunded later or not).
    paid: int = 0
    paid_share: float = 0.0
    #: Of the issued: still partly paid, paid more than asked, expired, cancelled, failed, still open.
    partially_paid: int = 0
    overpaid: int = 0
    expired: int = 0
    cancelled: int = 0
    failed: int = 0
    open: int = 0
    issued_amount: dict[str, int] = Field(default_factory=dict)
    paid_amount: dict[str, int] = Field(default_factory=dict)
    #: From issue to paid in full, over the paid invoices whose payment time is recorded.
    time_to_pay_p50_seconds: int | None = None
    time_to_pay_p90_seconds: int | None = None
    #: Payments (money facts) by method: `card`, `sbp`, `bank_transfer`, `saved_method`, `manual` (`unknown` for
    #: money recorded before methods were).
    methods: dict[str, int] = Field(default_factory=dict)
    method_share: dict[str, float] = Field(default_factory=dict)
    method_amount: dict[str, dict[str, int]] = Field(default_factory=dict)
    refunds: Refunds = Field(default_factory=Refunds)
    #: Bank lines dated in the month that matched no invoice and still wait for a person.
    unmatched_bank_lines: int = 0


#: The figures compared with the previous month (current − previous).
COMPARED = (
    "issued",
    "paid",
    "paid_share",
    "partially_paid",
    "overpaid",
    "time_to_pay_p50_seconds",
    "time_to_pay_p90_seconds",
    "unmatched_bank_lines",
)


def figures(month: str, invoices: Iterable[Invoice], unmatched_bank_lines: int = 0) -> MonthFigures:
    issued = paid = partially = overpaid = expired = cancelled = failed = still_open = 0
    issued_amount: dict[str, int] = {}
    paid_amount: dict[str, int] = {}
    seconds: list[float] = []
    methods: dict[str, int] = {}
    method_amount: dict[str, dict[str, int]] = {}
    refund_count = refunded_invoices = 0
    refund_amount: dict[str, int] = {}
    for invoice in invoices:
        issued += 1
        _add(issued_amount, invoice.currency, invoice.amount)
        state = invoice.state
        if invoice.paid_at is not None or invoice.paid >= invoice.amount:
            paid += 1
            if invoice.paid_at is not None:
                seconds.append(max((invoice.paid_at - invoice.created_at).total_seconds(), 0.0))
        partially += state is InvoiceState.PARTIALLY_PAID
        expired += state is InvoiceState.EXPIRED
        cancelled += state is InvoiceState.CANCELLED
        failed += state is InvoiceState.FAILED
        still_open += state in (InvoiceState.ISSUED, InvoiceState.AWAITING_PAYMENT)
        overpaid += "overpaid" in invoice.flags
        if invoice.paid:
            _add(paid_amount, invoice.currency, invoice.paid)
        for ref, amount in invoice.receipts.items():
            method = invoice.receipt_methods.get(ref, "unknown")
            methods[method] = methods.get(method, 0) + 1
            _add(method_amount.setdefault(method, {}), invoice.currency, amount)
        if invoice.refunded:
            refunded_invoices += 1
            refund_count += len(invoice.refunds)
            _add(refund_amount, invoice.currency, invoice.refunded)
    payments = sum(methods.values())
    refunds = Refunds(
        count=refund_count,
        invoices=refunded_invoices,
        amount=refund_amount,
        share_of_paid={c: _share(a, paid_amount.get(c, 0)) for c, a in refund_amount.items()},
    )
    return MonthFigures(
        month=month,
        issued=issued,
        paid=paid,
        paid_share=_share(paid, issued),
        partially_paid=partially,
        overpaid=overpaid,
        expired=expired,
        cancelled=cancelled,
        failed=failed,
        open=still_open,
        issued_amount=issued_amount,
        paid_amount=paid_amount,
        time_to_pay_p50_seconds=percentile(seconds, 0.5),
        time_to_pay_p90_seconds=percentile(seconds, 0.9),
        methods=dict(sorted(methods.items())),
        method_share={m: _share(n, payments) for m, n in sorted(methods.items())},
        method_amount=dict(sorted(method_amount.items())),
        refunds=refunds,
        unmatched_bank_lines=unmatched_bank_lines,
    )


def change(current: MonthFigures, previous: MonthFigures) -> dict[str, float | int | None]:
    """Each compared figure minus the previous month's (None where either month has no value)."""
    deltas: dict[str, float | int | None] = {}
    for name in COMPARED:
        now, before = getattr(current, name), getattr(previous, name)
        if now is None or before is None:
            deltas[name] = None
        else:
            deltas[name] = round(now - before, 4) if isinstance(now, float) else now - before
    deltas["refunds"] = current.refunds.count - previous.refunds.count
    return deltas
