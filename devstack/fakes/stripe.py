"""A local fake of the Stripe API for Checkout: Bearer auth, form-encoded bodies with bracket notation,
`Idempotency-Key` replay (same key + other params is an `idempotency_error`), the 30 min … 24 h `expires_at` window,
sessions, payment intents on completion, refunds, and events signed with `Stripe-Signature` sent to the webhook
endpoint until it answers 2xx.

The payer's page `GET /pay/<id>` (the session's `url`) shows the session with Pay / Pay part / Decline (`POST
/pay/<id>` `action=pay|part|decline`): Pay completes it (paid), Pay part completes it for half the amount (the
provider reporting a short amount), Decline is a declined card: as on Stripe Checkout the session stays open for
another try and no event is sent. Control, the same for tests: `POST /_control/sessions/<id>/complete` |
`…/expire`, `POST /_control/resend/<event id>` (a duplicate delivery), `POST /_control/send {"type": …, "object":
…}` (an arbitrary event, e.g. out of order); faults `lose_next_create`.

Recurring payments: a session with `payment_intent_data[setup_future_usage]=off_session` (and
`customer_creation=always`) completes with a customer and a payment method attached to it; its PaymentIntent is read
with `GET /v1/payment_intents/<id>`. `POST /v1/payment_intents customer, payment_method, off_session=true,
confirm=true` charges such a method at once (`succeeded`); with the fault `charge_decline` it is a 402 `card_error`
`card_declined` (`insufficient_funds`) naming the intent, left `requires_payment_method`."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.routing import Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from devstack.fakes.base import FakeApp
from devstack.web import checkout_page, json_response, money
from paybridge.adapters.psp.stripe import sign
from paybridge.tenants import TenantConfig


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


class FakeStripe(FakeApp):
    rules = (
        Rule("/v1/checkout/sessions", methods=["POST"], endpoint="create"),
        Rule("/v1/checkout/sessions", methods=["GET"], endpoint="list"),
        Rule("/v1/checkout/sessions/<sid>", methods=["GET"], endpoint="session"),
        Rule("/v1/checkout/sessions/<sid>/expire", methods=["POST"], endpoint="expire"),
        Rule("/v1/refunds", methods=["POST"], endpoint="refund"),
        Rule("/v1/payment_intents", methods=["POST"], endpoint="intent_create"),
        Rule("/v1/payment_intents/<pid>", methods=["GET"], endpoint="intent"),
        Rule("/pay/<sid>", methods=["GET"], endpoint="page"),
        Rule("/pay/<sid>", methods=["POST"], endpoint="page_action"),
        Rule("/_control/sessions/<sid>/<action>", methods=["POST"], endpoint="control"),
        Rule("/_control/resend/<eid>", methods=["POST"], endpoint="resend"),
        Rule("/_control/send", methods=["POST"], endpoint="send"),
    )

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.accounts: dict[str, tuple[str, str]] = {}  # secret key → (webhook secret, endpoint URL)
        self.sessions: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.intents: dict[str, dict[str, Any]] = {}
        self.attached: dict[str, str] = {}  # payment method → the customer it is saved for
        self.events: dict[str, tuple[str, bytes]] = {}  # event id → (account key, body)
        self.keys: dict[tuple[str, str], tuple[dict[str, str], Response]] = {}
        self.owner: dict[str, str] = {}
        self._made: Response | None = None
        self.asked: dict[str, int] = {}  # session id → the amount asked, where Pay part completed for less
        self.history: dict[str, list[str]] = {}  # session id → what the payer did, as the page lists it

    def add_merchant(self, tenant: TenantConfig, secrets: dict[str, str], notification_url: str) -> None:
        self.accounts[secrets["secret_key"]] = (secrets["webhook_secret"], notification_url)

    def _account(self, request: Request) -> str | None:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return key if key in self.accounts else None

    def _post(self, request: Request, handler: Any) -> Response:
        account = self._account(request)
        if account is None:
            return _error(401, "authentication_error", "Invalid API Key provided")
        params = dict(parse_qsl(request.get_data(as_text=True)))
        key = request.headers.get("Idempotency-Key")
        with self.lock:
            if key and (account, key) in self.keys:
                first_params, first = self.keys[(account, key)]
                if first_params != params:
                    return _error(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same parameters",
                    )
                return first
            self._made = None
            answer: Response = handler(account, params)
            if key and answer.status_code < 500:
                self.keys[(account, key)] = (params, answer)
            elif key and self._made is not None:
                self.keys[(account, key)] = (params, self._made)
            return answer

    def on_create(self, request: Request) -> Response:
        return self._post(request, self._create)

    def _create(self, account: str, params: dict[str, str]) -> Response:
        now = int(time.time())
        expires_at = int(params.get("expires_at", now + 86400))
        if not now + 1800 - 60 <= expires_at <= now + 86400 + 60:
            return _error(
                400, "invalid_request_error", "expires_at must be 30 minutes to 24 hours from now", "expires_at"
            )
        if params.get("mode") != "payment" or not params.get("success_url"):
            return _error(400, "invalid_request_error", "mode=payment and success_url are required")
        amount = int(params["line_items[0][price_data][unit_amount]"]) * int(params.get("line_items[0][quantity]", 1))
        sid = _id("cs_test")
        session = {
            "id": sid,
            "object": "checkout.session",
            "url": f"{self.base_url}/pay/{sid}",
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": amount,
            "currency": params["line_items[0][price_data][currency]"],
            "client_reference_id": params.get("client_reference_id"),
            "expires_at": expires_at,
            "payment_intent": None,
            "customer": None,
            "customer_creation": params.get("customer_creation"),
            "setup_future_usage": params.get("payment_intent_data[setup_future_usage]"),
            "metadata": {k[9:-1]: v for k, v in params.items() if k.startswith("metadata[")},
        }
        self.sessions[sid] = session
        self.owner[sid] = account
        if self.fault("lose_next_create"):
            self._made = json_response(session)
            return _error(500, "api_error", "result unknown")
        return json_response(session)

    def on_list(self, request: Request) -> Response:
        account = self._account(request)
        intent = request.args.get("payment_intent")
        data = [s for s in self.sessions.values() if self.owner[s["id"]] == account and s["payment_intent"] == intent]
        return json_response({"object": "list", "data": data[:1], "has_more": False})

    def on_session(self, request: Request, sid: str) -> Response:
        if self._account(request) is None or self.owner.get(sid) != self._account(request):
            return _error(404, "invalid_request_error", f"No such checkout.session: '{sid}'")
        return json_response(self.sessions[sid])

    def on_expire(self, request: Request, sid: str) -> Response:
        def expire(account: str, _params: dict[str, str]) -> Response:
            session = self.sessions.get(sid)
            if session is None or self.owner[sid] != account:
                return _error(404, "invalid_request_error", f"No such checkout.session: '{sid}'")
            if session["status"] != "open":
                return _error(400, "invalid_request_error", f"Only open sessions can be expired ({session['status']})")
            session["status"] = "expired"
            self._event(account, "checkout.session.expired", session)
            return json_response(session)

        return self._post(request, expire)

    def on_refund(self, request: Request) -> Response:
        return self._post(request, self._refund)

    def _refund(self, account: str, params: dict[str, str]) -> Response:
        session = next((s for s in self.sessions.values() if s["payment_intent"] == params.get("payment_intent")), None)
        if session is None or self.owner[session["id"]] != account:
            return _error(404, "invalid_request_error", "No such payment_intent")
        refunded = sum(r["amount"] for r in self.refunds.values() if r["payment_intent"] == session["payment_intent"])
        amount = int(params.get("amount", session["amount_total"] - refunded))
        if amount > session["amount_total"] - refunded:
            return _error(400, "invalid_request_error", "Refund amount is greater than unrefunded amount", "amount")
        refund = {
            "id": _id("re"),
            "object": "refund",
            "status": "succeeded",
            "amount": amount,
            "currency": session["currency"],
            "payment_intent": session["payment_intent"],
            "metadata": {k[9:-1]: v for k, v in params.items() if k.startswith("metadata[")},
        }
        self.refunds[refund["id"]] = refund
        self._event(account, "refund.created", refund)
        return json_response(refund)

    def on_intent(self, request: Request, pid: str) -> Response:
        account = self._account(request)
        if account is None or self.owner.get(pid) != account:
            return _error(404, "invalid_request_error", f"No such payment_intent: '{pid}'")
        return json_response(self.intents[pid])

    def on_intent_create(self, request: Request) -> Response:
        return self._post(request, self._intent_create)

    def _intent_create(self, account: str, params: dict[str, str]) -> Response:
        customer, method = params.get("customer"), params.get("payment_method", "")
        if params.get("confirm") != "true" or params.get("off_session") != "true":
            return _error(400, "invalid_request_error", "this fake charges saved methods only: confirm, off_session")
        if not customer or self.attached.get(method) != customer or self.owner.get(method) != account:
            return _error(400, "invalid_request_error", f"No such PaymentMethod: '{method}' for this customer")
        intent = self._intent(account, int(params["amount"]), params["currency"], customer, method)
        intent["metadata"] = {k[9:-1]: v for k, v in params.items() if k.startswith("metadata[")}
        if self.fault("charge_decline"):
            error = {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds"}
            intent.update(status="requires_payment_method", last_payment_error=error)
            message = "Your card has insufficient funds."
            return json_response({"error": {**error, "message": message, "payment_intent": intent}}, 402)
        self._event(account, "payment_intent.succeeded", intent)
        return json_response(intent)

    def _intent(self, account: str, amount: int, currency: str, customer: str | None, method: str) -> dict[str, Any]:
        intent: dict[str, Any] = {
            "id": _id("pi"),
            "object": "payment_intent",
            "amount": amount,
            "currency": currency,
            "status": "succeeded",
            "customer": customer,
            "payment_method": method,
            "setup_future_usage": None,
            "last_payment_error": None,
        }
        self.intents[intent["id"]] = intent
        self.owner[intent["id"]] = account
        return intent

    def on_page(self, request: Request, sid: str) -> Response:
        session = self.sessions.get(sid)
        if session is None:
            return Response(f"Stripe fake: no session {sid}", status=404, mimetype="text/plain")
        paid = session["amount_total"] if session["payment_status"] == "paid" else 0
        return checkout_page(
            "Stripe Checkout",
            payment_id=sid,
            description=f"Checkout for {session.get('client_reference_id') or 'an order'}",
            amount=self.asked.get(sid, session["amount_total"]),
            paid=paid,
            currency=str(session["currency"]).upper(),
            status=f"{session['status']} · {session['payment_status']}",
            payable=session["status"] == "open",
            notice=_DONE.get(request.args.get("done", ""), ""),
            notice_kind="bad" if request.args.get("done") == "decline" else "ok",
            history=self.history.get(sid, ()),
            note="Pay part: Stripe completes the session for half the amount (a short payment). "
            "Decline: the card is refused and the session stays open, as on Stripe Checkout.",
        )

    def on_page_action(self, request: Request, sid: str) -> Response:
        action = request.form.get("action", "")
        if action not in ("pay", "part", "decline"):
            return json_response({"error": f"unknown action {action}"}, 400)
        answer = self._payer(sid, {"pay": "complete", "part": "part", "decline": "decline"}[action])
        if answer.status_code != 200:
            return answer
        return redirect(f"{self.base_url}/pay/{sid}?done={action}", code=303)

    def on_control(self, request: Request, sid: str, action: str) -> Response:
        return self._payer(sid, action)

    def _payer(self, sid: str, action: str) -> Response:
        """The payer's step (the page's buttons and the control call): complete (`part`: for half the amount),
        expire, or decline (a refused card: the session stays open, no event)."""
        with self.lock:
            session = self.sessions.get(sid)
            if session is None or session["status"] != "open":
                return json_response({"error": "session is not open"}, 409)
            event_id = None
            if action in ("complete", "part"):
                if action == "part":
                    self.asked[sid] = session["amount_total"]
                    session["amount_total"] = max(session["amount_total"] // 2, 1)
                account = self.owner[sid]
                saving = session["setup_future_usage"] == "off_session"
                customer = _id("cus") if saving or session["customer_creation"] == "always" else None
                method = _id("pm")
                intent = self._intent(account, session["amount_total"], session["currency"], customer, method)
                intent["setup_future_usage"] = session["setup_future_usage"]
                if saving and customer:
                    self.attached[method] = customer
                    self.owner[method] = account
                session.update(status="complete", payment_status="paid", payment_intent=intent["id"], customer=customer)
                event_id = self._event(self.owner[sid], "checkout.session.completed", session)
            elif action == "expire":
                session["status"] = "expired"
                event_id = self._event(self.owner[sid], "checkout.session.expired", session)
            elif action == "decline":
                pass  # Checkout shows the payer the decline; the session stays open and nothing is sent
            else:
                return json_response({"error": f"unknown action {action}"}, 400)
            done = (
                "card declined"
                if action == "decline"
                else f"{session['status']} {money(session['amount_total'], str(session['currency']).upper())}"
            )
            self.history.setdefault(sid, []).append(done)
            return json_response({**session, "event_id": event_id})

    def on_resend(self, request: Request, eid: str) -> Response:
        account, body = self.events[eid]
        self._deliver(account, body)
        return json_response({"resent": eid})

    def on_send(self, request: Request) -> Response:
        data = request.get_json()
        account = (
            self.owner[data["object"].get("id")]
            if data["object"].get("id") in self.owner
            else next(iter(self.accounts))
        )
        return json_response({"event_id": self._event(account, data["type"], data["object"])})

    def _event(self, account: str, event_type: str, obj: dict[str, Any]) -> str:
        event_id = _id("evt")
        body = json.dumps(
            {
                "id": event_id,
                "object": "event",
                "type": event_type,
                "created": int(time.time()),
                "data": {"object": obj},
            }
        ).encode()
        self.events[event_id] = (account, body)
        self._deliver(account, body)
        return event_id

    def _deliver(self, account: str, body: bytes) -> None:
        secret, url = self.accounts[account]
        headers = {"Content-Type": "application/json", "Stripe-Signature": sign(secret, body)}
        self.deliver(url, body, headers, lambda r: 200 <= r.status_code < 300)


_DONE = {
    "pay": "Payment complete: Stripe sends the shop checkout.session.completed.",
    "part": "Part paid: the session completed for half the amount; Stripe notifies the shop.",
    "decline": "Your card was declined. The session is still open: try again or use another card.",
}


def _error(status: int, kind: str, message: str, param: str | None = None) -> Response:
    return json_response({"error": {"type": kind, "message": message, "param": param}}, status)


#: What the local stack serves for tenants whose settings name `stripe` (see devstack/fakes/__init__.py).
FAKE = FakeStripe
