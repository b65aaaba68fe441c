"""The payment lifecycle's task functions (statemachine/payment_lifecycle.asl.json): create the payment (or charge a
saved method), wait for money, expire, fail, and plan what the deal must show. Each takes and returns the
`LifecycleState` of `lifecycle_contract`; none announces its change, since the state machine gets it as the answer."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from paybridge.adapters.errors import ProviderRejected, ProviderUnavailable
from paybridge.adapters.lifecycle import LifecycleEngine
from paybridge.adapters.outbox import CrmOutbox
from paybridge.adapters.psp.base import ChargeRequest, PaymentProvider, PaymentRequest
from paybridge.app.changes import Actor, InvoiceChanges, utc_now
from paybridge.app.lifecycle_contract import LifecycleState
from paybridge.app.payment_checks import PaymentChecks
from paybridge.app.receipts import receipt_for
from paybridge.domain.deal_sync import deal_update
from paybridge.domain.errors import InvalidTransition
from paybridge.domain.events import Close, MoneyReceived, PaymentCreated
from paybridge.domain.invoice import FINAL_STATES, Closure, Invoice, InvoiceState, invoice_id_for
from paybridge.domain.staged import deal_stage_kind, part_number
from paybridge.storage.repository import InvoiceRepository
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
    repo: InvoiceRepository
    changes: InvoiceChanges
    lifecycle: LifecycleEngine
    providers: Callable[[TenantConfig], PaymentProvider]
    outbox: CrmOutbox
    #: Told when a payment link exists (the reminders and the re-check sweep plan from it).
    published: Sequence[LinkPublishedHandler]
    checks: PaymentChecks
    public_base_url: str = ""
    clock: Callable[[], datetime] = utc_now

    def _state(self, invoice: Invoice, event: str) -> LifecycleState:
        return LifecycleState.of(invoice, self.clock(), event)

    def create_payment(self, tenant_id: str, invoice_id: str) -> LifecycleState:
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
                # Cancelled while the payment was being created: withdraw it at the PSP, end the lifecycle.
                with contextlib.suppress(ProviderRejected):
                    provider.cancel_payment(created.payment_id)
                invoice = self.changes.get(tenant_id, invoice_id)
        return self._state(invoice, "payment_created")

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
            return self._state(self.changes.apply(tenant.tenant_id, invoice.invoice_id, failed).invoice, "failed")
        created = PaymentCreated(payment_id=result.payment_id, payment_url="")
        invoice = self.changes.apply(tenant.tenant_id, invoice.invoice_id, created).invoice
        if result.status == "succeeded":
            money = MoneyReceived(ref=f"charge:{result.payment_id}", amount=invoice.amount, method="saved_method")
            invoice = self.changes.apply(tenant.tenant_id, invoice.invoice_id, money).invoice
        return self._state(invoice, "payment_created")

    def _notification_url(self, tenant: TenantConfig) -> str | None:
        if not self.public_base_url:
            return None
        return f"{self.public_base_url}/psp/{tenant.tenant_id}/{tenant.psp.provider}"

    def await_payment(self, task_token: str, tenant_id: str, invoice_id: str, version_seen: int) -> bool:
        """Store the task token; if the invoice changed since the lifecycle last looked (money arrived before the
        token was stored), resume at once. Returns True when it resumed."""
        saved = self.repo.set_task_token(tenant_id, invoice_id, task_token)
        if saved.invoice.version > version_seen or saved.invoice.state in FINAL_STATES:
            history = self.repo.history(tenant_id, invoice_id)
            event = history[-1].event if history else "changed"
            return self.lifecycle.resume(task_token, self._state(saved.invoice, event).document())
        return False

    def expire_invoice(self, tenant_id: str, invoice_id: str, attempt: int = 0) -> LifecycleState:
        """The link's deadline. The provider is asked first: money there is recorded (the invoice is paid, not
        expired); a payer paying right now, or a provider that cannot be asked, defers the decision (the lifecycle
        waits `expiry_delay(attempt)` and asks again — never a blind cancel). Only a payment that holds no money is
        cancelled at the provider; a held (authorised) one is left alone and the manager told."""
        tenant = self.tenants.get(tenant_id)
        invoice = self.changes.get(tenant_id, invoice_id)
        if not invoice.is_open or invoice.closed_as is not None:
            return self._state(invoice, "expired")  # money, a cancel or a person won the race: that state stands
        phase = None
        if invoice.payment_id is not None:
            try:
                asked = self.checks.recheck(tenant_id, invoice_id, EXPIRY, announce=False)
            except ProviderUnavailable as exc:
                logger.warning("expiry of %s deferred: the provider cannot be asked (%s)", invoice_id, exc)
                return self._defer(invoice, attempt, "provider_unavailable")
            invoice, phase = asked.invoice, asked.snapshot.phase if asked.snapshot else None
            if asked.learnt and not invoice.is_open:
                return self._state(invoice, "money_received")  # paid in time: the deal shows it, nothing expires
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
        return self._state(change.invoice, "expired")

    def _defer(self, invoice: Invoice, attempt: int, event: str) -> LifecycleState:
        state = self._state(invoice, event)
        assert state.outcome is not None
        outcome = state.outcome.model_copy(update={"final": False, "seconds_left": expiry_delay(attempt)})
        return state.model_copy(update={"outcome": outcome, "expiry_attempt": attempt + 1})

    def mark_failed(self, tenant_id: str, invoice_id: str, reason: str) -> LifecycleState:
        try:
            failed = Close(closure=Closure.FAILED, reason=reason[:500])
            invoice = self.changes.apply(tenant_id, invoice_id, failed).invoice
        except InvalidTransition:  # it was cancelled (or paid) meanwhile: that state stands
            invoice = self.changes.get(tenant_id, invoice_id)
        return self._state(invoice, "failed")

    def sync_deal(self, tenant_id: str, invoice_id: str, event: str = "") -> LifecycleState:
        """Plan what the deal must show after this step and put it on the CRM outbox (delivered in order per deal,
        batched, within the CRM's rate limit — see `DealDelivery`). Retrying the step enqueues nothing new."""
        tenant = self.tenants.get(tenant_id)
        invoice = self.changes.get(tenant_id, invoice_id)
        update = deal_update(invoice, self.deal_stage(tenant, invoice), event)
        if update is not None:
            self.outbox.publish(update)
        return self._state(invoice, event)

    def deal_stage(self, tenant: TenantConfig, invoice: Invoice) -> str:
        """The stage from the tenant's mapping; for a part of a staged payment, the schedule as a whole decides while
        money is coming in ("Advance paid" until every part is paid)."""
        part = invoice.part
        if part is None or invoice.state not in (
            InvoiceState.AWAITING_PAYMENT,
            InvoiceState.PARTIALLY_PAID,
            InvoiceState.PAID,
        ):
            return tenant.stages.stage_for(invoice.state)
        states = []
        for index in range(1, part.count + 1):
            sibling_id = invoice_id_for(tenant.tenant_id, invoice.deal_id, part_number(part.schedule_number, index))
            sibling = invoice if sibling_id == invoice.invoice_id else self.repo.get(tenant.tenant_id, sibling_id)
            if sibling is not None:
                states.append(sibling.state)
        kind = deal_stage_kind(states) if len(states) == part.count else None
        return tenant.stages.stage_for_schedule(kind) if kind else tenant.stages.stage_for(invoice.state)
