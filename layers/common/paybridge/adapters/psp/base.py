"""The PSP interface every provider adapter implements."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from paybridge.domain.invoice import Customer


class PaymentRequest(BaseModel):
    model_config = ConfigDict(frozen=True)
    invoice_id: str
    order_id: str
    amount: int
    currency: str
    description: str
    customer: Customer
    expires_at: datetime
    notification_url: str | None = None


class CreatedPayment(BaseModel):
    model_config = ConfigDict(frozen=True)
    payment_id: str
    payment_url: str
    qr_payload: str | None = None


NotificationKind = Literal["paid", "declined", "cancelled", "refunded", "ignored"]


class Notification(BaseModel):
    """A verified provider notification, mapped to what it means for us."""

    model_config = ConfigDict(frozen=True)
    event_id: str
    payment_id: str
    kind: NotificationKind
    operation_ref: str
    amount: int | None = None
    raw_status: str
    detail: str = ""


class Acknowledgement(BaseModel):
    """What the provider expects to hear back."""

    model_config = ConfigDict(frozen=True)
    status_code: int = 200
    body: str = ""
    content_type: str = "text/plain"


class PaymentProvider(Protocol):
    name: str
    #: The shortest link lifetime the provider accepts (T-Bank's RedirectDueDate: 1 minute).
    min_lifetime_seconds: int
    #: Whether one payment can be paid in parts; if not, a notified amount other than the invoice's is flagged.
    supports_partial_payments: bool

    def create_payment(self, request: PaymentRequest) -> CreatedPayment:
        """Create the payment; idempotent by `request.order_id` (a retry returns the same payment)."""
        ...

    def cancel_payment(self, payment_id: str) -> None: ...

    def verify_notification(self, headers: dict[str, str], body: bytes) -> Notification:
        """Verify and parse; raise InvalidSignature or MalformedNotification."""
        ...

    def acknowledgement(self) -> Acknowledgement: ...
