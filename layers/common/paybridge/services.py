"""Application services: each public method is one job a handler delegates to.

They know the domain and the adapters' interfaces, never Lambda, HTTP or boto3."""

from __future__ import annotations

import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from paybridge.adapters.crm.base import Crm, Deal, UpdateOutcome
from paybridge.adapters.errors import CrmRejected, CrmUnavailable, ProviderRejected
from paybridge.adapters.lifecycle import LifecycleEngine
from paybridge.adapters.outbox import Outbox
from paybridge.adapters.psp.base import (
    Acknowledgement,
    ChargeRequest,
    Notification,
    PaymentProvider,
    PaymentRequest,
    RefundOrder,
    RefundResult,
)
from paybridge.domain.deal_sync import DealCheck, DealUpdate, deal_update
from paybridge.domain.invoice import (
    FINAL_STATES,
    AuditEntry,
    Close,
    Closure,
    DomainError,
    InvalidTransition,
    Invoice,
    InvoiceConflict,
    InvoiceEvent,
    InvoiceState,
    MoneyReceived,
    NewInvoice,
    PaymentCreated,
    PaymentDeclined,
    RefundAccepted,
    RefundConfirmed,
    RefundFailed,
    RefundRequest,
    RefundRequested,
    apply,
    invoice_id_for,
    new_invoice,
    same_terms,
)
from paybridge.domain.receipt import (
    FiscalReceipt,
    ReceiptError,
    ReceiptItem,
    build_receipt,
    check_items_sum,
    refund_items,
)
from paybridge.domain.staged import StageSpec, deal_stage_kind, part_number, parts, split_amounts
from paybridge.storage.repository import (
    ConcurrentModification,
    DuplicateProviderEvent,
    InvoiceRepository,
    ProviderEventRecord,
    Saved,
)
from paybridge.tenants import TenantConfig, TenantDirectory, TenantNotFound

logger = logging.getLogger(__name__)

MAX_WRITE_ATTEMPTS = 25


class InvoiceNotFound(DomainError):
    pass


class RouteNotConfigured(DomainError):
    """The tenant does not use the provider or CRM named in the URL."""


class UnknownPayment(DomainError):
    """A verified notification for a payment we do not know (yet): the provider should retry."""


class DealNotInvoiceable(DomainError):
    """The CRM deal lacks what an invoice needs (an amount)."""


class LifetimeOutOfRange(DomainError):
    """The link lifetime is outside what the tenant's provider accepts (T-Bank ≥ 1 min, Stripe 30 min … 24 h)."""


@dataclass(frozen=True)
class IssueResult:
    invoice: Invoice
    created: bool


@dataclass(frozen=True)
class CrmIssueResult:
    """What an inbound CRM call led to: the invoices it issued, the deals queued to be read (checks), and what it
    asked nothing of us for."""

    issued: tuple[IssueResult, ...]
    ignored: tuple[str, ...]
    checks: int = 0


_M = TypeVar("_M", DealUpdate, DealCheck)


@dataclass(frozen=True)
class RefundView:
    key: str
    request: RefundRequest
    invoice: Invoice
    created: bool


@dataclass(frozen=True)
class NotificationResult:
    acknowledgement: Acknowledgement
    duplicate: bool = False
    invoice: Invoice | None = None
    seconds_to_pay: float | None = None  # set when this notification made the invoice paid


def outcome(invoice: Invoice, now: datetime, event: str = "") -> dict[str, Any]:
    """The lifecycle's view of an invoice: the state machine chooses on `final` and waits `seconds_left`."""
    seconds_left = int((invoice.expires_at - now).total_seconds())
    return {
        "state": invoice.state.value,
        "final": invoice.state in FINAL_STATES,
        "version": invoice.version,
        "paid": invoice.paid,
        "amount": invoice.amount,
        "seconds_left": max(seconds_left, 1),
        "event": event,
    }


def lifecycle_document(invoice: Invoice, now: datetime, event: str = "") -> dict[str, Any]:
    return {"tenant_id": invoice.tenant_id, "invoice_id": invoice.invoice_id, "outcome": outcome(invoice, now, event)}


