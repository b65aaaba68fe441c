"""What happens to an invoice, and the one function that applies it.

Each event is a fact (money received, a refund confirmed, a closure, a person's lever); `apply` is pure: the same
event applied twice changes nothing, and events applied in any order end in the same state, so a replayed or
reordered notification can never move an invoice backwards. The invoice itself, and its state derived from its
facts, are in `domain/invoice.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import ConfigDict, Field

from paybridge.domain.errors import InvalidTransition, InvoiceConflict
from paybridge.domain.invoice import (
    OPEN_STATES,
    REISSUABLE,
    AuditEntry,
    Closure,
    Customer,
    Invoice,
    InvoiceState,
    ManualMethod,
    ManualPayment,
    PaymentMethod,
    RefundRequest,
)
from paybridge.domain.model import Model
from paybridge.domain.money import PositiveMinorUnits
from paybridge.domain.receipt import ReceiptItem


class PaymentCreated(Model):
    model_config = ConfigDict(frozen=True)
    kind: Literal["payment_created"] = "payment_created"
    payment_id: str
    payment_url: str
    qr_payload: str | None = None


class MoneyReceived(Model):
    """Money arrived: `ref` identifies the operation at the provider or bank (dedupe key inside the invoice)."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["money_received"] = "money_received"
    ref: str
    amount: PositiveMinorUnits
    expected_amount: int | None = None
    #: How it was paid, from what the provider or the bank says (None: not told).
    method: PaymentMethod | None = None


class PaymentDeclined(Model):
    model_config = ConfigDict(frozen=True)
    kind: Literal["payment_declined"] = "payment_declined"
    ref: str
    reason: str = ""


class Close(Model):
    model_config = ConfigDict(frozen=True)
    kind: Literal["close"] = "close"
    closure: Closure
    reason: str = ""


class RefundRequested(Model):
    """We are about to ask the provider for a refund: reserve the amount under the client's key."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["refund_requested"] = "refund_requested"
    key: str
    amount: PositiveMinorUnits
    reason: str = ""
    items: tuple[ReceiptItem, ...] = ()


class RefundConfirmed(Model):
    """The provider confirmed a refund: `ref` is its reference of the refund operation (dedupe key); `request_key`
    links it to our request when it was ours."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["refund_confirmed"] = "refund_confirmed"
    ref: str
    amount: PositiveMinorUnits
    request_key: str | None = None


class RefundAccepted(Model):
    """The provider took our refund request and will confirm it later under `ref`."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["refund_accepted"] = "refund_accepted"
    key: str
    ref: str


class RefundFailed(Model):
    """The provider refused (or gave up on) our refund request: the reserved amount is free again."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["refund_failed"] = "refund_failed"
    key: str
    reason: str = ""


class PaidOutside(Model):
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


class Reissued(Model):
    """A person reissues the link of an expired, cancelled or failed invoice that holds no money: the closure and
    the old payment are cleared (the money facts stay), the attempt goes up and the link gets a new deadline."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["reissued"] = "reissued"
    key: str = Field(min_length=1, max_length=64)
    expires_at: datetime


class DealResynced(Model):
    """A person asked that the deal show this invoice again (written to the CRM); changes no fact, only the audit."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["deal_resynced"] = "deal_resynced"
    key: str = Field(min_length=1, max_length=64)


class CustomerErased(Model):
    """The customer's personal data (name, e-mail, phone, INN) erased from a closed invoice: by the tenant's retention
    period, or at the person's request. The money facts, the numbers and the audit history stay."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["customer_erased"] = "customer_erased"
    key: str = Field(min_length=1, max_length=80)


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
    | CustomerErased
)


class Applied(Model):
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
            if event.method is not None:
                updates["receipt_methods"] = {**invoice.receipt_methods, event.ref: event.method}
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
                "receipt_methods": {**invoice.receipt_methods, event.ref: "manual"},
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
        case CustomerErased():
            held = [name for name, value in invoice.customer.model_dump().items() if value]
            if not held:
                return Applied(invoice=invoice, changed=False)
            if before in OPEN_STATES:
                raise InvalidTransition("an open invoice keeps its customer's data until it is closed")
            updates = {"customer": Customer(), "customer_erased_at": at}
            ref, detail = event.key, "erased: " + ", ".join(held)
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
    if new.paid_at is None and new.paid >= new.amount:
        new = new.model_copy(update={"paid_at": at})  # the first time it was paid in full (for time to pay)
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
