"""The sandbox PSP: a stand-in for a real acquirer, spoken to over HTTP like one.

Wire format (the sandbox server in `devstack/sandbox_psp.py` implements the other side):
- `POST {base}/api/payments` with `Authorization: Bearer <secret>` and `Idempotency-Key: <order_id>`, JSON
  `{order_id, amount, currency, description, expires_at, notification_url, method}` → `{id, status, url, qr_payload}`.
- `POST {base}/api/payments/{id}/cancel`; `GET {base}/api/payments/{id}` → `{id, status, amount, paid, refunded}`.
- `POST {base}/api/payments/{id}/refunds` with `Idempotency-Key: <our refund key>`, JSON `{amount, reason}` →
  `{id, status: "succeeded", amount, key}`; a refund beyond what is left is a 409.
- Notifications: POST JSON `{event_id, type, payment_id, order_id, operation_id, amount, currency, created}` with the
  header `X-Sandbox-Signature: t=<unix>,v1=<hex>` where hex = HMAC-SHA256(secret, "<t>.<raw body>"); several `v1`
  values may be given (secret rotation); tolerance 300 s. `type` is one of `payment.succeeded`, `payment.declined`,
  `payment.canceled`, `refund.succeeded` (then `operation_id` is the refund id and `refund_key` our key).
We answer 200 `OK`; anything else makes the sandbox retry.
- Recurring payments: `save_method: true` in the create body saves the method; the payment's (first) succeeded
  notification and its GET then carry `saved_method: "sm_<id>"`. `POST {base}/api/charges` with
  `Idempotency-Key: <order_id>`, JSON `{order_id, amount, currency, method}` charges it without the payer →
  `{payment_id, status: "succeeded"|"failed"|"pending", detail}`; the same order id returns the first charge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

import hashlib
import hmac
import time
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationError

from paybridge.adapters.errors import InvalidSignature, MalformedNotification, ProviderRejected, ProviderUnavailable
from paybridge.adapters.http import make_client, send
from paybridge.adapters.psp.base import (
    Acknowledgement,
    ChargeRequest,
    ChargeResult,
    CreatedPayment,
    MoneyFact,
    Notification,
    NotificationKind,
    PaymentPhase,
    PaymentRequest,
    PaymentSnapshot,
    RefundOrder,
    RefundResult,
)
from paybridge.adapters.registry import PSPS, AdapterContext
from paybridge.adapters.settings import HttpUrl, PaymentMethodKind, PspSettingsBase, SecretRef
from paybridge.adapters.wire import loads_json
from paybridge.domain.invoice import PaymentMethod
from paybridge.domain.model import Model
from paybridge.domain.money import MinorUnits


class SandboxPspSettings(PspSettingsBase):
    provider: Literal["sandbox"] = "sandbox"
    #: any lifetime, so tests can watch a link expire
    min_lifetime_seconds: ClassVar[int] = 1
    max_lifetime_seconds: ClassVar[int] = 90 * 24 * 3600
    base_url: HttpUrl
    secret: SecretRef = Field(description="the sandbox PSP's merchant secret (signs its notifications)")
    method: PaymentMethodKind = "card"


SIGNATURE_HEADER = "x-sandbox-signature"
TOLERANCE_SECONDS = 300

#: Notification type → what it means for us. Defined once.
STATUS_MAP: dict[str, NotificationKind] = {
    "payment.succeeded": "paid",
    "payment.declined": "declined",
    "payment.canceled": "cancelled",
    "refund.succeeded": "refunded",
}
#: Payment status (GET) → what it means for us.
PAYMENT_STATUS_MAP: dict[str, NotificationKind] = {
    "new": "ignored",
    "partially_paid": "paid",
    "succeeded": "paid",
    "declined": "declined",
    "canceled": "cancelled",
    "expired": "cancelled",
}


#: Payment status → where it stands (the sandbox refuses to cancel a payment that holds money).
PAYMENT_PHASE: dict[str, PaymentPhase] = {
    "new": "open",
    "partially_paid": "paid",
    "succeeded": "paid",
    "declined": "open",  # the payer may try again on the same link
    "canceled": "closed",
    "expired": "closed",
}


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header value for `body` (used by the sandbox server; one scheme, defined here)."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(secret: str, body: bytes, header: str | None, now: float | None = None) -> None:
    if not header:
        raise InvalidSignature("missing signature header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise InvalidSignature("signature header has no timestamp") from None
    now = time.time() if now is None else now
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise InvalidSignature("signature timestamp outside the tolerance")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", [])):
        raise InvalidSignature("signature does not match")


class SandboxNotificationBody(Model):
    event_id: str = Field(min_length=1, max_length=100)
    type: str
    payment_id: str = Field(min_length=1, max_length=100)
    order_id: str
    operation_id: str = Field(min_length=1, max_length=100)
    amount: Annotated[MinorUnits, Field(strict=True)]
    currency: str
    created: int
    refund_key: str | None = None
    saved_method: str | None = Field(default=None, max_length=100)


class SandboxPsp:
    name = "sandbox"
    min_lifetime_seconds = SandboxPspSettings.min_lifetime_seconds
    max_lifetime_seconds = SandboxPspSettings.max_lifetime_seconds
    supports_partial_payments = True  # its checkout has "Pay part"

    def __init__(self, base_url: str, secret: str, method: str = "card", transport: Any = None):
        self._secret = secret
        self._method = method
        self._http = make_client(base_url.rstrip("/"), {"Authorization": f"Bearer {secret}"}, transport)

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return send(self._http, method, url, transient=ProviderUnavailable, permanent=ProviderRejected, **kwargs)

    def create_payment(self, request: PaymentRequest) -> CreatedPayment:
        body = {
            "order_id": request.order_id,
            "amount": request.amount,
            "currency": request.currency,
            "description": request.description,
            "expires_at": request.expires_at.isoformat(),
            "notification_url": request.notification_url,
            "method": self._method,
        }
        if request.save_method:
            body["save_method"] = True
        response = self._send("POST", "/api/payments", json=body, headers={"Idempotency-Key": request.order_id})
        try:
            data = response.json()
            return CreatedPayment(payment_id=data["id"], payment_url=data["url"], qr_payload=data.get("qr_payload"))
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            # 2xx without a payment: unknown result, and the retry (same idempotency key) is safe
            raise ProviderUnavailable(f"unexpected create answer: {response.text[:200]}") from exc

    def cancel_payment(self, payment_id: str) -> None:
        self._send("POST", f"/api/payments/{payment_id}/cancel")

    def get_payment(self, payment_id: str) -> PaymentSnapshot:
        data = self._send("GET", f"/api/payments/{payment_id}").json()
        receipts = tuple(
            MoneyFact(ref=f"sandbox:{op['id']}", amount=int(op["amount"]), method=self._method_kind())
            for op in data.get("operations", [])
            if op.get("type") == "payment.succeeded" and op.get("id")
        )
        return PaymentSnapshot(
            payment_id=data["id"],
            raw_status=data["status"],
            kind=PAYMENT_STATUS_MAP.get(data["status"], "ignored"),
            amount=data["amount"],
            paid_amount=data["paid"],
            refunded_amount=data.get("refunded", 0),
            saved_method=data.get("saved_method"),
            phase=PAYMENT_PHASE.get(data["status"], "in_progress"),
            receipts=receipts,
        )

    def charge_saved(self, request: ChargeRequest) -> ChargeResult:
        body = {
            "order_id": request.order_id,
            "amount": request.amount,
            "currency": request.currency,
            "method": request.method,
        }
        response = self._send("POST", "/api/charges", json=body, headers={"Idempotency-Key": request.order_id})
        try:
            data = response.json()
            return ChargeResult(payment_id=data["payment_id"], status=data["status"], detail=data.get("detail") or "")
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            raise ProviderUnavailable(f"unexpected charge answer: {response.text[:200]}") from exc

    def refund(self, order: RefundOrder) -> RefundResult:
        body = {"amount": order.amount, "reason": order.reason}
        response = self._send(
            "POST", f"/api/payments/{order.payment_id}/refunds", json=body, headers={"Idempotency-Key": order.key}
        )
        data = response.json()
        return RefundResult(ref=f"sandbox:{data['id']}", status=data["status"], amount=data["amount"])

    def verify_notification(self, headers: dict[str, str], body: bytes, source_ip: str | None = None) -> Notification:
        verify(self._secret, body, {k.lower(): v for k, v in headers.items()}.get(SIGNATURE_HEADER))
        try:
            parsed = SandboxNotificationBody.model_validate(loads_json(body))
        except (ValueError, ValidationError) as exc:
            raise MalformedNotification(str(exc)) from None
        return Notification(
            event_id=parsed.event_id,
            payment_id=parsed.payment_id,
            kind=STATUS_MAP.get(parsed.type, "ignored"),
            operation_ref=f"sandbox:{parsed.operation_id}",
            amount=parsed.amount,
            raw_status=parsed.type,
            refund_key=parsed.refund_key,
            saved_method=parsed.saved_method if STATUS_MAP.get(parsed.type) == "paid" else None,
            method=self._method_kind() if STATUS_MAP.get(parsed.type) == "paid" else None,
        )

    def _method_kind(self) -> PaymentMethod:
        """The sandbox's payments are paid by the method they were created with (its `method` setting)."""
        return "sbp" if self._method == "sbp" else "card"

    def acknowledgement(self) -> Acknowledgement:
        return Acknowledgement(status_code=200, body="OK")


def _build(settings: SandboxPspSettings, context: AdapterContext) -> SandboxPsp:
    return SandboxPsp(settings.base_url, context.secret(settings.secret), settings.method)


PSPS.register("sandbox", SandboxPspSettings, _build)
