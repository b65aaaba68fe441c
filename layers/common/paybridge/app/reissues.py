"""A person reissues the link of an expired, cancelled or failed invoice: a new payment attempt under the same
invoice number, its own order id at the provider (`<invoice>-<attempt>`) and its own lifecycle execution
(`<invoice>-a<attempt>`), whose CreatePayment makes the link and writes it into the deal (the CRM outbox).

The old attempt's payment is settled safely first, as the expiry does: the provider is asked; money it holds is
recorded (the invoice is paid, nothing is reissued); a held (authorised) payment is never released — the person is
told to capture or release it in the provider's cabinet; a payer paying right now means later; only a payment
that holds no money (`open`) is cancelled."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from paybridge.adapters.errors import ProviderRejected
from paybridge.adapters.lifecycle import LifecycleEngine
from paybridge.adapters.psp.base import PaymentPhase, PaymentProvider
from paybridge.app.changes import InvoiceChanges, utc_now
from paybridge.app.errors import LifetimeOutOfRange
from paybridge.app.levers import Commit, LeverOutcome, LeverRequest, LeverResult, LeverRunner
from paybridge.app.payment_checks import PaymentChecks
from paybridge.domain.errors import InvalidTransition
from paybridge.domain.events import Reissued, apply
from paybridge.domain.invoice import Invoice
from paybridge.storage.errors import ConcurrentModification
from paybridge.tenants import TenantConfig, TenantDirectory

HELD = (
    "the provider holds {amount} on payment {payment} (authorised, not captured): capture or release it in the "
    "provider's cabinet first — PayBridge never releases a hold"
)


def execution_name(invoice_id: str, attempt: int) -> str:
    return invoice_id if attempt == 1 else f"{invoice_id}-a{attempt}"


@dataclass
class Reissues:
    tenants: TenantDirectory
    changes: InvoiceChanges
    checks: PaymentChecks
    providers: Callable[[TenantConfig], PaymentProvider]
    lifecycle: LifecycleEngine
    runner: LeverRunner
    clock: Callable[[], datetime] = utc_now

    def reissue(self, request: LeverRequest, invoice_id: str, lifetime_seconds: int | None = None) -> LeverResult:
        tenant = self.tenants.get(request.tenant_id)
        provider = self.providers(tenant)
        lifetime = lifetime_seconds or tenant.link_lifetime_seconds
        low, high = provider.min_lifetime_seconds, provider.max_lifetime_seconds
        if not low <= lifetime <= high:
            raise LifetimeOutOfRange(f"{provider.name} accepts a link lifetime of {low} to {high} s, not {lifetime} s")

        def lever(commit: Commit) -> LeverOutcome:
            now = self.clock()
            event = Reissued(key=request.key, expires_at=now + timedelta(seconds=lifetime))
            invoice, phase = self._settled(tenant, invoice_id, event, request)
            commit()
            if phase == "open" and invoice.payment_id:
                self._cancel(provider, invoice.payment_id)
            change = self.changes.apply(tenant.tenant_id, invoice_id, event, actor=request.actor)
            attempt = change.invoice.reissues[request.key]
            # its own execution (unique name): CreatePayment makes the new link and writes it into the deal
            self.lifecycle.start(tenant.tenant_id, invoice_id, name=execution_name(invoice_id, attempt))
            return LeverOutcome(
                lever="reissue",
                key=request.key,
                actor=request.actor.who,
                reason=request.actor.why,
                target=invoice_id,
                detail=f"attempt {attempt}, order {invoice_id}-{attempt}",
                invoices=(self.changes.get(tenant.tenant_id, invoice_id),),
            )

        return self.runner.run(request, lever)

    def _settled(
        self, tenant: TenantConfig, invoice_id: str, event: Reissued, request: LeverRequest
    ) -> tuple[Invoice, PaymentPhase | None]:
        """The invoice as it may be reissued, and the phase of its old payment at the provider; raises when it may
        not (InvalidTransition: not closed, money received, a hold, a payer paying; ProviderUnavailable)."""
        for _ in range(5):
            invoice = self.changes.get(tenant.tenant_id, invoice_id)
            if request.key in invoice.reissues:
                return invoice, None  # this key reissued it already (a twin, or a retry): finish what it began
            apply(invoice, event, self.clock())  # InvalidTransition before the provider is even asked
            if invoice.payment_id is None:
                return invoice, None
            asked = self.checks.recheck(tenant.tenant_id, invoice_id, request.actor)
            if asked.invoice.payment_id != invoice.payment_id or request.key in asked.invoice.reissues:
                continue  # it moved on while we asked: look again
            if asked.invoice.paid > 0:
                raise InvalidTransition(
                    f"the provider holds {asked.invoice.describe_amount(asked.invoice.paid)} for this invoice: "
                    f"it is {asked.invoice.state.value} now, no new link is needed"
                )
            snapshot = asked.snapshot
            phase = snapshot.phase if snapshot is not None else None
            if phase == "held" and snapshot is not None:
                raise InvalidTransition(
                    HELD.format(amount=asked.invoice.describe_amount(snapshot.amount), payment=snapshot.payment_id)
                )
            if phase == "in_progress":
                raise InvalidTransition("the payer is paying the old link right now: try again in a few minutes")
            return asked.invoice, phase
        raise ConcurrentModification(invoice_id)

    def _cancel(self, provider: PaymentProvider, payment_id: str) -> None:
        """Withdraw the old payment, which the provider has just reported `open` (no money: nothing to refund)."""
        try:
            provider.cancel_payment(payment_id)
        except ProviderRejected:
            if provider.get_payment(payment_id).phase != "closed":
                raise
