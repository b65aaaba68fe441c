"""A person re-syncs a deal now: every invoice of the deal is written to the CRM again as it stands (stage, link,
a timeline entry), through the CRM outbox like any deal write. Each invoice's audit history records who and why
(once per key: an event record `ops/<tenant>:<key>:<invoice>` in the invoice's transaction), and the deal writes
carry the key in their update id, so repeats of the request enqueue nothing new."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Protocol

from paybridge.app.changes import InvoiceChanges
from paybridge.app.errors import DealHasNoInvoices
from paybridge.app.levers import Commit, LeverOutcome, LeverRequest, LeverResult, LeverRunner
from paybridge.domain.deal_sync import RESYNC_EVENT
from paybridge.domain.events import DealResynced
from paybridge.storage.errors import DuplicateProviderEvent
from paybridge.storage.repository import InvoiceRepository, ProviderEventRecord
from paybridge.tenants import TenantDirectory


class DealPublisher(Protocol):
    """Plans what the deal must show for an invoice and puts it on the CRM outbox (`LifecycleTasks.sync_deal`)."""

    def sync_deal(self, tenant_id: str, invoice_id: str, event: str = "") -> Any: ...


@dataclass
class DealResync:
    tenants: TenantDirectory
    repo: InvoiceRepository
    changes: InvoiceChanges
    deals: DealPublisher
    runner: LeverRunner

    def resync(self, request: LeverRequest, deal_id: str) -> LeverResult:
        tenant = self.tenants.get(request.tenant_id)

        def lever(commit: Commit) -> LeverOutcome:
            invoices = self.repo.list_by_deal(tenant.tenant_id, deal_id)
            if not invoices:
                raise DealHasNoInvoices(f"no invoice was issued for deal {deal_id}")
            commit()
            for invoice in invoices:
                record = ProviderEventRecord(
                    provider="ops",
                    event_id=f"{tenant.tenant_id}:{request.key}:{invoice.invoice_id}",
                    tenant_id=tenant.tenant_id,
                    invoice_id=invoice.invoice_id,
                    summary=f"deal_resynced by {request.actor.who}",
                )
                with contextlib.suppress(DuplicateProviderEvent):  # this key re-synced it already
                    self.changes.apply(
                        tenant.tenant_id, invoice.invoice_id, DealResynced(key=request.key), record, actor=request.actor
                    )
                self.deals.sync_deal(tenant.tenant_id, invoice.invoice_id, f"{RESYNC_EVENT}:{request.key}")
            return LeverOutcome(
                lever="deal_resync",
                key=request.key,
                actor=request.actor.who,
                reason=request.actor.why,
                target=deal_id,
                detail=f"{len(invoices)} invoice(s) written to the deal again",
                invoices=tuple(self.repo.list_by_deal(tenant.tenant_id, deal_id)),
            )

        return self.runner.run(request, lever)
