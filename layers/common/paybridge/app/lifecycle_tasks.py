"""The payment lifecycle's task functions (statemachine/payment_lifecycle.asl.json): create the payment (or charge a
saved method), expire, fail. Each takes and returns the `LifecycleState` of `lifecycle_contract`, and publishes what
its change means for the deal itself (the CRM outbox, `DealPublisher`) — no state of the machine waits to do it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from paybridge.adapters.errors import ProviderRejected, ProviderUnavailable
from paybridge.adapters.psp.base import ChargeRequest, PaymentProvider, PaymentRequest
from paybridge.app.changes import Actor, InvoiceChanges, utc_now
from paybridge.app.deal_publishing import DealPublisher
from paybridge.app.lifecycle_contract import LifecycleState
from paybridge.app.payment_checks import PaymentChecks
from paybridge.app.receipts import receipt_for
from paybridge.domain.errors import InvalidTransition
from paybridge.domain.events import Close, MoneyReceived, PaymentCreated
from paybridge.domain.invoice import Closure, Invoice, InvoiceState
from paybridge.tenants import TenantConfig, TenantDirectory

logger = logging.getLogger(__name__)


#: Who the audit history names for what the expiry decides.
EXPIRY = Actor("expiry", "at the link's deadline")
HELD_REASON = (
    "срок ссылки истёк, но платёж {amount} удержан у {provider} (авторизован, не списан): подтвердите или отмените "
    "его в личном кабинете провайдера — PayBridge не снимает удержание сам"
)


def expiry_delay(attempt: int) -> int:
    """Seconds before the expiry asks the provider again: 1, 2, 4 … minutes, at most an hour."""
    return int(min(60 * 2**attempt, 3600))


class LinkPublishedHandler(Protocol):
    """Who is told when an invoice's payment link exists (reminders plan their reminders, the sweep its checks)."""

    def link_published(self, tenant: TenantConfig, invoice: Invoice, at: datetime) -> None: ...


