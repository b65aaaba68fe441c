"""T-Bank internet acquiring, API v2 (cards and SBP QR).

Wire format (POST JSON to `{base_url}<Method>`; every request and every notification carries `Token`):
- `Init {TerminalKey, Amount (kopecks), OrderId, Description, PayType, NotificationURL, SuccessURL, FailURL,
  RedirectDueDate, DATA, Receipt}` → `{Success, ErrorCode, PaymentId, Status: "NEW", PaymentURL}`.
- `GetQr {TerminalKey, PaymentId, DataType: PAYLOAD|IMAGE}` → `{Success, Data}` (SBP: an https://qr.nspk.ru/… link
  or an SVG).
- `GetState {TerminalKey, PaymentId}` → `{Success, Status, Amount}`; `CheckOrder {TerminalKey, OrderId}` →
  `{Success, Payments: [{PaymentId, Amount, Status}]}`.
- `Cancel {TerminalKey, PaymentId, Amount?, ExternalRequestId?, Receipt?}` → `{Success, Status, OriginalAmount,
  NewAmount}`: NEW → CANCELED; AUTHORIZED → (PARTIAL_)REVERSED; CONFIRMED → (PARTIAL_)REFUNDED.
- Notifications: POST JSON `{TerminalKey, OrderId, Success, Status, PaymentId, ErrorCode, Amount, …, Token}`; the
  answer must be HTTP 200 with the body `OK`, otherwise T-Bank repeats it.

Token: the root-level scalar fields (not nested `Receipt`, `DATA`, not `Token`) plus `Password`, sorted by key, values
concatenated, SHA-256, lower-case hex; booleans are written `true`/`false`.

Exactly one payment per order: `Init` does not deduplicate by `OrderId`. When a create is retried (its answer was
lost), `CheckOrder` first lists the order's payments: one that is already paid or held means the money is on its way
(we refuse to create another, permanently — the notification brings the money); payments still `NEW`, whose link we
never received, are cancelled; then `Init` runs. So at most one payable payment exists per invoice.

Refunds are confirmed by the `Cancel` answer (`OriginalAmount − NewAmount`), named `tbank:refund:<PaymentId>:<key>`.
T-Bank's refund-status notifications carry no id of the refund operation, so they cannot be matched to one refund
without risking a double count: they are recorded and change nothing (refunds started in T-Bank's own cabinet are not
reflected; start refunds from PayBridge).

Recurring payments: a payment created with `save_method` is an `Init` with `Recurrent: "Y"` and a `CustomerKey`
(`<tenant id>:<customer e-mail, else phone, else invoice id>` — the payer as the tenant knows them, so one payer's
cards are listed under one key; longer than T-Bank's 36 characters, it is `pb:` + 33 hex of its SHA-256). Its
CONFIRMED notification carries `RebillId`: the saved method. A charge of it is an `Init` (no `Recurrent`, the receipt
when given) then `Charge {TerminalKey, PaymentId, RebillId, Token}` → `{Success, Status, PaymentId, ErrorCode}`:
CONFIRMED is succeeded, REJECTED/AUTH_FAIL failed (a `Success: false` answer with that status is a decline, not an
error), anything else pending (the notification finishes it). A retried charge (same order id) first asks
`CheckOrder`: a payment already confirmed, declined or under way is the answer; one still `NEW` (Init done, Charge
lost before T-Bank saw it) is charged; so one order never holds two charges.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
from datetime import UTC
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
    PaymentMethodKind,
    PspSettingsBase,
    SecretRef,
)
from paybridge.adapters.wire import loads_json
from paybridge.domain.receipt import FiscalReceipt


class TBankSettings(PspSettingsBase):
    """T-Bank internet acquiring (API v2). Test host: https://rest-api-test.tinkoff.ru/v2/."""

    provider: Literal["tbank"]
    #: RedirectDueDate: 1 minute … 90 days
    min_lifetime_seconds: ClassVar[int] = 60
    max_lifetime_seconds: ClassVar[int] = 90 * 24 * 3600
    base_url: HttpUrl = "https://securepay.tinkoff.ru/v2/"
    terminal_key: str = Field(min_length=1, max_length=20)
    password: SecretRef = Field(description="the terminal's password (T-Bank cabinet → Магазины → Терминалы)")
    method: PaymentMethodKind = "card"
    #: `O` one-stage (money is taken at once), `T` two-stage (held: AUTHORIZED, then confirmed in T-Bank).
    pay_type: Literal["O", "T"] = "O"
    #: For SBP: `PAYLOAD` (a https://qr.nspk.ru/… link to render or open) or `IMAGE` (an SVG of the QR code).
    qr_data_type: Literal["PAYLOAD", "IMAGE"] = "PAYLOAD"


