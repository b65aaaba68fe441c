"""A person records a payment made outside PayBridge (cash at the office, a transfer to another account): the money
fact `manual:<key>` lands once, audited with who and why, and the deal follows like after any payment. Once the
invoice is paid, its provider link is withdrawn — safely: only a payment the provider reports `open` (no money)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from paybridge.adapters.errors import ProviderRejected, ProviderUnavailable
from paybridge.adapters.psp.base import PaymentProvider
from paybridge.app.changes import InvoiceChanges
from paybridge.app.levers import Commit, LeverOutcome, LeverRequest, LeverResult, LeverRunner
from paybridge.app.payment_checks import PaymentChecks
from paybridge.domain.events import PaidOutside, apply
from paybridge.domain.invoice import InvoiceState, ManualMethod
from paybridge.tenants import TenantConfig, TenantDirectory

logger = logging.getLogger(__name__)


@dataclass
class ManualPayments:
    tenants: TenantDirectory
    changes: InvoiceChanges
    checks: PaymentChecks
    providers: Callable[[TenantConfig], PaymentProvider]
    runner: LeverRunner

    def record(
        self, request: LeverRequest, invoice_id: str, amount: int, method: ManualMethod, reference: str
    ) -> LeverResult:
        tenant = self.tenants.get(request.tenant_id)
        event = PaidOutside(key=request.key, amount=amount, method=method, reference=reference)

        def lever(commit: Commit) -> LeverOutcome:
            invoice = self.changes.get(tenant.tenant_id, invoice_id)
            apply(invoice, event)  # InvalidTransition / InvoiceConflict: refused before anything is written
            commit()
            change = self.changes.apply(tenant.tenant_id, invoice_id, event, announce=event.kind, actor=request.actor)
            invoice = change.invoice
            if invoice.state is InvoiceState.PAID and invoice.payment_id:
                self._withdraw_link(tenant, invoice_id, request)
                invoice = self.changes.get(tenant.tenant_id, invoice_id)
            detail = f"{invoice.describe_amount(amount)} by {method}" + (f", {reference}" if reference else "")
            return LeverOutcome(
                lever="manual_payment",
                key=request.key,
                actor=request.actor.who,
                reason=request.actor.why,
                target=invoice_id,
                detail=detail,
                invoices=(invoice,),
            )

        return self.runner.run(request, lever)

    def _withdraw_link(self, tenant: TenantConfig, invoice_id: str, request: LeverRequest) -> None:
        """The invoice is paid: the payer must not pay its link too. Ask the provider first (money it holds is
        recorded — flagged overpaid, never lost) and cancel only a payment that holds none."""
        try:
            asked = self.checks.recheck(tenant.tenant_id, invoice_id, request.actor)
            if asked.snapshot is not None and asked.snapshot.phase == "open":
                with contextlib.suppress(ProviderRejected):  # closed meanwhile: nothing to withdraw
                    self.providers(tenant).cancel_payment(asked.snapshot.payment_id)
        except ProviderUnavailable as exc:  # the link stays: money paid on it is still recorded, and flagged
            logger.warning("paid outside, but the link of %s could not be withdrawn: %s", invoice_id, exc)
