"""Payment reminders: planned when an invoice's link is published, sent by a schedule that reads due invoices from
an index, never after payment, cancellation or expiry, never twice for the same offset."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from paybridge.adapters.notify import MessageSender, SendFailed
from paybridge.domain.invoice import Invoice
from paybridge.domain.reminders import REMINDABLE, Reminder, due_now, render, schedule
from paybridge.storage.reminders import ReminderItem
from paybridge.tenants import ReminderChannel, ReminderSettings, TenantConfig, TenantDirectory, TenantNotFound

logger = logging.getLogger(__name__)


class ReminderStore(Protocol):
    def plan(self, tenant_id: str, invoice_id: str, published_at: datetime, first_due: datetime | None) -> None: ...

    def due(self, now: datetime, limit: int = 200) -> list[ReminderItem]: ...

    def claim(self, item: ReminderItem, key: str, next_due: datetime | None) -> bool: ...

    def reindex(self, item: ReminderItem, next_due: datetime) -> None: ...

    def release(self, item: ReminderItem, key: str) -> None: ...

    def stop(self, item: ReminderItem) -> None: ...


class InvoiceReader(Protocol):
    def get(self, tenant_id: str, invoice_id: str) -> Invoice | None: ...


@dataclass
class SentReminder:
    tenant_id: str
    invoice_id: str
    key: str
    channels: list[str] = field(default_factory=list)


def _schedule(settings: ReminderSettings, invoice: Invoice, published_at: datetime) -> list[Reminder]:
    quiet = (settings.quiet_hours.start, settings.quiet_hours.end) if settings.quiet_hours else None
    return schedule(
        published_at,
        invoice.expires_at,
        settings.after_issue_minutes,
        settings.before_expiry_minutes,
        settings.zone,
        quiet,
    )


@dataclass
class Reminders:
    store: ReminderStore
    tenants: TenantDirectory
    invoices: InvoiceReader
    senders: Callable[[TenantConfig, ReminderChannel], MessageSender]

    def link_published(self, tenant: TenantConfig, invoice: Invoice, at: datetime) -> None:
        """The lifecycle published the invoice's link: plan its reminders."""
        self.plan(tenant, invoice, at)

    def plan(self, tenant: TenantConfig, invoice: Invoice, now: datetime) -> None:
        """Index the invoice under its first reminder (if the tenant sends any)."""
        if tenant.reminders is None:
            return
        reminders = _schedule(tenant.reminders, invoice, now)
        self.store.plan(tenant.tenant_id, invoice.invoice_id, now, reminders[0].due_at if reminders else None)

    def send_due(self, now: datetime) -> list[SentReminder]:
        sent: list[SentReminder] = []
        for item in self.store.due(now):
            try:
                result = self._one(item, now)
            except TenantNotFound:
                self.store.stop(item)
                continue
            if result is not None:
                sent.append(result)
        return sent

    def _one(self, item: ReminderItem, now: datetime) -> SentReminder | None:
        tenant = self.tenants.get(item.tenant_id)
        invoice = self.invoices.get(item.tenant_id, item.invoice_id)
        settings = tenant.reminders
        if invoice is None or settings is None or invoice.state not in REMINDABLE or invoice.expires_at <= now:
            self.store.stop(item)  # paid, cancelled, expired (or reminders switched off): never again
            return None
        current, following = due_now(_schedule(settings, invoice, item.published_at), item.sent, now)
        if current is None:  # only later ones: re-index under the next
            if following is None:
                self.store.stop(item)
            else:
                self.store.reindex(item, following.due_at)
            return None
        if not self.store.claim(item, current.key, following.due_at if following else None):
            return None  # an overlapping run took it
        subject, text = render(invoice, settings.language, settings.zone, settings.templates.get(settings.language))
        result = SentReminder(item.tenant_id, item.invoice_id, current.key)
        for channel in settings.channels:
            to = invoice.customer.email if channel == "email" else invoice.customer.phone
            if not to:
                continue
            try:
                self.senders(tenant, channel).send(to, subject, text, invoice.deal_id)
            except SendFailed as exc:
                logger.warning("reminder %s of %s by %s failed: %s", current.key, invoice.invoice_id, channel, exc)
                if not result.channels:  # nothing went out: due again next run
                    self.store.release(item, current.key)
                    return None
                continue
            result.channels.append(channel)
        return result