logger = logging.getLogger(__name__)

#: Every documented payment status → what it means for us. Defined once.
STATUS_MAP: dict[str, NotificationKind] = {
    "NEW": "ignored",
    "FORM_SHOWED": "ignored",
    "AUTHORIZING": "ignored",
    "3DS_CHECKING": "ignored",
    "3DS_CHECKED": "ignored",
    "AUTHORIZED": "ignored",  # two-stage: money held, not taken; CONFIRMED follows
    "CONFIRMING": "ignored",
    "CONFIRMED": "paid",
    "REVERSING": "ignored",
    "PARTIAL_REVERSED": "ignored",  # refunds are confirmed by the Cancel answer (see the module docstring)
    "REVERSED": "ignored",
    "REFUNDING": "ignored",
    "PARTIAL_REFUNDED": "ignored",
    "REFUNDED": "ignored",
    "CANCELED": "cancelled",
    "DEADLINE_EXPIRED": "cancelled",
    "REJECTED": "declined",
    "AUTH_FAIL": "declined",
}
#: GetState's status → where the payment stands (what expiry may do to it). `Cancel` refunds a CONFIRMED payment and
#: reverses an AUTHORIZED one: only NEW and FORM_SHOWED may be cancelled without touching money.
PHASE: dict[str, PaymentPhase] = {
    "NEW": "open",
    "FORM_SHOWED": "open",
    "AUTHORIZING": "in_progress",
    "3DS_CHECKING": "in_progress",
    "3DS_CHECKED": "in_progress",
    "AUTHORIZED": "held",
    "CONFIRMING": "in_progress",
    "CONFIRMED": "paid",
    "REVERSING": "in_progress",
    "PARTIAL_REVERSED": "held",
    "REVERSED": "closed",
    "REFUNDING": "paid",
    "PARTIAL_REFUNDED": "paid",
    "REFUNDED": "paid",
    "CANCELED": "closed",
    "DEADLINE_EXPIRED": "closed",
    "REJECTED": "closed",
    "AUTH_FAIL": "closed",
}
#: The `Cancel` answer's status → the refund's state.
REFUND_STATUS: dict[str, RefundState] = {
    "REFUNDED": "succeeded",
    "PARTIAL_REFUNDED": "succeeded",
    "REVERSED": "succeeded",
    "PARTIAL_REVERSED": "succeeded",
    "CANCELED": "succeeded",
    "REFUNDING": "pending",
    "REVERSING": "pending",
}
#: Payments of an order that mean money is (being) taken: never create another one next to them.
MONEY_STATUSES = frozenset({"AUTHORIZING", "AUTHORIZED", "CONFIRMING", "CONFIRMED", "3DS_CHECKING", "3DS_CHECKED"})
TEMPORARY_ERRORS = frozenset({"-1", "9999"})  # "system error / try again" answers
#: The `Charge` answer's (or an order's payment's) status → the charge's state; anything else is pending.
CHARGE_STATUS: dict[str, ChargeState] = {"CONFIRMED": "succeeded", "REJECTED": "failed", "AUTH_FAIL": "failed"}
CUSTOMER_KEY_MAX = 36


