"""Issuing invoices: from the API, from a CRM deal (its webhook, robot or a batched deal check), and staged payments
(one invoice per stage). Idempotent: the invoice id comes from tenant + deal + number, the lifecycle execution is
named by it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from pydantic import ValidationError

from paybridge.adapters.crm.base import Crm, Deal
from paybridge.adapters.lifecycle import LifecycleEngine
from paybridge.adapters.outbox import CrmOutbox
from paybridge.adapters.psp.base import PaymentProvider
from paybridge.app import metrics as invoice_metrics
from paybridge.app.changes import utc_now
from paybridge.app.errors import DealNotInvoiceable, LifetimeOutOfRange, RouteNotConfigured
from paybridge.app.metrics import InvoiceMetrics, NoMetrics
from paybridge.app.receipts import receipt_for
from paybridge.domain.customer_profile import ProfileEntity, choose_entity
from paybridge.domain.deal_sync import DealCheck
from paybridge.domain.errors import InvoiceConflict, ScheduleError
from paybridge.domain.invoice import AuditEntry, Invoice, InvoiceState, NewInvoice, new_invoice, same_terms
from paybridge.domain.staged import StageSpec, part_number, parts, split_amounts
from paybridge.storage.repository import InvoiceRepository
from paybridge.tenants import TenantConfig, TenantDirectory

if TYPE_CHECKING:
    from paybridge.app.crm_actions import CrmActions
    from paybridge.app.deal_delivery import EchoLedger
    from paybridge.app.publishing import DomainEvents

logger = logging.getLogger(__name__)


class DealEntities(Protocol):
    """Where a deal's CRM contact or company is remembered (paybridge.storage.customer_profiles)."""

    def remember(self, tenant_id: str, deal_id: str, entity: ProfileEntity) -> None: ...


@dataclass(frozen=True)
class IssueResult:
    invoice: Invoice
    created: bool


@dataclass(frozen=True)
class PreparedInvoice:
    """An invoice that passed every check and is ready to be written."""

    request: NewInvoice
    invoice: Invoice
    audit: AuditEntry


@dataclass(frozen=True)
class CrmIssueResult:
    """What an inbound CRM call led to: the invoices it issued, the deals queued to be read (checks), and what it
    asked nothing of us for."""

    issued: tuple[IssueResult, ...]
    ignored: tuple[str, ...]
    checks: int = 0
    #: Events known as the echoes of our own writes (nothing to read, nothing queued).
    echoes: int = 0
    #: The tenant's CRM action triggers this call matched (a refund, a new link): one line each.
    actions: tuple[str, ...] = ()


