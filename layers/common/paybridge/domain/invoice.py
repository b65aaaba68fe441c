"""The invoice: its identity, terms and money facts, and its state derived from them.

The state of an invoice is *derived* from its money facts (`receipts`, `refunds`, each keyed by the provider's
reference of the operation) and from its closure (expired / cancelled / failed), in `derive_state`, one place. What
changes an invoice — the events, and the pure `apply` — is in `domain/events.py`.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from paybridge.domain.model import Model
from paybridge.domain.money import Currency, MinorUnits, PositiveMinorUnits, format_money
from paybridge.domain.receipt import ReceiptItem, ReceiptItems, check_items_sum

TenantId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,39}$", description="Tenant slug")]
InvoiceId = Annotated[str, Field(pattern=r"^inv_[a-z2-7]{26}$", description="PayBridge invoice id")]
DealId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\w.:-]+$")]
InvoiceNumber = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[\w./-]+$")]
Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
Phone = Annotated[str, Field(pattern=r"^\+[1-9]\d{7,14}$", description="E.164")]


class InvoiceState(StrEnum):
    ISSUED = "issued"
    AWAITING_PAYMENT = "awaiting_payment"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Closure(StrEnum):
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    FAILED = "failed"


#: States in which the invoice still waits for money.
OPEN_STATES = frozenset({InvoiceState.ISSUED, InvoiceState.AWAITING_PAYMENT, InvoiceState.PARTIALLY_PAID})
#: States in which the payment lifecycle (the state machine execution) ends.
FINAL_STATES = frozenset(set(InvoiceState) - OPEN_STATES)

Flag = Literal["overpaid", "paid_after_close", "amount_mismatch"]


class Customer(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    email: Email | None = None
    phone: Phone | None = None
    #: The payer's INN where known (10 digits: a company, 12: a person); bank transfers from another INN are not
    #: matched to this invoice automatically.
    inn: str | None = Field(default=None, pattern=r"^\d{10}(\d{2})?$")

    @property
    def holds_data(self) -> bool:
        """Any personal data at all (what retention and erasure remove; an empty string is none)."""
        return any(self.model_dump().values())


class AuditEntry(Model):
    model_config = ConfigDict(frozen=True)
    at: datetime
    event: str
    from_state: InvoiceState
    to_state: InvoiceState
    amount: int | None = None
    ref: str | None = None
    detail: str = ""
    #: Who made the change when it was not a provider or bank fact: a person's lever (`ops:<name>`), the re-check
    #: sweep, the expiry. `detail` then says why.
    actor: str | None = None


RefundStatus = Literal["pending", "succeeded", "failed"]


class RefundRequest(Model):
    """A refund we asked the provider for, keyed in the invoice by the client's idempotency key. While `pending` its
    amount is reserved, so two refunds asked at once can never together exceed what was paid."""

    model_config = ConfigDict(frozen=True)
    amount: PositiveMinorUnits
    status: RefundStatus = "pending"
    reason: str = ""
    items: tuple[ReceiptItem, ...] = ()
    provider_ref: str | None = None
    detail: str = ""


ManualMethod = Literal["cash", "bank_transfer", "other"]

#: How money reached the invoice, per money fact: a card or SBP payment at the provider, a bank transfer matched
#: from a statement, a charge of a saved method (a subscription's period), or money a person recorded (`manual`).
PaymentMethod = Literal["card", "sbp", "bank_transfer", "saved_method", "manual"]
PAYMENT_METHODS: tuple[PaymentMethod, ...] = ("card", "sbp", "bank_transfer", "saved_method", "manual")


class ManualPayment(Model):
    """Money a person recorded as received outside PayBridge (cash at the office, a transfer to another account),
    keyed in the invoice by the person's idempotency key; its money fact is the receipt `manual:<key>`."""

    model_config = ConfigDict(frozen=True)
    amount: PositiveMinorUnits
    method: ManualMethod
    reference: str = ""


