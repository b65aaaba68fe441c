"""The sandbox PSP: creates payments, serves a checkout page (Pay / Pay part / Decline), and sends notifications
signed like a real provider's (HMAC-SHA256 with the merchant's secret), retried until the merchant answers 200 `OK`.

Recurring payments: a payment created with `save_method` saves its method when paid (`saved_method: "sm_<id>"` in
its notification and GET); `POST /api/charges` charges a saved method without the payer, at once (no notification;
the answer is the result), idempotent by the order id. Fault `charge_decline` (a count): the next new charges fail
with status "failed" and detail "insufficient funds".

Faults (`POST /api/faults {"name": count}`), besides those of creating and charging: `lose_notification` (the next
notifications are never sent — only asking `GET /api/payments/<id>` tells the merchant), `unavailable` (the next API
requests answer 503). A payment that holds money cannot be cancelled (409): only a refund returns money.

Wire format: see `paybridge.adapters.psp.sandbox` (the merchant's side)."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from devstack.serving import ClientPool
from devstack.web import bearer, checkout_page, error, json_response, money
from paybridge.adapters.psp.sandbox import sign

log = logging.getLogger("devstack.psp")

RETRY_DELAYS = (0.5, 1, 2, 4, 8, 16, 30, 60)


@dataclass
class Delivery:
    event_id: str
    payment_id: str
    type: str
    url: str
    body: bytes
    secret: str
    attempts: list[dict[str, Any]] = field(default_factory=list)
    delivered_at: float | None = None
    first_sent_at: float | None = None
    lost: bool = False  # the fault `lose_notification`: never sent


@dataclass
class Payment:
    id: str
    secret: str
    order_id: str
    amount: int
    currency: str
    description: str
    notification_url: str | None
    expires_at: datetime
    method: str
    status: str = "new"
    paid: int = 0
    refunded: int = 0
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)  # by idempotency key
    operations: list[dict[str, Any]] = field(default_factory=list)
    save_method: bool = False
    saved_method: str | None = None

    def public(self, base_url: str) -> dict[str, Any]:
        url = f"{base_url}/pay/{self.id}"
        return {
            "id": self.id,
            "order_id": self.order_id,
            "status": self.status,
            "amount": self.amount,
            "paid": self.paid,
            "refunded": self.refunded,
            "operations": [{k: o[k] for k in ("id", "type", "amount") if k in o} for o in self.operations],
            "currency": self.currency,
            "url": url,
            "qr_payload": f"https://qr.nspk.ru/SANDBOX{self.id[-12:].upper()}?type=02&sum={self.amount}"
            if self.method == "sbp"
            else None,
            "expires_at": self.expires_at.isoformat(),
            "saved_method": self.saved_method,
        }


class SandboxPsp:
    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        self.payments: dict[str, Payment] = {}
        self.by_order: dict[tuple[str, str], str] = {}
        self.deliveries: list[Delivery] = []
        self.saved_methods: dict[str, str] = {}  # saved method → the payment that saved it
        self.charges: dict[tuple[str, str], dict[str, Any]] = {}  # (secret, order id) → the charge's answer
        self.faults: dict[str, int] = {}
        self._lock = threading.RLock()
        self._http = ClientPool(httpx.Timeout(10.0, connect=2.0))
        self._timers: list[threading.Timer] = []
        self._stopped = False
        self.url_map = Map(
            [
                Rule("/api/payments", methods=["POST"], endpoint="create"),
                Rule("/api/payments/<pid>", methods=["GET"], endpoint="show"),
                Rule("/api/payments/<pid>/cancel", methods=["POST"], endpoint="cancel"),
                Rule("/api/payments/<pid>/simulate", methods=["POST"], endpoint="simulate"),
                Rule("/api/payments/<pid>/refunds", methods=["POST"], endpoint="refund"),
                Rule("/api/charges", methods=["POST"], endpoint="charge"),
                Rule("/api/deliveries", methods=["GET"], endpoint="deliveries"),
                Rule("/api/faults", methods=["POST"], endpoint="faults"),
                Rule("/pay/<pid>", methods=["GET"], endpoint="checkout"),
                Rule("/pay/<pid>", methods=["POST"], endpoint="checkout_action"),
            ]
        )

    def stop(self) -> None:
        self._stopped = True
        for timer in self._timers:
            timer.cancel()
        self._http.close()

    # -- WSGI --------------------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            endpoint, args = self.url_map.bind_to_environ(environ).match()
            if endpoint not in ("faults", "deliveries", "checkout", "checkout_action") and self._fault("unavailable"):
                return error(503, "sandbox fault: service unavailable")(environ, start_response)
            response = getattr(self, f"on_{endpoint}")(request, **args)
        except HTTPException as exc:
            response = exc.get_response()
        return response(environ, start_response)

    # -- API ---------------------------------------------------------------------------------------------------------

    def on_create(self, request: Request) -> Response:
        secret = bearer(request)
        if not secret:
            return error(401, "missing bearer secret")
        try:
            data = json.loads(request.get_data())
            amount = data["amount"]
            if not isinstance(amount, int) or amount <= 0:
                return error(400, "amount must be a positive integer of minor units")
            expires_at = datetime.fromisoformat(data["expires_at"])
        except (ValueError, KeyError, TypeError) as exc:
            return error(400, f"bad request: {exc}")
        key = (secret, request.headers.get("Idempotency-Key") or data["order_id"])
        with self._lock:
            if self.faults.get("create_reject", 0) > 0:  # a permanent refusal (e.g. terminal blocked)
                self.faults["create_reject"] -= 1
                return error(400, "sandbox fault: terminal is blocked")
            if key in self.by_order:
                payment = self.payments[self.by_order[key]]
            else:
                payment = Payment(
                    id=f"pay_{uuid.uuid4().hex[:20]}",
                    secret=secret,
                    order_id=data["order_id"],
                    amount=amount,
                    currency=data.get("currency", "RUB"),
                    description=data.get("description", ""),
                    notification_url=data.get("notification_url"),
                    expires_at=expires_at,
                    method=data.get("method", "card"),
                    save_method=data.get("save_method") is True,
                )
                self.payments[payment.id] = payment
                self.by_order[key] = payment.id
            if self.faults.get("create_error", 0) > 0:  # created, but the answer is lost: the caller must retry
                self.faults["create_error"] -= 1
                return error(503, "sandbox fault: service unavailable")
        return json_response(payment.public(self.base_url), 201)

    def payments_for_order(self, order_id: str) -> list[Payment]:
        return [p for p in self.payments.values() if p.order_id == order_id]

    def _payment(self, request: Request | None, pid: str) -> Payment:
        payment = self.payments.get(pid)
        if payment is None or (request is not None and bearer(request) not in ("", payment.secret)):
            raise _NotFound()
        return payment

    def on_show(self, request: Request, pid: str) -> Response:
        return json_response(self._payment(request, pid).public(self.base_url))

    def on_cancel(self, request: Request, pid: str) -> Response:
        payment = self._payment(request, pid)
        with self._lock:
            if payment.paid > 0:  # money is there: only a refund gives it back
                return error(409, f"payment is {payment.status}: it holds money, refund it instead")
            if payment.status in ("canceled", "expired"):
                return json_response(payment.public(self.base_url))
            payment.status = "canceled"
        return json_response(payment.public(self.base_url))

    def on_refund(self, request: Request, pid: str) -> Response:
        payment = self._payment(request, pid)
        key = request.headers.get("Idempotency-Key", "")
        try:
            data = json.loads(request.get_data())
            amount = data["amount"]
        except (ValueError, KeyError, TypeError) as exc:
            return error(400, f"bad request: {exc}")
        if not key or not isinstance(amount, int) or amount <= 0:
            return error(400, "an Idempotency-Key and a positive integer amount are required")
        with self._lock:
            if key in payment.refunds:
                return json_response(payment.refunds[key])
            if amount > payment.paid - payment.refunded:
                return error(409, f"refund exceeds the refundable {payment.paid - payment.refunded}")
            payment.refunded += amount
            refund_id = f"re_{uuid.uuid4().hex[:16]}"
            refund = {"id": refund_id, "status": "succeeded", "amount": amount, "key": key}
            payment.refunds[key] = refund
            payment.operations.append(
                {"type": "refund.succeeded", "amount": amount, "at": datetime.now(UTC).isoformat()}
            )
            self._notify(payment, "refund.succeeded", refund_id, amount, refund_key=key)
        return json_response(refund, 201)

    def on_charge(self, request: Request) -> Response:
        secret = bearer(request)
        if not secret:
            return error(401, "missing bearer secret")
        try:
            data = json.loads(request.get_data())
            order_id, amount, method = data["order_id"], data["amount"], data["method"]
        except (ValueError, KeyError, TypeError) as exc:
            return error(400, f"bad request: {exc}")
        if not isinstance(amount, int) or amount <= 0 or not order_id:
            return error(400, "an order_id and a positive integer amount are required")
        key = (secret, request.headers.get("Idempotency-Key") or order_id)
        with self._lock:
            if key in self.charges:
                return json_response(self.charges[key])
            source = self.payments.get(self.saved_methods.get(method, ""))
            if source is None or source.secret != secret:
                return error(404, f"no such saved method {method!r}")
            declined = self.faults.get("charge_decline", 0) > 0
            if declined:
                self.faults["charge_decline"] -= 1
            payment = Payment(
                id=f"pay_{uuid.uuid4().hex[:20]}",
                secret=secret,
                order_id=order_id,
                amount=amount,
                currency=data.get("currency", source.currency),
                description=data.get("description", f"charge of {method}"),
                notification_url=None,
                expires_at=datetime.now(UTC),
                method=source.method,
                status="declined" if declined else "succeeded",
                paid=0 if declined else amount,
            )
            kind = "payment.declined" if declined else "payment.succeeded"
            payment.operations.append({"type": kind, "amount": amount, "at": datetime.now(UTC).isoformat()})
            self.payments[payment.id] = payment
            answer = {
                "payment_id": payment.id,
                "status": "failed" if declined else "succeeded",
                "detail": "insufficient funds" if declined else "",
            }
            self.charges[key] = answer
        return json_response(answer, 201)

    def on_simulate(self, request: Request, pid: str) -> Response:
        data = json.loads(request.get_data() or b"{}")
        return self._act(pid, data.get("action", "pay"), data.get("amount"), json_answer=True)

    def on_deliveries(self, request: Request) -> Response:
        return json_response(
            [
                {
                    "event_id": d.event_id,
                    "payment_id": d.payment_id,
                    "type": d.type,
                    "first_sent_at": d.first_sent_at,
                    "delivered_at": d.delivered_at,
                    "attempts": d.attempts,
                }
                for d in self.deliveries
            ]
        )

    def on_faults(self, request: Request) -> Response:
        data = json.loads(request.get_data() or b"{}")
        with self._lock:
            self.faults.update({k: int(v) for k, v in data.items()})
        return json_response(self.faults)

    # -- checkout page -----------------------------------------------------------------------------------------------

    def on_checkout(self, request: Request, pid: str) -> Response:
        payment = self._payment(None, pid)
        qr = payment.public(self.base_url)["qr_payload"]
        done = request.args.get("done", "")
        refused = request.args.get("refused", "")
        return checkout_page(
            "Sandbox PSP",
            payment_id=pid,
            description=payment.description,
            amount=payment.amount,
            paid=payment.paid,
            currency=payment.currency,
            status=payment.status,
            payable=payment.status in ("new", "partially_paid", "declined"),
            notice=f"Not done: {refused}" if refused else _DONE.get(done, ""),
            notice_kind="bad" if refused or done == "decline" else "ok",
            history=[f"{o['type']} {money(o['amount'], payment.currency)} at {o['at']}" for o in payment.operations],
            note=f"Valid until {payment.expires_at:%Y-%m-%d %H:%M:%S} UTC." + (f" SBP QR payload: {qr}" if qr else ""),
        )

    def on_checkout_action(self, request: Request, pid: str) -> Response:
        action = request.form.get("action", "pay")
        answer = self._act(pid, action, None, json_answer=False)
        if answer.status_code != 200:
            refused = str(json.loads(answer.get_data()).get("error", answer.status_code))
            return redirect(f"{self.base_url}/pay/{pid}?{urlencode({'refused': refused})}", code=303)
        return redirect(f"{self.base_url}/pay/{pid}?done={action}", code=303)

    def _act(self, pid: str, action: str, amount: int | None, json_answer: bool) -> Response:
        payment = self._payment(None, pid)
        with self._lock:
            if payment.status in ("succeeded", "canceled", "expired"):
                return error(409, f"payment is {payment.status}")
            if datetime.now(UTC) > payment.expires_at:
                payment.status = "expired"
                return error(409, "payment link expired")
            remaining = payment.amount - payment.paid
            if action == "pay":
                amount = remaining
            elif action == "part":
                amount = amount or remaining // 2
                if not 0 < amount <= remaining:
                    return error(400, f"part must be between 1 and {remaining}")
            elif action == "decline":
                amount = 0
            else:
                return error(400, f"unknown action {action!r}")
            operation_id = f"op_{uuid.uuid4().hex[:16]}"
            if action == "decline":
                payment.status = "declined"
                kind = "payment.declined"
                notified_amount = remaining
            else:
                payment.paid += amount
                payment.status = "succeeded" if payment.paid >= payment.amount else "partially_paid"
                kind = "payment.succeeded"
                if payment.save_method and payment.saved_method is None:
                    payment.saved_method = f"sm_{payment.id.removeprefix('pay_')}"
                    self.saved_methods[payment.saved_method] = payment.id
                notified_amount = amount
            payment.operations.append(
                {"id": operation_id, "type": kind, "amount": notified_amount, "at": datetime.now(UTC).isoformat()}
            )
            delivery = self._notify(payment, kind, operation_id, notified_amount)
        answer = {**payment.public(self.base_url), "event_id": delivery.event_id if delivery else None}
        return json_response(answer)

    # -- notifications -----------------------------------------------------------------------------------------------

    def _notify(
        self, payment: Payment, kind: str, operation_id: str, amount: int, refund_key: str | None = None
    ) -> Delivery | None:
        if not payment.notification_url:
            return None
        message = {
            "event_id": f"evt_{uuid.uuid4().hex[:20]}",
            "type": kind,
            "payment_id": payment.id,
            "order_id": payment.order_id,
            "operation_id": operation_id,
            "amount": amount,
            "currency": payment.currency,
            "created": int(time.time()),
        }
        if refund_key:
            message["refund_key"] = refund_key
        if kind == "payment.succeeded" and payment.saved_method:
            message["saved_method"] = payment.saved_method
        body = json.dumps(message).encode()
        delivery = Delivery(
            event_id=json.loads(body)["event_id"],
            payment_id=payment.id,
            type=kind,
            url=payment.notification_url,
            body=body,
            secret=payment.secret,
        )
        self.deliveries.append(delivery)
        if self._fault("lose_notification"):  # never sent: only asking the API tells the merchant
            delivery.lost = True
            return delivery
        threading.Thread(target=self._deliver, args=(delivery, 0), daemon=True).start()
        return delivery

    def _fault(self, name: str) -> bool:
        with self._lock:
            if self.faults.get(name, 0) > 0:
                self.faults[name] -= 1
                return True
        return False

    def _deliver(self, delivery: Delivery, attempt: int) -> None:
        if self._stopped:
            return
        now = time.time()
        delivery.first_sent_at = delivery.first_sent_at or now
        try:
            response = self._http.post(
                delivery.url,
                content=delivery.body,
                headers={
                    "Content-Type": "application/json",
                    "X-Sandbox-Signature": sign(delivery.secret, delivery.body),
                },
            )
            ok = response.status_code == 200 and response.text.strip() == "OK"
            delivery.attempts.append({"at": now, "status": response.status_code, "body": response.text[:200]})
        except httpx.HTTPError as exc:
            ok = False
            delivery.attempts.append({"at": now, "status": None, "body": str(exc)[:200]})
        if ok:
            delivery.delivered_at = time.time()
            return
        if attempt < len(RETRY_DELAYS):
            log.info("notification %s not accepted; retrying in %ss", delivery.event_id, RETRY_DELAYS[attempt])
            timer = threading.Timer(RETRY_DELAYS[attempt], self._deliver, args=(delivery, attempt + 1))
            timer.daemon = True
            self._timers.append(timer)
            timer.start()


_DONE = {
    "pay": "Paid: the shop is notified.",
    "part": "Part paid (half the amount): the shop is notified; the rest can be paid on this page.",
    "decline": "Payment declined: the shop is notified; you can try again.",
}


class _NotFound(HTTPException):
    code = 404

    def get_response(self, environ: Any = None, scope: Any = None) -> Response:
        return error(404, "no such payment")
