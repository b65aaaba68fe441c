"""The repository interface the services depend on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from paybridge.domain.invoice import AuditEntry, Invoice

if TYPE_CHECKING:
    from paybridge.app.publishing import OutboxBatch


@dataclass(frozen=True)
class ProviderEventRecord:
    provider: str
    event_id: str
    tenant_id: str
    invoice_id: str | None
    summary: str


@dataclass(frozen=True)
class Saved:
    invoice: Invoice
    task_token: str | None


class InvoiceRepository(Protocol):
    def create(self, invoice: Invoice, audit: AuditEntry, outbox: OutboxBatch | None = None) -> tuple[Invoice, bool]:
        """Store a new invoice (with its domain events' outbox batch); when one with the same id exists return it and
        False."""
        ...

    def get(self, tenant_id: str, invoice_id: str) -> Invoice | None: ...

    def save(
        self,
        invoice: Invoice,
        expected_version: int,
        audit: AuditEntry | None,
        provider_event: ProviderEventRecord | None = None,
        outbox: OutboxBatch | None = None,
    ) -> Saved:
        """Write the new version if the stored one is `expected_version` (ConcurrentModification otherwise),
        with its audit entry, the provider event record (DuplicateProviderEvent if recorded before) and the change's
        domain events (`outbox`), atomically."""
        ...

    def record_provider_event(self, record: ProviderEventRecord) -> None:
        """Record an event that changed nothing; DuplicateProviderEvent if recorded before."""
        ...

    def find_by_payment(self, provider: str, payment_id: str) -> Invoice | None: ...

    def history(self, tenant_id: str, invoice_id: str) -> list[AuditEntry]: ...

    def open_invoices_due_before(self, iso_time: str, limit: int = 100) -> list[Invoice]: ...

    def find_by_number(self, tenant_id: str, number: str) -> list[Invoice]: ...

    def list_by_state(
        self, tenant_id: str, state: str, created_before: str | None = None, limit: int = 100, newest: bool = False
    ) -> list[Invoice]: ...

    def list_by_deal(self, tenant_id: str, deal_id: str) -> list[Invoice]: ...
