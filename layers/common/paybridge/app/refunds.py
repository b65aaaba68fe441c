"""Refunds through our API: reserved on the invoice under the client's key, then asked of the provider with it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from paybridge.adapters.errors import ProviderRejected
from paybridge.adapters.psp.base import PaymentProvider, RefundOrder, RefundResult
from paybridge.app.changes import InvoiceChanges
from paybridge.app.receipts import receipt_for
from paybridge.domain.errors import InvalidTransition, InvoiceConflict
from paybridge.domain.events import InvoiceEvent, RefundAccepted, RefundConfirmed, RefundFailed, RefundRequested
from paybridge.domain.invoice import Invoice, RefundRequest
from paybridge.domain.receipt import ReceiptItem, check_items_sum, refund_items
from paybridge.tenants import TenantConfig, TenantDirectory


@dataclass(frozen=True)
class RefundView:
    key: str
    request: RefundRequest
    invoice: Invoice
    created: bool


@dataclass
class Refunds:
    tenants: TenantDirectory
    changes: InvoiceChanges
    providers: Callable[[TenantConfig], PaymentProvider]

    def refund_invoice(
        self,
        tenant_id: str,
        invoice_id: str,
        key: str,
        amount: int | None = None,
        reason: str = "",
        items: tuple[ReceiptItem, ...] = (),
    ) -> RefundView:
        """Refund `amount` (default: all that is refundable) once per client `key`. The amount is reserved on the
        invoice before the provider is asked, so concurrent refunds can never exceed what was paid; a repeat with
        the same key returns the first result (and re-asks the provider, with the same key, if it is still
        pending after an outage)."""
        tenant = self.tenants.get(tenant_id)
        invoice = self.changes.get(tenant_id, invoice_id)
        existing = invoice.refund_requests.get(key)
        if existing is not None:
            if amount is not None and amount != existing.amount:
                raise InvoiceConflict(f"refund key {key!r} was used for {invoice.describe_amount(existing.amount)}")
            if existing.status != "pending" or existing.provider_ref is not None:
                return RefundView(key, existing, invoice, created=False)
            return self._send(tenant, invoice, key, existing, created=False)
        if invoice.payment_id is None or invoice.paid == 0:
            raise InvalidTransition(f"invoice is {invoice.state.value}: nothing was paid, so nothing can be refunded")
        amount = invoice.refundable if amount is None else amount
        if amount <= 0:
            raise InvalidTransition("everything paid has already been refunded (or is being refunded)")
        if tenant.fiscal is not None:
            items = items or refund_items(invoice.items, invoice.amount, amount)
        check_items_sum(items, amount, "the refund")
        requested = RefundRequested(key=key, amount=amount, reason=reason, items=items)
        reserved = self.changes.apply(tenant_id, invoice_id, requested).invoice
        return self._send(tenant, reserved, key, reserved.refund_requests[key], created=True)

    def _send(
        self, tenant: TenantConfig, invoice: Invoice, key: str, request: RefundRequest, created: bool
    ) -> RefundView:
        assert invoice.payment_id is not None
        provider = self.providers(tenant)
        name = f"Возврат по счёту № {invoice.number}"
        order = RefundOrder(
            tenant_id=invoice.tenant_id,
            invoice_id=invoice.invoice_id,
            payment_id=invoice.payment_id,
            key=key,
            amount=request.amount,
            currency=invoice.currency,
            payment_amount=invoice.paid,
            reason=request.reason,
            receipt=receipt_for(tenant, invoice, request.amount, request.items, name),
        )
        try:
            result = provider.refund(order)  # ProviderUnavailable: stays pending; the client retries with the key
        except ProviderRejected as exc:
            result = RefundResult(ref=f"rejected:{key}", status="failed", amount=request.amount, detail=str(exc))
        event: InvoiceEvent
        if result.status == "succeeded":
            event = RefundConfirmed(ref=result.ref, amount=result.amount, request_key=key)
        elif result.status == "failed":
            event = RefundFailed(key=key, reason=result.detail or "refused by the provider")
        else:
            event = RefundAccepted(key=key, ref=result.ref)
        # Only an outcome is told to the deal; an accepted refund waits for its confirmation
        announce = event.kind if event.kind in ("refund_confirmed", "refund_failed") else None
        change = self.changes.apply(invoice.tenant_id, invoice.invoice_id, event, announce=announce)
        return RefundView(key, change.invoice.refund_requests[key], change.invoice, created=created)
