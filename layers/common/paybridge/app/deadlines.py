"""The links' deadlines: a schedule (every minute) reads the open invoices whose deadline has passed from the sharded
`OpenByDue` index and starts each one's expiry (`ExpireInvoice`: the provider is asked first — see `LifecycleTasks`).

An invoice waits for its money in DynamoDB, not in an open Step Functions execution: the execution that created its
payment ended once the link was published, and its expiry runs only once its deadline is reached (named per
attempt, so a second run of the sweep, or an overlapping one, starts nothing new). A deadline is reached at most a
minute late; the provider's own link expires on time (it was created with the deadline)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from paybridge.adapters.lifecycle import LifecycleEngine
from paybridge.app.changes import utc_now
from paybridge.domain.invoice import Invoice
from paybridge.storage.repository import InvoiceRepository

#: Invoices read per run (the earliest due first); more wait for the next run, a minute later.
BATCH = 500


def expiry_name(invoice: Invoice) -> str:
    """The expiry execution of the invoice's current attempt (a reissued link gets a deadline, and an expiry, of its
    own)."""
    return f"{invoice.execution_name}-expiry"


@dataclass(frozen=True)
class DeadlineRun:
    due: int
    started: int


@dataclass
class Deadlines:
    repo: InvoiceRepository
    lifecycle: LifecycleEngine
    clock: Callable[[], datetime] = utc_now

    def run(self, limit: int = BATCH) -> DeadlineRun:
        due = self.repo.open_invoices_due_before(self.clock().isoformat(), limit=limit)
        started = sum(1 for invoice in due if self.expire(invoice))
        return DeadlineRun(due=len(due), started=started)

    def expire(self, invoice: Invoice) -> bool:
        """Start the expiry of `invoice` (its deadline is reached). False when it was started before."""
        return self.lifecycle.expire(invoice.tenant_id, invoice.invoice_id, expiry_name(invoice))
