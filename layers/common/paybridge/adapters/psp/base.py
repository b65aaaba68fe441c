"""The PSP interface every provider adapter implements."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

from pydantic import ConfigDict

from paybridge.domain.invoice import Customer, PaymentMethod
from paybridge.domain.model import Model
from paybridge.domain.receipt import FiscalReceipt


class PaymentRequest(Model):
    model_config = ConfigDict(frozen=True)
    tenant_id: str
    invoice_id: str
    #: Our order id at the provider (= the invoice id, 30 chars); also the idempotency key of the create call.
    order_id: str
    amount: int
    currency: str
    description: str
    customer: Customer
    expires_at: datetime
    notification_url: str | None = None
    #: Where the provider sends the payer back after paying (when it asks for one).
    return_url: str | None = None
    #: The 54-FZ receipt, when the tenant sends receipts.
    receipt: FiscalReceipt | None = None
    #: Ask the provider to save the payment method for later charges without the payer (recurring payments); the
    #: paid notification then carries `saved_method`.
    save_method: bool = False


class CreatedPayment(Model):
    model_config = ConfigDict(frozen=True)
    payment_id: str
    payment_url: str
    qr_payload: str | None = None


class RefundOrder(Model):
    """A refund to make. `key` is the client's idempotency key: retries with it never refund twice."""

    model_config = ConfigDict(frozen=True)
    tenant_id: str
    invoice_id: str
    payment_id: str
    key: str
    amount: int
    currency: str
    #: The amount the payment had at the provider (some providers check or need it).
    payment_amount: int
    reason: str = ""
    receipt: FiscalReceipt | None = None


RefundState = Literal["succeeded", "pending", "failed"]


class RefundResult(Model):
    """The provider's answer to a refund: `ref` names the refund operation the same way its notifications will, so
    a confirmation seen twice (answer + notification) counts once."""

    model_config = ConfigDict(frozen=True)
    ref: str
    status: RefundState
    amount: int
    detail: str = ""


NotificationKind = Literal["paid", "declined", "cancelled", "refunded", "refund_failed", "ignored"]


class Notification(Model):
    """A verified provider notification, mapped to what it means for us."""

    model_config = ConfigDict(frozen=True)
    event_id: str
    payment_id: str
    kind: NotificationKind
    operation_ref: str
    amount: int | None = None
    raw_status: str
    detail: str = ""
    #: For refund notifications: our refund request key when the provider echoes it (metadata, ExternalRequestId).
    refund_key: str | None = None
    #: For a paid payment created with `save_method`: the provider's handle of the saved method, for `charge_saved`.
    saved_method: str | None = None
    #: For a paid notification: how the payer paid (`card`, `sbp`), from what the provider says.
    method: PaymentMethod | None = None


#: Where a payment stands at the provider, for deciding what may be done to it without a notification:
#: - `open`: no money, the payer can still pay — cancelling it withdraws the link and can refund nothing;
#: - `in_progress`: the payer is paying now (3-DS, authorising, an async method settling) — decide later;
#: - `held`: money authorised but not captured (two-stage) — cancelling would release it: never by expiry;
#: - `paid`: money taken (perhaps partly refunded since) — record it, never cancel;
#: - `closed`: no money, and it can no longer be paid (cancelled, expired, declined).
PaymentPhase = Literal["open", "in_progress", "held", "paid", "closed"]


class MoneyFact(Model):
    """Money the provider holds for the payment, named as its notifications name it (`Notification.operation_ref`),
    so that a fact learnt by asking and the same fact notified later count once."""

    model_config = ConfigDict(frozen=True)
    ref: str
    amount: int
    #: How it was paid (`card`, `sbp`), as the provider says; the same as its notification's `method`.
    method: PaymentMethod | None = None


class PaymentSnapshot(Model):
    """What the provider's API says of a payment now (its own status, mapped once per provider)."""

    model_config = ConfigDict(frozen=True)
    payment_id: str
    raw_status: str
    kind: NotificationKind
    amount: int
    paid_amount: int = 0
    refunded_amount: int = 0
    #: The saved payment method's handle, when the payment saved one (see `Notification.saved_method`).
    saved_method: str | None = None
    phase: PaymentPhase
    #: The money taken, one fact per operation (a provider that takes part-payments on one link has several).
    receipts: tuple[MoneyFact, ...] = ()
    #: What the provider pays out for this payment after its fee, where its API says (YooKassa `income_amount`);
    #: the settlement matcher uses it instead of estimating the fee.
    net_amount: int | None = None


class ChargeRequest(Model):
    """A charge of a saved payment method without the payer (a recurring payment). `order_id` is our order id at the
    provider and the idempotency key of the charge: a retry with it never charges twice."""

    model_config = ConfigDict(frozen=True)
    tenant_id: str
    invoice_id: str
    order_id: str
    amount: int
    currency: str
    description: str
    #: The provider's handle of the saved method (`Notification.saved_method` of the first payment).
    method: str
    customer: Customer
    receipt: FiscalReceipt | None = None


ChargeState = Literal["succeeded", "pending", "failed"]


class ChargeResult(Model):
    """The provider's answer to a charge: `pending` ends with a notification of `payment_id` like any payment."""

    model_config = ConfigDict(frozen=True)
    payment_id: str
    status: ChargeState
    detail: str = ""


class Acknowledgement(Model):
    """What the provider expects to hear back."""

    model_config = ConfigDict(frozen=True)
    status_code: int = 200
    body: str = ""
    content_type: str = "text/plain"


class PaymentProvider(Protocol):
    name: str
    #: The shortest link lifetime the provider accepts (T-Bank's RedirectDueDate: 1 minute).
    min_lifetime_seconds: int
    #: The longest (Stripe Checkout: 24 h; T-Bank: 90 days).
    max_lifetime_seconds: int
    #: Whether one payment can be paid in parts; if not, a notified amount other than the invoice's is flagged.
    supports_partial_payments: bool

    def create_payment(self, request: PaymentRequest) -> CreatedPayment:
        """Create the payment; idempotent by `request.order_id` (a retry returns the same payment)."""
        ...

    def cancel_payment(self, payment_id: str) -> None:
        """Withdraw an unpaid payment (the link stops working). ProviderRejected when it is already final.

        Careful: at some providers the same call refunds a paid payment (T-Bank's `Cancel`) or releases a held one.
        Call it only for a payment `get_payment` just reported `open`."""
        ...

    def refund(self, order: RefundOrder) -> RefundResult:
        """Refund (part of) a paid payment, idempotent by `order.key`. ProviderRejected when refused for good."""
        ...

    def get_payment(self, payment_id: str) -> PaymentSnapshot:
        """The payment as the provider's API reports it now (ProviderUnavailable when it cannot be asked)."""
        ...

    def charge_saved(self, request: ChargeRequest) -> ChargeResult:
        """Charge a saved payment method without the payer; idempotent by `request.order_id` (a retry returns the
        same payment). A decline is a `failed` result; ProviderRejected when the request itself is refused."""
        ...

    def verify_notification(self, headers: dict[str, str], body: bytes, source_ip: str | None = None) -> Notification:
        """Verify and parse; raise InvalidSignature or MalformedNotification. Headers are lower-cased."""
        ...

    def acknowledgement(self) -> Acknowledgement: ...
