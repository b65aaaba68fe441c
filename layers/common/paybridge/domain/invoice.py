"""The invoice and its lifecycle.

The state of an invoice is *derived* from its money facts (`receipts`, `refunds`, each keyed by the provider's
reference of the operation) and from its closure (expired / cancelled / failed). Applying an event is a pure function:
the same event applied twice changes nothing, and events applied in any order end in the same state, so a replayed
or reordered notification can never move an invoice backwards.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from paybridge.domain.errors import InvalidTransition, InvoiceConflict
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


class Customer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    email: Email | None = None
    phone: Phone | None = None
    #: The payer's INN where known (10 digits: a company, 12: a person); bank transfers from another INN are not
    #: matched to this invoice automatically.
    inn: str | None = Field(default=None, pattern=r"^\d{10}(\d{2})?$")


class AuditEntry(BaseModel):
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


class RefundRequest(BaseModel):
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


class ManualPayment(BaseModel):
    """Money a person recorded as received outside PayBridge (cash at the office, a transfer to another account),
    keyed in the invoice by the person's idempotency key; its money fact is the receipt `manual:<key>`."""

    model_config = ConfigDict(frozen=True)
    amount: PositiveMinorUnits
    method: ManualMethod
    reference: str = ""


#: Closures a person may reissue a new payment link for (a new attempt under the same invoice number).
REISSUABLE = frozenset({Closure.EXPIRED, Closure.CANCELLED, Closure.FAILED})


class InvoicePart(BaseModel):
    """This invoice is stage `index` of `count` of a staged payment (e.g. 1 of 2, "Аванс 30%") for one deal; the
    stages' invoices are numbered `<schedule number>/<index>` and each has its own lifecycle."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    index: int = Field(ge=1, le=12)
    count: int = Field(ge=2, le=12)
    name: str = Field(min_length=1, max_length=100)
    schedule_number: InvoiceNumber


class Invoice(BaseModel):
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
    version: int = 0

    @property
    def paid(self) -> int:
        return sum(self.receipts.values())

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


class NewInvoice(BaseModel):
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
        and invoice.customer == request.customer
        and invoice.items == request.items
    )


# ---------------------------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------------------------


class PaymentCreated(BaseModel):
    model_config = ConfigDict(frozen=True)
    kind: Literal["payment_created"] = "payment_created"
    payment_id: str
    payment_url: str
    qr_payload: str | None = None


class MoneyReceived(BaseModel):
    """Money arrived: `ref` identifies the operation at the provider or bank (dedupe key inside the invoice)."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["money_received"] = "money_received"
    ref: str
    amount: PositiveMinorUnits
    expected_amount: int | None = None


class PaymentDeclined(BaseModel):
    model_config = ConfigDict(frozen=True)
    kind: Literal["payment_declined"] = "payment_declined"
    ref: str
    reason: str = ""


class Close(BaseModel):
    model_config = ConfigDict(frozen=True)
    kind: Literal["close"] = "close"
    closure: Closure
    reason: str = ""


class RefundRequested(BaseModel):
    """We are about to ask the provider for a refund: reserve the amount under the client's key."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["refund_requested"] = "refund_requested"
    key: str
    amount: PositiveMinorUnits
    reason: str = ""
    items: tuple[ReceiptItem, ...] = ()


class RefundConfirmed(BaseModel):
    """The provider confirmed a refund: `ref` is its reference of the refund operation (dedupe key); `request_key`
    links it to our request when it was ours."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["refund_confirmed"] = "refund_confirmed"
    ref: str
    amount: PositiveMinorUnits
    request_key: str | None = None


class RefundAccepted(BaseModel):
    """The provider took our refund request and will confirm it later under `ref`."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["refund_accepted"] = "refund_accepted"
    key: str
    ref: str


class RefundFailed(BaseModel):
    """The provider refused (or gave up on) our refund request: the reserved amount is free again."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["refund_failed"] = "refund_failed"
    key: str
    reason: str = ""


class PaidOutside(BaseModel):
    """A person records money received outside PayBridge; `key` (their idempotency key) makes it land once."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["paid_outside"] = "paid_outside"
    key: str = Field(min_length=1, max_length=64)
    amount: PositiveMinorUnits
    method: ManualMethod
    reference: str = Field(default="", max_length=200)

    @property
    def ref(self) -> str:
        return f"manual:{self.key}"


class Reissued(BaseModel):
    """A person reissues the link of an expired, cancelled or failed invoice that holds no money: the closure and
    the old payment are cleared (the money facts stay), the attempt goes up and the link gets a new deadline."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["reissued"] = "reissued"
    key: str = Field(min_length=1, max_length=64)
    expires_at: datetime


