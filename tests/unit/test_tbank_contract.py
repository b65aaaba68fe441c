"""T-Bank acquiring v2 adapter against T-Bank's documented wire format (respx stands in for T-Bank's API)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from devstack.fakes.tbank import FakeTBank
from paybridge.adapters.errors import InvalidSignature, MalformedNotification, ProviderRejected, ProviderUnavailable
from paybridge.adapters.psp.base import ChargeRequest, PaymentRequest, RefundOrder
from paybridge.adapters.psp.tbank import STATUS_MAP, TBankAcquiring, TBankSettings, customer_key, receipt_body, token
from paybridge.domain.invoice import Customer
from paybridge.domain.receipt import FiscalReceipt, ReceiptItem

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


def charge(**overrides: Any) -> ChargeRequest:
    fields: dict[str, Any] = {
        "tenant_id": "tbank-shop",
        "invoice_id": "inv_bbbbbbbbbbbbbbbbbbbbbbbbbb",
        "order_id": "inv_bbbbbbbbbbbbbbbbbbbbbbbbbb",
        "amount": 150_050,
        "currency": "RUB",
        "description": "Подписка, ноябрь",
        "method": "6155312072",
        "customer": Customer(email="client@example.com"),
    }
    fields.update(overrides)
    return ChargeRequest(**fields)


NOT_FOUND = httpx.Response(200, json={"Success": False, "ErrorCode": "7", "Message": "Заказ не найден"})


class TestRecurrent:
    @respx.mock
    def test_a_saving_payment_is_a_recurrent_init_with_the_customer_key(self) -> None:
        respx.post(f"{BASE}CheckOrder").mock(return_value=NOT_FOUND)
        init = respx.post(f"{BASE}Init").mock(
            return_value=answer(PaymentId="3093639567", Status="NEW", PaymentURL="https://securepay.tinkoff.ru/new/x")
        )
        adapter().create_payment(request(save_method=True))
        body = sent(init)
        assert (body["Recurrent"], body["CustomerKey"]) == ("Y", "tbank-shop:client@example.com")
        assert body["Token"] == token(body, PASSWORD)  # Recurrent and CustomerKey are root scalars: signed
        adapter().create_payment(request(save_method=True, customer=Customer(phone="+79001234567")))
        assert sent(init)["CustomerKey"] == "tbank-shop:+79001234567"
        adapter().create_payment(request(save_method=True, customer=Customer()))
        long_key = sent(init)["CustomerKey"]  # "tbank-shop:inv_…" is 41 characters: hashed to T-Bank's 36
        assert long_key == customer_key("tbank-shop", "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa") and len(long_key) == 36
        assert long_key.startswith("pb:")

    @respx.mock
    def test_an_ordinary_payment_saves_nothing(self) -> None:
        respx.post(f"{BASE}CheckOrder").mock(return_value=NOT_FOUND)
        init = respx.post(f"{BASE}Init").mock(return_value=answer(PaymentId="1", Status="NEW", PaymentURL="u"))
        adapter().create_payment(request())
        assert "Recurrent" not in sent(init) and "CustomerKey" not in sent(init)

    def test_the_confirmed_notification_carries_the_rebill_id(self) -> None:
        note = adapter().verify_notification({}, signed({**NOTIFICATION, "RebillId": 6155312072}))
        assert (note.kind, note.saved_method) == ("paid", "6155312072")
        assert adapter().verify_notification({}, signed(NOTIFICATION)).saved_method is None
        rejected = adapter().verify_notification(
            {}, signed({**NOTIFICATION, "Status": "REJECTED", "Success": False, "RebillId": 1})
        )
        assert rejected.saved_method is None

    @respx.mock
    def test_charge_is_init_then_charge_with_the_rebill_id(self) -> None:
        respx.post(f"{BASE}CheckOrder").mock(return_value=NOT_FOUND)
        init = respx.post(f"{BASE}Init").mock(
            return_value=answer(PaymentId="700", Status="NEW", PaymentURL="https://securepay.tinkoff.ru/new/y")
        )
        charge_route = respx.post(f"{BASE}Charge").mock(
            return_value=answer(PaymentId="700", OrderId="inv_b", Status="CONFIRMED", Amount=150_050)
        )
        result = adapter().charge_saved(charge(receipt=RECEIPT))
        assert (result.payment_id, result.status) == ("700", "succeeded")
        init_body = sent(init)
        assert "Recurrent" not in init_body and "CustomerKey" not in init_body
        assert (init_body["Amount"], init_body["OrderId"]) == (150_050, "inv_bbbbbbbbbbbbbbbbbbbbbbbbbb")
        assert init_body["Receipt"] == receipt_body(RECEIPT) and init_body["Token"] == token(init_body, PASSWORD)
        body = sent(charge_route)
        assert set(body) == {"TerminalKey", "PaymentId", "RebillId", "Token"}
        assert (body["TerminalKey"], body["PaymentId"], body["RebillId"]) == (TERMINAL, "700", "6155312072")
        assert body["Token"] == token(body, PASSWORD)

    @respx.mock
    def test_a_declined_charge_is_a_failed_result_not_an_error(self) -> None:
        respx.post(f"{BASE}CheckOrder").mock(return_value=NOT_FOUND)
        respx.post(f"{BASE}Init").mock(return_value=answer(PaymentId="701", Status="NEW", PaymentURL="u"))
        respx.post(f"{BASE}Charge").mock(
            return_value=httpx.Response(
                200,
                json={
                    "Success": False,
                    "ErrorCode": "1051",
                    "Message": "Недостаточно средств на карте",
                    "TerminalKey": TERMINAL,
                    "Status": "REJECTED",
                    "PaymentId": "701",
                    "OrderId": "inv_b",
                    "Amount": 150_050,
                },
            )
        )
        result = adapter().charge_saved(charge())
        assert (result.payment_id, result.status) == ("701", "failed")
        assert "1051" in result.detail and "Недостаточно средств" in result.detail

    @respx.mock
    @pytest.mark.parametrize(("status", "state"), [("AUTHORIZED", "pending"), ("AUTH_FAIL", "failed")])
    def test_other_charge_statuses(self, status: str, state: str) -> None:
        respx.post(f"{BASE}CheckOrder").mock(return_value=NOT_FOUND)
        respx.post(f"{BASE}Init").mock(return_value=answer(PaymentId="702", Status="NEW", PaymentURL="u"))
        respx.post(f"{BASE}Charge").mock(return_value=answer(PaymentId="702", Status=status))
        assert adapter().charge_saved(charge()).status == state

    @respx.mock
    def test_a_refused_charge_request_is_rejected(self) -> None:
        respx.post(f"{BASE}CheckOrder").mock(return_value=NOT_FOUND)
        respx.post(f"{BASE}Init").mock(return_value=answer(PaymentId="703", Status="NEW", PaymentURL="u"))
        respx.post(f"{BASE}Charge").mock(
            return_value=httpx.Response(
                200, json={"Success": False, "ErrorCode": "103", "Message": "Неверный RebillId"}
            )
        )
        with pytest.raises(ProviderRejected, match="ErrorCode 103"):
            adapter().charge_saved(charge())

    @respx.mock
    def test_a_retried_charge_after_a_lost_answer_ends_with_one_payment(self) -> None:
        check = respx.post(f"{BASE}CheckOrder").mock(
            side_effect=[
                NOT_FOUND,
                answer(Payments=[{"PaymentId": "700", "Amount": 150_050, "Status": "CONFIRMED", "Success": True}]),
            ]
        )
        init = respx.post(f"{BASE}Init").mock(return_value=answer(PaymentId="700", Status="NEW", PaymentURL="u"))
        charge_route = respx.post(f"{BASE}Charge").mock(side_effect=httpx.ReadTimeout("no answer"))
        tbank = adapter()
        with pytest.raises(ProviderUnavailable):
            tbank.charge_saved(charge())
        result = tbank.charge_saved(charge())  # the retry: CheckOrder shows the charge went through
        assert (result.payment_id, result.status) == ("700", "succeeded")
        assert check.call_count == 2 and init.call_count == 1 and charge_route.call_count == 1
        assert sent(check)["OrderId"] == "inv_bbbbbbbbbbbbbbbbbbbbbbbbbb"

    @respx.mock
    def test_a_retry_charges_the_payment_whose_charge_never_arrived(self) -> None:
        respx.post(f"{BASE}CheckOrder").mock(
            return_value=answer(Payments=[{"PaymentId": "704", "Amount": 150_050, "Status": "NEW"}])
        )
        init = respx.post(f"{BASE}Init")
        charge_route = respx.post(f"{BASE}Charge").mock(return_value=answer(PaymentId="704", Status="CONFIRMED"))
        result = adapter().charge_saved(charge())
        assert (result.payment_id, result.status) == ("704", "succeeded")
        assert not init.called and sent(charge_route)["PaymentId"] == "704"

    @respx.mock
    def test_a_retry_of_a_declined_charge_repeats_the_decline(self) -> None:
        respx.post(f"{BASE}CheckOrder").mock(
            return_value=answer(Payments=[{"PaymentId": "705", "Amount": 150_050, "Status": "REJECTED"}])
        )
        init, charge_route = respx.post(f"{BASE}Init"), respx.post(f"{BASE}Charge")
        result = adapter().charge_saved(charge())
        assert (result.payment_id, result.status) == ("705", "failed")
        assert not init.called and not charge_route.called


class TestRecurrentAgainstTheFake:
    def test_save_then_charge_then_decline(self) -> None:
        fake = FakeTBank("http://tbank.fake")
        fake.stop()  # notifications are recorded, not sent
        fake.passwords[TERMINAL] = PASSWORD
        config = TBankSettings(
            provider="tbank", base_url="http://tbank.fake/v2/", terminal_key=TERMINAL, password={"value": PASSWORD}
        )
        tbank = TBankAcquiring(config, PASSWORD, transport=httpx.WSGITransport(app=fake))
        created = tbank.create_payment(request(save_method=True, notification_url="http://hub.test/n"))
        httpx.Client(transport=httpx.WSGITransport(app=fake)).post(
            f"http://tbank.fake/_control/payments/{created.payment_id}/pay"
        )
        note = tbank.verify_notification({}, fake.deliveries[-1].body)
        assert note.kind == "paid" and note.saved_method
        paid = tbank.charge_saved(charge(method=note.saved_method))
        assert paid.status == "succeeded"
        assert tbank.charge_saved(charge(method=note.saved_method)) == paid  # a retry: the same payment
        fake.faults["charge_decline"] = 1
        declined = tbank.charge_saved(charge(method=note.saved_method, order_id="inv_cccccccccccccccccccccccccc"))
        assert declined.status == "failed" and "1051" in declined.detail
        assert len([p for p in fake.payments.values() if p.order_id == charge().order_id]) == 1


@pytest.mark.parametrize("method", ["card", "sbp"])
def test_a_confirmed_notification_is_paid_by_the_terminals_method(method: str) -> None:
    """T-Bank's notification does not name the method: it is the tenant's setting (SBP payments are made by GetQr)."""
    note = adapter(method).verify_notification({}, signed(NOTIFICATION))
    assert (note.kind, note.method) == ("paid", method)
    assert adapter(method).verify_notification({}, signed({**NOTIFICATION, "Status": "REJECTED"})).method is None
