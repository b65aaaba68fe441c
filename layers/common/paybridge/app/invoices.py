"""Reading and cancelling invoices, and the operations view of the ones whose lifecycle should have closed them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from paybridge.adapters.errors import ProviderRejected
from paybridge.adapters.psp.base import PaymentProvider
from paybridge.app.changes import InvoiceChanges
from paybridge.domain.invoice import AuditEntry, Close, Closure, Invoice
from paybridge.storage.repository import InvoiceRepository
from paybridge.tenants import TenantConfig, TenantDirectory

logger = logging.getLogger(__name__)


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

    def stuck_invoices(self, deadline_before: datetime) -> list[Invoice]:
        return self.repo.open_invoices_due_before(deadline_before.isoformat())
