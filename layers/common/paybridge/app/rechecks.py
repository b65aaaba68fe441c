"""The re-check sweep (cf. Kill Bill's Janitor for unknown payment states): every invoice that awaits money is asked
about at its provider on a backoff after its link is published (`domain/rechecks.py`), so a payment whose
notification never came is found within minutes to hours — not left to expire. What the provider holds is applied
through `PaymentChecks` as the notification would have been, so a notification that still arrives counts once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from paybridge.adapters.crm.base import RateLimit, Throttle
from paybridge.adapters.errors import CrmUnavailable, ProviderRejected, ProviderUnavailable
from paybridge.app.changes import Actor, utc_now
from paybridge.app.payment_checks import PaymentChecks
from paybridge.domain.invoice import Invoice
from paybridge.domain.rechecks import next_recheck
from paybridge.storage.rechecks import RecheckItem
from paybridge.storage.repository import InvoiceRepository
from paybridge.tenants import TenantConfig, TenantDirectory, TenantNotFound

logger = logging.getLogger(__name__)

#: Status reads per merchant account: well inside what each provider allows (Stripe documents 100/s live, 25/s in
#: test mode; T-Bank and YooKassa publish no number and answer 429 when pressed — which is a retry here, too).
STATUS_READS = RateLimit(per_second=5, burst=10)
#: A provider that could not be asked is asked again this much later (the check keeps its place in the backoff).
RETRY_AFTER = timedelta(minutes=5)


class RecheckStore(Protocol):
    def plan(self, tenant_id: str, invoice_id: str, published_at: datetime, first_due: datetime | None) -> None: ...

    def due(self, now: datetime, limit: int = 200) -> list[RecheckItem]: ...

    def claim(self, item: RecheckItem, next_due: datetime | None) -> bool: ...

    def retry_at(self, item: RecheckItem, when: datetime) -> None: ...

    def stop(self, item: RecheckItem) -> None: ...


@dataclass
class SweepSummary:
    asked: int = 0
    #: Money facts the providers knew that no notification had told us.
    learnt: int = 0
    #: Checks put back because the provider (or its rate limit) did not answer.
    deferred: int = 0
    #: Invoices that stopped waiting (paid, closed) and left the sweep.
    done: int = 0
    paid: list[str] = field(default_factory=list)


@dataclass
class RecheckSweep:
    tenants: TenantDirectory
    repo: InvoiceRepository
    store: RecheckStore
    checks: PaymentChecks
    throttle: Throttle
    clock: Callable[[], datetime] = utc_now

    def link_published(self, tenant: TenantConfig, invoice: Invoice, at: datetime) -> None:
        """The lifecycle published the invoice's link: plan its checks."""
        self.store.plan(tenant.tenant_id, invoice.invoice_id, at, next_recheck(at, invoice.expires_at, 0))

    def run(self, limit: int = 200) -> SweepSummary:
        now = self.clock()
        summary = SweepSummary()
        unreachable: set[str] = set()  # provider accounts that failed this run: their other checks wait too
        for item in self.store.due(now, limit):
            try:
                tenant = self.tenants.get(item.tenant_id)
            except TenantNotFound:
                self.store.stop(item)
                continue
            invoice = self.repo.get(item.tenant_id, item.invoice_id)
            if invoice is None or not invoice.is_open or invoice.closed_as is not None:
                self.store.stop(item)
                summary.done += 1
                continue
            account = f"psp:{tenant.tenant_id}:{tenant.psp.provider}"
            if account in unreachable:
                continue
            if not self.store.claim(item, next_recheck(item.published_at, invoice.expires_at, item.step + 1)):
                continue  # an overlapping sweep took it
            why = f"re-check {item.step + 1} after the link was published"
            try:
                self.throttle(account, STATUS_READS)
                result = self.checks.recheck(item.tenant_id, item.invoice_id, Actor("recheck", why))
            except (ProviderUnavailable, CrmUnavailable) as exc:  # CrmUnavailable: the shared bucket is empty
                logger.warning("re-check of %s put back: %s", item.invoice_id, exc)
                self.store.retry_at(item, now + RETRY_AFTER)
                unreachable.add(account)
                summary.deferred += 1
                continue
            except ProviderRejected as exc:  # e.g. the provider no longer knows the payment: a person looks
                logger.error("re-check of %s refused by the provider: %s", item.invoice_id, exc)
                continue
            summary.asked += 1
            summary.learnt += result.learnt
            if not result.invoice.is_open:
                self.store.stop(item)
                summary.done += 1
                summary.paid.append(item.invoice_id)
        return summary