@dataclass
class Services:
    repo: InvoiceRepository
    tenants: TenantDirectory
    lifecycle: LifecycleEngine
    providers: Callable[[TenantConfig], PaymentProvider]
    crms: Callable[[TenantConfig], Crm]
    outbox: Outbox
    public_base_url: str = ""
    #: Called once the payment link exists (reminders are planned from it).
    on_link_published: Callable[[TenantConfig, Invoice, datetime], None] | None = None
    #: Called when a paid notification carries a saved payment method (a subscription's first payment).
    on_method_saved: Callable[[TenantConfig, Invoice, str], None] | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    # -- helpers -------------------------------------------------------------------------------------------------

    def _invoice(self, tenant_id: str, invoice_id: str) -> Invoice:
        invoice = self.repo.get(tenant_id, invoice_id)
        if invoice is None:
            raise InvoiceNotFound(invoice_id)
        return invoice

    def change(
        self,
        tenant_id: str,
        invoice_id: str,
        event: InvoiceEvent,
        provider_event: ProviderEventRecord | None = None,
    ) -> tuple[Saved, bool]:
        """Apply `event` with optimistic concurrency: read, apply, conditional write; retry on a lost race."""
        for attempt in range(MAX_WRITE_ATTEMPTS):
            current = self._invoice(tenant_id, invoice_id)
            result = apply(current, event, self.clock())
            if not result.changed:
                if provider_event is not None:
                    self.repo.record_provider_event(provider_event)
                return Saved(invoice=current, task_token=None), False
            try:
                return self.repo.save(result.invoice, current.version, result.audit, provider_event), True
            except ConcurrentModification:
                time.sleep(random.uniform(0, 0.01 * (attempt + 1)))  # noqa: S311 - jitter, not crypto
        raise ConcurrentModification(invoice_id)

    def _resume(self, saved: Saved, event: str) -> None:
        if saved.task_token:
            self.lifecycle.resume(saved.task_token, lifecycle_document(saved.invoice, self.clock(), event))

    def announce(self, saved: Saved, was_final: bool, event: str) -> None:
        """Public for the other money paths (bank transfers): the same resume-or-publish as PSP payments."""
        self._announce(saved, was_final, event)

    def _announce(self, saved: Saved, was_final: bool, event: str) -> None:
        """Tell the lifecycle about a change: the waiting execution resumes; when the lifecycle is already over
        (a refund of a paid invoice, money after expiry), a short execution publishes the change to the deal."""
        invoice = saved.invoice
        if saved.task_token and self.lifecycle.resume(
            saved.task_token, lifecycle_document(invoice, self.clock(), event)
        ):
            return
        if was_final:  # the stored token (if any) belonged to a wait that is over
            document = lifecycle_document(invoice, self.clock(), event)
            self.lifecycle.publish(document, f"{invoice.invoice_id}-v{invoice.version}")

    def _receipt(
        self, tenant: TenantConfig, invoice: Invoice, amount: int, items: tuple[ReceiptItem, ...], name: str
    ) -> FiscalReceipt | None:
        if tenant.fiscal is None:
            return None
        customer = invoice.customer
        return build_receipt(tenant.fiscal, items, amount, customer.email, customer.phone, name)

    # -- issue -----------------------------------------------------------------------------------------------------

    def issue_invoice(self, tenant_id: str, request: NewInvoice, lifetime_given: bool = True) -> IssueResult:
        tenant = self.tenants.get(tenant_id)
        if not lifetime_given:
            request = request.model_copy(update={"lifetime_seconds": tenant.link_lifetime_seconds})
        provider = self.providers(tenant)
        low, high = provider.min_lifetime_seconds, provider.max_lifetime_seconds
        if not low <= request.lifetime_seconds <= high:
            raise LifetimeOutOfRange(
                f"{provider.name} accepts a link lifetime of {low} to {high} s, not {request.lifetime_seconds} s"
            )
        now = self.clock()
        invoice = new_invoice(tenant_id, request, provider.name, now)
        self._receipt(tenant, invoice, invoice.amount, invoice.items, invoice.description)  # ReceiptError: 422
        audit = AuditEntry(
            at=now,
            event="issued",
            from_state=InvoiceState.ISSUED,
            to_state=InvoiceState.ISSUED,
            amount=invoice.amount,
            detail=f"deal {invoice.deal_id}, number {invoice.number}",
        )
        stored, created = self.repo.create(invoice, audit)
        if not created and not same_terms(stored, request):
            raise InvoiceConflict(
                f"invoice {stored.number} of deal {stored.deal_id} was issued for {stored.describe_amount()}"
                " with other terms; use another invoice number"
            )
        self.lifecycle.start(tenant_id, stored.invoice_id)  # idempotent: also repairs a crash between the two
        return IssueResult(invoice=stored, created=created)

    def issue_from_crm(
        self,
        tenant_id: str,
        crm_name: str,
        headers: dict[str, str],
        body: bytes,
        query: dict[str, str] | None = None,
        request_id: str = "",
    ) -> CrmIssueResult:
        """An inbound CRM call. A call that names the deal and asks for an invoice (a robot, a status webhook that
        carries the status) issues it now; one that carries only the deal id (Bitrix24's ONCRMDEALUPDATE — raised by
        our own writes too) becomes a `DealCheck` on the outbox, read in a batch with others."""
        tenant = self.tenants.get(tenant_id)
        if tenant.crm.kind != crm_name:
            raise RouteNotConfigured(f"tenant {tenant_id} does not use the CRM {crm_name!r}")
        crm = self.crms(tenant)
        webhook = crm.parse_webhook(headers, body, query or {})  # InvalidSignature / MalformedNotification
        for reason in webhook.ignored:
            logger.info("crm webhook: %s", reason)
        issued: list[IssueResult] = []
        checks = 0
        for n, command in enumerate(webhook.commands):
            if command.when_stage is not None:
                check_id = f"{request_id or uuid.uuid4().hex}:{n}"
                self.outbox.publish(
                    DealCheck(
                        tenant_id=tenant_id, deal_id=command.deal_id, when_stage=command.when_stage, check_id=check_id
                    )
                )
                checks += 1
                continue
            issued.append(self._issue_for_deal(tenant, crm.get_deal(command.deal_id), command.number))
        return CrmIssueResult(issued=tuple(issued), ignored=webhook.ignored, checks=checks)

    def _issue_for_deal(self, tenant: TenantConfig, deal: Deal, number: str | None = None) -> IssueResult:
        if not deal.amount or deal.amount <= 0:
            raise DealNotInvoiceable(f"deal {deal.deal_id} has no amount to invoice")
        request = NewInvoice(
            deal_id=deal.deal_id,
            number=number or deal.invoice_number or deal.deal_id,
            amount=deal.amount,
            currency=deal.currency or tenant.currency,
            description=deal.title[:250],
            customer=deal.customer,
        )
        return self.issue_invoice(tenant.tenant_id, request, lifetime_given=False)

    # -- read / cancel ---------------------------------------------------------------------------------------------

    def get_invoice(self, tenant_id: str, invoice_id: str) -> tuple[Invoice, list[AuditEntry]]:
        self.tenants.get(tenant_id)
        invoice = self._invoice(tenant_id, invoice_id)
        return invoice, self.repo.history(tenant_id, invoice_id)

    def cancel_invoice(self, tenant_id: str, invoice_id: str, reason: str = "") -> Invoice:
        tenant = self.tenants.get(tenant_id)
        saved, changed = self.change(tenant_id, invoice_id, Close(closure=Closure.CANCELLED, reason=reason))
        if changed and saved.invoice.payment_id:
            try:
                self.providers(tenant).cancel_payment(saved.invoice.payment_id)
            except ProviderRejected as exc:  # already final at the PSP: money that still comes is recorded, flagged
                logger.warning("PSP refused to cancel %s: %s", saved.invoice.payment_id, exc)
        if changed:
            self._resume(saved, "cancelled")
        return saved.invoice

    # -- PSP notifications -----------------------------------------------------------------------------------------

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
        event = self._event_for(note, expected)
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
        was_paid = invoice.state is InvoiceState.PAID
        was_final = invoice.state in FINAL_STATES
        try:
            saved, changed = self.change(tenant_id, invoice.invoice_id, event, record)
        except DuplicateProviderEvent:
            return NotificationResult(provider.acknowledgement(), duplicate=True, invoice=invoice)
        if changed:
            self._announce(saved, was_final, event.kind)
        if note.saved_method and saved.invoice.subscription_id and self.on_method_saved is not None:
            self.on_method_saved(tenant, saved.invoice, note.saved_method)
        seconds_to_pay = None
        if changed and not was_paid and saved.invoice.state is InvoiceState.PAID:
            seconds_to_pay = max((self.clock() - saved.invoice.created_at).total_seconds(), 0.0)
        return NotificationResult(provider.acknowledgement(), invoice=saved.invoice, seconds_to_pay=seconds_to_pay)

    @staticmethod
    def _event_for(note: Notification, expected_amount: int | None) -> InvoiceEvent | None:
        if note.kind == "paid" and note.amount:
            return MoneyReceived(ref=note.operation_ref, amount=note.amount, expected_amount=expected_amount)
        if note.kind == "declined":
            return PaymentDeclined(ref=note.operation_ref, reason=note.detail or note.raw_status)
        if note.kind == "refunded" and note.amount:
            return RefundConfirmed(ref=note.operation_ref, amount=note.amount, request_key=note.refund_key)
        if note.kind == "refund_failed" and note.refund_key:
            return RefundFailed(key=note.refund_key, reason=note.detail or note.raw_status)
        logger.info("notification %s (%s) changes nothing", note.event_id, note.raw_status)
        return None

    # -- refunds -----------------------------------------------------------------------------------------------------

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
        invoice = self._invoice(tenant_id, invoice_id)
        existing = invoice.refund_requests.get(key)
        if existing is not None:
            if amount is not None and amount != existing.amount:
                raise InvoiceConflict(f"refund key {key!r} was used for {invoice.describe_amount(existing.amount)}")
            if existing.status != "pending" or existing.provider_ref is not None:
                return RefundView(key, existing, invoice, created=False)
            return self._send_refund(tenant, invoice, key, existing, created=False)
        if invoice.payment_id is None or invoice.paid == 0:
            raise InvalidTransition(f"invoice is {invoice.state.value}: nothing was paid, so nothing can be refunded")
        amount = invoice.refundable if amount is None else amount
        if amount <= 0:
            raise InvalidTransition("everything paid has already been refunded (or is being refunded)")
        if tenant.fiscal is not None:
            items = items or refund_items(invoice.items, invoice.amount, amount)
        check_items_sum(items, amount, "the refund")
        requested = RefundRequested(key=key, amount=amount, reason=reason, items=items)
        saved, _ = self.change(tenant_id, invoice_id, requested)
        request = saved.invoice.refund_requests[key]
        return self._send_refund(tenant, saved.invoice, key, request, created=True)

    def _send_refund(
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
            receipt=self._receipt(tenant, invoice, request.amount, request.items, name),
        )
        try:
            result = provider.refund(order)  # ProviderUnavailable: stays pending; the client retries with the key
        except ProviderRejected as exc:
            result = RefundResult(ref=f"rejected:{key}", status="failed", amount=request.amount, detail=str(exc))
        was_final = invoice.state in FINAL_STATES
        event: InvoiceEvent
        if result.status == "succeeded":
            event = RefundConfirmed(ref=result.ref, amount=result.amount, request_key=key)
        elif result.status == "failed":
            event = RefundFailed(key=key, reason=result.detail or "refused by the provider")
        else:
            event = RefundAccepted(key=key, ref=result.ref)
        saved, changed = self.change(invoice.tenant_id, invoice.invoice_id, event)
        if changed and event.kind in ("refund_confirmed", "refund_failed"):
            self._announce(saved, was_final, event.kind)
        return RefundView(key, saved.invoice.refund_requests[key], saved.invoice, created=created)

    # -- lifecycle tasks -------------------------------------------------------------------------------------------

    def create_payment(self, tenant_id: str, invoice_id: str) -> dict[str, Any]:
        tenant = self.tenants.get(tenant_id)
        invoice = self._invoice(tenant_id, invoice_id)
        if invoice.payment_id is None and invoice.closed_as is None and invoice.charge_method:
            return self._charge_saved(tenant, invoice)
        if invoice.payment_id is None and invoice.closed_as is None:
            provider = self.providers(tenant)
            description = invoice.description or f"Счёт № {invoice.number}"
            created = provider.create_payment(
                PaymentRequest(
                    tenant_id=tenant_id,
                    invoice_id=invoice.invoice_id,
                    order_id=invoice.invoice_id,
                    amount=invoice.amount,
                    currency=invoice.currency,
                    description=description,
                    customer=invoice.customer,
                    expires_at=invoice.expires_at,
                    notification_url=self._notification_url(tenant),
                    return_url=tenant.return_url,
                    receipt=self._receipt(tenant, invoice, invoice.amount, invoice.items, description),
                    save_method=invoice.subscription_id is not None,
                )
            )
            event = PaymentCreated(
                payment_id=created.payment_id, payment_url=created.payment_url, qr_payload=created.qr_payload
            )
            try:
                invoice = self.change(tenant_id, invoice_id, event)[0].invoice
                if self.on_link_published is not None:
                    self.on_link_published(tenant, invoice, self.clock())
            except InvalidTransition:
                # Cancelled while the payment was being created: withdraw it at the PSP, end the lifecycle.
                with contextlib.suppress(ProviderRejected):
                    provider.cancel_payment(created.payment_id)
                invoice = self._invoice(tenant_id, invoice_id)
        return lifecycle_document(invoice, self.clock(), "payment_created")

    def _charge_saved(self, tenant: TenantConfig, invoice: Invoice) -> dict[str, Any]:
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
                receipt=self._receipt(tenant, invoice, invoice.amount, invoice.items, description),
            )
        )
        if result.status == "failed":
            reason = f"списание по подписке отклонено: {result.detail or 'отказ банка'}"
            saved, _ = self.change(tenant.tenant_id, invoice.invoice_id, Close(closure=Closure.FAILED, reason=reason))
            return lifecycle_document(saved.invoice, self.clock(), "failed")
        saved, _ = self.change(
            tenant.tenant_id, invoice.invoice_id, PaymentCreated(payment_id=result.payment_id, payment_url="")
        )
        if result.status == "succeeded":
            money = MoneyReceived(ref=f"charge:{result.payment_id}", amount=invoice.amount)
            saved, _ = self.change(tenant.tenant_id, invoice.invoice_id, money)
        return lifecycle_document(saved.invoice, self.clock(), "payment_created")

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
            return self.lifecycle.resume(task_token, lifecycle_document(saved.invoice, self.clock(), event))
        return False

    def expire_invoice(self, tenant_id: str, invoice_id: str) -> dict[str, Any]:
        tenant = self.tenants.get(tenant_id)
        saved, changed = self.change(tenant_id, invoice_id, Close(closure=Closure.EXPIRED, reason="link expired"))
        if changed and saved.invoice.payment_id:
            try:
                self.providers(tenant).cancel_payment(saved.invoice.payment_id)
            except ProviderRejected as exc:
                logger.warning("PSP refused to cancel expired %s: %s", saved.invoice.payment_id, exc)
        return lifecycle_document(saved.invoice, self.clock(), "expired")

    def mark_failed(self, tenant_id: str, invoice_id: str, reason: str) -> dict[str, Any]:
        try:
            invoice = self.change(tenant_id, invoice_id, Close(closure=Closure.FAILED, reason=reason[:500]))[0].invoice
        except InvalidTransition:  # it was cancelled (or paid) meanwhile: that state stands
            invoice = self._invoice(tenant_id, invoice_id)
        return lifecycle_document(invoice, self.clock(), "failed")

    def sync_deal(self, tenant_id: str, invoice_id: str, event: str = "") -> dict[str, Any]:
        """Plan what the deal must show after this step and put it on the CRM outbox (delivered in order per deal,
        batched, within the CRM's rate limit — see `deliver_deal_updates`). Retrying the step enqueues nothing new."""
        tenant = self.tenants.get(tenant_id)
        invoice = self._invoice(tenant_id, invoice_id)
        update = deal_update(invoice, self._deal_stage(tenant, invoice), event)
        if update is not None:
            self.outbox.publish(update)
        return lifecycle_document(invoice, self.clock(), event)

    def _deal_stage(self, tenant: TenantConfig, invoice: Invoice) -> str:
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

    def issue_schedule(self, tenant_id: str, template: NewInvoice, stages: Sequence[StageSpec]) -> list[IssueResult]:
        """One deal paid in stages: an invoice per stage (`<number>/<k>`), each with its own lifecycle. Idempotent
        like a single invoice (the same schedule again returns the same invoices)."""
        amounts = split_amounts(template.amount, stages)  # ScheduleError: 422
        results = []
        for part, amount in zip(parts(template.number, stages), amounts, strict=True):
            request = template.model_copy(
                update={"number": part_number(template.number, part.index), "amount": amount, "part": part, "items": ()}
            )
            results.append(self.issue_invoice(tenant_id, NewInvoice.model_validate(request.model_dump())))
        return results

    def deliver_outbox(self, messages: Sequence[DealUpdate | DealCheck]) -> list[UpdateOutcome]:
        """A batch from the outbox: updates go to their CRMs (`deliver_deal_updates`), checks read their deals
        (`check_deals`). One outcome per message, in order."""
        outcomes: list[UpdateOutcome | None] = [None] * len(messages)
        updates = [(i, m) for i, m in enumerate(messages) if isinstance(m, DealUpdate)]
        checks = [(i, m) for i, m in enumerate(messages) if isinstance(m, DealCheck)]
        if updates:
            for (i, _), outcome in zip(updates, self.deliver_deal_updates([m for _, m in updates]), strict=True):
                outcomes[i] = outcome
        if checks:
            for (i, _), outcome in zip(checks, self.check_deals([m for _, m in checks]), strict=True):
                outcomes[i] = outcome
        return [o if o is not None else UpdateOutcome.retry("no outcome") for o in outcomes]

    def deliver_deal_updates(self, updates: Sequence[DealUpdate]) -> list[UpdateOutcome]:
        """Send outbox updates to their CRMs: one `apply` (batched by the adapter) per tenant, order kept. One outcome
        per update, in order."""
        return self._per_tenant(updates, lambda crm, _tenant, mine: crm.apply(mine))

    def check_deals(self, checks: Sequence[DealCheck]) -> list[UpdateOutcome]:
        """Read the deals (batched by the adapter) and issue an invoice for each that is in its trigger stage. A
        deal in another stage (our own write's echo, another edit) asks nothing; issuing is idempotent, so a check
        seen twice issues once."""

        def check(crm: Crm, tenant: TenantConfig, mine: Sequence[DealCheck]) -> list[UpdateOutcome]:
            deals = crm.get_deals(sorted({c.deal_id for c in mine}))  # CrmUnavailable: all retried
            outcomes = []
            for item in mine:
                deal = deals.get(item.deal_id)
                if deal is None or deal.stage != item.when_stage:
                    where = "gone" if deal is None else f"in stage {deal.stage}"
                    logger.info("deal %s is %s, not %s: nothing to issue", item.deal_id, where, item.when_stage)
                    outcomes.append(UpdateOutcome.done())
                    continue
                try:
                    self._issue_for_deal(tenant, crm.get_deal(deal.deal_id))  # whole, with the customer
                except (DealNotInvoiceable, InvoiceConflict, ReceiptError, LifetimeOutOfRange, CrmRejected) as exc:
                    outcomes.append(UpdateOutcome.park(f"deal {deal.deal_id}: {exc}"))
                except CrmUnavailable as exc:
                    outcomes.append(UpdateOutcome.retry(f"deal {deal.deal_id}: {exc}"))
                else:
                    outcomes.append(UpdateOutcome.done())
            return outcomes

        return self._per_tenant(checks, check)

    def _per_tenant(
        self, messages: Sequence[_M], run: Callable[[Crm, TenantConfig, Sequence[_M]], list[UpdateOutcome]]
    ) -> list[UpdateOutcome]:
        outcomes: list[UpdateOutcome | None] = [None] * len(messages)
        by_tenant: dict[str, list[int]] = {}
        for index, message in enumerate(messages):
            by_tenant.setdefault(message.tenant_id, []).append(index)
        for tenant_id, indexes in by_tenant.items():
            try:
                tenant = self.tenants.get(tenant_id)
                results = run(self.crms(tenant), tenant, [messages[i] for i in indexes])
            except TenantNotFound:
                results = [UpdateOutcome.park(f"tenant {tenant_id} is not configured")] * len(indexes)
            except (CrmUnavailable, CrmRejected) as exc:  # the adapter could not start (a secret) or read at all
                results = [UpdateOutcome.retry(str(exc))] * len(indexes)
            for index, result in zip(indexes, results, strict=True):
                outcomes[index] = result
        return [o if o is not None else UpdateOutcome.retry("no outcome") for o in outcomes]

    # -- operations ------------------------------------------------------------------------------------------------

    def stuck_invoices(self, deadline_before: datetime) -> list[Invoice]:
        return self.repo.open_invoices_due_before(deadline_before.isoformat())
