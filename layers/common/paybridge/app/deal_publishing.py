"""What the CRM deal must show after a change to an invoice, put on the CRM outbox by whoever made the change.

The change's own task (a PSP notification, a bank line, a lever, a lifecycle task) publishes it, right after the
change is written: no execution waits to do it. The outbox delivers the deal's writes in order, batched and within
the CRM's rate limit (`DealDelivery`); an update's deduplication id is its invoice, version and event, so publishing
the same change again (a retried task) enqueues nothing new."""

from __future__ import annotations

from dataclasses import dataclass

from paybridge.adapters.outbox import CrmOutbox
from paybridge.domain.deal_sync import deal_update
from paybridge.domain.invoice import Invoice, InvoiceState, invoice_id_for
from paybridge.domain.staged import deal_stage_kind, part_number
from paybridge.storage.repository import InvoiceRepository
from paybridge.tenants import TenantConfig, TenantDirectory


@dataclass
class DealPublisher:
    tenants: TenantDirectory
    repo: InvoiceRepository
    outbox: CrmOutbox

    def publish(self, invoice: Invoice, event: str = "") -> None:
        """Plan the deal's writes for `invoice` after `event` and enqueue them (nothing when there is nothing new
        to show)."""
        tenant = self.tenants.get(invoice.tenant_id)
        update = deal_update(
            invoice, self.deal_stage(tenant, invoice), event, customer_profile=tenant.crm.profile_enabled
        )
        if update is not None:
            self.outbox.publish(update)

    def deal_stage(self, tenant: TenantConfig, invoice: Invoice) -> str:
        """The stage from the tenant's mapping; for a part of a staged payment, the schedule as a whole decides while
        money is coming in ("Advance paid" until every part is paid)."""
        part = invoice.part
        if part is None or invoice.state not in (
            InvoiceState.AWAITING_PAYMENT,
            InvoiceState.PARTIALLY_PAID,
            InvoiceState.PAID,
        ):
            return tenant.stages.stage_for(invoice.state)
        states = []
        for index in range(1, part.count + 1):
            sibling_id = invoice_id_for(tenant.tenant_id, invoice.deal_id, part_number(part.schedule_number, index))
            sibling = invoice if sibling_id == invoice.invoice_id else self.repo.get(tenant.tenant_id, sibling_id)
            if sibling is not None:
                states.append(sibling.state)
        kind = deal_stage_kind(states) if len(states) == part.count else None
        return tenant.stages.stage_for_schedule(kind) if kind else tenant.stages.stage_for(invoice.state)
