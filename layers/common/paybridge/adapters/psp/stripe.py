"""Stripe Checkout (REST over httpx; no SDK: a few form-encoded calls do not justify its import cost).

Wire format (form-encoded with bracket notation, `Authorization: Bearer <secret key>`, pinned `Stripe-Version`,
an `Idempotency-Key` on every POST derived from our own ids, so a retry returns Stripe's first result):
- `POST /v1/checkout/sessions mode=payment, client_reference_id=<invoice id>, line_items[0][price_data][...],
  success_url, cancel_url, expires_at, metadata[...], payment_intent_data[metadata][...]` → `{id: "cs_…", url}`.
- `GET /v1/checkout/sessions/{id}`; `POST /v1/checkout/sessions/{id}/expire` (only open sessions);
  `GET /v1/checkout/sessions?payment_intent=pi_…` (the session of a payment intent).
- `POST /v1/refunds payment_intent, amount, metadata[...]` → `{id: "re_…", status, amount}`.
- Webhooks: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`, HMAC-SHA256(endpoint secret, "<t>.<raw body>"), any `v1`
  may match, 300 s tolerance. Events `{id: "evt_…", type, data: {object}}` may come twice and out of order: the
  services deduplicate by event id and the domain never moves an invoice backwards.

Stripe issues no 54-FZ receipts: a receipt in the request is not sent (tenants with receipts use T-Bank or YooKassa).
Checkout sessions live 30 min … 24 h, so that is the link lifetime range for Stripe tenants.

Recurring payments: `save_method` adds `payment_intent_data[setup_future_usage]=off_session`,
`customer_creation=always` and `metadata[save_method]=true` to the session. When such a session completes paid, its
PaymentIntent (`GET /v1/payment_intents/{id}`) names the `customer` and the `payment_method`: the saved method is
`"<customer id>/<payment_method id>"`. A charge of it is `POST /v1/payment_intents amount, currency, customer,
payment_method, off_session=true, confirm=true, description, metadata[...]` with `Idempotency-Key:
charge-<tenant>-<order id>`: `succeeded` → succeeded; `requires_payment_method` or a 402 card error
(`card_declined`, `authentication_required`, …; the error names the intent) → failed; anything else pending.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

import hashlib
import hmac
import logging
import time
from typing import Any, ClassVar, Literal

from pydantic import Field

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
from paybridge.adapters.settings import (
    HttpUrl,
    PspSettingsBase,
    SecretRef,
)
from paybridge.adapters.wire import loads_json


class StripeSettings(PspSettingsBase):
    """Stripe Checkout. Test mode: the same host with an `sk_test_…` key and the test endpoint's `whsec_…`."""

    provider: Literal["stripe"]
    #: Checkout Sessions: 30 min … 24 h (expires_at)
    min_lifetime_seconds: ClassVar[int] = 30 * 60
    max_lifetime_seconds: ClassVar[int] = 24 * 3600
    base_url: HttpUrl = "https://api.stripe.com"
    secret_key: SecretRef = Field(description="the Stripe secret key, sk_live_… (sk_test_… in test mode)")
    webhook_secret: SecretRef = Field(description="the signing secret of our webhook endpoint, whsec_…")
    #: Stripe Checkout needs a URL to send the payer back to; defaults to the tenant's `return_url`.
    cancel_url: HttpUrl | None = None

    def webhook_steps(self, url: str, secret_names: dict[str, str]) -> list[str]:
        events = ", ".join(EVENT_KIND)
        secret = secret_names.get("psp.webhook_secret", "the secret of psp.webhook_secret")
        return [
            f"Stripe Dashboard → Developers → Webhooks → Add endpoint: URL {url}",
            f"select the events {events}; add the endpoint",
            f"reveal its Signing secret (whsec_…) and store it as the secret {secret} (SecretString: the whsec_ value)",
        ]


logger = logging.getLogger(__name__)

STRIPE_VERSION = "2024-06-20"
SIGNATURE_HEADER = "stripe-signature"
TOLERANCE_SECONDS = 300

