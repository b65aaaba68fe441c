"""Asking the provider instead of waiting for it: "silence is not a fact".

`PaymentChecks.recheck` reads the payment at the provider and applies what it holds as the same money facts its
notifications would carry (named alike, so a notification that still arrives counts once), recorded as learnt by
asking. The expiry, the re-check sweep, `POST …/recheck` and the drift check all ask through here."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from paybridge.adapters.psp.base import PaymentProvider, PaymentSnapshot
from paybridge.app.changes import Actor, InvoiceChanges
from paybridge.domain.events import MoneyReceived
from paybridge.domain.invoice import Invoice
from paybridge.tenants import TenantConfig, TenantDirectory

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recheck:
    invoice: Invoice
    #: What the provider said (None: the invoice has no payment at the provider yet).
    snapshot: PaymentSnapshot | None
    #: Money facts the provider knew and we did not (0: we were up to date).
    learnt: int = 0


@dataclass
class PaymentChecks:
    tenants: TenantDirectory
    changes: InvoiceChanges
    providers: Callable[[TenantConfig], PaymentProvider]

    def recheck(self, tenant_id: str, invoice_id: str, actor: Actor, announce: bool = True) -> Recheck:
        """Ask the provider about the invoice's payment and apply what it holds. ProviderUnavailable when it cannot
        be asked (nothing is decided then). With `announce`, new money is published to the deal like a
        notification; the expiry task, which publishes its own outcome, asks without."""
        tenant = self.tenants.get(tenant_id)
        invoice = self.changes.get(tenant_id, invoice_id)
        if invoice.payment_id is None:
            return Recheck(invoice, None)
        provider = self.providers(tenant)
        snapshot = provider.get_payment(invoice.payment_id)
        expected = None if provider.supports_partial_payments else invoice.amount
        learnt = 0
        for fact in snapshot.receipts:
            if fact.ref in invoice.receipts:
                continue
            method = "saved_method" if invoice.charge_method else fact.method
            money = MoneyReceived(ref=fact.ref, amount=fact.amount, expected_amount=expected, method=method)
            why = f"{actor.why}; {provider.name} reports {snapshot.raw_status}".lstrip("; ")
            change = self.changes.apply(
                tenant_id,
                invoice_id,
                money,
                announce=money.kind if announce else None,
                actor=Actor(actor.who, why),
            )
            invoice = change.invoice
            learnt += int(change.changed)
        if learnt:
            logger.warning(
                "invoice %s: %s knew %d money fact(s) no notification told us", invoice_id, provider.name, learnt
            )
        return Recheck(invoice, snapshot, learnt)
