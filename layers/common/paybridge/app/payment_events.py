"""Money facts from outside: a PSP's notification (verified first, recorded once, applied) and money a bank line
was matched to (`apply_money`). Both change the invoice through `InvoiceChanges`, which publishes the
change to the deal, so the deal follows the same way whichever told us."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from paybridge.adapters.psp.base import Acknowledgement, Notification, PaymentProvider
from paybridge.app.changes import Actor, Change, InvoiceChanges
from paybridge.app.errors import RouteNotConfigured, UnknownPayment
from paybridge.domain.events import InvoiceEvent, MoneyReceived, PaymentDeclined, RefundConfirmed, RefundFailed
from paybridge.domain.invoice import Invoice
from paybridge.storage.errors import DuplicateProviderEvent
from paybridge.storage.repository import InvoiceRepository, ProviderEventRecord
from paybridge.tenants import TenantConfig, TenantDirectory

logger = logging.getLogger(__name__)


class MethodSavedHandler(Protocol):
    """Who is told when a paid notification carries a saved payment method (the subscriptions service)."""

    def method_saved(self, tenant: TenantConfig, invoice_number: str, subscription_id: str, method: str) -> None: ...


@dataclass(frozen=True)
class NotificationResult:
    acknowledgement: Acknowledgement
    duplicate: bool = False
    invoice: Invoice | None = None


@dataclass
class PaymentEvents:
    tenants: TenantDirectory
    repo: InvoiceRepository
    changes: InvoiceChanges
    providers: Callable[[TenantConfig], PaymentProvider]
    subscriptions: MethodSavedHandler

    def accept_psp_notification(
        self, tenant_id: str, provider_name: str, headers: dict[str, str], body: bytes, source_ip: str | None = None
    ) -> NotificationResult:
        tenant = self.tenants.get(tenant_id)
        if tenant.psp.provider != provider_name:
            raise RouteNotConfigured(f"tenant {tenant_id} does not use the provider {provider_name!r}")
        provider = self.providers(tenant)
        # InvalidSignature / MalformedNotification: nothing written
        note = provider.verify_notification(headers, body, source_ip)
        invoice = self.repo.find_by_payment(provider.name, note.payment_id)
        if invoice is None or invoice.tenant_id != tenant_id:
            raise UnknownPayment(f"{provider.name} payment {note.payment_id} is not ours (yet)")
        # A provider whose payments are always for the whole invoice must notify that amount; anything else is
        # flagged to a manager. One that takes part-payments on one link is not held to that.
        expected = None if provider.supports_partial_payments else invoice.amount
        if note.refund_key is not None and note.refund_key not in invoice.refund_requests:
            note = note.model_copy(update={"refund_key": None})  # not asked through us: an outside refund
        if invoice.charge_method and note.kind == "paid":  # a subscription's charge of its saved method
            note = note.model_copy(update={"method": "saved_method"})
        event = _event_for(note, expected)
        record = ProviderEventRecord(
            provider=provider.name,
            event_id=note.event_id,
            tenant_id=tenant_id,
            invoice_id=invoice.invoice_id,
            summary=f"{note.raw_status} {note.amount}",
        )
        if event is None:
            try:
                self.repo.record_provider_event(record)
            except DuplicateProviderEvent:
                return NotificationResult(provider.acknowledgement(), duplicate=True, invoice=invoice)
            return NotificationResult(provider.acknowledgement(), invoice=invoice)
        try:
            change = self.changes.apply(tenant_id, invoice.invoice_id, event, record, announce=event.kind, read=invoice)
        except DuplicateProviderEvent:
            return NotificationResult(provider.acknowledgement(), duplicate=True, invoice=invoice)
        after = change.invoice
        if note.saved_method and after.subscription_id:
            self.subscriptions.method_saved(tenant, after.number, str(after.subscription_id), note.saved_method)
        return NotificationResult(provider.acknowledgement(), invoice=after)

    def apply_money(
        self,
        tenant_id: str,
        invoice_id: str,
        money: MoneyReceived,
        record: ProviderEventRecord,
        actor: Actor | None = None,
    ) -> Change:
        """Money matched from outside a PSP (a bank line's allocation, by the matcher or by a person: `actor`),
        recorded once by `record` (DuplicateProviderEvent when it was applied before)."""
        return self.changes.apply(tenant_id, invoice_id, money, record, announce=money.kind, actor=actor)


def _event_for(note: Notification, expected_amount: int | None) -> InvoiceEvent | None:
    if note.kind == "paid" and note.amount:
        return MoneyReceived(
            ref=note.operation_ref, amount=note.amount, expected_amount=expected_amount, method=note.method
        )
    if note.kind == "declined":
        return PaymentDeclined(ref=note.operation_ref, reason=note.detail or note.raw_status)
    if note.kind == "refunded" and note.amount:
        return RefundConfirmed(ref=note.operation_ref, amount=note.amount, request_key=note.refund_key)
    if note.kind == "refund_failed" and note.refund_key:
        return RefundFailed(key=note.refund_key, reason=note.detail or note.raw_status)
    logger.info("notification %s (%s) changes nothing", note.event_id, note.raw_status)
    return None