#: Closures a person may reissue a new payment link for (a new attempt under the same invoice number).
REISSUABLE = frozenset({Closure.EXPIRED, Closure.CANCELLED, Closure.FAILED})


class InvoicePart(Model):
    """This invoice is stage `index` of `count` of a staged payment (e.g. 1 of 2, "Аванс 30%") for one deal; the
    stages' invoices are numbered `<schedule number>/<index>` and each has its own lifecycle."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    index: int = Field(ge=1, le=12)
    count: int = Field(ge=2, le=12)
    name: str = Field(min_length=1, max_length=100)
    schedule_number: InvoiceNumber


class Invoice(Model):
    """The aggregate. Stored as one item; every change goes through `apply` and a conditional write on `version`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant_id: TenantId
    invoice_id: InvoiceId
    deal_id: DealId
    number: InvoiceNumber
    amount: PositiveMinorUnits
    currency: Currency
    description: str = Field(default="", max_length=250)
    customer: Customer = Field(default_factory=Customer)
    items: ReceiptItems = ()
    provider: str
    created_at: datetime
    expires_at: datetime
    payment_id: str | None = None
    payment_url: str | None = None
    qr_payload: str | None = None
    receipts: dict[str, MinorUnits] = Field(default_factory=dict)
    #: How each receipt was paid (same keys as `receipts`; older invoices and unknown methods have no entry).
    receipt_methods: dict[str, PaymentMethod] = Field(default_factory=dict)
    refunds: dict[str, MinorUnits] = Field(default_factory=dict)
    declines: dict[str, str] = Field(default_factory=dict)
    refund_requests: dict[str, RefundRequest] = Field(default_factory=dict)
    closed_as: Closure | None = None
    close_reason: str = ""
    flags: tuple[Flag, ...] = ()
    part: InvoicePart | None = None
    #: Recurring payments: the subscription this invoice belongs to (its first invoice saves the payment method)…
    subscription_id: str | None = None
    #: …and, for a later period, the saved method the lifecycle charges instead of publishing a link.
    charge_method: str | None = None
    #: Payments recorded by a person (see `ManualPayment`), by idempotency key.
    manual_payments: dict[str, ManualPayment] = Field(default_factory=dict)
    #: Reissued links: the person's idempotency key → the attempt it started (2, 3, …); the first attempt is 1.
    reissues: dict[str, int] = Field(default_factory=dict)
    #: The provider payments of earlier attempts (cancelled or closed before the reissue), oldest first.
    previous_payment_ids: tuple[str, ...] = ()
    #: When the money first covered the amount (kept after a refund: the invoice was paid); time to pay is counted
    #: from `created_at` to this. None on invoices paid before it was recorded.
    paid_at: datetime | None = None
    #: When the customer's personal data was erased (retention or a person's request); `customer` is empty since.
    customer_erased_at: datetime | None = None
    version: int = 0

    @property
    def paid(self) -> int:
        return sum(self.receipts.values())

    @property
    def paid_by_method(self) -> dict[str, int]:
        """The money received per method (`unknown` for receipts whose method was not told)."""
        totals: dict[str, int] = {}
        for ref, amount in self.receipts.items():
            method = self.receipt_methods.get(ref, "unknown")
            totals[method] = totals.get(method, 0) + amount
        return totals

    @property
    def refunded(self) -> int:
        """Refunded of what is known to be paid. A refund the provider confirms before we hear of its payment (a
        notification overtaking another) is kept in `refunds` and counts here once its payment is known — so the
        same facts in any order give the same state."""
        return min(sum(self.refunds.values()), self.paid)

    @property
    def refund_awaiting_payment(self) -> int:
        """Confirmed refunds of money we have not heard of yet (applied when the payment's notification arrives)."""
        return sum(self.refunds.values()) - self.refunded

    @property
    def refund_pending(self) -> int:
        return sum(r.amount for r in self.refund_requests.values() if r.status == "pending")

    @property
    def refundable(self) -> int:
        """What may still be refunded: paid, less refunded, less refunds asked for and not yet answered."""
        return max(self.paid - self.refunded - self.refund_pending, 0)

    @property
    def outstanding(self) -> int:
        return max(self.amount - self.paid, 0)

    @property
    def state(self) -> InvoiceState:
        return derive_state(self)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def attempt(self) -> int:
        """Which payment attempt the invoice is on: 1, and one more for every reissued link."""
        return 1 + len(self.reissues)

    @property
    def order_id(self) -> str:
        """Our order id at the provider for this attempt (providers dedupe by it, so a new attempt needs its own).
        At most 33 characters (T-Bank allows 36)."""
        return self.invoice_id if self.attempt == 1 else f"{self.invoice_id}-{self.attempt}"

    @property
    def execution_name(self) -> str:
        """The lifecycle execution of this attempt (execution names are unique per state machine)."""
        return self.invoice_id if self.attempt == 1 else f"{self.invoice_id}-a{self.attempt}"

    def describe_amount(self, amount: int | None = None) -> str:
        return format_money(self.amount if amount is None else amount, self.currency)


