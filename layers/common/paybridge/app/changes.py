"""The one place a change to an invoice is applied: read, apply the domain event, write conditionally (with its
audit entry and the provider event record, in one transaction), and announce it: its deal's writes on the CRM outbox.

Every path that changes an invoice — a PSP notification, a bank line, a refund, a cancel, a lifecycle task — goes
through `InvoiceChanges.apply`, so a change is audited and announced the same way whoever made it."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from paybridge.app import metrics as invoice_metrics
from paybridge.app.errors import InvoiceNotFound
from paybridge.app.metrics import InvoiceMetrics, NoMetrics
from paybridge.domain.events import InvoiceEvent, apply
from paybridge.domain.invoice import FINAL_STATES, Invoice
from paybridge.storage.errors import ConcurrentModification
from paybridge.storage.repository import InvoiceRepository, ProviderEventRecord, Saved

if TYPE_CHECKING:
    from paybridge.app.publishing import DomainEvents

MAX_WRITE_ATTEMPTS = 25

logger = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Actor:
    """Who asks for a change and why, written into the invoice's audit history."""

    who: str
    why: str = ""


@dataclass(frozen=True)
class Change:
    saved: Saved
    changed: bool
    #: The invoice's lifecycle was over before this change (a refund of a paid invoice, money after expiry).
    was_final: bool

    @property
    def invoice(self) -> Invoice:
        return self.saved.invoice


class ChangePublisher(Protocol):
    """Who makes the deal follow an applied change (`app/deal_publishing.DealPublisher`: the CRM outbox)."""

    def publish(self, invoice: Invoice, event: str = "") -> None: ...


@dataclass
class InvoiceChanges:
    repo: InvoiceRepository
    #: The deal's writes for an announced change (nothing waits in the state machine for a change: see README).
    deals: ChangePublisher
    clock: Callable[[], datetime] = utc_now
    #: Counts every applied change the same way whichever path made it (see `app/metrics.py`).
    metrics: InvoiceMetrics = field(default_factory=NoMetrics)
    #: Publishes each change's domain events once, through the outbox written with the change (`app/publishing.py`).
    events: DomainEvents | None = None

    def get(self, tenant_id: str, invoice_id: str) -> Invoice:
        invoice = self.repo.get(tenant_id, invoice_id)
        if invoice is None:
            raise InvoiceNotFound(invoice_id)
        return invoice

    def apply(
        self,
        tenant_id: str,
        invoice_id: str,
        event: InvoiceEvent,
        provider_event: ProviderEventRecord | None = None,
        announce: str | None = None,
        actor: Actor | None = None,
        read: Invoice | None = None,
    ) -> Change:
        """Apply `event` with optimistic concurrency (read, apply, conditional write; again on a lost race). With
        `announce`, a change is published to its deal under that name at once (see `announce`); lifecycle tasks
        publish their own after the rest of their step. `read`: the invoice as the caller has just read it
        (consistently): the first attempt starts from it instead of reading it again — a write since makes the
        conditional write fail, and the next attempt reads."""
        for attempt in range(MAX_WRITE_ATTEMPTS):
            if attempt == 0 and read is not None and read.invoice_id == invoice_id and read.tenant_id == tenant_id:
                current = read
            else:
                current = self.get(tenant_id, invoice_id)
            was_final = current.state in FINAL_STATES
            now = self.clock()
            result = apply(current, event, now)
            if not result.changed:
                if self.events is not None and provider_event is not None:
                    # a notification retried after a crash between our write and its publish: its events are still
                    # in the outbox (anything else left there is the sweep's, within a minute)
                    self.events.recover(f"{invoice_id}.v{current.version}")
                if provider_event is not None:
                    self.repo.record_provider_event(provider_event)  # DuplicateProviderEvent: a repeat
                return Change(Saved(invoice=current, task_token=None), changed=False, was_final=was_final)
            audit = result.audit
            if actor is not None and audit is not None:
                detail = "; ".join(part for part in (audit.detail, actor.why) if part)
                audit = audit.model_copy(update={"actor": actor.who, "detail": detail[:1000]})
            batch = None
            if self.events is not None:
                from paybridge.domain.domain_events import invoice_changed

                changed_events = invoice_changed(current, result.invoice, now)
                batch = self.events.batch(f"{invoice_id}.v{result.invoice.version}", changed_events)
            try:
                if batch is None:
                    saved = self.repo.save(result.invoice, current.version, audit, provider_event)
                else:
                    saved = self.repo.save(result.invoice, current.version, audit, provider_event, outbox=batch)
            except ConcurrentModification:
                time.sleep(random.uniform(0, 0.01 * (attempt + 1)))  # noqa: S311 - jitter, not crypto
                continue
            change = Change(saved, changed=True, was_final=was_final)
            try:
                invoice_metrics.changed(self.metrics, current, saved.invoice, event, self.clock())
            except Exception:  # a metric never undoes a written change
                logger.exception("metrics of %s not recorded", invoice_id)
            if self.events is not None:
                self.events.deliver(batch)
            if announce is not None:
                self.announce(change, announce)
            return change
        raise ConcurrentModification(invoice_id)

    def announce(self, change: Change, event: str) -> None:
        """Publish a change to its deal (called by `apply`, or later by a caller with work to do first, e.g. a cancel
        at the PSP): the CRM outbox takes the deal's writes, deduplicated by invoice, version and event — whether
        the invoice is still open or its lifecycle is long over (a refund, money after expiry)."""
        self.deals.publish(change.invoice, event)