@dataclass
class LifecycleTasks:
    tenants: TenantDirectory
    changes: InvoiceChanges
    providers: Callable[[TenantConfig], PaymentProvider]
    #: What the deal must show after each step, on the CRM outbox.
    deals: DealPublisher
    #: Told when a payment link exists (the reminders and the re-check sweep plan from it).
    published: Sequence[LinkPublishedHandler]
    checks: PaymentChecks
    public_base_url: str = ""
    clock: Callable[[], datetime] = utc_now

    def _state(self, invoice: Invoice, event: str) -> LifecycleState:
        return LifecycleState.of(invoice, self.clock(), event)

    def _published(self, invoice: Invoice, event: str) -> LifecycleState:
        """The step's outcome, published to the deal (a retried step publishes the same update: deduplicated) —
        unless the invoice changed again meanwhile (money on the new link, a cancel): that change published the
        newer state itself, and the deal's queue must not get this older one after it."""
        current = self.changes.get(invoice.tenant_id, invoice.invoice_id)
        if current.version == invoice.version:
            self.deals.publish(invoice, event)
        return self._state(current, event)

    def create_payment(self, tenant_id: str, invoice_id: str) -> LifecycleState:
        """Create the payment (idempotent by the invoice's order id at the PSP), store its link and publish it to the
        deal; a retry after any failure finds the link stored and only publishes again."""
        tenant = self.tenants.get(tenant_id)
        invoice = self.changes.get(tenant_id, invoice_id)
        needs_payment = invoice.payment_id is None and invoice.closed_as is None and invoice.is_open
        if needs_payment and invoice.charge_method:
            return self._charge_saved(tenant, invoice)
        if needs_payment:
            provider = self.providers(tenant)
            description = invoice.description or f"Счёт № {invoice.number}"
            created = provider.create_payment(
                PaymentRequest(
                    tenant_id=tenant_id,
                    invoice_id=invoice.invoice_id,
                    order_id=invoice.order_id,
                    amount=invoice.amount,
                    currency=invoice.currency,
                    description=description,
                    customer=invoice.customer,
                    expires_at=invoice.expires_at,
                    notification_url=self._notification_url(tenant),
                    return_url=tenant.return_url,
                    receipt=receipt_for(tenant, invoice, invoice.amount, invoice.items, description),
                    save_method=invoice.subscription_id is not None,
                )
            )
            event = PaymentCreated(
                payment_id=created.payment_id, payment_url=created.payment_url, qr_payload=created.qr_payload
            )
            try:
                invoice = self.changes.apply(tenant_id, invoice_id, event).invoice
                for handler in self.published:
                    handler.link_published(tenant, invoice, self.clock())
            except InvalidTransition:
                # Cancelled while the payment was being created: withdraw it at the PSP, end the lifecycle (the
                # cancel published itself).
                with contextlib.suppress(ProviderRejected):
                    provider.cancel_payment(created.payment_id)
                return self._state(self.changes.get(tenant_id, invoice_id), "payment_created")
        elif invoice.state is not InvoiceState.AWAITING_PAYMENT:
            # closed, paid or failed before this step (or between its tries): whoever changed it published that
            return self._state(invoice, "payment_created")
        return self._published(invoice, "payment_created")

    def _charge_saved(self, tenant: TenantConfig, invoice: Invoice) -> LifecycleState:
        """A recurring period's invoice: charge the saved method (idempotent by the invoice id at the PSP) instead of
        publishing a link. Declined: the invoice fails (the deal and the manager are told; the subscription retries
        on its dunning schedule with a new attempt)."""
        description = invoice.description or f"Счёт № {invoice.number}"
        result = self.providers(tenant).charge_saved(
            ChargeRequest(
                tenant_id=tenant.tenant_id,
                invoice_id=invoice.invoice_id,
                order_id=invoice.invoice_id,
                amount=invoice.amount,
                currency=invoice.currency,
                description=description,
                method=str(invoice.charge_method),
                customer=invoice.customer,
                receipt=receipt_for(tenant, invoice, invoice.amount, invoice.items, description),
            )
        )
        if result.status == "failed":
            reason = f"списание по подписке отклонено: {result.detail or 'отказ банка'}"
            failed = Close(closure=Closure.FAILED, reason=reason)
            return self._published(self.changes.apply(tenant.tenant_id, invoice.invoice_id, failed).invoice, "failed")
        created = PaymentCreated(payment_id=result.payment_id, payment_url="")
        invoice = self.changes.apply(tenant.tenant_id, invoice.invoice_id, created).invoice
        if result.status == "succeeded":
            money = MoneyReceived(ref=f"charge:{result.payment_id}", amount=invoice.amount, method="saved_method")
            invoice = self.changes.apply(tenant.tenant_id, invoice.invoice_id, money).invoice
        return self._published(invoice, "payment_created")

    def _notification_url(self, tenant: TenantConfig) -> str | None:
        if not self.public_base_url:
            return None
        return f"{self.public_base_url}/psp/{tenant.tenant_id}/{tenant.psp.provider}"

    def expire_invoice(self, tenant_id: str, invoice_id: str, attempt: int = 0) -> LifecycleState:
        """The link's deadline. The provider is asked first: money there is recorded (the invoice is paid, not
        expired); a payer paying right now, or a provider that cannot be asked, defers the decision (the lifecycle
        waits `expiry_delay(attempt)` and asks again — never a blind cancel). Only a payment that holds no money is
        cancelled at the provider; a held (authorised) one is left alone and the manager told."""
        tenant = self.tenants.get(tenant_id)
        invoice = self.changes.get(tenant_id, invoice_id)
        if not invoice.is_open or invoice.closed_as is not None:
            return self._state(invoice, "expired")  # money, a cancel or a person won the race: it published its state
        phase = None
        if invoice.payment_id is not None:
            try:
                asked = self.checks.recheck(tenant_id, invoice_id, EXPIRY, announce=False)
            except ProviderUnavailable as exc:
                logger.warning("expiry of %s deferred: the provider cannot be asked (%s)", invoice_id, exc)
                return self._defer(invoice, attempt, "provider_unavailable")
            invoice, phase = asked.invoice, asked.snapshot.phase if asked.snapshot else None
            if asked.learnt and not invoice.is_open:
                return self._published(invoice, "money_received")  # paid in time: the deal shows it, nothing expires
            if phase == "in_progress":
                return self._defer(invoice, attempt, "payment_in_progress")
        reason = "link expired"
        if phase == "held":
            reason = HELD_REASON.format(provider=invoice.provider, amount=invoice.describe_amount())
        change = self.changes.apply(tenant_id, invoice_id, Close(closure=Closure.EXPIRED, reason=reason), actor=EXPIRY)
        if change.changed and phase == "open" and change.invoice.payment_id:
            try:  # no money there: withdrawing the link cannot refund anything
                self.providers(tenant).cancel_payment(change.invoice.payment_id)
            except ProviderRejected as exc:
                logger.warning("PSP refused to cancel expired %s: %s", change.invoice.payment_id, exc)
        return self._published(change.invoice, "expired")

    def _defer(self, invoice: Invoice, attempt: int, event: str) -> LifecycleState:
        state = self._state(invoice, event)
        assert state.outcome is not None
        outcome = state.outcome.model_copy(update={"final": False, "seconds_left": expiry_delay(attempt)})
        return state.model_copy(update={"outcome": outcome, "expiry_attempt": attempt + 1})

    def mark_failed(self, tenant_id: str, invoice_id: str, reason: str) -> LifecycleState:
        try:
            failed = Close(closure=Closure.FAILED, reason=reason[:500])
            invoice = self.changes.apply(tenant_id, invoice_id, failed).invoice
        except InvalidTransition:  # it was cancelled (or paid) meanwhile: that state stands, and published itself
            return self._state(self.changes.get(tenant_id, invoice_id), "failed")
        return self._published(invoice, "failed")

    def sync_deal(self, tenant_id: str, invoice_id: str, event: str = "") -> LifecycleState:
        """Publish what the deal must show now (a person's re-sync, the drift repair): see `DealPublisher`."""
        return self._published(self.changes.get(tenant_id, invoice_id), event)

    def deal_stage(self, tenant: TenantConfig, invoice: Invoice) -> str:
        return self.deals.deal_stage(tenant, invoice)
