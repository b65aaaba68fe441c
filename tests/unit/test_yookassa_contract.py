"""YooKassa API v3 adapter against YooKassa's documented wire format (respx stands in for the API)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from devstack.fakes.yookassa import FakeYooKassa
from paybridge.adapters.errors import InvalidSignature, MalformedNotification, ProviderRejected, ProviderUnavailable
from paybridge.adapters.psp.base import ChargeRequest, PaymentRequest, RefundOrder
from paybridge.adapters.psp.yookassa import PAYMENT_STATUS, VAT_CODE, YooKassa, YooKassaSettings, idempotence_key
from paybridge.domain.invoice import Customer
from paybridge.domain.receipt import FiscalReceipt, ReceiptItem

BASE = "https://api.yookassa.ru/v3/"
SHOP, SECRET = "506751", "test_secret-key-123"
RECEIPT = FiscalReceipt(
    taxation="usn_income",
    ffd_version="1.2",
    phone="+79001234567",
    items=(
        ReceiptItem(name="Чай, кг", price=120_000, quantity=Decimal("1.25"), vat="vat22", payment_object="commodity"),
        ReceiptItem(name="Доставка", price=30_000, vat="none"),
    ),
)


def adapter(**settings: Any) -> YooKassa:
    config = YooKassaSettings(
        provider="yookassa", base_url=BASE, shop_id=SHOP, secret_key={"value": SECRET}, **settings
    )
    return YooKassa(config, SECRET)


def request(**overrides: Any) -> PaymentRequest:
    fields: dict[str, Any] = {
        "tenant_id": "yookassa-shop",
        "invoice_id": "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa",
        "order_id": "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa",
        "amount": 180_000,
        "currency": "RUB",
        "description": "Счёт № 7",
        "customer": Customer(phone="+79001234567"),
        "expires_at": datetime(2026, 11, 24, tzinfo=UTC),
        "notification_url": "https://hub.test/psp/yookassa-shop/yookassa",
        "return_url": "https://shop.test/thanks",
    }
    return PaymentRequest(**{**fields, **overrides})


def payment(
    status: str = "succeeded", value: str = "1800.00", pid: str = "2d5a3a9c-000f-5000-9000-1b68e7b15f3f"
) -> dict[str, Any]:
    return {
        "id": pid,
        "status": status,
        "paid": status == "succeeded",
        "amount": {"value": value, "currency": "RUB"},
        "confirmation": {
            "type": "redirect",
            "confirmation_url": f"https://yoomoney.ru/checkout/payments/v2/contract?orderId={pid}",
        },
        "created_at": "2026-11-23T10:00:00.000Z",
        "metadata": {"invoice_id": "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa"},
        "test": True,
    }


def envelope(event: str, object_id: str, **fields: Any) -> bytes:
    return json.dumps({"type": "notification", "event": event, "object": {"id": object_id, **fields}}).encode()


def sent(route: respx.Route, index: int = -1) -> tuple[dict[str, Any], httpx.Headers]:
    call = route.calls[index].request
    return json.loads(call.content), call.headers


class TestCreate:
    @respx.mock
    def test_body_headers_and_receipt(self) -> None:
        route = respx.post(f"{BASE}payments").mock(return_value=httpx.Response(200, json=payment("pending")))
        created = adapter().create_payment(request(receipt=RECEIPT))
        assert created.payment_id == "2d5a3a9c-000f-5000-9000-1b68e7b15f3f"
        assert created.payment_url.startswith("https://yoomoney.ru/checkout/")
        body, headers = sent(route)
        assert headers["authorization"] == "Basic " + base64.b64encode(f"{SHOP}:{SECRET}".encode()).decode()
        assert len(headers["idempotence-key"]) == 36
        assert body["amount"] == {"value": "1800.00", "currency": "RUB"} and body["capture"] is True
        assert body["confirmation"] == {"type": "redirect", "return_url": "https://shop.test/thanks"}
        assert body["metadata"] == {"invoice_id": "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa", "tenant_id": "yookassa-shop"}
        assert "payment_method_data" not in body
        assert body["receipt"] == {
            "customer": {"phone": "+79001234567"},
            "tax_system_code": 2,
            "items": [
                {
                    "description": "Чай, кг",
                    "quantity": "1.25",
                    "amount": {"value": "1200.00", "currency": "RUB"},
                    "vat_code": 11,
                    "payment_mode": "full_prepayment",
                    "payment_subject": "commodity",
                },
                {
                    "description": "Доставка",
                    "quantity": "1",
                    "amount": {"value": "300.00", "currency": "RUB"},
                    "vat_code": 1,
                    "payment_mode": "full_prepayment",
                    "payment_subject": "service",
                },
            ],
        }

    @respx.mock
    def test_sbp_asks_for_the_sbp_method(self) -> None:
        route = respx.post(f"{BASE}payments").mock(return_value=httpx.Response(200, json=payment("pending")))
        adapter(method="sbp").create_payment(request())
        assert sent(route)[0]["payment_method_data"] == {"type": "sbp"}

    @respx.mock
    def test_a_500_is_retried_with_the_same_key_and_gives_one_payment(self) -> None:
        route = respx.post(f"{BASE}payments").mock(
            side_effect=[
                httpx.Response(500, json={"type": "error", "code": "internal_server_error"}),
                httpx.ReadTimeout("slow"),
                httpx.Response(200, json=payment("pending")),
            ]
        )
        yk = adapter()
        for _ in range(2):
            with pytest.raises(ProviderUnavailable):
                yk.create_payment(request())
        assert yk.create_payment(request()).payment_id.startswith("2d5a3a9c")
        keys = {call.request.headers["idempotence-key"] for call in route.calls}
        assert len(keys) == 1  # YooKassa answers the same key with its first result: one payment
        other = respx.post(f"{BASE}payments").mock(return_value=httpx.Response(200, json=payment("pending")))
        adapter().create_payment(request(order_id="inv_bbbbbbbbbbbbbbbbbbbbbbbbbb"))
        assert sent(other)[1]["idempotence-key"] not in keys

    @respx.mock
    def test_a_400_is_rejected(self) -> None:
        respx.post(f"{BASE}payments").mock(
            return_value=httpx.Response(400, json={"type": "error", "code": "invalid_request", "parameter": "receipt"})
        )
        with pytest.raises(ProviderRejected, match="invalid_request"):
            adapter().create_payment(request())


class TestRefund:
    @respx.mock
    def test_refund_body_and_result(self) -> None:
        route = respx.post(f"{BASE}refunds").mock(
            return_value=httpx.Response(
                200,
                json={
                    "id": "216749f7-0016-50be-b000-078d43a63ae4",
                    "status": "succeeded",
                    "amount": {"value": "300.00", "currency": "RUB"},
                    "payment_id": "2d5a",
                },
            )
        )
        order = RefundOrder(
            tenant_id="t",
            invoice_id="inv_x",
            payment_id="2d5a",
            key="rf-1",
            amount=30_000,
            currency="RUB",
            payment_amount=180_000,
            reason="доставка не состоялась",
            receipt=FiscalReceipt(
                taxation="usn_income", ffd_version="1.2", phone="+79001234567", items=(RECEIPT.items[1],)
            ),
        )
        result = adapter().refund(order)
        assert (result.ref, result.status, result.amount) == (
            "yookassa:refund:216749f7-0016-50be-b000-078d43a63ae4",
            "succeeded",
            30_000,
        )
        body, headers = sent(route)
        assert body["payment_id"] == "2d5a" and body["amount"] == {"value": "300.00", "currency": "RUB"}
        assert body["metadata"] == {"refund_key": "rf-1", "invoice_id": "inv_x"}
        assert body["receipt"]["items"][0]["vat_code"] == 1
        again = adapter().refund(order)
        assert again.ref == result.ref and sent(route)[1]["idempotence-key"] == headers["idempotence-key"]


PID = "2d5a3a9c-000f-5000-9000-1b68e7b15f3f"


class TestNotification:
    @respx.mock
    def test_acts_on_the_refetched_payment_not_the_body(self) -> None:
        respx.get(f"{BASE}payments/{PID}").mock(return_value=httpx.Response(200, json=payment("succeeded", "1800.00")))
        body = envelope("payment.succeeded", PID, status="succeeded", amount={"value": "1.00", "currency": "RUB"})
        note = adapter().verify_notification({}, body)
        assert (note.kind, note.amount, note.payment_id, note.operation_ref) == (
            "paid",
            180_000,
            PID,
            f"yookassa:{PID}",
        )

    @respx.mock
    def test_a_body_claiming_success_for_a_pending_payment_changes_nothing(self) -> None:
        respx.get(f"{BASE}payments/{PID}").mock(return_value=httpx.Response(200, json=payment("pending")))
        note = adapter().verify_notification({}, envelope("payment.succeeded", PID, status="succeeded"))
        assert note.kind == "ignored" and note.raw_status == "pending"

    @respx.mock
    def test_an_unknown_object_is_forged(self) -> None:
        respx.get(f"{BASE}payments/nope").mock(
            return_value=httpx.Response(404, json={"type": "error", "code": "not_found"})
        )
        with pytest.raises(InvalidSignature):
            adapter().verify_notification({}, envelope("payment.succeeded", "nope"))

    @respx.mock
    def test_refund_notification_names_the_refund_like_the_api_answer(self) -> None:
        respx.get(f"{BASE}refunds/rf-id").mock(
            return_value=httpx.Response(
                200,
                json={
                    "id": "rf-id",
                    "status": "succeeded",
                    "payment_id": PID,
                    "amount": {"value": "300.00", "currency": "RUB"},
                    "metadata": {"refund_key": "rf-1"},
                },
            )
        )
        note = adapter().verify_notification({}, envelope("refund.succeeded", "rf-id"))
        assert (note.kind, note.operation_ref, note.amount, note.payment_id, note.refund_key) == (
            "refunded",
            "yookassa:refund:rf-id",
            30_000,
            PID,
            "rf-1",
        )

    @respx.mock
    def test_the_ip_allow_list(self) -> None:
        respx.get(f"{BASE}payments/{PID}").mock(return_value=httpx.Response(200, json=payment()))
        guarded = adapter(notification_ips=("185.71.76.0/27", "77.75.156.11"))
        assert guarded.verify_notification({}, envelope("payment.succeeded", PID), "185.71.76.5").kind == "paid"
        for ip in ("10.0.0.1", None):
            with pytest.raises(InvalidSignature):
                guarded.verify_notification({}, envelope("payment.succeeded", PID), ip)

    @pytest.mark.parametrize("body", [b"{", b"[]", b'{"type": "notification", "event": "payment.succeeded"}'])
    def test_malformed(self, body: bytes) -> None:
        with pytest.raises(MalformedNotification):
            adapter().verify_notification({}, body)

    def test_every_documented_status_and_vat_rate_is_mapped(self) -> None:
        assert PAYMENT_STATUS == {
            "pending": "ignored",
            "waiting_for_capture": "ignored",
            "succeeded": "paid",
            "canceled": "cancelled",
        }
        assert sorted(VAT_CODE.values()) == list(range(1, 13))


METHOD_ID = "2d5a3a9c-000f-5000-a000-1d0e1f2a3b4c"


def charge(**overrides: Any) -> ChargeRequest:
    fields: dict[str, Any] = {
        "tenant_id": "yookassa-shop",
        "invoice_id": "inv_bbbbbbbbbbbbbbbbbbbbbbbbbb",
        "order_id": "inv_bbbbbbbbbbbbbbbbbbbbbbbbbb",
        "amount": 180_000,
        "currency": "RUB",
        "description": "Подписка, ноябрь",
        "method": METHOD_ID,
        "customer": Customer(phone="+79001234567"),
    }
    return ChargeRequest(**{**fields, **overrides})


def charged(status: str, pid: str = "2d5a3b00-000f-5000-9000-1b68e7b15f40", **extra: Any) -> dict[str, Any]:
    body = payment(status, pid=pid)
    del body["confirmation"]
    return {**body, "payment_method": {"type": "bank_card", "id": METHOD_ID, "saved": True}, **extra}


class TestRecurrent:
    @respx.mock
    def test_a_saving_payment_asks_to_save_the_method(self) -> None:
        route = respx.post(f"{BASE}payments").mock(return_value=httpx.Response(200, json=payment("pending")))
        adapter().create_payment(request(save_method=True))
        assert sent(route)[0]["save_payment_method"] is True
        adapter().create_payment(request())
        assert "save_payment_method" not in sent(route)[0]

    @respx.mock
    def test_the_refetched_paid_payment_names_the_saved_method(self) -> None:
        saved = {**payment("succeeded"), "payment_method": {"type": "bank_card", "id": METHOD_ID, "saved": True}}
        unsaved = {**saved, "payment_method": {"type": "bank_card", "id": METHOD_ID, "saved": False}}
        route = respx.get(f"{BASE}payments/{PID}").mock(
            side_effect=[httpx.Response(200, json=saved), httpx.Response(200, json=unsaved)]
        )
        body = envelope("payment.succeeded", PID, payment_method={"id": "forged", "saved": True})
        assert adapter().verify_notification({}, body).saved_method == METHOD_ID
        assert adapter().verify_notification({}, body).saved_method is None  # saved: false is not a saved method
        route.side_effect = None
        route.return_value = httpx.Response(200, json=saved)
        assert adapter().get_payment(PID).saved_method == METHOD_ID

    @respx.mock
    def test_charge_body_and_a_succeeded_result(self) -> None:
        route = respx.post(f"{BASE}payments").mock(return_value=httpx.Response(200, json=charged("succeeded")))
        result = adapter().charge_saved(charge(receipt=RECEIPT))
        assert (result.payment_id, result.status) == ("2d5a3b00-000f-5000-9000-1b68e7b15f40", "succeeded")
        body, headers = sent(route)
        assert body["payment_method_id"] == METHOD_ID and body["capture"] is True
        assert "confirmation" not in body and "save_payment_method" not in body
        assert body["amount"] == {"value": "1800.00", "currency": "RUB"}
        assert body["metadata"] == {"invoice_id": "inv_bbbbbbbbbbbbbbbbbbbbbbbbbb", "tenant_id": "yookassa-shop"}
        assert body["receipt"]["customer"] == {"phone": "+79001234567"}
        assert headers["idempotence-key"] == idempotence_key(
            "charge", "yookassa-shop", "inv_bbbbbbbbbbbbbbbbbbbbbbbbbb"
        )

    @respx.mock
    def test_a_declined_charge_is_failed_with_the_cancellation_reason(self) -> None:
        details = {"party": "payment_network", "reason": "insufficient_funds"}
        respx.post(f"{BASE}payments").mock(
            return_value=httpx.Response(200, json=charged("canceled", cancellation_details=details))
        )
        result = adapter().charge_saved(charge())
        assert (result.status, result.detail) == ("failed", "insufficient_funds")

    @respx.mock
    def test_a_charge_still_processing_is_pending(self) -> None:
        respx.post(f"{BASE}payments").mock(return_value=httpx.Response(200, json=charged("pending")))
        assert adapter().charge_saved(charge()).status == "pending"

    @respx.mock
    def test_a_retried_charge_keeps_its_key_and_ends_with_one_payment(self) -> None:
        route = respx.post(f"{BASE}payments").mock(
            side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200, json=charged("succeeded"))]
        )
        yk = adapter()
        with pytest.raises(ProviderUnavailable):
            yk.charge_saved(charge())
        assert yk.charge_saved(charge()).status == "succeeded"
        assert len({call.request.headers["idempotence-key"] for call in route.calls}) == 1
        assert sent(route, 0)[0] == sent(route, 1)[0]  # the same body: YooKassa refuses a key with another body


class TestRecurrentAgainstTheFake:
    def test_save_then_charge_then_decline(self) -> None:
        fake = FakeYooKassa("http://yk.fake")
        fake.stop()  # notifications are recorded, not sent
        fake.shops[SHOP] = (SECRET, "http://hub.test/n")
        config = YooKassaSettings(
            provider="yookassa", base_url="http://yk.fake/v3/", shop_id=SHOP, secret_key={"value": SECRET}
        )
        yk = YooKassa(config, SECRET, transport=httpx.WSGITransport(app=fake))
        created = yk.create_payment(request(save_method=True))
        httpx.Client(transport=httpx.WSGITransport(app=fake)).post(
            f"http://yk.fake/_control/payments/{created.payment_id}/succeed"
        )
        note = yk.verify_notification({}, fake.deliveries[-1].body)
        assert note.kind == "paid" and note.saved_method
        paid = yk.charge_saved(charge(method=note.saved_method))
        assert paid.status == "succeeded" and yk.charge_saved(charge(method=note.saved_method)) == paid
        fake.faults["charge_decline"] = 1
        declined = yk.charge_saved(charge(method=note.saved_method, order_id="inv_cccccccccccccccccccccccccc"))
        assert (declined.status, declined.detail) == ("failed", "insufficient_funds")
        assert len(fake.payments) == 3


@respx.mock
@pytest.mark.parametrize(("kind", "method"), [("bank_card", "card"), ("sbp", "sbp")])
def test_the_method_of_a_paid_payment_is_its_payment_method_type(kind: str, method: str) -> None:
    paid = {**payment("succeeded"), "payment_method": {"type": kind, "id": "pm-1", "saved": False}}
    respx.get(f"{BASE}payments/{PID}").mock(return_value=httpx.Response(200, json=paid))
    note = adapter().verify_notification({}, envelope("payment.succeeded", PID))
    assert note.kind == "paid" and note.method == method
    assert [fact.method for fact in adapter().get_payment(PID).receipts] == [method]
