"""T-Bank acquiring v2 adapter against T-Bank's documented wire format (respx stands in for T-Bank's API)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from paybridge.adapters.errors import InvalidSignature, MalformedNotification, ProviderRejected, ProviderUnavailable
from paybridge.adapters.psp.base import PaymentRequest, RefundOrder
from paybridge.adapters.psp.tbank import STATUS_MAP, TBankAcquiring, receipt_body, token
from paybridge.domain.invoice import Customer
from paybridge.domain.receipt import FiscalReceipt, ReceiptItem
from paybridge.tenants import TBankSettings

BASE = "https://rest-api-test.tinkoff.ru/v2/"
PASSWORD = "usaf8fw8fsw21g"
TERMINAL = "MerchantTerminalKey"
EXPIRES = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
RECEIPT = FiscalReceipt(
    taxation="usn_income",
    ffd_version="1.2",
    email="client@example.com",
    items=(
        ReceiptItem(name="Стул", price=60_000, quantity=Decimal(2), vat="vat22", payment_object="commodity"),
        ReceiptItem(name="Доставка", price=30_050, vat="none"),
    ),
)


def adapter(method: str = "card", **settings: Any) -> TBankAcquiring:
    config = TBankSettings(
        provider="tbank",
        base_url=BASE,
        terminal_key=TERMINAL,
        password={"value": PASSWORD},
        method=method,  # type: ignore[arg-type]
        **settings,
    )
    return TBankAcquiring(config, PASSWORD)


def request(**overrides: Any) -> PaymentRequest:
    fields: dict[str, Any] = {
        "tenant_id": "tbank-shop",
        "invoice_id": "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa",
        "order_id": "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa",
        "amount": 150_050,
        "currency": "RUB",
        "description": "Счёт № 7",
        "customer": Customer(email="client@example.com"),
        "expires_at": EXPIRES,
        "notification_url": "https://hub.test/psp/tbank-shop/tbank",
        "return_url": "https://shop.test/thanks",
    }
    fields.update(overrides)
    return PaymentRequest(**fields)


def signed(fields: dict[str, Any], password: str = PASSWORD) -> bytes:
    return json.dumps({**fields, "Token": token(fields, password)}).encode()


def answer(**fields: Any) -> httpx.Response:
    return httpx.Response(200, json={"Success": True, "ErrorCode": "0", "TerminalKey": TERMINAL, **fields})


def sent(route: respx.Route, index: int = -1) -> dict[str, Any]:
    return dict(json.loads(route.calls[index].request.content))


class TestToken:
    def test_the_documented_example(self) -> None:
        fields = {
            "TerminalKey": "MerchantTerminalKey",
            "Amount": 19200,
            "OrderId": "21090",
            "Description": "Подарочная карта на 1000 рублей",
            "DATA": {"Phone": "+71234567890"},
            "Receipt": {"Email": "a@test.ru"},
        }
        assert token(fields, PASSWORD) == "0024a00af7c350a3a67ca168ce06502aa72772456662e38696d48b56ee9c97d9"

    def test_booleans_are_written_true_false_and_token_itself_is_left_out(self) -> None:
        base = {"TerminalKey": "T", "Success": True, "Amount": 100}
        expected = __import__("hashlib").sha256(b"100pwtrueT").hexdigest()
        assert token(base, "pw") == expected
        assert token({**base, "Token": "x", "Data": {"a": "b"}}, "pw") == expected


class TestInit:
    @respx.mock
    def test_card_init_body_with_receipt(self) -> None:
        respx.post(f"{BASE}CheckOrder").mock(
            return_value=httpx.Response(200, json={"Success": False, "ErrorCode": "7"})
        )
        init = respx.post(f"{BASE}Init").mock(
            return_value=answer(
                PaymentId="3093639567", Status="NEW", PaymentURL="https://securepay.tinkoff.ru/new/fU1ppgqa"
            )
        )
        created = adapter().create_payment(request(receipt=RECEIPT))
        assert created.payment_id == "3093639567" and created.payment_url.endswith("/new/fU1ppgqa")
        assert created.qr_payload is None
        body = sent(init)
        assert body["Token"] == token(body, PASSWORD)
        assert {k: body[k] for k in ("TerminalKey", "Amount", "OrderId", "PayType", "RedirectDueDate")} == {
            "TerminalKey": TERMINAL,
            "Amount": 150_050,
            "OrderId": "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa",
            "PayType": "O",
            "RedirectDueDate": "2026-11-24T12:00:00+00:00",
        }
        assert body["NotificationURL"] == "https://hub.test/psp/tbank-shop/tbank"
        assert body["SuccessURL"] == body["FailURL"] == "https://shop.test/thanks"
        assert body["DATA"]["invoice_id"] == "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa"
        assert body["Receipt"] == {
            "FfdVersion": "1.2",
            "Taxation": "usn_income",
            "Email": "client@example.com",
            "Items": [
                {
                    "Name": "Стул",
                    "Price": 60_000,
                    "Quantity": 2.0,
                    "Amount": 120_000,
                    "Tax": "vat22",
                    "PaymentMethod": "full_prepayment",
                    "PaymentObject": "commodity",
                },
                {
                    "Name": "Доставка",
                    "Price": 30_050,
                    "Quantity": 1.0,
                    "Amount": 30_050,
                    "Tax": "none",
                    "PaymentMethod": "full_prepayment",
                    "PaymentObject": "service",
                },
            ],
        }
        assert sum(i["Amount"] for i in body["Receipt"]["Items"]) == body["Amount"]

    @respx.mock
    def test_sbp_init_then_get_qr(self) -> None:
        respx.post(f"{BASE}CheckOrder").mock(return_value=answer(Payments=[]))
        respx.post(f"{BASE}Init").mock(return_value=answer(PaymentId="77", Status="NEW", PaymentURL="https://pay/77"))
        qr = respx.post(f"{BASE}GetQr").mock(
            return_value=answer(PaymentId="77", OrderId="o", Data="https://qr.nspk.ru/AS1000670LSS7DN18SJQDNP4B05KLJL2")
        )
        created = adapter("sbp", qr_data_type="PAYLOAD").create_payment(request())
        assert created.qr_payload == "https://qr.nspk.ru/AS1000670LSS7DN18SJQDNP4B05KLJL2"
        body = sent(qr)
        assert (body["PaymentId"], body["DataType"]) == ("77", "PAYLOAD") and body["Token"] == token(body, PASSWORD)

    @respx.mock
    @pytest.mark.parametrize(
        ("code", "error"), [("9999", ProviderUnavailable), ("-1", ProviderUnavailable), ("204", ProviderRejected)]
    )
    def test_failure_answers(self, code: str, error: type[Exception]) -> None:
        respx.post(f"{BASE}CheckOrder").mock(return_value=answer(Payments=[]))
        respx.post(f"{BASE}Init").mock(
            return_value=httpx.Response(200, json={"Success": False, "ErrorCode": code, "Message": "Неверный токен"})
        )
        with pytest.raises(error, match=f"ErrorCode {code}"):
            adapter().create_payment(request())

    @respx.mock
    def test_a_lost_init_answer_is_retried_and_leaves_exactly_one_payable_payment(self) -> None:
        check = respx.post(f"{BASE}CheckOrder").mock(
            side_effect=[
                answer(Payments=[]),
                answer(Payments=[{"PaymentId": "1", "Amount": 150_050, "Status": "NEW", "Success": True}]),
            ]
        )
        init = respx.post(f"{BASE}Init").mock(
            side_effect=[
                httpx.ReadTimeout("no answer"),
                answer(PaymentId="2", Status="NEW", PaymentURL="https://pay/2"),
            ]
        )
        cancel = respx.post(f"{BASE}Cancel").mock(return_value=answer(PaymentId="1", Status="CANCELED"))
        tbank = adapter()
        with pytest.raises(ProviderUnavailable):
            tbank.create_payment(request())
        created = tbank.create_payment(request())  # the lifecycle's retry
        assert created.payment_id == "2"
        assert init.call_count == 2 and check.call_count == 2
        assert sent(cancel)["PaymentId"] == "1"  # the payment whose link nobody received is withdrawn

    @respx.mock
    def test_no_second_payment_next_to_one_that_is_taking_money(self) -> None:
        respx.post(f"{BASE}CheckOrder").mock(
            return_value=answer(Payments=[{"PaymentId": "1", "Amount": 150_050, "Status": "CONFIRMED"}])
        )
        init = respx.post(f"{BASE}Init")
        with pytest.raises(ProviderRejected, match="already has payment 1"):
            adapter().create_payment(request())
        assert not init.called


class TestRefund:
    @respx.mock
    def test_partial_refund_with_receipt_and_external_request_id(self) -> None:
        cancel = respx.post(f"{BASE}Cancel").mock(
            return_value=answer(PaymentId="55", Status="PARTIAL_REFUNDED", OriginalAmount=150_050, NewAmount=120_000)
        )
        refund_receipt = FiscalReceipt(
            taxation="usn_income", ffd_version="1.2", email="c@x.ru", items=(RECEIPT.items[1],)
        )
        order = RefundOrder(
            tenant_id="t",
            invoice_id="inv",
            payment_id="55",
            key="rf-1",
            amount=30_050,
            currency="RUB",
            payment_amount=150_050,
            receipt=refund_receipt,
        )
        result = adapter().refund(order)
        assert (result.ref, result.status, result.amount) == ("tbank:refund:55:rf-1", "succeeded", 30_050)
        body = sent(cancel)
        assert (body["PaymentId"], body["Amount"], body["ExternalRequestId"]) == ("55", 30_050, "rf-1")
        assert body["Receipt"] == receipt_body(refund_receipt) and body["Token"] == token(body, PASSWORD)

    @respx.mock
    def test_refund_in_progress_is_pending_and_a_refusal_is_rejected(self) -> None:
        respx.post(f"{BASE}Cancel").mock(
            side_effect=[
                answer(PaymentId="55", Status="REFUNDING"),
                httpx.Response(200, json={"Success": False, "ErrorCode": "1003", "Message": "Неверная сумма"}),
            ]
        )
        order = RefundOrder(
            tenant_id="t", invoice_id="inv", payment_id="55", key="k", amount=100, currency="RUB", payment_amount=100
        )
        assert adapter().refund(order).status == "pending"
        with pytest.raises(ProviderRejected, match="1003"):
            adapter().refund(order)


NOTIFICATION = {
    "TerminalKey": TERMINAL,
    "OrderId": "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa",
    "Success": True,
    "Status": "CONFIRMED",
    "PaymentId": 3093639567,
    "ErrorCode": "0",
    "Amount": 150_050,
    "CardId": 10452089,
    "Pan": "430000******0777",
    "ExpDate": "1230",
}


class TestNotification:
    def test_confirmed_is_money_with_the_bank_amount(self) -> None:
        note = adapter().verify_notification({}, signed(NOTIFICATION))
        assert (note.kind, note.amount, note.payment_id, note.operation_ref) == (
            "paid",
            150_050,
            "3093639567",
            "tbank:3093639567",
        )
        assert note.event_id == "3093639567:CONFIRMED:150050"
        again = adapter().verify_notification({}, signed(NOTIFICATION))
        assert again.event_id == note.event_id  # a repeated delivery dedupes

    def test_the_answer_is_exactly_ok(self) -> None:
        ack = adapter().acknowledgement()
        assert (ack.status_code, ack.body, ack.content_type) == (200, "OK", "text/plain")

    @pytest.mark.parametrize(
        "body",
        [
            signed(NOTIFICATION, "another-password"),
            signed(NOTIFICATION).replace(b'"Amount": 150050', b'"Amount": 950050'),
            json.dumps(NOTIFICATION).encode(),
            signed({**NOTIFICATION, "TerminalKey": "OtherTerminal"}),
        ],
        ids=["forged", "tampered-amount", "no-token", "other-terminal"],
    )
    def test_forged_notifications_are_refused(self, body: bytes) -> None:
        with pytest.raises(InvalidSignature):
            adapter().verify_notification({}, body)

    @pytest.mark.parametrize(
        "body", [b"not json", b"[1]", signed({k: v for k, v in NOTIFICATION.items() if k != "Amount"})]
    )
    def test_malformed(self, body: bytes) -> None:
        with pytest.raises(MalformedNotification):
            adapter().verify_notification({}, body)

    def test_every_documented_status_is_mapped(self) -> None:
        documented = {
            "NEW",
            "FORM_SHOWED",
            "AUTHORIZING",
            "3DS_CHECKING",
            "3DS_CHECKED",
            "AUTHORIZED",
            "CONFIRMING",
            "CONFIRMED",
            "REVERSING",
            "PARTIAL_REVERSED",
            "REVERSED",
            "REFUNDING",
            "PARTIAL_REFUNDED",
            "REFUNDED",
            "CANCELED",
            "DEADLINE_EXPIRED",
            "REJECTED",
            "AUTH_FAIL",
        }
        assert set(STATUS_MAP) == documented
        assert {s for s, k in STATUS_MAP.items() if k == "paid"} == {"CONFIRMED"}
        assert {s for s, k in STATUS_MAP.items() if k == "declined"} == {"REJECTED", "AUTH_FAIL"}
        assert {s for s, k in STATUS_MAP.items() if k == "cancelled"} == {"CANCELED", "DEADLINE_EXPIRED"}

    @pytest.mark.parametrize(
        ("status", "kind"),
        [("REJECTED", "declined"), ("AUTHORIZED", "ignored"), ("REFUNDED", "ignored"), ("SOMETHING_NEW", "ignored")],
    )
    def test_statuses(self, status: str, kind: str) -> None:
        note = adapter().verify_notification({}, signed({**NOTIFICATION, "Status": status}))
        assert note.kind == kind and note.raw_status == status
