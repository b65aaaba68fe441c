"""The sandbox PSP adapter (paybridge.adapters.psp.sandbox): its signature scheme, notification mapping and the
HTTP calls it makes (mocked with respx / httpx.MockTransport)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from devstack.sandbox_psp import SandboxPsp as SandboxServer
from paybridge.adapters.errors import InvalidSignature, MalformedNotification, ProviderRejected, ProviderUnavailable
from paybridge.adapters.psp.base import ChargeRequest, CreatedPayment, PaymentRequest
from paybridge.adapters.psp.sandbox import STATUS_MAP, TOLERANCE_SECONDS, SandboxPsp, sign, verify
from paybridge.domain.invoice import Customer

SECRET = "sandbox-psp-secret-demo"
T = 1_750_000_000
BODY = b'{"event_id":"evt-1","amount":100}'
BASE = "http://psp.test/sandbox/psp"


def digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# sign / verify
# ---------------------------------------------------------------------------------------------------------------


class TestSignature:
    def test_sign_format(self) -> None:
        # Given a secret, a body and a timestamp
        # When the body is signed
        header = sign(SECRET, BODY, T)
        # Then the header is t=<unix>,v1=<HMAC-SHA256 of "<t>.<body>">
        assert header == f"t={T},v1={digest(SECRET, T, BODY)}"
        assert len(header.split("v1=")[1]) == 64

    def test_round_trip(self) -> None:
        verify(SECRET, BODY, sign(SECRET, BODY, T), now=T)  # does not raise

    def test_round_trip_with_the_current_time(self) -> None:
        header = sign(SECRET, BODY)
        assert abs(int(header.split(",")[0].removeprefix("t=")) - time.time()) < 5
        verify(SECRET, BODY, header)

    def test_within_the_tolerance_either_way(self) -> None:
        header = sign(SECRET, BODY, T)
        verify(SECRET, BODY, header, now=T + TOLERANCE_SECONDS)
        verify(SECRET, BODY, header, now=T - TOLERANCE_SECONDS)
        assert TOLERANCE_SECONDS == 300

    def test_tampered_body_is_rejected(self) -> None:
        header = sign(SECRET, BODY, T)
        with pytest.raises(InvalidSignature, match="signature does not match"):
            verify(SECRET, BODY.replace(b"100", b"900"), header, now=T)

    def test_wrong_secret_is_rejected(self) -> None:
        header = sign("another-secret", BODY, T)
        with pytest.raises(InvalidSignature, match="signature does not match"):
            verify(SECRET, BODY, header, now=T)

    def test_timestamp_is_part_of_the_signature(self) -> None:
        # Given a valid signature whose timestamp is swapped for a fresher one
        v1 = digest(SECRET, T, BODY)
        with pytest.raises(InvalidSignature, match="signature does not match"):
            verify(SECRET, BODY, f"t={T + 10},v1={v1}", now=T + 10)

    @pytest.mark.parametrize("age", [TOLERANCE_SECONDS + 1, 3600, -(TOLERANCE_SECONDS + 1)])
    def test_stale_or_future_timestamp_is_rejected(self, age: int) -> None:
        header = sign(SECRET, BODY, T)
        with pytest.raises(InvalidSignature, match="outside the tolerance"):
            verify(SECRET, BODY, header, now=T + age)

    @pytest.mark.parametrize("header", [None, ""])
    def test_missing_header_is_rejected(self, header: str | None) -> None:
        with pytest.raises(InvalidSignature, match="missing signature header"):
            verify(SECRET, BODY, header, now=T)

    @pytest.mark.parametrize("header", ["v1=abc", "t=,v1=abc", "t=yesterday,v1=abc", "garbage"])
    def test_header_without_a_timestamp_is_rejected(self, header: str) -> None:
        with pytest.raises(InvalidSignature, match="no timestamp"):
            verify(SECRET, BODY, header, now=T)

    def test_header_without_v1_is_rejected(self) -> None:
        with pytest.raises(InvalidSignature, match="does not match"):
            verify(SECRET, BODY, f"t={T},v0={digest(SECRET, T, BODY)}", now=T)

    @pytest.mark.parametrize(
        "template",
        [
            "t={t},v1={bad},v1={good}",
            "t={t},v1={good},v1={bad}",
            "t={t}, v1={bad}, v1={good}",
            "v1={bad},t={t},v1={good}",
        ],
    )
    def test_several_v1_values_one_matching_is_accepted(self, template: str) -> None:
        # Given a header during secret rotation: one v1 from an old secret, one from the current one
        header = template.format(t=T, bad=digest("old-secret", T, BODY), good=digest(SECRET, T, BODY))
        # When it is verified with the current secret
        # Then it is accepted
        verify(SECRET, BODY, header, now=T)

    def test_several_v1_values_none_matching_is_rejected(self) -> None:
        header = f"t={T},v1={digest('a-secret', T, BODY)},v1={digest('b-secret', T, BODY)}"
        with pytest.raises(InvalidSignature, match="does not match"):
            verify(SECRET, BODY, header, now=T)


# ---------------------------------------------------------------------------------------------------------------
# verify_notification
# ---------------------------------------------------------------------------------------------------------------


def notification(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": "evt-1",
        "type": "payment.succeeded",
        "payment_id": "pay_123",
        "order_id": "inv_abc",
        "operation_id": "op-9",
        "amount": 150050,
        "currency": "RUB",
        "created": T,
    }
    body.update(overrides)
    return body


def signed(body: bytes, secret: str = SECRET, name: str = "X-Sandbox-Signature") -> dict[str, str]:
    return {name: sign(secret, body), "Content-Type": "application/json"}


@pytest.fixture
def psp() -> SandboxPsp:
    return SandboxPsp(BASE, SECRET, transport=httpx.MockTransport(lambda r: httpx.Response(599)))


class TestNotification:
    @pytest.mark.parametrize(
        ("kind", "expected"),
        [
            ("payment.succeeded", "paid"),
            ("payment.declined", "declined"),
            ("payment.canceled", "cancelled"),
            ("payment.refunded", "ignored"),
            ("payment.waiting_for_capture", "ignored"),
            ("something.else", "ignored"),
        ],
    )
    def test_type_mapping(self, psp: SandboxPsp, kind: str, expected: str) -> None:
        # Given a correctly signed notification of this type
        body = json.dumps(notification(type=kind)).encode()
        # When it is verified
        note = psp.verify_notification(signed(body), body)
        # Then it maps to what it means for us, with the provider's ids carried over
        assert note.kind == expected
        assert note.raw_status == kind
        assert note.event_id == "evt-1"
        assert note.payment_id == "pay_123"
        assert note.operation_ref == "sandbox:op-9"
        assert note.amount == 150050

    def test_status_map_is_the_documented_one(self) -> None:
        assert STATUS_MAP == {
            "payment.succeeded": "paid",
            "payment.declined": "declined",
            "payment.canceled": "cancelled",
            "refund.succeeded": "refunded",
        }

    @pytest.mark.parametrize("name", ["x-sandbox-signature", "X-SANDBOX-SIGNATURE", "X-Sandbox-Signature"])
    def test_header_name_is_case_insensitive(self, psp: SandboxPsp, name: str) -> None:
        body = json.dumps(notification()).encode()
        assert psp.verify_notification(signed(body, name=name), body).kind == "paid"

    def test_unsigned_notification_is_rejected(self, psp: SandboxPsp) -> None:
        body = json.dumps(notification()).encode()
        with pytest.raises(InvalidSignature, match="missing signature header"):
            psp.verify_notification({"Content-Type": "application/json"}, body)

    def test_notification_signed_with_another_secret_is_rejected(self, psp: SandboxPsp) -> None:
        body = json.dumps(notification()).encode()
        with pytest.raises(InvalidSignature):
            psp.verify_notification(signed(body, secret="sandbox-psp-secret-qr"), body)

    def test_tampered_notification_is_rejected(self, psp: SandboxPsp) -> None:
        body = json.dumps(notification()).encode()
        headers = signed(body)
        tampered = json.dumps(notification(amount=1)).encode()
        with pytest.raises(InvalidSignature):
            psp.verify_notification(headers, tampered)

    def test_signature_is_checked_before_the_body_is_parsed(self, psp: SandboxPsp) -> None:
        with pytest.raises(InvalidSignature):
            psp.verify_notification({"X-Sandbox-Signature": f"t={int(time.time())},v1=00"}, b"not json")

    @pytest.mark.parametrize(
        "body",
        [
            b"not json",
            b"",
            b"[]",
            b'"payment.succeeded"',
            b"\xff\xfe\x00",
            json.dumps({k: v for k, v in notification().items() if k != "payment_id"}).encode(),
            json.dumps({k: v for k, v in notification().items() if k != "operation_id"}).encode(),
            json.dumps({k: v for k, v in notification().items() if k != "type"}).encode(),
            json.dumps(notification(amount="a lot")).encode(),
            json.dumps(notification(amount=1.5)).encode(),
            json.dumps(notification(created=None)).encode(),
        ],
        ids=[
            "not-json",
            "empty",
            "list",
            "string",
            "not-utf8",
            "no-payment-id",
            "no-operation-id",
            "no-type",
            "amount-text",
            "amount-fraction",
            "created-null",
        ],
    )
    def test_malformed_signed_body(self, psp: SandboxPsp, body: bytes) -> None:
        # Given a correctly signed body that is not in the documented shape
        # When it is verified
        # Then it is a MalformedNotification (answered 400, nothing written)
        with pytest.raises(MalformedNotification):
            psp.verify_notification(signed(body), body)

    @pytest.mark.parametrize("amount", [-100, 10**14, 12.5, "100"])
    def test_amount_outside_integer_minor_units_is_malformed(self, psp: SandboxPsp, amount: object) -> None:
        body = json.dumps(notification(amount=amount)).encode()
        with pytest.raises(MalformedNotification):
            psp.verify_notification(signed(body), body)

    def test_acknowledgement(self, psp: SandboxPsp) -> None:
        ack = psp.acknowledgement()
        assert (ack.status_code, ack.body, ack.content_type) == (200, "OK", "text/plain")


# ---------------------------------------------------------------------------------------------------------------
# create_payment / cancel_payment over HTTP
# ---------------------------------------------------------------------------------------------------------------

EXPIRES = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def payment_request(**overrides: Any) -> PaymentRequest:
    fields: dict[str, Any] = {
        "tenant_id": "demo",
        "invoice_id": "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa",
        "order_id": "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa",
        "amount": 150050,
        "currency": "RUB",
        "description": "Счёт № INV-7",
        "customer": Customer(email="client@example.com"),
        "expires_at": EXPIRES,
        "notification_url": "https://hub.test/psp/demo/sandbox",
    }
    fields.update(overrides)
    return PaymentRequest(**fields)


CREATED_JSON = {
    "id": "pay_123",
    "status": "pending",
    "url": "http://psp.test/sandbox/psp/pay/pay_123",
    "qr_payload": "https://qr.nspk.ru/SANDBOX123",
}


class TestCreatePayment:
    @respx.mock(base_url=BASE, assert_all_called=True)
    def test_request_and_response(self, respx_mock: respx.MockRouter) -> None:
        # Given the PSP answers 201 with the payment
        route = respx_mock.post("/api/payments").mock(return_value=httpx.Response(201, json=CREATED_JSON))
        psp = SandboxPsp(BASE + "/", SECRET, method="sbp")
        # When a payment is created
        created = psp.create_payment(payment_request())
        # Then the answer is mapped
        assert created == CreatedPayment(
            payment_id="pay_123",
            payment_url="http://psp.test/sandbox/psp/pay/pay_123",
            qr_payload="https://qr.nspk.ru/SANDBOX123",
        )
        # and exactly one documented request was sent
        assert route.call_count == 1
        request = route.calls.last.request
        assert request.method == "POST"
        assert str(request.url) == "http://psp.test/sandbox/psp/api/payments"
        assert request.headers["Authorization"] == f"Bearer {SECRET}"
        assert request.headers["Idempotency-Key"] == "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa"
        assert request.headers["Content-Type"] == "application/json"
        assert json.loads(request.content) == {
            "order_id": "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa",
            "amount": 150050,
            "currency": "RUB",
            "description": "Счёт № INV-7",
            "expires_at": "2030-01-02T03:04:05+00:00",
            "notification_url": "https://hub.test/psp/demo/sandbox",
            "method": "sbp",
        }
        # with explicit timeouts
        assert request.extensions["timeout"] == {"connect": 3.0, "read": 10.0, "write": 10.0, "pool": 10.0}

    @respx.mock(base_url=BASE)
    def test_defaults_card_method_and_no_qr(self, respx_mock: respx.MockRouter) -> None:
        answer = {k: v for k, v in CREATED_JSON.items() if k != "qr_payload"}
        route = respx_mock.post("/api/payments").mock(return_value=httpx.Response(200, json=answer))
        created = SandboxPsp(BASE, SECRET).create_payment(payment_request(notification_url=None))
        assert created.qr_payload is None
        sent = json.loads(route.calls.last.request.content)
        assert sent["method"] == "card"
        assert sent["notification_url"] is None

    @pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
    @respx.mock(base_url=BASE)
    def test_transient_http_errors_are_provider_unavailable(self, respx_mock: respx.MockRouter, status: int) -> None:
        respx_mock.post("/api/payments").mock(return_value=httpx.Response(status, text="try later"))
        with pytest.raises(ProviderUnavailable, match=f"POST /api/payments: HTTP {status}: try later"):
            SandboxPsp(BASE, SECRET).create_payment(payment_request())

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
    @respx.mock(base_url=BASE)
    def test_client_errors_are_provider_rejected(self, respx_mock: respx.MockRouter, status: int) -> None:
        respx_mock.post("/api/payments").mock(
            return_value=httpx.Response(status, json={"error": "amount must be a positive integer"})
        )
        with pytest.raises(ProviderRejected, match=f"HTTP {status}: .*amount must be a positive integer"):
            SandboxPsp(BASE, SECRET).create_payment(payment_request())

    @pytest.mark.parametrize(
        "error", [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.ConnectError, httpx.RemoteProtocolError]
    )
    @respx.mock(base_url=BASE)
    def test_transport_errors_are_provider_unavailable(
        self, respx_mock: respx.MockRouter, error: type[httpx.TransportError]
    ) -> None:
        respx_mock.post("/api/payments").mock(side_effect=error)
        with pytest.raises(ProviderUnavailable, match=error.__name__) as caught:
            SandboxPsp(BASE, SECRET).create_payment(payment_request())
        assert isinstance(caught.value.__cause__, error)

    def test_explicit_transport_is_used(self) -> None:
        # Given an explicit transport (no respx)
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(201, json=CREATED_JSON)

        psp = SandboxPsp(BASE, SECRET, transport=httpx.MockTransport(handler))
        # When a payment is created
        created = psp.create_payment(payment_request())
        # Then the request went through that transport
        assert created.payment_id == "pay_123"
        assert [str(r.url) for r in seen] == ["http://psp.test/sandbox/psp/api/payments"]
        assert seen[0].headers["authorization"] == f"Bearer {SECRET}"

    def test_explicit_transport_errors_are_mapped(self) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectTimeout("timed out", request=request)

        psp = SandboxPsp(BASE, SECRET, transport=httpx.MockTransport(handler))
        with pytest.raises(ProviderUnavailable, match="ConnectTimeout: timed out"):
            psp.create_payment(payment_request())


class TestCancelPayment:
    @respx.mock(base_url=BASE, assert_all_called=True)
    def test_cancel_posts_to_the_payment(self, respx_mock: respx.MockRouter) -> None:
        route = respx_mock.post("/api/payments/pay_123/cancel").mock(return_value=httpx.Response(200, json={}))
        assert SandboxPsp(BASE, SECRET).cancel_payment("pay_123") is None
        request = route.calls.last.request
        assert route.call_count == 1
        assert str(request.url) == "http://psp.test/sandbox/psp/api/payments/pay_123/cancel"
        assert request.headers["Authorization"] == f"Bearer {SECRET}"
        assert request.content == b""

    @respx.mock(base_url=BASE)
    def test_cancel_of_a_final_payment_is_rejected(self, respx_mock: respx.MockRouter) -> None:
        respx_mock.post("/api/payments/pay_123/cancel").mock(
            return_value=httpx.Response(409, json={"error": "payment is succeeded"})
        )
        with pytest.raises(ProviderRejected, match="HTTP 409"):
            SandboxPsp(BASE, SECRET).cancel_payment("pay_123")

    @respx.mock(base_url=BASE)
    def test_cancel_when_the_psp_is_down(self, respx_mock: respx.MockRouter) -> None:
        respx_mock.post("/api/payments/pay_123/cancel").mock(return_value=httpx.Response(503))
        with pytest.raises(ProviderUnavailable, match="HTTP 503"):
            SandboxPsp(BASE, SECRET).cancel_payment("pay_123")

    @respx.mock(base_url=BASE)
    def test_cancel_timeout(self, respx_mock: respx.MockRouter) -> None:
        respx_mock.post("/api/payments/pay_123/cancel").mock(side_effect=httpx.ConnectTimeout)
        with pytest.raises(ProviderUnavailable):
            SandboxPsp(BASE, SECRET).cancel_payment("pay_123")


# ---------------------------------------------------------------------------------------------------------------
# recurring payments: save the method, charge it later
# ---------------------------------------------------------------------------------------------------------------


def charge_request(**overrides: Any) -> ChargeRequest:
    fields: dict[str, Any] = {
        "tenant_id": "demo",
        "invoice_id": "inv_bbbbbbbbbbbbbbbbbbbbbbbbbb",
        "order_id": "inv_bbbbbbbbbbbbbbbbbbbbbbbbbb",
        "amount": 150050,
        "currency": "RUB",
        "description": "Подписка, ноябрь",
        "method": "sm_0123456789abcdef0123",
        "customer": Customer(email="client@example.com"),
    }
    fields.update(overrides)
    return ChargeRequest(**fields)


class TestRecurrent:
    @respx.mock(base_url=BASE)
    def test_a_saving_payment_says_so(self, respx_mock: respx.MockRouter) -> None:
        route = respx_mock.post("/api/payments").mock(return_value=httpx.Response(201, json=CREATED_JSON))
        SandboxPsp(BASE, SECRET).create_payment(payment_request(save_method=True))
        assert json.loads(route.calls.last.request.content)["save_method"] is True

    def test_the_paid_notification_carries_the_saved_method(self, psp: SandboxPsp) -> None:
        body = json.dumps(notification(saved_method="sm_0123456789abcdef0123")).encode()
        assert psp.verify_notification(signed(body), body).saved_method == "sm_0123456789abcdef0123"
        plain = json.dumps(notification()).encode()
        assert psp.verify_notification(signed(plain), plain).saved_method is None
        declined = json.dumps(notification(type="payment.declined", saved_method="sm_x")).encode()
        assert psp.verify_notification(signed(declined), declined).saved_method is None

    @respx.mock(base_url=BASE, assert_all_called=True)
    def test_charge_request_and_answer(self, respx_mock: respx.MockRouter) -> None:
        route = respx_mock.post("/api/charges").mock(
            return_value=httpx.Response(201, json={"payment_id": "pay_9", "status": "succeeded", "detail": ""})
        )
        result = SandboxPsp(BASE, SECRET).charge_saved(charge_request())
        assert (result.payment_id, result.status, result.detail) == ("pay_9", "succeeded", "")
        request = route.calls.last.request
        assert request.headers["Authorization"] == f"Bearer {SECRET}"
        assert request.headers["Idempotency-Key"] == "inv_bbbbbbbbbbbbbbbbbbbbbbbbbb"
        assert json.loads(request.content) == {
            "order_id": "inv_bbbbbbbbbbbbbbbbbbbbbbbbbb",
            "amount": 150050,
            "currency": "RUB",
            "method": "sm_0123456789abcdef0123",
        }

    @respx.mock(base_url=BASE)
    def test_a_declined_charge_and_an_unknown_method(self, respx_mock: respx.MockRouter) -> None:
        route = respx_mock.post("/api/charges").mock(
            return_value=httpx.Response(
                201, json={"payment_id": "pay_9", "status": "failed", "detail": "insufficient funds"}
            )
        )
        result = SandboxPsp(BASE, SECRET).charge_saved(charge_request())
        assert (result.status, result.detail) == ("failed", "insufficient funds")
        route.return_value = httpx.Response(404, json={"error": "no such saved method"})
        with pytest.raises(ProviderRejected, match="HTTP 404"):
            SandboxPsp(BASE, SECRET).charge_saved(charge_request())

    @respx.mock(base_url=BASE)
    def test_a_retried_charge_keeps_its_key(self, respx_mock: respx.MockRouter) -> None:
        route = respx_mock.post("/api/charges").mock(
            side_effect=[
                httpx.ReadTimeout("lost"),
                httpx.Response(200, json={"payment_id": "pay_9", "status": "succeeded"}),
            ]
        )
        psp = SandboxPsp(BASE, SECRET)
        with pytest.raises(ProviderUnavailable):
            psp.charge_saved(charge_request())
        assert psp.charge_saved(charge_request()).payment_id == "pay_9"
        assert {c.request.headers["Idempotency-Key"] for c in route.calls} == {"inv_bbbbbbbbbbbbbbbbbbbbbbbbbb"}


ROOT = "http://psp.test"  # the sandbox server mounted at the root, as the WSGI transport calls it


class TestRecurrentAgainstTheSandbox:
    """The adapter against the sandbox server itself (`devstack/sandbox_psp.py`), in process."""

    def test_save_pay_charge_retry_and_decline(self) -> None:
        server = SandboxServer(ROOT)
        server.stop()  # notifications are recorded, not sent
        transport = httpx.WSGITransport(app=server)
        psp = SandboxPsp(ROOT, SECRET, transport=transport)
        created = psp.create_payment(payment_request(save_method=True))
        httpx.Client(transport=transport).post(f"{ROOT}/api/payments/{created.payment_id}/simulate", json={})
        body = server.deliveries[-1].body
        note = psp.verify_notification({"X-Sandbox-Signature": sign(SECRET, body)}, body)
        assert note.kind == "paid" and note.saved_method == f"sm_{created.payment_id.removeprefix('pay_')}"
        assert psp.get_payment(created.payment_id).saved_method == note.saved_method

        paid = psp.charge_saved(charge_request(method=note.saved_method))
        assert paid.status == "succeeded"
        assert psp.charge_saved(charge_request(method=note.saved_method)) == paid  # a retry: the same payment
        assert len(server.payments_for_order("inv_bbbbbbbbbbbbbbbbbbbbbbbbbb")) == 1
        assert psp.get_payment(paid.payment_id).kind == "paid"

        httpx.Client(transport=transport).post(f"{ROOT}/api/faults", json={"charge_decline": 1})
        declined = psp.charge_saved(charge_request(method=note.saved_method, order_id="inv_cccccccccccccccccccccccccc"))
        assert (declined.status, declined.detail) == ("failed", "insufficient funds")
        assert psp.get_payment(declined.payment_id).kind == "declined"
        with pytest.raises(ProviderRejected, match="HTTP 404"):  # another merchant's method, or none
            SandboxPsp(ROOT, "another-secret", transport=transport).charge_saved(
                charge_request(method=note.saved_method, order_id="inv_dddddddddddddddddddddddddd")
            )