#: PaymentIntent status of a charge → the charge's state; anything else is pending.
CHARGE_STATUS: dict[str, ChargeState] = {
    "succeeded": "succeeded",
    "requires_payment_method": "failed",
    "canceled": "failed",
}
#: Refund status → refund state.
REFUND_STATUS: dict[str, RefundState] = {
    "succeeded": "succeeded",
    "pending": "pending",
    "requires_action": "pending",
    "failed": "failed",
    "canceled": "failed",
}
#: Refund state → what a refund event means.
REFUND_KIND: dict[RefundState, NotificationKind] = {
    "succeeded": "refunded",
    "pending": "ignored",
    "failed": "refund_failed",
}
#: Event type → meaning (refund events through REFUND_KIND). Defined once.
EVENT_KIND: dict[str, NotificationKind] = {
    "checkout.session.completed": "paid",  # only when payment_status is "paid" (async methods complete unpaid)
    "checkout.session.async_payment_succeeded": "paid",
    "checkout.session.async_payment_failed": "declined",
    "checkout.session.expired": "cancelled",
    "refund.created": "refunded",
    "refund.updated": "refunded",
    "refund.failed": "refund_failed",
    "charge.refunded": "ignored",  # the same refunds arrive as refund.* events, which name the refund
}


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header for `body` (the local fake signs with this; one scheme, one place)."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(secret: str, body: bytes, header: str | None, now: float | None = None) -> None:
    if not header:
        raise InvalidSignature("missing Stripe-Signature")
    timestamps: list[str] = []
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            candidates.append(value)
    try:
        timestamp = int(timestamps[0])
    except (IndexError, ValueError):
        raise InvalidSignature("Stripe-Signature has no timestamp") from None
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_SECONDS:
        raise InvalidSignature("Stripe-Signature timestamp outside the tolerance")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise InvalidSignature("Stripe-Signature does not match")


#: A Checkout Session's status (when it is not paid) → where it stands. Only an `open` session can be expired.
SESSION_PHASE: dict[str, PaymentPhase] = {"open": "open", "complete": "in_progress", "expired": "closed"}