@dataclass
class Issuing:
    tenants: TenantDirectory
    repo: InvoiceRepository
    lifecycle: LifecycleEngine
    providers: Callable[[TenantConfig], PaymentProvider]
    crms: Callable[[TenantConfig], Crm]
    outbox: CrmOutbox
    clock: Callable[[], datetime] = utc_now
    #: Our own writes remembered (see paybridge.app.deal_delivery.EchoLedger): their change events need no read.
    echoes: EchoLedger | None = None
    #: Counts the invoices created (the invoice-creating write), like `InvoiceChanges` counts their changes.
    metrics: InvoiceMetrics = field(default_factory=NoMetrics)
    #: Publishes `invoice.issued` once, through the outbox written with the invoice (`app/publishing.py`).
    events: DomainEvents | None = None
    #: The CRM action triggers (`app/crm_actions.py`), built only when a call matches one.
    crm_actions: Callable[[], CrmActions] | None = None
    #: Payments on the customer's profile: the entity of a deal read whole here is remembered, so its payments need
    #: no deal read at delivery (`storage/customer_profiles.py`).
    profiles: DealEntities | None = None

    def issue_invoice(self, tenant_id: str, request: NewInvoice, lifetime_given: bool = True) -> IssueResult:
        return self.commit(self.prepare(tenant_id, request, lifetime_given))

    def prepare(self, tenant_id: str, request: NewInvoice, lifetime_given: bool = True) -> PreparedInvoice:
        """Everything that can refuse an invoice, checked without writing: the link lifetime the provider accepts,
        the receipt. A request that issues several invoices prepares them all before it writes the first."""
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
        receipt_for(tenant, invoice, invoice.amount, invoice.items, invoice.description)  # ReceiptError: 422
        audit = AuditEntry(
            at=now,
            event="issued",
            from_state=InvoiceState.ISSUED,
            to_state=InvoiceState.ISSUED,
            amount=invoice.amount,
            detail=f"deal {invoice.deal_id}, number {invoice.number}",
        )
        return PreparedInvoice(request=request, invoice=invoice, audit=audit)

    def commit(self, prepared: PreparedInvoice) -> IssueResult:
        """Write a prepared invoice (idempotent by its id) and start its lifecycle."""
        batch = None
        if self.events is not None:
            from paybridge.domain.domain_events import invoice_issued

            batch = self.events.batch(f"{prepared.invoice.invoice_id}.v0", [invoice_issued(prepared.invoice)])
        if batch is None:
            stored, created = self.repo.create(prepared.invoice, prepared.audit)
        else:
            stored, created = self.repo.create(prepared.invoice, prepared.audit, outbox=batch)
        if self.events is not None and created:
            self.events.deliver(batch)
        elif self.events is not None:  # a repeat: publish what a crash may have left in the outbox
            self.events.recover(f"{stored.invoice_id}.v0")
        if not created and not same_terms(stored, prepared.request):
            raise InvoiceConflict(
                f"invoice {stored.number} of deal {stored.deal_id} was issued for {stored.describe_amount()}"
                " with other terms; use another invoice number"
            )
        if created:
            invoice_metrics.issued(self.metrics, stored)
        self.lifecycle.start(stored.tenant_id, stored.invoice_id)  # idempotent: also repairs a crash between the two
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
        ignored = list(webhook.ignored)
        checks = echoes = 0
        for n, command in enumerate(webhook.commands):
            if command.when_stage is not None:
                if self.echoes is not None and self.echoes.take(tenant_id, command.deal_id):
                    ignored.append(f"deal {command.deal_id}: the echo of our own write")
                    echoes += 1
                    continue
                check_id = f"{request_id or uuid.uuid4().hex}:{n}"
                self.outbox.publish(
                    DealCheck(
                        tenant_id=tenant_id, deal_id=command.deal_id, when_stage=command.when_stage, check_id=check_id
                    )
                )
                checks += 1
                continue
            issued.append(self.issue_for_deal(tenant, crm.get_deal(command.deal_id), command.number))
        actions: list[str] = []
        if webhook.moves and tenant.crm_actions and self.crm_actions is not None:
            echoed = {c.deal_id for c in webhook.commands if c.when_stage is not None} if echoes else set()
            actions = self.crm_actions().handle(tenant, crm, webhook.moves, skip=echoed)
        return CrmIssueResult(
            issued=tuple(issued), ignored=tuple(ignored), checks=checks, echoes=echoes, actions=tuple(actions)
        )

    def issue_for_deal(self, tenant: TenantConfig, deal: Deal, number: str | None = None) -> IssueResult:
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
        result = self.issue_invoice(tenant.tenant_id, request, lifetime_given=False)
        settings = tenant.crm.customer_profile
        if self.profiles is not None and settings is not None and settings.enabled:
            entity = choose_entity(settings.entity, deal.contact_id, deal.company_id)
            try:
                if entity is not None:
                    self.profiles.remember(tenant.tenant_id, deal.deal_id, entity)
            except Exception:  # a cache: the outbox consumer reads the deal when it is missing
                logger.exception("deal %s: its customer's entity not remembered", deal.deal_id)
        return result

    def issue_schedule(self, tenant_id: str, template: NewInvoice, stages: Sequence[StageSpec]) -> list[IssueResult]:
        """One deal paid in stages: an invoice per stage (`<number>/<k>`), each with its own lifecycle. Idempotent
        like a single invoice (the same schedule again returns the same invoices)."""
        amounts = split_amounts(template.amount, stages)  # ScheduleError: 422
        prepared = []
        for part, amount in zip(parts(template.number, stages), amounts, strict=True):
            fields = template.model_dump() | {
                "number": part_number(template.number, part.index),
                "amount": amount,
                "part": part.model_dump(),
                "items": (),
            }
            try:
                request = NewInvoice.model_validate(fields)
            except ValidationError as exc:
                raise ScheduleError(f"stage {part.index}: {exc.errors()[0]['msg']}") from None
            prepared.append(self.prepare(tenant_id, request))
        # Every stage passed: only now is anything written (a repeat, or a retry after a crash, completes the rest;
        # a conflicting stage is found before any stage is written)
        for item in prepared:
            existing = self.repo.get(tenant_id, item.invoice.invoice_id)
            if existing is not None and not same_terms(existing, item.request):
                raise InvoiceConflict(
                    f"invoice {existing.number} of deal {existing.deal_id} was issued for "
                    f"{existing.describe_amount()} with other terms; use another schedule number"
                )
        return [self.commit(item) for item in prepared]
