"""YooKassa API v3.

Wire format (JSON, HTTP Basic `shopId:secretKey`, an `Idempotence-Key` header on every POST):
- `POST /payments {amount{value,currency}, capture, confirmation{type:"redirect", return_url}, description, metadata,
  payment_method_data{type:"sbp"}?, receipt?}` → `{id, status, confirmation{confirmation_url}}`.
- `GET /payments/{id}`, `POST /payments/{id}/cancel` (only in `waiting_for_capture`), `POST /refunds {payment_id,
  amount, description, receipt?, metadata}` → `{id, status, amount, payment_id}`, `GET /refunds/{id}`.
- Notifications: `{type:"notification", event, object}`, events `payment.waiting_for_capture`, `payment.succeeded`,
  `payment.canceled`, `refund.succeeded`. Unsigned: nothing in the body is trusted — the object is re-fetched by id and
  the notification is built from what the API says. A body naming an object the API does not know is forged. An
  optional source-IP allow-list (`notification_ips`) is an extra check.

Idempotence keys are derived from our own ids (the order id for a payment, the client's key for a refund), so a retry
after a timeout or a 500 ("result unknown") gets YooKassa's first result: exactly one payment, one refund.

Settlements: a succeeded payment's `income_amount` is the amount less YooKassa's fee (the registry's "Сумма платежа
за вычетом комиссии НКО"); `get_payment` gives it as `net_amount`, so its payout is matched exactly.

Amounts travel as decimal strings ("1500.50"); receipt item amounts are per unit. YooKassa has no lifetime for a
redirect payment and cannot cancel a `pending` one: at our invoice's expiry the cancel is refused (logged), and money
that still arrives is recorded and flagged `paid_after_close` for the manager.

Recurring payments: `save_method` adds `save_payment_method: true` to the create; the re-fetched payment's
`payment_method {id, saved: true}` gives the saved method (its `id`). A charge of it is `POST /payments {amount,
capture: true, payment_method_id, description, metadata, receipt?}` without a confirmation, keyed by the order id like
a create (`Idempotence-Key` = uuid5("charge", tenant, order id)): `succeeded` → succeeded, `canceled` → failed with
`cancellation_details.reason`, anything else pending (the notification finishes it).
"""

from __future__ import annotations

import ipaddress
import logging
import uuid
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationError

from paybridge.adapters.errors import InvalidSignature, MalformedNotification, ProviderRejected, ProviderUnavailable
from paybridge.adapters.http import make_client, send
from paybridge.adapters.psp.base import (
    Acknowledgement,
    ChargeRequest,
    ChargeResult,
    ChargeState,
    CreatedPayment,
    MoneyFact,
    Notification,
    NotificationKind,
    PaymentPhase,
    PaymentRequest,
    PaymentSnapshot,
    RefundOrder,
    RefundResult,
    RefundState,
)
from paybridge.adapters.registry import PSPS, AdapterContext
from paybridge.adapters.settings import HttpUrl, PaymentMethodKind, PspSettingsBase, SecretRef
from paybridge.adapters.wire import loads_json
from paybridge.domain.invoice import PaymentMethod
from paybridge.domain.model import Model
from paybridge.domain.money import from_decimal_string, to_decimal_string
from paybridge.domain.receipt import FiscalReceipt


class YooKassaSettings(PspSettingsBase):
    """YooKassa API v3 (test shops use the same host with a test secret key)."""

    provider: Literal["yookassa"]
    #: no lifetime of its own: we cancel at expiry
    min_lifetime_seconds: ClassVar[int] = 60
    max_lifetime_seconds: ClassVar[int] = 90 * 24 * 3600
    base_url: HttpUrl = "https://api.yookassa.ru/v3/"
    shop_id: str = Field(min_length=1, max_length=20, pattern=r"^\d+$")
    secret_key: SecretRef = Field(description="the shop's secret key, live_… (ЮKassa cabinet → Интеграция → Ключи API)")
    method: PaymentMethodKind = "card"
    #: Optional source-IP allow-list for notifications (CIDRs); the re-fetch of the object is the check that counts.
    notification_ips: tuple[str, ...] | None = None

    def webhook_steps(self, url: str, secret_names: dict[str, str]) -> list[str]:
        return [
            f"ЮKassa cabinet of shop {self.shop_id} → Интеграция → HTTP-уведомления: URL для уведомлений {url}",
            "tick the events payment.succeeded, payment.waiting_for_capture, payment.canceled, refund.succeeded; save",
            "(notifications are unsigned: PayBridge re-reads every payment by id, so the URL needs no secret)",
        ]