class DealResynced(BaseModel):
    """A person asked that the deal show this invoice again (written to the CRM); changes no fact, only the audit."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["deal_resynced"] = "deal_resynced"
    key: str = Field(min_length=1, max_length=64)


InvoiceEvent = (
    PaymentCreated
    | MoneyReceived
    | PaidOutside
    | Reissued
    | DealResynced
    | PaymentDeclined
    | Close
    | RefundRequested
    | RefundAccepted
    | RefundConfirmed
    | RefundFailed
)


class Applied(BaseModel):
    """The result of applying an event: the new invoice and its audit entry, or `changed=False` for a no-op."""

    model_config = ConfigDict(frozen=True)
    invoice: Invoice
    changed: bool
    audit: AuditEntry | None = None


def apply(invoice: Invoice, event: InvoiceEvent, at: datetime | None = None) -> Applied:
    """Apply one event. Idempotent and order-insensitive for money; raises `InvalidTransition` when not allowed."""
    at = at or datetime.now(UTC)
    before = invoice.state
    updates: dict[str, object] = {}
    amount: int | None = None
    ref: str | None = None
    detail = ""

    match event:
        case PaymentCreated():
            if invoice.payment_id == event.payment_id:
                return Applied(invoice=invoice, changed=False)
            if invoice.payment_id is not None:
                raise InvalidTransition(f"invoice already has payment {invoice.payment_id}")
            if invoice.closed_as is not None:
                raise InvalidTransition(f"invoice is {invoice.closed_as.value}")
            updates = {"payment_id": event.payment_id, "payment_url": event.payment_url, "qr_payload": event.qr_payload}
            ref = event.payment_id
        case MoneyReceived():
            if event.ref in invoice.receipts:
                return Applied(invoice=invoice, changed=False)
            receipts = {**invoice.receipts, event.ref: event.amount}
            flags = set(invoice.flags)
            # Only a closure (expired, cancelled, failed) makes money late; a refund does not close an invoice (the
            # rest of a partial payment after a partial refund is not "after close", in whichever order they come)
            if invoice.closed_as is not None:
                flags.add("paid_after_close")
            if sum(receipts.values()) > invoice.amount:
                flags.add("overpaid")
            if event.expected_amount is not None and event.expected_amount != event.amount:
                flags.add("amount_mismatch")
            updates = {"receipts": receipts, "flags": tuple(sorted(flags))}
            amount, ref = event.amount, event.ref
        case PaidOutside():
            manual = ManualPayment(amount=event.amount, method=event.method, reference=event.reference)
            known = invoice.manual_payments.get(event.key)
            if known is not None:
                if known != manual:
                    raise InvoiceConflict(
                        f"key {event.key!r} recorded {invoice.describe_amount(known.amount)} by {known.method}"
                    )
                return Applied(invoice=invoice, changed=False)
            if event.amount > invoice.outstanding:
                raise InvalidTransition(
                    f"{invoice.describe_amount(event.amount)} exceeds the outstanding "
                    f"{invoice.describe_amount(invoice.outstanding)}"
                )
            receipts = {**invoice.receipts, event.ref: event.amount}
            flags = set(invoice.flags)
            if invoice.closed_as is not None:
                flags.add("paid_after_close")
            updates = {
                "receipts": receipts,
                "manual_payments": {**invoice.manual_payments, event.key: manual},
                "flags": tuple(sorted(flags)),
            }
            amount, ref = event.amount, event.ref
            detail = event.method + (f" {event.reference}" if event.reference else "")
        case Reissued():
            if event.key in invoice.reissues:
                return Applied(invoice=invoice, changed=False)
            _check_reissue(invoice)
            if event.expires_at <= at:
                raise InvalidTransition("a reissued link must expire in the future")
            previous = invoice.previous_payment_ids + ((invoice.payment_id,) if invoice.payment_id else ())
            updates = {
                "closed_as": None,
                "close_reason": "",
                "payment_id": None,
                "payment_url": None,
                "qr_payload": None,
                "expires_at": event.expires_at,
                "previous_payment_ids": previous,
                "reissues": {**invoice.reissues, event.key: invoice.attempt + 1},
            }
            ref = invoice.payment_id
            detail = f"attempt {invoice.attempt + 1} (was {invoice.closed_as.value if invoice.closed_as else ''})"
        case DealResynced():
            ref = event.key
        case PaymentDeclined():
            if event.ref in invoice.declines or before not in OPEN_STATES:
                return Applied(invoice=invoice, changed=False)
            updates = {"declines": {**invoice.declines, event.ref: event.reason}}
            ref, detail = event.ref, event.reason
        case Close():
            if invoice.closed_as == event.closure:
                return Applied(invoice=invoice, changed=False)
            if event.closure is Closure.EXPIRED and (before not in OPEN_STATES or invoice.closed_as is not None):
                return Applied(invoice=invoice, changed=False)  # money (or a cancel) won the race with the deadline
            _check_close(invoice, event.closure)
            updates = {"closed_as": event.closure, "close_reason": event.reason}
            detail = event.reason
        case RefundRequested():
            existing = invoice.refund_requests.get(event.key)
            if existing is not None:
                if existing.amount != event.amount:
                    raise InvoiceConflict(
                        f"refund key {event.key!r} was used for {invoice.describe_amount(existing.amount)}"
                    )
                return Applied(invoice=invoice, changed=False)
            if event.amount > invoice.refundable:
                raise InvalidTransition(
                    f"refund of {invoice.describe_amount(event.amount)} exceeds the refundable "
                    f"{invoice.describe_amount(invoice.refundable)}"
                )
            request = RefundRequest(amount=event.amount, reason=event.reason, items=event.items)
            updates = {"refund_requests": {**invoice.refund_requests, event.key: request}}
            amount, ref, detail = event.amount, event.key, event.reason
        case RefundAccepted():
            accepted = invoice.refund_requests.get(event.key)
            if accepted is None:
                raise InvalidTransition(f"no refund request {event.key!r}")
            if accepted.status != "pending" or accepted.provider_ref is not None:  # the provider named it once
                return Applied(invoice=invoice, changed=False)
            # Its confirmation may have come first (a notification overtaking the API answer): then it is done
            status = "succeeded" if event.ref in invoice.refunds else "pending"
            changed_request = accepted.model_copy(update={"provider_ref": event.ref, "status": status})
            updates = {"refund_requests": {**invoice.refund_requests, event.key: changed_request}}
            amount, ref = accepted.amount, event.ref
        case RefundConfirmed():
            if event.request_key is not None and event.request_key not in invoice.refund_requests:
                raise InvalidTransition(f"no refund request {event.request_key!r}")
            requests = dict(invoice.refund_requests)
            # Ours when it names our key, or when the provider already named it to us (RefundAccepted)
            key = event.request_key
            if key is None and event.ref not in invoice.refunds:
                key = next(
                    (k for k, r in requests.items() if r.provider_ref == event.ref and r.status == "pending"), None
                )
            linked = requests.get(key) if key else None
            if key and linked is not None and linked.status != "succeeded":
                requests[key] = linked.model_copy(update={"status": "succeeded", "provider_ref": event.ref})
            if event.ref in invoice.refunds:
                if requests == invoice.refund_requests:
                    return Applied(invoice=invoice, changed=False)
                updates = {"refund_requests": requests}  # known refund, now linked to our request
            else:
                # A confirmed refund is a fact at the provider: always kept. When it exceeds what we know was paid,
                # its payment's notification has not reached us yet; it counts once that arrives (`refunded`).
                updates = {"refunds": {**invoice.refunds, event.ref: event.amount}, "refund_requests": requests}
            amount, ref = event.amount, event.ref
        case RefundFailed():
            failed = invoice.refund_requests.get(event.key)
            if failed is None:
                raise InvalidTransition(f"no refund request {event.key!r}")
            if failed.status != "pending":
                return Applied(invoice=invoice, changed=False)
            requests = {
                **invoice.refund_requests,
                event.key: failed.model_copy(update={"status": "failed", "detail": event.reason[:500]}),
            }
            updates = {"refund_requests": requests}
            amount, ref, detail = failed.amount, event.key, event.reason

    new = invoice.model_copy(update={**updates, "version": invoice.version + 1})
    audit = AuditEntry(
        at=at, event=event.kind, from_state=before, to_state=new.state, amount=amount, ref=ref, detail=detail
    )
    return Applied(invoice=new, changed=True, audit=audit)


def _check_reissue(invoice: Invoice) -> None:
    if invoice.closed_as not in REISSUABLE:
        raise InvalidTransition(
            f"only an expired, cancelled or failed invoice gets a new link; this one is {invoice.state.value}"
        )
    if invoice.paid > 0:
        raise InvalidTransition(
            f"{invoice.describe_amount(invoice.paid)} was received for this invoice ({invoice.state.value}): "
            "issue a new invoice for the rest instead"
        )
    if invoice.charge_method is not None:
        raise InvalidTransition("a subscription's charge is retried by the subscription, not reissued")


def _check_close(invoice: Invoice, closure: Closure) -> None:
    state = invoice.state
    if closure is Closure.CANCELLED and state not in (InvoiceState.ISSUED, InvoiceState.AWAITING_PAYMENT):
        raise InvalidTransition(f"an invoice that is {state.value} cannot be cancelled; refund it instead")
    if closure is Closure.FAILED and state is not InvoiceState.ISSUED:
        raise InvalidTransition(f"an invoice that is {state.value} cannot fail")
    if invoice.closed_as is not None:
        raise InvalidTransition(f"invoice is already {invoice.closed_as.value}")