class StripeCheckout:
    name = "stripe"
    min_lifetime_seconds = StripeSettings.min_lifetime_seconds
    max_lifetime_seconds = StripeSettings.max_lifetime_seconds
    supports_partial_payments = False

    def __init__(self, settings: StripeSettings, secret_key: str, webhook_secret: str, transport: Any = None):
        self._settings = settings
        self._webhook_secret = webhook_secret
        headers = {"Authorization": f"Bearer {secret_key}", "Stripe-Version": STRIPE_VERSION}
        self._http = make_client(settings.base_url.rstrip("/"), headers, transport)

    def _send(self, method: str, url: str, key: str | None = None, **kwargs: Any) -> dict[str, Any]:
        headers = {"Idempotency-Key": key} if key else {}
        response = send(
            self._http,
            method,
            url,
            transient=ProviderUnavailable,
            permanent=ProviderRejected,
            headers=headers,
            **kwargs,
        )
        try:
            data = response.json()
        except ValueError:
            raise ProviderUnavailable(f"{method} {url}: unreadable answer {response.text[:200]}") from None
        if not isinstance(data, dict):
            raise ProviderUnavailable(f"{method} {url}: unexpected answer {response.text[:200]}")
        return data

    def create_payment(self, request: PaymentRequest) -> CreatedPayment:
        success_url = request.return_url
        if not success_url:
            raise ProviderRejected("Stripe Checkout needs the tenant's return_url (its success_url)")
        form: dict[str, str | int] = {
            "mode": "payment",
            "client_reference_id": request.invoice_id,
            "success_url": success_url,
            "cancel_url": self._settings.cancel_url or success_url,
            "expires_at": int(request.expires_at.timestamp()),
            "line_items[0][quantity]": 1,
            "line_items[0][price_data][currency]": request.currency.lower(),
            "line_items[0][price_data][unit_amount]": request.amount,
            "line_items[0][price_data][product_data][name]": request.description[:250] or request.invoice_id,
            "metadata[invoice_id]": request.invoice_id,
            "metadata[tenant_id]": request.tenant_id,
            "payment_intent_data[metadata][invoice_id]": request.invoice_id,
        }
        if request.customer.email:
            form["customer_email"] = request.customer.email
        if request.save_method:
            form["payment_intent_data[setup_future_usage]"] = "off_session"
            form["customer_creation"] = "always"
            form["metadata[save_method]"] = "true"
        data = self._send("POST", "/v1/checkout/sessions", f"session-{request.tenant_id}-{request.order_id}", data=form)
        if not data.get("id") or not data.get("url"):
            raise ProviderUnavailable(f"session answer without id/url: {str(data)[:200]}")
        return CreatedPayment(payment_id=str(data["id"]), payment_url=str(data["url"]))

    def get_payment(self, payment_id: str) -> PaymentSnapshot:
        session = self._send("GET", f"/v1/checkout/sessions/{payment_id}")
        paid = session.get("payment_status") == "paid"
        status = f"{session.get('status')}/{session.get('payment_status')}"
        kind: NotificationKind = "paid" if paid else ("cancelled" if session.get("status") == "expired" else "ignored")
        amount = int(session.get("amount_total") or 0)
        intent = session.get("payment_intent")
        intent_id = intent.get("id") if isinstance(intent, dict) else intent
        # open: payable (expiring it refunds nothing); complete but unpaid: an async method settling; expired: closed
        phase: PaymentPhase = "paid" if paid else SESSION_PHASE.get(str(session.get("status")), "in_progress")
        return PaymentSnapshot(
            payment_id=payment_id,
            raw_status=status,
            kind=kind,
            amount=amount,
            paid_amount=amount if paid else 0,
            saved_method=self._saved_method(session) if paid else None,
            phase=phase,
            # named as the checkout.session.completed notification names it
            receipts=(MoneyFact(ref=f"stripe:{intent_id or payment_id}", amount=amount, method="card"),)
            if paid
            else (),
        )

    def _saved_method(self, session: dict[str, Any]) -> str | None:
        """`<customer>/<payment_method>` of a paid session created to save its method (read from its intent)."""
        saving = (session.get("metadata") or {}).get("save_method") == "true"
        if not (saving or session.get("customer_creation") == "always") or not session.get("payment_intent"):
            return None
        intent = session["payment_intent"]
        intent_id = intent.get("id") if isinstance(intent, dict) else intent
        data = self._send("GET", f"/v1/payment_intents/{intent_id}")
        if data.get("setup_future_usage") not in ("off_session", "on_session") and not saving:
            return None
        customer, method = data.get("customer"), data.get("payment_method")
        if isinstance(customer, dict):
            customer = customer.get("id")
        if isinstance(method, dict):
            method = method.get("id")
        return f"{customer}/{method}" if customer and method else None

    def charge_saved(self, request: ChargeRequest) -> ChargeResult:
        customer, _, method = request.method.partition("/")
        if not customer or not method:
            raise ProviderRejected(f"saved method {request.method!r} is not '<customer>/<payment_method>'")
        form: dict[str, str | int] = {
            "amount": request.amount,
            "currency": request.currency.lower(),
            "customer": customer,
            "payment_method": method,
            "off_session": "true",
            "confirm": "true",
            "description": request.description[:1000] or request.invoice_id,
            "metadata[invoice_id]": request.invoice_id,
            "metadata[tenant_id]": request.tenant_id,
            "metadata[order_id]": request.order_id,
        }
        key = f"charge-{request.tenant_id}-{request.order_id}"
        import httpx  # lazy: see paybridge.adapters.http

        try:
            response = self._http.request("POST", "/v1/payment_intents", data=form, headers={"Idempotency-Key": key})
        except httpx.TransportError as exc:
            raise ProviderUnavailable(f"POST /v1/payment_intents: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 402:  # a card error: the charge was tried and refused
            try:
                error = response.json()["error"]
                intent = error.get("payment_intent") or {}
            except (ValueError, KeyError, TypeError, AttributeError):
                raise ProviderUnavailable(f"402 without an error: {response.text[:200]}") from None
            reason = error.get("decline_code") or error.get("code") or error.get("message") or "declined"
            return ChargeResult(payment_id=str(intent.get("id") or ""), status="failed", detail=str(reason))
        if response.status_code == 429 or response.status_code >= 500:
            raise ProviderUnavailable(f"POST /v1/payment_intents: HTTP {response.status_code}: {response.text[:200]}")
        if response.status_code >= 400:
            raise ProviderRejected(f"POST /v1/payment_intents: HTTP {response.status_code}: {response.text[:200]}")
        try:
            data = response.json()
            intent_id, status = str(data["id"]), str(data["status"])
        except (ValueError, KeyError, TypeError):
            raise ProviderUnavailable(f"unexpected payment intent answer: {response.text[:200]}") from None
        state = CHARGE_STATUS.get(status, "pending")
        detail = status
        if state == "failed":
            last = data.get("last_payment_error") or {}
            detail = str(last.get("decline_code") or last.get("code") or status)
        return ChargeResult(payment_id=intent_id, status=state, detail=detail)

    def cancel_payment(self, payment_id: str) -> None:
        self._send("POST", f"/v1/checkout/sessions/{payment_id}/expire", f"expire-{payment_id}")

    def refund(self, order: RefundOrder) -> RefundResult:
        session = self._send("GET", f"/v1/checkout/sessions/{order.payment_id}")
        intent = session.get("payment_intent")
        if not intent:
            raise ProviderRejected(f"session {order.payment_id} has no payment to refund")
        form: dict[str, str | int] = {
            "payment_intent": str(intent),
            "amount": order.amount,
            "metadata[refund_key]": order.key,
            "metadata[invoice_id]": order.invoice_id,
            "metadata[session_id]": order.payment_id,
        }
        if order.reason:
            form["metadata[reason]"] = order.reason[:500]
        data = self._send("POST", "/v1/refunds", f"refund-{order.tenant_id}-{order.key}", data=form)
        state = REFUND_STATUS.get(str(data.get("status")), "pending")
        return RefundResult(
            ref=f"stripe:refund:{data['id']}",
            status=state,
            amount=int(data.get("amount", order.amount)),
            detail=str(data.get("failure_reason") or ""),
        )

    def verify_notification(self, headers: dict[str, str], body: bytes, source_ip: str | None = None) -> Notification:
        verify(self._webhook_secret, body, headers.get(SIGNATURE_HEADER))
        try:
            event = loads_json(body)
            event_id, event_type, obj = str(event["id"]), str(event["type"]), event["data"]["object"]
            if not isinstance(obj, dict):
                raise TypeError("object")
        except (ValueError, KeyError, TypeError):
            raise MalformedNotification("expected {id, type, data{object}}") from None
        kind = EVENT_KIND.get(event_type)
        if kind is None:
            logger.info("Stripe event %s is not one we act on; kept", event_type)
            kind = "ignored"
        if event_type.startswith("refund."):
            return self._refund_notification(event_id, event_type, obj)
        if event_type.startswith("checkout.session."):
            if event_type == "checkout.session.completed" and obj.get("payment_status") != "paid":
                kind = "ignored"
            intent = obj.get("payment_intent") or obj.get("id")
            return Notification(
                event_id=event_id,
                payment_id=str(obj.get("id")),
                kind=kind,
                operation_ref=f"stripe:{intent}",
                amount=int(obj.get("amount_total") or 0),
                raw_status=event_type,
                saved_method=self._saved_method(obj) if kind == "paid" else None,
                method="card" if kind == "paid" else None,
            )
        return Notification(
            event_id=event_id,
            payment_id=str(obj.get("id", "")),
            kind="ignored",
            operation_ref=f"stripe:{obj.get('id', '')}",
            raw_status=event_type,
        )

    def _refund_notification(self, event_id: str, event_type: str, refund: dict[str, Any]) -> Notification:
        state = REFUND_STATUS.get(str(refund.get("status")), "pending")
        kind = "refund_failed" if event_type == "refund.failed" else REFUND_KIND[state]
        metadata = refund.get("metadata") or {}
        session_id = metadata.get("session_id") or self._session_of(str(refund.get("payment_intent")))
        return Notification(
            event_id=event_id,
            payment_id=session_id,
            kind=kind,
            operation_ref=f"stripe:refund:{refund.get('id')}",
            amount=int(refund.get("amount") or 0),
            raw_status=f"{event_type}/{refund.get('status')}",
            refund_key=metadata.get("refund_key"),
            detail=str(refund.get("failure_reason") or ""),
        )

    def _session_of(self, payment_intent: str) -> str:
        """A refund made in Stripe's dashboard names only the payment intent: find its Checkout Session."""
        found = self._send("GET", "/v1/checkout/sessions", params={"payment_intent": payment_intent, "limit": 1})
        sessions = found.get("data") or []
        if not sessions:
            raise MalformedNotification(f"no Checkout Session for {payment_intent}")
        return str(sessions[0]["id"])

    def acknowledgement(self) -> Acknowledgement:
        return Acknowledgement(status_code=200, body='{"received": true}', content_type="application/json")


def _build(settings: StripeSettings, context: AdapterContext) -> StripeCheckout:
    return StripeCheckout(settings, context.secret(settings.secret_key), context.secret(settings.webhook_secret))


PSPS.register("stripe", StripeSettings, _build)