logger = logging.getLogger(__name__)

#: Payment status → meaning. Defined once.
PAYMENT_STATUS: dict[str, NotificationKind] = {
    "pending": "ignored",
    "waiting_for_capture": "ignored",  # we create with capture=true: a hold does not occur; never counted as money
    "succeeded": "paid",
    "canceled": "cancelled",
}
#: Payment status → where it stands. YooKassa can cancel only `waiting_for_capture` (which releases the hold), so
#: expiry never cancels here: a `pending` payment is left to expire at YooKassa, money is never touched.
PHASE: dict[str, PaymentPhase] = {
    "pending": "open",
    "waiting_for_capture": "held",
    "succeeded": "paid",
    "canceled": "closed",
}
#: The charge's payment status → the charge's state; anything else is pending.
CHARGE_STATUS: dict[str, ChargeState] = {"succeeded": "succeeded", "canceled": "failed"}
#: Refund status → refund state.
REFUND_STATUS: dict[str, RefundState] = {"pending": "pending", "succeeded": "succeeded", "canceled": "failed"}
#: Refund state → what its notification means.
REFUND_KIND: dict[RefundState, NotificationKind] = {
    "succeeded": "refunded",
    "failed": "refund_failed",
    "pending": "ignored",
}
#: Our VAT names → YooKassa `vat_code` (22% and 22/122 are codes 11 and 12 since 2026).
VAT_CODE: dict[str, int] = {
    "none": 1,
    "vat0": 2,
    "vat10": 3,
    "vat20": 4,
    "vat110": 5,
    "vat120": 6,
    "vat5": 7,
    "vat7": 8,
    "vat105": 9,
    "vat107": 10,
    "vat22": 11,
    "vat122": 12,
}
#: Our taxation names → YooKassa `tax_system_code`.
TAX_SYSTEM_CODE: dict[str, int] = {
    "osn": 1,
    "usn_income": 2,
    "usn_income_outcome": 3,
    "envd": 4,
    "esn": 5,
    "patent": 6,
}
KEY_NAMESPACE = uuid.UUID("6f1d8a52-3b0e-4c55-9d6c-0c7f6f2d9b11")


def idempotence_key(*parts: str) -> str:
    """A stable UUID for our own ids: the same operation always carries the same key."""
    return str(uuid.uuid5(KEY_NAMESPACE, "\x1f".join(parts)))


def money(amount: int, currency: str) -> dict[str, str]:
    return {"value": to_decimal_string(amount), "currency": currency}


def saved_method(payment: dict[str, Any]) -> str | None:
    """The id of the payment method a payment saved (`payment_method.saved`), if it saved one."""
    method = payment.get("payment_method") or {}
    return str(method["id"]) if method.get("saved") is True and method.get("id") else None


def receipt_body(receipt: FiscalReceipt, currency: str) -> dict[str, Any]:
    customer = {k: v for k, v in (("email", receipt.email), ("phone", receipt.phone)) if v}
    return {
        "customer": customer,
        "tax_system_code": TAX_SYSTEM_CODE[receipt.taxation],
        "items": [
            {
                "description": item.name,
                "quantity": str(item.quantity),
                "amount": money(item.price, currency),
                "vat_code": VAT_CODE[item.vat],
                "payment_mode": item.payment_method,
                "payment_subject": item.payment_object,
            }
            for item in receipt.items
        ],
    }


class _Envelope(Model):
    type: str
    event: str
    object: dict[str, Any]