def customer_key(tenant_id: str, contact: str) -> str:
    """T-Bank's `CustomerKey` of a payer: `<tenant>:<contact>`, hashed when longer than T-Bank's 36 characters."""
    key = f"{tenant_id}:{contact}"
    if len(key) <= CUSTOMER_KEY_MAX:
        return key
    return "pb:" + hashlib.sha256(key.encode()).hexdigest()[: CUSTOMER_KEY_MAX - 3]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def token(fields: dict[str, Any], password: str) -> str:
    """The T-Bank `Token` of a request or notification (one scheme for both directions)."""
    scalars = {k: v for k, v in fields.items() if k != "Token" and not isinstance(v, dict | list) and v is not None}
    scalars["Password"] = password
    joined = "".join(_scalar(scalars[key]) for key in sorted(scalars))
    return hashlib.sha256(joined.encode()).hexdigest()


def receipt_body(receipt: FiscalReceipt) -> dict[str, Any]:
    body: dict[str, Any] = {
        "FfdVersion": receipt.ffd_version,
        "Taxation": receipt.taxation,
        "Items": [
            {
                "Name": item.name,
                "Price": item.price,
                "Quantity": float(item.quantity),
                "Amount": item.amount,
                "Tax": item.vat,
                "PaymentMethod": item.payment_method,
                "PaymentObject": item.payment_object,
            }
            for item in receipt.items
        ],
    }
    if receipt.email:
        body["Email"] = receipt.email
    if receipt.phone:
        body["Phone"] = receipt.phone
    return body


