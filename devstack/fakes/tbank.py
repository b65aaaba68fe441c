"""A local fake of T-Bank acquiring API v2: checks the Token of every request with the terminal's password, keeps
payments, validates receipts, refunds through Cancel (deduplicated by ExternalRequestId) and sends notifications
signed with the Token, repeated until the merchant answers `OK`. As at T-Bank, `Cancel` is one call for three
things: a NEW payment is cancelled, an AUTHORIZED hold is reversed (REVERSED), a CONFIRMED payment is refunded
(REFUNDED / PARTIAL_REFUNDED) — so cancelling a paid payment gives the payer's money back.

The payer's page `GET /pay/<PaymentId>` (the PaymentURL) shows the payment with Pay / Pay part / Decline buttons
(`POST /pay/<PaymentId>` `action=pay|part|decline`): Pay confirms the amount (a two-stage `PayType: "T"` payment is
AUTHORIZED first), Pay part confirms half of it (the bank reporting a short amount), Decline rejects it.
Control, the same for tests: `POST /_control/payments/<PaymentId>/pay` (`{"amount": …}` to notify another amount),
`…/decline`; faults `lose_next_init` (the payment is made, the answer is a 503) through `POST /_control/faults`.

Recurring payments: an `Init` with `Recurrent: "Y"` (and a `CustomerKey`, required then) saves the card when paid —
the CONFIRMED notification carries `RebillId`; `Charge {PaymentId, RebillId}` pays a NEW payment of the same terminal
with it at once (CONFIRMED). Fault `charge_decline`: the next Charge is REJECTED (ErrorCode 1051, insufficient funds),
answered `Success: false` as T-Bank does.

Settlements: T-Bank's API tells no fee per payment; the acquirer pays the day's confirmed payments out as one transfer,
less its fee (`FEE_PERCENT` of each payment here, rounded half up) and the day's refunds. `POST /_control/payout
{"terminal", "date": "YYYY-MM-DD", "exclude"?: [PaymentId]}` answers that transfer as the company's statement shows
it: `{amount (kopecks), payer_inn: 7710140679 (АО «ТБанк»), payer_name, payer_account, purpose, payments, refunds}`;
each operation is paid out once."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.routing import Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from devstack.fakes.base import FakeApp
from devstack.web import checkout_page, json_response, money
from paybridge.adapters.psp.tbank import token
from paybridge.tenants import TenantConfig

_ids = itertools.count(4_100_000_000)


@dataclass
class Payment:
    payment_id: str
    terminal: str
    order_id: str
    amount: int
    notification_url: str | None
    receipt: dict[str, Any] | None
    pay_type: str
    status: str = "NEW"
    refunded: int = 0
    recurrent: bool = False
    customer_key: str | None = None
    rebill_id: str | None = None
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    confirmed_at: datetime | None = None
    #: refunds made: (when, amount)
    refunded_at: list[tuple[datetime, int]] = field(default_factory=list)


class FakeTBank(FakeApp):
    rules = (
        Rule("/v2/<method>", methods=["POST"], endpoint="api"),
        Rule("/pay/<pid>", methods=["GET"], endpoint="page"),
        Rule("/pay/<pid>", methods=["POST"], endpoint="page_action"),
        Rule("/_control/payments/<pid>/<action>", methods=["POST"], endpoint="control"),
        Rule("/_control/payout", methods=["POST"], endpoint="control_payout"),
    )

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.passwords: dict[str, str] = {}
        self.payments: dict[str, Payment] = {}
        self.requests: list[dict[str, Any]] = []
        self.rebills: dict[str, tuple[str, str]] = {}  # RebillId → (terminal, CustomerKey)
        self.confirmed: dict[str, int] = {}  # PaymentId → the amount the payer's confirmation notified
        self.history: dict[str, list[str]] = {}  # PaymentId → what the payer did, as the page lists it
        self.paid_out: set[str] = set()  # PaymentIds (and "<PaymentId>:refund:<k>") a payout carried

    def add_merchant(self, tenant: TenantConfig, secrets: dict[str, str], notification_url: str) -> None:
        self.passwords[tenant.psp.terminal_key] = secrets["password"]  # type: ignore[attr-defined]

    # -- API -------------------------------------------------------------------------------------------------------

    def on_api(self, request: Request, method: str) -> Response:
        try:
            body = json.loads(request.get_data())
        except ValueError:
            return _error("215", "Неверный формат запроса")
        password = self.passwords.get(body.get("TerminalKey", ""))
        if password is None or body.get("Token") != token(body, password):
            return _error("204", "Неверный токен. Проверьте пару TerminalKey/SecretKey.")
        self.requests.append({"method": method, **body})
        handler = getattr(self, f"_{method.lower()}", None)
        if handler is None:
            return _error("9", f"unknown method {method}")
        with self.lock:
            return handler(body)

    def _init(self, body: dict[str, Any]) -> Response:
        amount = body.get("Amount")
        if not isinstance(amount, int) or amount <= 0 or not body.get("OrderId"):
            return _error("215", "Amount and OrderId are required")
        receipt = body.get("Receipt")
        if receipt is not None and sum(i["Amount"] for i in receipt.get("Items", [])) != amount:
            return _error("308", "Сумма позиций чека не равна сумме платежа")
        recurrent = body.get("Recurrent") == "Y"
        if recurrent and not body.get("CustomerKey"):
            return _error("215", "CustomerKey is required with Recurrent=Y")
        payment = Payment(
            recurrent=recurrent,
            customer_key=body.get("CustomerKey"),
            payment_id=str(next(_ids)),
            terminal=body["TerminalKey"],
            order_id=body["OrderId"],
            amount=amount,
            notification_url=body.get("NotificationURL"),
            receipt=receipt,
            pay_type=body.get("PayType", "O"),
        )
        self.payments[payment.payment_id] = payment
        if self.fault("lose_next_init"):
            return Response("upstream timeout", status=503)
        return _ok(payment, PaymentURL=f"{self.base_url}/pay/{payment.payment_id}", Amount=amount)

    def _getqr(self, body: dict[str, Any]) -> Response:
        payment = self.payments.get(str(body.get("PaymentId")))
        if payment is None:
            return _error("7", "Платёж не найден")
        data = f"https://qr.nspk.ru/FAKE{payment.payment_id}?type=02&sum={payment.amount}&cur=RUB"
        if body.get("DataType") == "IMAGE":
            data = f"<svg xmlns='http://www.w3.org/2000/svg'><text>{payment.payment_id}</text></svg>"
        return _ok(payment, Data=data)

    def _getstate(self, body: dict[str, Any]) -> Response:
        payment = self.payments.get(str(body.get("PaymentId")))
        return _error("7", "Платёж не найден") if payment is None else _ok(payment, Amount=payment.amount)

    def _checkorder(self, body: dict[str, Any]) -> Response:
        found = [p for p in self.payments.values() if p.order_id == body.get("OrderId")]
        if not found:
            return _error("7", "Заказ не найден")
        payments = [{"PaymentId": p.payment_id, "Amount": p.amount, "Status": p.status, "Success": True} for p in found]
        return json_response({"Success": True, "ErrorCode": "0", "OrderId": body["OrderId"], "Payments": payments})

    def _charge(self, body: dict[str, Any]) -> Response:
        payment = self.payments.get(str(body.get("PaymentId")))
        if payment is None or payment.terminal != body["TerminalKey"]:
            return _error("7", "Платёж не найден")
        rebill = self.rebills.get(str(body.get("RebillId")))
        if rebill is None or rebill[0] != body["TerminalKey"]:
            return _error("103", "Неверный RebillId")
        if payment.status != "NEW":
            return _error("1001", f"Нельзя провести Charge в статусе {payment.status}")
        if self.fault("charge_decline"):
            payment.status = "REJECTED"
            self._notify(payment, payment.status, payment.amount)
            answer = {
                "Success": False,
                "ErrorCode": "1051",
                "Message": "Недостаточно средств на карте",
                "Details": "",
                "TerminalKey": payment.terminal,
                "Status": payment.status,
                "PaymentId": payment.payment_id,
                "OrderId": payment.order_id,
                "Amount": payment.amount,
            }
            return json_response(answer)
        payment.status = "CONFIRMED"
        self._notify(payment, payment.status, payment.amount)
        return _ok(payment, Amount=payment.amount)

    def _cancel(self, body: dict[str, Any]) -> Response:
        payment = self.payments.get(str(body.get("PaymentId")))
        if payment is None:
            return _error("7", "Платёж не найден")
        if payment.status in ("NEW", "FORM_SHOWED"):
            payment.status = "CANCELED"
            return _ok(payment, OriginalAmount=payment.amount, NewAmount=0)
        if payment.status == "AUTHORIZED":  # a two-stage hold: Cancel releases it, as T-Bank does
            payment.status = "REVERSED"
            self._notify(payment, payment.status, payment.amount)
            return _ok(payment, OriginalAmount=payment.amount, NewAmount=0)
        if payment.status not in ("CONFIRMED", "PARTIAL_REFUNDED"):
            return _error("1001", f"Нельзя отменить платёж в статусе {payment.status}")
        key = body.get("ExternalRequestId")
        if key and key in payment.refunds:
            return json_response(payment.refunds[key])
        amount = body.get("Amount", payment.amount - payment.refunded)
        if not isinstance(amount, int) or not 0 < amount <= payment.amount - payment.refunded:
            return _error("1003", "Неверная сумма возврата")
        receipt = body.get("Receipt")
        if receipt is not None and sum(i["Amount"] for i in receipt.get("Items", [])) != amount:
            return _error("308", "Сумма позиций чека возврата не равна сумме возврата")
        original = payment.amount - payment.refunded
        payment.refunded += amount
        payment.refunded_at.append((datetime.now(UTC), amount))
        payment.status = "REFUNDED" if payment.refunded == payment.amount else "PARTIAL_REFUNDED"
        answer = {
            "Success": True,
            "ErrorCode": "0",
            "TerminalKey": payment.terminal,
            "Status": payment.status,
            "PaymentId": payment.payment_id,
            "OrderId": payment.order_id,
            "OriginalAmount": original,
            "NewAmount": original - amount,
        }
        if key:
            payment.refunds[key] = answer
        self._notify(payment, payment.status, amount)
        return json_response(answer)

    # -- payer and control -----------------------------------------------------------------------------------------

    def on_page(self, request: Request, pid: str) -> Response:
        payment = self.payments.get(pid)
        if payment is None:
            return Response(f"T-Bank fake: no payment {pid}", status=404, mimetype="text/plain")
        settled = payment.status in ("CONFIRMED", "PARTIAL_REFUNDED", "REFUNDED")
        paid = self.confirmed.get(pid, payment.amount) if settled else 0
        return checkout_page(
            "T-Bank",
            payment_id=pid,
            description=f"Order {payment.order_id} (terminal {payment.terminal})",
            amount=payment.amount,
            paid=min(paid, payment.amount),
            currency="RUB",
            status=payment.status,
            payable=payment.status in ("NEW", "FORM_SHOWED", "AUTHORIZED"),
            part=payment.status != "AUTHORIZED",
            notice=_DONE.get(request.args.get("done", ""), ""),
            notice_kind="bad" if request.args.get("done") == "decline" else "ok",
            history=self.history.get(pid, ()),
            note="Pay part: the bank confirms half the amount (a short payment).",
        )

    def on_page_action(self, request: Request, pid: str) -> Response:
        payment = self.payments.get(pid)
        action = request.form.get("action", "")
        if payment is None or action not in ("pay", "part", "decline"):
            return json_response({"error": "no such payment or action"}, 404 if payment is None else 400)
        amount = max(payment.amount // 2, 1) if action == "part" else payment.amount
        answer = self._payer(pid, "decline" if action == "decline" else "pay", amount)
        if answer.status_code != 200:
            return answer
        return redirect(f"{self.base_url}/pay/{pid}?done={action}", code=303)

    def on_control(self, request: Request, pid: str, action: str) -> Response:
        data = request.get_json(silent=True) or {}
        return self._payer(pid, action, data.get("amount"))

    def _payer(self, pid: str, action: str, amount: int | None) -> Response:
        """The payer's step (the page's buttons and the control call): pay (`amount` to confirm another amount) or
        decline; the merchant is notified."""
        with self.lock:
            payment = self.payments.get(pid)
            if payment is None or payment.status not in ("NEW", "FORM_SHOWED", "AUTHORIZED"):
                return json_response({"error": "not payable"}, 409)
            if action == "pay":
                payment.status = (
                    "AUTHORIZED" if payment.pay_type == "T" and payment.status != "AUTHORIZED" else "CONFIRMED"
                )
                if payment.status == "CONFIRMED":
                    payment.confirmed_at = datetime.now(UTC)
                if payment.status == "CONFIRMED" and payment.recurrent and payment.rebill_id is None:
                    payment.rebill_id = str(next(_ids))
                    self.rebills[payment.rebill_id] = (payment.terminal, payment.customer_key or "")
            elif action == "decline":
                payment.status = "REJECTED"
            else:
                return json_response({"error": f"unknown action {action}"}, 400)
            notified = int(amount if amount is not None else payment.amount)
            if payment.status == "CONFIRMED":
                self.confirmed[pid] = notified
            self.history.setdefault(pid, []).append(f"{payment.status} {money(notified, 'RUB')}")
            self._notify(payment, payment.status, notified)
            return json_response({"PaymentId": pid, "Status": payment.status})

    def on_control_payout(self, request: Request) -> Response:
        data = request.get_json(silent=True) or {}
        try:
            day = date.fromisoformat(str(data["date"]))
            terminal = str(data["terminal"])
        except (KeyError, ValueError):
            return json_response({"error": "terminal and date (YYYY-MM-DD) are required"}, 400)
        withheld = set(data.get("exclude") or ())
        with self.lock:
            mine = [p for p in self.payments.values() if p.terminal == terminal]
            paid = [
                p
                for p in mine
                if p.confirmed_at is not None
                and _msk_day(p.confirmed_at) == day
                and p.payment_id not in withheld
                and p.payment_id not in self.paid_out
            ]
            refunds = [
                (f"{p.payment_id}:refund:{k}", amount)
                for p in mine
                for k, (at, amount) in enumerate(p.refunded_at)
                if _msk_day(at) == day and f"{p.payment_id}:refund:{k}" not in self.paid_out
            ]
            self.paid_out.update(p.payment_id for p in paid)
            self.paid_out.update(ref for ref, _ in refunds)
        gross = sum(p.amount for p in paid)
        fee = sum(_fee(p.amount) for p in paid)
        refunded = sum(amount for _, amount in refunds)
        purpose = (
            f"Перечисление средств по операциям интернет-эквайринга за {day:%d.%m.%Y} (терминал {terminal}). "
            f"Операций {len(paid)} на сумму {_rub(gross)}, возвратов {len(refunds)} на сумму {_rub(refunded)}, "
            f"комиссия {_rub(fee)}. НДС не облагается"
        )
        return json_response(
            {
                "amount": gross - fee - refunded,
                "payer_inn": "7710140679",
                "payer_name": 'АО "ТБанк"',
                "payer_account": "30232810100000000974",
                "purpose": purpose,
                "payments": [p.payment_id for p in paid],
                "refunds": [ref for ref, _ in refunds],
            }
        )

    def _notify(self, payment: Payment, status: str, amount: int) -> None:
        if not payment.notification_url:
            return
        fields: dict[str, Any] = {
            "TerminalKey": payment.terminal,
            "OrderId": payment.order_id,
            "Success": status != "REJECTED",
            "Status": status,
            "PaymentId": int(payment.payment_id),
            "ErrorCode": "0" if status != "REJECTED" else "1051",
            "Amount": amount,
            "CardId": 10452089,
            "Pan": "430000******0777",
            "ExpDate": "1230",
        }
        if status == "CONFIRMED" and payment.rebill_id:
            fields["RebillId"] = int(payment.rebill_id)
        fields["Token"] = token(fields, self.passwords[payment.terminal])
        self.deliver(
            payment.notification_url,
            json.dumps(fields).encode(),
            {"Content-Type": "application/json"},
            lambda r: r.status_code == 200 and r.text == "OK",
        )


_DONE = {
    "pay": "Payment sent: the bank confirms it and notifies the shop.",
    "part": "Part paid: the bank confirms half the amount and notifies the shop.",
    "decline": "Payment declined: the shop is notified.",
}

#: The merchant's acquiring fee in percent of each payment (a fake's contract).
FEE_PERCENT = Decimal("2.49")
_MSK = ZoneInfo("Europe/Moscow")


def _fee(amount: int) -> int:
    return int((Decimal(amount) * FEE_PERCENT / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _rub(kopecks: int) -> str:
    return f"{Decimal(kopecks) / 100:.2f}"


def _msk_day(moment: datetime) -> date:
    return moment.astimezone(_MSK).date()


def _ok(payment: Payment, **extra: Any) -> Response:
    return json_response(
        {
            "Success": True,
            "ErrorCode": "0",
            "TerminalKey": payment.terminal,
            "Status": payment.status,
            "PaymentId": payment.payment_id,
            "OrderId": payment.order_id,
            **extra,
        }
    )


def _error(code: str, message: str) -> Response:
    return json_response({"Success": False, "ErrorCode": code, "Message": message, "Details": ""})


#: What the local stack serves for tenants whose settings name `tbank` (see devstack/fakes/__init__.py).
FAKE = FakeTBank