def derive_state(invoice: Invoice) -> InvoiceState:
    """One place where the state is computed from the facts."""
    paid, refunded = invoice.paid, invoice.refunded
    if refunded > 0:
        return InvoiceState.REFUNDED if refunded >= paid else InvoiceState.PARTIALLY_REFUNDED
    if paid >= invoice.amount:
        return InvoiceState.PAID
    if invoice.closed_as is not None:
        return InvoiceState(invoice.closed_as.value)
    if paid > 0:
        return InvoiceState.PARTIALLY_PAID
    if invoice.payment_url is not None:
        return InvoiceState.AWAITING_PAYMENT
    return InvoiceState.ISSUED


def invoice_id_for(tenant_id: str, deal_id: str, number: str) -> str:
    """Deterministic id: the same tenant + deal + invoice number always names the same invoice (idempotent issue).

    30 characters, so it also fits providers' order ids (T-Bank: at most 36)."""
    digest = hashlib.sha256(f"{tenant_id}\x1f{deal_id}\x1f{number}".encode()).digest()
    return "inv_" + base64.b32encode(digest).decode("ascii").lower()[:26]


class NewInvoice(Model):
    """What is needed to issue an invoice (already validated at the boundary)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    deal_id: DealId
    number: InvoiceNumber
    amount: PositiveMinorUnits
    currency: Currency = "RUB"
    description: str = Field(default="", max_length=250)
    customer: Customer = Field(default_factory=Customer)
    items: ReceiptItems = ()
    lifetime_seconds: int = Field(default=3 * 24 * 3600, ge=1, le=90 * 24 * 3600)
    part: InvoicePart | None = None
    subscription_id: str | None = None
    charge_method: str | None = None

    @model_validator(mode="after")
    def _items_add_up(self) -> NewInvoice:
        check_items_sum(self.items, self.amount)
        return self


def new_invoice(tenant_id: str, request: NewInvoice, provider: str, now: datetime) -> Invoice:
    return Invoice(
        tenant_id=tenant_id,
        invoice_id=invoice_id_for(tenant_id, request.deal_id, request.number),
        deal_id=request.deal_id,
        number=request.number,
        amount=request.amount,
        currency=request.currency,
        description=request.description,
        customer=request.customer,
        items=request.items,
        provider=provider,
        created_at=now,
        expires_at=now + timedelta(seconds=request.lifetime_seconds),
        part=request.part,
        subscription_id=request.subscription_id,
        charge_method=request.charge_method,
    )


def same_terms(invoice: Invoice, request: NewInvoice) -> bool:
    """A repeated issue is the same invoice only if it asks for the same money from the same customer."""
    return (
        invoice.amount == request.amount
        and invoice.currency == request.currency
        and (invoice.customer == request.customer or invoice.customer_erased_at is not None)
        and invoice.items == request.items
    )
