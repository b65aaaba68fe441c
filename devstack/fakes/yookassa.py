"""A local fake of YooKassa API v3: Basic auth per shop, `Idempotence-Key` required on every POST (the same key
returns the first result), receipts validated, payments that cannot be cancelled while `pending`, refunds, and
unsigned notifications `{type, event, object}` sent to the shop's URL until it answers 200.

The payer's page `GET /checkout/<id>` (the `confirmation_url`) shows the payment with Pay / Pay part / Decline
(`POST /checkout/<id>` `action=pay|part|decline`): Pay succeeds it, Pay part succeeds it for half the amount (the
provider reporting a short amount), Decline cancels it as a card decline does (`payment_network`,
`insufficient_funds`). Control, the same for tests: `POST /_control/payments/<id>/succeed` | `…/cancel`; faults
`lose_next_create` (made, answered 500).

Recurring payments: `save_payment_method: true` gives the payment a `payment_method {type, id, saved}` that is saved
when it succeeds; a create with `payment_method_id` (a method this shop saved) is charged at once, without a
confirmation: `succeeded`, or with the fault `charge_decline` `canceled` (`insufficient_funds`).

Settlements: a succeeded payment carries `income_amount` (the amount less the shop's fee, `FEE_PERCENT`, rounded half
up to a kopeck) and `captured_at`. `POST /_control/payout {"shop_id", "date": "YYYY-MM-DD"}` answers the payout
YooKassa would send to the shop's account for that Moscow day, as its documentation describes it (the next working
day, the day's payments less the fee, less the refunds; each paid out once): `{amount (kopecks), payer_inn,
payer_name, payer_account, purpose, payments: [id], refunds: [id]}` — the bank fake or a 1C file then carries
it; `"exclude": [id]` leaves payments out (a payout short by them). `…/succeed {"method": "sbp"}`: the payer chose
SBP on the page."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.routing import Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from devstack.fakes.base import FakeApp
from devstack.web import checkout_page, json_response
from paybridge.domain.money import from_decimal_string
from paybridge.tenants import TenantConfig


class FakeYooKassa(FakeApp):
    rules = (
        Rule("/v3/payments", methods=["POST"], endpoint="create"),
        Rule("/v3/payments/<pid>", methods=["GET"], endpoint="payment"),
        Rule("/v3/payments/<pid>/cancel", methods=["POST"], endpoint="cancel"),
        Rule("/v3/refunds", methods=["POST"], endpoint="refund"),
        Rule("/v3/refunds/<rid>", methods=["GET"], endpoint="refund_get"),
        Rule("/checkout/<pid>", methods=["GET"], endpoint="page"),
        Rule("/checkout/<pid>", methods=["POST"], endpoint="page_action"),
        Rule("/_control/payments/<pid>/<action>", methods=["POST"], endpoint="control"),
        Rule("/_control/payout", methods=["POST"], endpoint="control_payout"),
    )

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.shops: dict[str, tuple[str, str]] = {}  # shop id → (secret key, notification URL)
        self.payments: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.keys: dict[tuple[str, str], tuple[str, Response]] = {}  # (shop, key) → (body, first answer)
        self.owner: dict[str, str] = {}  # object id → shop id
        self.requests: list[dict[str, Any]] = []
        self.saved: dict[str, str] = {}  # saved payment method id → shop id
        self._made: Response | None = None
        self.asked: dict[str, int] = {}  # payment id → the amount asked, where Pay part confirmed less
        self.history: dict[str, list[str]] = {}  # payment id → what the payer did, as the page lists it
        self.paid_out: set[str] = set()  # payments and refunds a payout has carried (each is paid out once)

    def add_merchant(self, tenant: TenantConfig, secrets: dict[str, str], notification_url: str) -> None:
        self.shops[tenant.psp.shop_id] = (secrets["secret_key"], notification_url)  # type: ignore[attr-defined]

    def _shop(self, request: Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        shop, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        return shop if shop in self.shops and self.shops[shop][0] == secret else None

    def _post(self, request: Request, handler: Any) -> Response:
        shop = self._shop(request)
        if shop is None:
            return _error(401, "invalid_credentials", "Basic auth failed")
        key = request.headers.get("Idempotence-Key")
        if not key:
            return _error(400, "invalid_request", "Idempotence-Key header is required")
        raw = request.get_data(as_text=True)
        with self.lock:
            if (shop, key) in self.keys:
                body, first = self.keys[(shop, key)]
                if body != raw:
                    return _error(400, "invalid_request", "Idempotence key duplicated with another request body")
                return first
            data = json.loads(raw or "{}")
            self.requests.append(data)
            self._made = None
            answer: Response = handler(shop, data)
            if answer.status_code < 500:
                self.keys[(shop, key)] = (raw, answer)
            elif self._made is not None:  # done, but the answer was lost: the same key returns what was made
                self.keys[(shop, key)] = (raw, self._made)
            return answer

    def on_create(self, request: Request) -> Response:
        return self._post(request, self._create)

    def _create(self, shop: str, data: dict[str, Any]) -> Response:
        amount = from_decimal_string(data["amount"]["value"])
        receipt = data.get("receipt")
        if receipt is not None:
            total = sum(
                Decimal(i["quantity"]) * from_decimal_string(i["amount"]["value"]) for i in receipt.get("items", [])
            )
            if total != amount or not receipt.get("customer"):
                return _error(400, "invalid_request", "receipt items do not add up or customer contact missing")
        if data.get("payment_method_id") is not None:
            return self._charge(shop, data)
        pid = str(uuid.uuid4())
        payment: dict[str, Any] = {
            "id": pid,
            "status": "pending",
            "paid": False,
            "amount": data["amount"],
            "description": data.get("description", ""),
            "metadata": data.get("metadata", {}),
            "confirmation": {"type": "redirect", "confirmation_url": f"{self.base_url}/checkout/{pid}"},
            "refundable": False,
            "test": True,
        }
        if data.get("save_payment_method") is True:
            payment["payment_method"] = {"type": "bank_card", "id": str(uuid.uuid4()), "saved": False}
        elif isinstance(data.get("payment_method_data"), dict):  # the method asked for at create (SBP)
            payment["payment_method"] = {"type": data["payment_method_data"].get("type"), "id": str(uuid.uuid4())}
        self.payments[pid] = payment
        self.owner[pid] = shop
        if self.fault("lose_next_create"):
            self._made = json_response(payment)
            return _error(500, "internal_server_error", "result unknown")
        return json_response(payment)

    def _charge(self, shop: str, data: dict[str, Any]) -> Response:
        method_id = str(data["payment_method_id"])
        if self.saved.get(method_id) != shop:
            return _error(400, "invalid_request", "payment_method_id is not a saved payment method of this shop")
        if data.get("confirmation") is not None:
            return _error(400, "invalid_request", "a charge of a saved method takes no confirmation")
        pid = str(uuid.uuid4())
        payment: dict[str, Any] = {
            "id": pid,
            "status": "succeeded",
            "paid": True,
            "amount": data["amount"],
            "description": data.get("description", ""),
            "metadata": data.get("metadata", {}),
            "payment_method": {"type": "bank_card", "id": method_id, "saved": True},
            "refundable": True,
            "test": True,
        }
        if self.fault("charge_decline"):
            payment.update(
                status="canceled",
                paid=False,
                refundable=False,
                cancellation_details={"party": "payment_network", "reason": "insufficient_funds"},
            )
        self.payments[pid] = payment
        self.owner[pid] = shop
        self._notify(shop, f"payment.{payment['status']}", payment)
        return json_response(payment)

    def on_payment(self, request: Request, pid: str) -> Response:
        shop = self._shop(request)
        if shop is None or self.owner.get(pid) != shop:
            return _error(404, "not_found", "payment not found")
        return json_response(self.payments[pid])

    def on_cancel(self, request: Request, pid: str) -> Response:
        def cancel(shop: str, _data: dict[str, Any]) -> Response:
            payment = self.payments.get(pid)
            if payment is None or self.owner[pid] != shop:
                return _error(404, "not_found", "payment not found")
            if payment["status"] != "waiting_for_capture":
                return _error(400, "invalid_request", f"payment in status {payment['status']} cannot be canceled")
            payment["status"] = "canceled"
            return json_response(payment)

        return self._post(request, cancel)

    def on_refund(self, request: Request) -> Response:
        return self._post(request, self._refund)

    def _refund(self, shop: str, data: dict[str, Any]) -> Response:
        payment = self.payments.get(data.get("payment_id", ""))
        if payment is None or self.owner[payment["id"]] != shop:
            return _error(404, "not_found", "payment not found")
        amount = from_decimal_string(data["amount"]["value"])
        refunded = from_decimal_string(payment.get("refunded_amount", {}).get("value", "0"))
        if payment["status"] != "succeeded" or amount > from_decimal_string(payment["amount"]["value"]) - refunded:
            return _error(400, "invalid_request", "refund amount exceeds the refundable")
        rid = str(uuid.uuid4())
        refund = {
            "id": rid,
            "payment_id": payment["id"],
            "status": "succeeded",
            "amount": data["amount"],
            "created_at": _stamp(),
            "metadata": data.get("metadata", {}),
            "receipt": data.get("receipt"),
        }
        self.refunds[rid] = refund
        self.owner[rid] = shop
        payment["refunded_amount"] = {"value": f"{Decimal(refunded + amount) / 100:.2f}", "currency": "RUB"}
        self._notify(shop, "refund.succeeded", refund)
        return json_response(refund)

    def on_refund_get(self, request: Request, rid: str) -> Response:
        shop = self._shop(request)
        if shop is None or self.owner.get(rid) != shop:
            return _error(404, "not_found", "refund not found")
        return json_response(self.refunds[rid])

    def on_page(self, request: Request, pid: str) -> Response:
        payment = self.payments.get(pid)
        if payment is None:
            return Response(f"YooKassa fake: no payment {pid}", status=404, mimetype="text/plain")
        amount = from_decimal_string(payment["amount"]["value"])
        asked = self.asked.get(pid, amount)
        details = payment.get("cancellation_details")
        return checkout_page(
            "YooKassa",
            payment_id=pid,
            description=payment.get("description") or "",
            amount=asked,
            paid=amount if payment["paid"] else 0,
            currency=payment["amount"]["currency"],
            status=payment["status"] + (f" ({details['reason']})" if details else ""),
            payable=payment["status"] == "pending",
            notice=_DONE.get(request.args.get("done", ""), ""),
            notice_kind="bad" if request.args.get("done") == "decline" else "ok",
            history=self.history.get(pid, ()),
            note="Pay part: YooKassa confirms half the amount (a short payment).",
        )

    def on_page_action(self, request: Request, pid: str) -> Response:
        action = request.form.get("action", "")
        if action not in ("pay", "part", "decline"):
            return json_response({"error": f"unknown action {action}"}, 400)
        answer = self._payer(pid, {"pay": "succeed", "part": "part", "decline": "decline"}[action])
        if answer.status_code != 200:
            return answer
        return redirect(f"{self.base_url}/checkout/{pid}?done={action}", code=303)

    def on_control(self, request: Request, pid: str, action: str) -> Response:
        return self._payer(pid, action, (request.get_json(silent=True) or {}).get("method"))

    def _payer(self, pid: str, action: str, method: str | None = None) -> Response:
        """The payer's step (the page's buttons and the control call): succeed (`part`: for half the amount), cancel
        (the link lapsed) or decline (the card network refused); the shop is notified."""
        with self.lock:
            payment = self.payments.get(pid)
            if payment is None or payment["status"] != "pending":
                return json_response({"error": "not pending"}, 409)
            if action in ("succeed", "part"):
                if action == "part":
                    asked = from_decimal_string(payment["amount"]["value"])
                    self.asked[pid] = asked
                    payment["amount"] = {**payment["amount"], "value": f"{Decimal(max(asked // 2, 1)) / 100:.2f}"}
                # the payer chose how to pay on YooKassa's page ({"method": "sbp"}); a succeeded payment names it
                kind = method if method in ("sbp", "bank_card") else "bank_card"
                payment.setdefault("payment_method", {"type": kind, "id": str(uuid.uuid4()), "saved": False})
                payment.update(status="succeeded", paid=True, refundable=True, captured_at=_stamp())
                payment["income_amount"] = {
                    "value": _money(_income(from_decimal_string(payment["amount"]["value"]))),
                    "currency": payment["amount"]["currency"],
                }
                if "payment_method" in payment:
                    payment["payment_method"]["saved"] = True
                    self.saved[payment["payment_method"]["id"]] = self.owner[pid]
                self._notify(self.owner[pid], "payment.succeeded", payment)
            elif action in ("cancel", "decline"):
                party, reason = (
                    ("payment_network", "insufficient_funds")
                    if action == "decline"
                    else ("yoo_money", "expired_on_confirmation")
                )
                payment.update(status="canceled", cancellation_details={"party": party, "reason": reason})
                self._notify(self.owner[pid], "payment.canceled", payment)
            else:
                return json_response({"error": f"unknown action {action}"}, 400)
            amount = payment["amount"]
            self.history.setdefault(pid, []).append(f"{payment['status']} {amount['value']} {amount['currency']}")
            return json_response(payment)

    def on_control_payout(self, request: Request) -> Response:
        data = request.get_json(silent=True) or {}
        try:
            day = date.fromisoformat(str(data["date"]))
            shop = str(data["shop_id"])
        except (KeyError, ValueError):
            return json_response({"error": "shop_id and date (YYYY-MM-DD) are required"}, 400)
        withheld = set(data.get("exclude") or ())  # payments the provider leaves out (a fault to reconcile)
        with self.lock:
            paid = [
                p
                for pid, p in self.payments.items()
                if self.owner.get(pid) == shop
                and p["status"] == "succeeded"
                and moscow_day(p.get("captured_at")) == day
                and pid not in withheld
                and pid not in self.paid_out
            ]
            refunds = [
                r
                for rid, r in self.refunds.items()
                if self.owner.get(rid) == shop
                and r.get("status") == "succeeded"
                and moscow_day(r.get("created_at")) == day
                and rid not in self.paid_out
            ]
            self.paid_out.update(p["id"] for p in paid)
            self.paid_out.update(r["id"] for r in refunds)
        income = sum(from_decimal_string(p["income_amount"]["value"]) for p in paid)
        gross = sum(from_decimal_string(p["amount"]["value"]) for p in paid)
        refunded = sum(from_decimal_string(r["amount"]["value"]) for r in refunds)
        amount = income - refunded
        purpose = (
            f"Перевод по договору № {shop} за {day:%d.%m.%Y} по реестру № {day:%Y%m%d}. Платежей {len(paid)} "
            f"на сумму {_money(gross)}, возвратов {len(refunds)} на сумму {_money(refunded)}, "
            f"комиссия {_money(gross - income)}. ЮKassa. Без НДС"
        )
        return json_response(
            {
                "amount": amount,
                "payer_inn": "7750005725",
                "payer_name": "ООО НКО «ЮМани»",
                "payer_account": "30232810100000000001",
                "purpose": purpose,
                "payments": [p["id"] for p in paid],
                "refunds": [r["id"] for r in refunds],
            }
        )

    def _notify(self, shop: str, event: str, obj: dict[str, Any]) -> None:
        body = json.dumps({"type": "notification", "event": event, "object": obj}).encode()
        self.deliver(self.shops[shop][1], body, {"Content-Type": "application/json"}, lambda r: r.status_code == 200)


_DONE = {
    "pay": "Payment succeeded: YooKassa notifies the shop.",
    "part": "Part paid: YooKassa confirms half the amount and notifies the shop.",
    "decline": "Payment declined by the card network: the shop is notified.",
}

#: The shop's fee in percent of each payment (a fake's contract).
FEE_PERCENT = Decimal("3.5")
_MSK = ZoneInfo("Europe/Moscow")


def _income(amount: int) -> int:
    return amount - int((Decimal(amount) * FEE_PERCENT / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _money(kopecks: int) -> str:
    return f"{Decimal(kopecks) / 100:.2f}"


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def moscow_day(stamp: object) -> date | None:
    """The Moscow day of one of the fake's ISO stamps (what its payouts go by)."""
    if not isinstance(stamp, str):
        return None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(_MSK).date()


def _error(status: int, code: str, description: str) -> Response:
    return json_response({"type": "error", "id": str(uuid.uuid4()), "code": code, "description": description}, status)


#: What the local stack serves for tenants whose settings name `yookassa` (see devstack/fakes/__init__.py).
FAKE = FakeYooKassa