class TBankAcquiring:
    name = "tbank"
    min_lifetime_seconds = TBankSettings.min_lifetime_seconds
    max_lifetime_seconds = TBankSettings.max_lifetime_seconds
    supports_partial_payments = False

    def __init__(self, settings: TBankSettings, password: str, transport: Any = None):
        self._settings = settings
        self._password = password
        base = settings.base_url if settings.base_url.endswith("/") else settings.base_url + "/"
        self._http = make_client(base, {"Content-Type": "application/json"}, transport)

    # -- requests --------------------------------------------------------------------------------------------------

    def _call(self, method: str, fields: dict[str, Any], declines: bool = False) -> dict[str, Any]:
        """One API call; `declines`: a `Success: false` answer naming a declined status is returned, not raised."""
        body = {"TerminalKey": self._settings.terminal_key, **{k: v for k, v in fields.items() if v is not None}}
        body["Token"] = token(body, self._password)
        response = send(
            self._http, "POST", method, transient=ProviderUnavailable, permanent=ProviderRejected, json=body
        )
        try:
            data = response.json()
        except ValueError:
            raise ProviderUnavailable(f"{method}: unreadable answer {response.text[:200]}") from None
        if not isinstance(data, dict) or "Success" not in data:
            raise ProviderUnavailable(f"{method}: unexpected answer {response.text[:200]}")
        if data["Success"] is not True:
            if declines and CHARGE_STATUS.get(str(data.get("Status", ""))) == "failed":
                return data
            code = str(data.get("ErrorCode", ""))
            error = ProviderUnavailable if code in TEMPORARY_ERRORS else ProviderRejected
            raise error(f"{method}: ErrorCode {code}: {data.get('Message', '')} {data.get('Details', '')}".strip())
        return data

    def create_payment(self, request: PaymentRequest) -> CreatedPayment:
        self._withdraw_unfinished(request.order_id)
        fields: dict[str, Any] = {
            "Amount": request.amount,
            "OrderId": request.order_id,
            "Description": request.description[:140],
            "PayType": self._settings.pay_type,
            "NotificationURL": request.notification_url,
            "SuccessURL": request.return_url,
            "FailURL": request.return_url,
            "RedirectDueDate": request.expires_at.astimezone(UTC).replace(microsecond=0).isoformat(),
            "DATA": {"invoice_id": request.invoice_id, "tenant_id": request.tenant_id},
        }
        if request.customer.email:
            fields["DATA"]["Email"] = request.customer.email
        if request.receipt is not None:
            fields["Receipt"] = receipt_body(request.receipt)
        if request.save_method:
            contact = request.customer.email or request.customer.phone or request.invoice_id
            fields["Recurrent"] = "Y"
            fields["CustomerKey"] = customer_key(request.tenant_id, contact)
        data = self._call("Init", fields)
        try:
            payment_id, url = str(data["PaymentId"]), str(data["PaymentURL"])
        except KeyError:
            raise ProviderUnavailable(f"Init: no PaymentId/PaymentURL in {data}") from None
        qr = None
        if self._settings.method == "sbp":
            qr = str(self._call("GetQr", {"PaymentId": payment_id, "DataType": self._settings.qr_data_type})["Data"])
        return CreatedPayment(payment_id=payment_id, payment_url=url, qr_payload=qr)

    def _withdraw_unfinished(self, order_id: str) -> None:
        """Before an Init: no second payment next to one that is taking money; cancel links nobody received."""
        try:
            payments = self._call("CheckOrder", {"OrderId": order_id}).get("Payments") or []
        except ProviderRejected:
            return  # no payments for this order yet
        for payment in payments:
            status = str(payment.get("Status", ""))
            if status in MONEY_STATUSES:
                raise ProviderRejected(f"order {order_id} already has payment {payment.get('PaymentId')} ({status})")
        for payment in payments:
            if payment.get("Status") in ("NEW", "FORM_SHOWED"):
                with contextlib.suppress(ProviderRejected):  # it expired meanwhile: as good as cancelled
                    self.cancel_payment(str(payment["PaymentId"]))

    def charge_saved(self, request: ChargeRequest) -> ChargeResult:
        payment_id = self._earlier_charge(request.order_id)
        if isinstance(payment_id, ChargeResult):
            return payment_id
        if payment_id is None:
            fields: dict[str, Any] = {
                "Amount": request.amount,
                "OrderId": request.order_id,
                "Description": request.description[:140],
                "PayType": self._settings.pay_type,
                "DATA": {"invoice_id": request.invoice_id, "tenant_id": request.tenant_id},
            }
            if request.receipt is not None:
                fields["Receipt"] = receipt_body(request.receipt)
            try:
                payment_id = str(self._call("Init", fields)["PaymentId"])
            except KeyError:
                raise ProviderUnavailable("Init: no PaymentId in the answer") from None
        data = self._call("Charge", {"PaymentId": payment_id, "RebillId": request.method}, declines=True)
        return self._charge_result(str(data.get("PaymentId") or payment_id), data)

    @staticmethod
    def _charge_result(payment_id: str, data: dict[str, Any]) -> ChargeResult:
        status = str(data.get("Status", ""))
        state = CHARGE_STATUS.get(status, "pending")
        detail = status
        if state == "failed":
            message = f"{data.get('Message', '')} {data.get('Details', '')}".strip()
            detail = f"{status} (ErrorCode {data.get('ErrorCode', '')}){': ' + message if message else ''}"
        return ChargeResult(payment_id=payment_id, status=state, detail=detail)

    def _earlier_charge(self, order_id: str) -> ChargeResult | str | None:
        """A retried charge: the order's earlier payment decides (its result, or a NEW one to charge); None: none."""
        try:
            payments = self._call("CheckOrder", {"OrderId": order_id}).get("Payments") or []
        except ProviderRejected:
            return None  # no payments for this order yet
        for wanted in ("CONFIRMED", "money", "failed"):
            for payment in payments:
                status = str(payment.get("Status", ""))
                if (
                    (wanted == "CONFIRMED" and status == "CONFIRMED")
                    or (wanted == "money" and status in MONEY_STATUSES)
                    or (wanted == "failed" and CHARGE_STATUS.get(status) == "failed")
                ):
                    return self._charge_result(str(payment["PaymentId"]), payment)
        for payment in payments:
            if payment.get("Status") in ("NEW", "FORM_SHOWED"):
                return str(payment["PaymentId"])
        return None

    def get_payment(self, payment_id: str) -> PaymentSnapshot:
        data = self._call("GetState", {"PaymentId": payment_id})
        status = str(data.get("Status", ""))
        amount = int(data.get("Amount", 0))
        kind = STATUS_MAP.get(status, "ignored")
        phase = PHASE.get(status, "in_progress")  # an undocumented status: decide nothing yet
        if status == "AUTHORIZED" and self._settings.pay_type == "O":
            phase = "in_progress"  # one-stage: CONFIRMED follows by itself
        # The money fact is named as the CONFIRMED notification names it; a payment refunded since was paid, but
        # GetState's Amount is then no longer what was taken: recorded by a person, not guessed here.
        receipts = (
            (MoneyFact(ref=f"tbank:{payment_id}", amount=amount, method=self._settings.method),)
            if status == "CONFIRMED"
            else ()
        )
        return PaymentSnapshot(
            payment_id=payment_id,
            raw_status=status,
            kind=kind,
            amount=amount,
            paid_amount=amount if kind == "paid" else 0,
            phase=phase,
            receipts=receipts,
        )

    def cancel_payment(self, payment_id: str) -> None:
        self._call("Cancel", {"PaymentId": payment_id})

    def refund(self, order: RefundOrder) -> RefundResult:
        fields: dict[str, Any] = {
            "PaymentId": order.payment_id,
            "Amount": order.amount,
            "ExternalRequestId": order.key,
        }
        if order.receipt is not None:
            fields["Receipt"] = receipt_body(order.receipt)
        data = self._call("Cancel", fields)
        status = str(data.get("Status", ""))
        state = REFUND_STATUS.get(status)
        if state is None:
            raise ProviderRejected(f"Cancel answered status {status!r}")
        amount = order.amount
        if "OriginalAmount" in data and "NewAmount" in data:
            amount = int(data["OriginalAmount"]) - int(data["NewAmount"])
        return RefundResult(ref=f"tbank:refund:{order.payment_id}:{order.key}", status=state, amount=amount)

    # -- notifications ---------------------------------------------------------------------------------------------

    def verify_notification(self, headers: dict[str, str], body: bytes, source_ip: str | None = None) -> Notification:
        try:
            data = loads_json(body)
        except ValueError:
            raise MalformedNotification("body is not JSON") from None
        if not isinstance(data, dict):
            raise MalformedNotification("body is not a JSON object")
        given = data.get("Token")
        if not isinstance(given, str) or not hmac.compare_digest(given, token(data, self._password)):
            raise InvalidSignature("Token does not match")
        if data.get("TerminalKey") != self._settings.terminal_key:
            raise InvalidSignature("notification for another terminal")
        try:
            payment_id = str(data["PaymentId"])
            status = str(data["Status"])
            amount = int(data["Amount"])
        except (KeyError, TypeError, ValueError):
            raise MalformedNotification("PaymentId, Status and an integer Amount are required") from None
        kind = STATUS_MAP.get(status)
        if kind is None:
            logger.warning("T-Bank status %s is not documented; kept, changes nothing", status)
            kind = "ignored"
        if data.get("Success") is False and kind == "paid":
            kind = "ignored"
        detail = ""
        if kind == "declined":
            detail = f"{status} (ErrorCode {data.get('ErrorCode', '')})"
        elif status in REFUND_STATUS or status == "AUTHORIZED":
            detail = f"{status}: recorded; refunds are confirmed by the Cancel answer, holds by CONFIRMED"
        return Notification(
            event_id=f"{payment_id}:{status}:{amount}",
            payment_id=payment_id,
            kind=kind,
            operation_ref=f"tbank:{payment_id}",
            amount=amount,
            raw_status=status,
            detail=detail,
            saved_method=str(data["RebillId"]) if kind == "paid" and data.get("RebillId") else None,
            # the notification does not name the method: the tenant's setting (SBP payments are made by its GetQr)
            method=self._settings.method if kind == "paid" else None,
        )

    def acknowledgement(self) -> Acknowledgement:
        return Acknowledgement(status_code=200, body="OK", content_type="text/plain")


def _build(settings: TBankSettings, context: AdapterContext) -> TBankAcquiring:
    return TBankAcquiring(settings, context.secret(settings.password))


PSPS.register("tbank", TBankSettings, _build)
