"""Reading and cancelling invoices, and the operations view of the ones whose lifecycle should have closed them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from paybridge.adapters.errors import ProviderRejected
from paybridge.adapters.psp.base import PaymentProvider
from paybridge.app.changes import InvoiceChanges, utc_now
from paybridge.domain.events import Close
from paybridge.domain.invoice import AuditEntry, Closure, Invoice, InvoiceState
from paybridge.storage.repository import InvoiceRepository
from paybridge.tenants import TenantConfig, TenantDirectory

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListedInvoice:
    invoice: Invoice
    #: Still waiting for money past its link's deadline: its lifecycle should have closed it.
    stuck: bool
    age_seconds: int


@dataclass
class Invoices:
    tenants: TenantDirectory
    repo: InvoiceRepository
    changes: InvoiceChanges
    providers: Callable[[TenantConfig], PaymentProvider]

    def get_invoice(self, tenant_id: str, invoice_id: str) -> tuple[Invoice, list[AuditEntry]]:
        self.tenants.get(tenant_id)
        invoice = self.changes.get(tenant_id, invoice_id)
        return invoice, self.repo.history(tenant_id, invoice_id)

    def cancel_invoice(self, tenant_id: str, invoice_id: str, reason: str = "") -> Invoice:
        tenant = self.tenants.get(tenant_id)
        close = Close(closure=Closure.CANCELLED, reason=reason)
        change = self.changes.apply(tenant_id, invoice_id, close)
        if change.changed and change.invoice.payment_id:
            try:
                self.providers(tenant).cancel_payment(change.invoice.payment_id)
            except ProviderRejected as exc:  # already final at the PSP: money that still comes is recorded, flagged
                logger.warning("PSP refused to cancel %s: %s", change.invoice.payment_id, exc)
        if change.changed:
            self.changes.announce(change, "cancelled")
        return change.invoice

    def list_invoices(
        self,
        tenant_id: str,
        states: Sequence[InvoiceState] = (),
        older_than_seconds: int = 0,
        deal_id: str | None = None,
        limit: int = 50,
        now: datetime | None = None,
    ) -> list[ListedInvoice]:
        """The tenant's invoices in `states` (all when empty), created at least `older_than_seconds` ago, or those of
        one deal: stuck ones first (open past their deadline), then the oldest."""
        self.tenants.get(tenant_id)
        now = now or utc_now()
        cutoff = now - timedelta(seconds=older_than_seconds)
        wanted = set(states) or set(InvoiceState)
        if deal_id is not None:
            found = [i for i in self.repo.list_by_deal(tenant_id, deal_id) if i.state in wanted]
        else:
            found = []
            for state in sorted(wanted):  # each state's partition, oldest first; merged below
                found += self.repo.list_by_state(tenant_id, state.value, cutoff.isoformat(), limit)
        listed = [
            ListedInvoice(
                invoice=i,
                stuck=i.is_open and i.expires_at < now,
                age_seconds=max(int((now - i.created_at).total_seconds()), 0),
            )
            for i in found
            if i.created_at <= cutoff
        ]
        listed.sort(key=lambda li: (not li.stuck, li.invoice.created_at, li.invoice.invoice_id))
        return listed[:limit]

    def stuck_invoices(self, deadline_before: datetime) -> list[Invoice]:
        return self.repo.open_invoices_due_before(deadline_before.isoformat())
