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

from paybridge.adapters.errors import InvalidSignature, MalformedNotification, ProviderRejected, ProviderUnavailable
from paybridge.adapters.psp.base import PaymentRequest, RefundOrder
from paybridge.adapters.psp.yookassa import PAYMENT_STATUS, VAT_CODE, YooKassa
from paybridge.domain.invoice import Customer
from paybridge.domain.receipt import FiscalReceipt, ReceiptItem
from paybridge.tenants import YooKassaSettings

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
