"""The owner's report: a month's figures (the invoices issued in it, as they stand now) against the month before.

Read from the `ByState` index (its sort key begins with the creation time: one Query per state, never a scan) and
the bank review index; computed by `domain.report`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from pydantic import ConfigDict

from paybridge.domain.invoice import Invoice
from paybridge.domain.report import MonthFigures, change, figures, month_bounds, month_of, previous_month

if TYPE_CHECKING:
    from paybridge.tenants import TenantDirectory


class IssuedInvoices(Protocol):
    def issued_between(self, tenant_id: str, start: str, end: str) -> list[Invoice]: ...


class UnmatchedLines(Protocol):
    def review_count(self, tenant_id: str, month: str) -> int: ...


class MonthReport(MonthFigures):
    """The month's figures at the top level (so `issued`, `paid`, `paid_share`, … are the month's own), the previous
    month's, and the difference of each compared figure."""

    model_config = ConfigDict(frozen=True)
    tenant: str
    timezone: str
    #: The month's first instant and the next month's, in UTC (the tenant's local months).
    period_start: datetime
    period_end: datetime
    generated_at: datetime
    previous: MonthFigures
    change: dict[str, float | int | None]


@dataclass
class Reports:
    tenants: TenantDirectory
    invoices: IssuedInvoices
    bank: UnmatchedLines
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def month(self, tenant_id: str, month: str | None = None) -> MonthReport:
        """`month` is YYYY-MM in the tenant's time zone (this month when None); ValueError for a bad month."""
        tenant = self.tenants.get(tenant_id)
        zone = tenant.timezone
        month = month or month_of(self.clock(), zone)
        current = self._figures(tenant_id, month, zone)
        previous = self._figures(tenant_id, previous_month(month), zone)
        start, end = month_bounds(month, zone)
        return MonthReport(
            **current.model_dump(),
            tenant=tenant_id,
            timezone=zone,
            period_start=start,
            period_end=end,
            generated_at=self.clock(),
            previous=previous,
            change=change(current, previous),
        )

    def _figures(self, tenant_id: str, month: str, zone: str) -> MonthFigures:
        start, end = month_bounds(month, zone)
        issued = self.invoices.issued_between(tenant_id, start.isoformat(), end.isoformat())
        return figures(month, issued, self.bank.review_count(tenant_id, month))