class YooKassa:
    name = "yookassa"
    min_lifetime_seconds = YooKassaSettings.min_lifetime_seconds
    max_lifetime_seconds = YooKassaSettings.max_lifetime_seconds
    supports_partial_payments = False

    def __init__(self, settings: YooKassaSettings, secret_key: str, transport: Any = None):
        self._settings = settings
        base = settings.base_url if settings.base_url.endswith("/") else settings.base_url + "/"
        self._http = make_client(base, {}, transport)
        self._auth = (settings.shop_id, secret_key)
        self._networks = [ipaddress.ip_network(n, strict=False) for n in settings.notification_ips or ()]

    def _send(self, method: str, url: str, key: str | None = None, **kwargs: Any) -> dict[str, Any]:
        headers = {"Idempotence-Key": key} if key else {}
        response = send(
            self._http,
            method,
            url,
            transient=ProviderUnavailable,
            permanent=ProviderRejected,
            auth=self._auth,
            headers=headers,
            **kwargs,
        )
        try:
            data = response.json()
        except ValueError:
            raise ProviderUnavailable(f"{method} {url}: unreadable answer {response.text[:200]}") from None
        if not isinstance(data, dict) or "id" not in data:
            raise ProviderUnavailable(f"{method} {url}: unexpected answer {response.text[:200]}")
        return data

    def create_payment(self, request: PaymentRequest) -> CreatedPayment:
        body: dict[str, Any] = {
            "amount": money(request.amount, request.currency),
            "capture": True,
            "confirmation": {"type": "redirect", "return_url": request.return_url or request.notification_url},
            "description": request.description[:128],
            "metadata": {"invoice_id": request.invoice_id, "tenant_id": request.tenant_id},
        }
        if self._settings.method == "sbp":
            body["payment_method_data"] = {"type": "sbp"}
        if request.receipt is not None:
            body["receipt"] = receipt_body(request.receipt, request.currency)
        if request.save_method:
            body["save_payment_method"] = True
        data = self._send(
            "POST", "payments", idempotence_key("payment", request.tenant_id, request.order_id), json=body
        )
        url = (data.get("confirmation") or {}).get("confirmation_url")
        if not url:
            raise ProviderUnavailable(f"payment {data['id']} came without a confirmation_url")
        return CreatedPayment(payment_id=str(data["id"]), payment_url=str(url))

    def get_payment(self, payment_id: str) -> PaymentSnapshot:
        data = self._send("GET", f"payments/{payment_id}")
        status = str(data.get("status", ""))
        amount = from_decimal_string(data["amount"]["value"])
        refunded = data.get("refunded_amount")
        kind = PAYMENT_STATUS.get(status, "ignored")
        paid = status == "succeeded"
        income = data.get("income_amount")  # the payment less YooKassa's fee: what the payout brings for it
        return PaymentSnapshot(
            payment_id=payment_id,
            raw_status=status,
            kind=kind,
            amount=amount,
            paid_amount=amount if kind == "paid" else 0,
            refunded_amount=from_decimal_string(refunded["value"]) if refunded else 0,
            saved_method=saved_method(data),
            phase=PHASE.get(status, "in_progress"),
            receipts=(MoneyFact(ref=f"yookassa:{payment_id}", amount=amount, method=self._method_of(data)),)
            if paid
            else (),
            net_amount=from_decimal_string(income["value"]) if paid and isinstance(income, dict) else None,
        )

    def charge_saved(self, request: ChargeRequest) -> ChargeResult:
        body: dict[str, Any] = {
            "amount": money(request.amount, request.currency),
            "capture": True,
            "payment_method_id": request.method,
            "description": request.description[:128],
            "metadata": {"invoice_id": request.invoice_id, "tenant_id": request.tenant_id},
        }
        if request.receipt is not None:
            body["receipt"] = receipt_body(request.receipt, request.currency)
        data = self._send("POST", "payments", idempotence_key("charge", request.tenant_id, request.order_id), json=body)
        status = str(data.get("status", ""))
        state = CHARGE_STATUS.get(status, "pending")
        detail = str((data.get("cancellation_details") or {}).get("reason", "")) if state == "failed" else status
        return ChargeResult(payment_id=str(data["id"]), status=state, detail=detail)

    def cancel_payment(self, payment_id: str) -> None:
        self._send("POST", f"payments/{payment_id}/cancel", idempotence_key("cancel", payment_id), json={})

    def refund(self, order: RefundOrder) -> RefundResult:
        body: dict[str, Any] = {
            "payment_id": order.payment_id,
            "amount": money(order.amount, order.currency),
            "description": (order.reason or f"Возврат по счёту {order.invoice_id}")[:250],
            "metadata": {"refund_key": order.key, "invoice_id": order.invoice_id},
        }
        if order.receipt is not None:
            body["receipt"] = receipt_body(order.receipt, order.currency)
        data = self._send("POST", "refunds", idempotence_key("refund", order.tenant_id, order.key), json=body)
        status = REFUND_STATUS.get(str(data.get("status")), "pending")
        detail = str((data.get("cancellation_details") or {}).get("reason", ""))
        amount = from_decimal_string(data["amount"]["value"]) if "amount" in data else order.amount
        return RefundResult(ref=f"yookassa:refund:{data['id']}", status=status, amount=amount, detail=detail)

    def verify_notification(self, headers: dict[str, str], body: bytes, source_ip: str | None = None) -> Notification:
        if self._networks:
            try:
                address = ipaddress.ip_address(source_ip or "")
            except ValueError:
                raise InvalidSignature("notification without a source address") from None
            if not any(address in network for network in self._networks):
                raise InvalidSignature(f"notification from {address}, outside the allow-list")
        try:
            envelope = _Envelope.model_validate(loads_json(body))
            object_id = str(envelope.object["id"])
        except (ValueError, KeyError, TypeError, ValidationError):
            raise MalformedNotification("expected {type, event, object{id}}") from None
        if envelope.event.startswith("refund."):
            return self._refund_notification(envelope.event, object_id)
        return self._payment_notification(envelope.event, object_id)

    def _fetch(self, path: str) -> dict[str, Any]:
        try:
            return self._send("GET", path)
        except ProviderRejected:  # 404: YooKassa never made it — the body was forged
            raise InvalidSignature(f"{path} is unknown to YooKassa") from None

    def _payment_notification(self, event: str, payment_id: str) -> Notification:
        payment = self._fetch(f"payments/{payment_id}")
        status = str(payment.get("status", ""))
        kind = PAYMENT_STATUS.get(status)
        if kind is None:
            logger.warning("YooKassa payment status %s is not documented; kept, changes nothing", status)
            kind = "ignored"
        detail = ""
        if status == "canceled":
            detail = str((payment.get("cancellation_details") or {}).get("reason", ""))
        return Notification(
            event_id=f"{event}:{payment_id}:{status}",
            payment_id=payment_id,
            kind=kind,
            operation_ref=f"yookassa:{payment_id}",
            amount=from_decimal_string(payment["amount"]["value"]),
            raw_status=status,
            detail=detail,
            saved_method=saved_method(payment) if kind == "paid" else None,
            method=self._method_of(payment) if kind == "paid" else None,
        )

    def _method_of(self, payment: dict[str, Any]) -> PaymentMethod:
        """From the payment's `payment_method.type` (`bank_card` → card, `sbp` → sbp); else the tenant's setting."""
        kind = str((payment.get("payment_method") or {}).get("type", ""))
        if kind == "sbp":
            return "sbp"
        if kind == "bank_card":
            return "card"
        return self._settings.method

    def _refund_notification(self, event: str, refund_id: str) -> Notification:
        refund = self._fetch(f"refunds/{refund_id}")
        status = str(refund.get("status", ""))
        state = REFUND_STATUS.get(status)
        kind = REFUND_KIND[state] if state else "ignored"
        return Notification(
            event_id=f"{event}:{refund_id}:{status}",
            payment_id=str(refund["payment_id"]),
            kind=kind,
            operation_ref=f"yookassa:refund:{refund_id}",
            amount=from_decimal_string(refund["amount"]["value"]),
            raw_status=status,
            refund_key=(refund.get("metadata") or {}).get("refund_key"),
            detail=str((refund.get("cancellation_details") or {}).get("reason", "")),
        )

    def acknowledgement(self) -> Acknowledgement:
        return Acknowledgement(status_code=200, body="")


def _build(settings: YooKassaSettings, context: AdapterContext) -> YooKassa:
    return YooKassa(settings, context.secret(settings.secret_key))


PSPS.register("yookassa", YooKassaSettings, _build)
