"""Stripe Checkout adapter against Stripe's documented wire format (respx stands in for api.stripe.com)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import respx

from devstack.fakes.stripe import FakeStripe
from paybridge.adapters.errors import InvalidSignature, MalformedNotification, ProviderRejected, ProviderUnavailable
from paybridge.adapters.psp.base import ChargeRequest, PaymentRequest, RefundOrder
from paybridge.adapters.psp.stripe import STRIPE_VERSION, StripeCheckout, StripeSettings, sign
from paybridge.domain.invoice import Customer

BASE = "https://api.stripe.com"
KEY, WHSEC = "sk_test_123456789", "whsec_test_secret"
EXPIRES = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def adapter(**settings: Any) -> StripeCheckout:
    config = StripeSettings(provider="stripe", secret_key={"value": KEY}, webhook_secret={"value": WHSEC}, **settings)
    return StripeCheckout(config, KEY, WHSEC)


def request(**overrides: Any) -> PaymentRequest:
    fields: dict[str, Any] = {
        "tenant_id": "stripe-shop",
        "invoice_id": "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa",
        "order_id": "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa",
        "amount": 4_990,
        "currency": "EUR",
        "description": "Invoice 7",
        "customer": Customer(email="client@example.com"),
        "expires_at": EXPIRES,
        "return_url": "https://shop.test/thanks",
    }
    return PaymentRequest(**{**fields, **overrides})


SESSION = {
    "id": "cs_test_a1b2",
    "object": "checkout.session",
    "url": "https://checkout.stripe.com/c/pay/cs_test_a1b2",
    "status": "open",
    "payment_status": "unpaid",
    "amount_total": 4_990,
    "payment_intent": None,
    "client_reference_id": "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa",
}


def form(route: respx.Route, index: int = -1) -> dict[str, str]:
    return dict(parse_qsl(route.calls[index].request.content.decode()))


def event(event_type: str, obj: dict[str, Any], event_id: str = "evt_1") -> bytes:
    return json.dumps(
        {"id": event_id, "object": "event", "type": event_type, "created": 1, "data": {"object": obj}}
    ).encode()


def headers_for(body: bytes, secret: str = WHSEC, t: int | None = None) -> dict[str, str]:
    return {"stripe-signature": sign(secret, body, t)}


class TestCreate:
    @respx.mock
    def test_form_body_and_headers(self) -> None:
        route = respx.post(f"{BASE}/v1/checkout/sessions").mock(return_value=httpx.Response(200, json=SESSION))
        created = adapter(cancel_url="https://shop.test/cart").create_payment(request())
        assert (created.payment_id, created.payment_url) == ("cs_test_a1b2", SESSION["url"])
        assert form(route) == {
            "mode": "payment",
            "client_reference_id": "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa",
            "success_url": "https://shop.test/thanks",
            "cancel_url": "https://shop.test/cart",
            "expires_at": str(int(EXPIRES.timestamp())),
            "line_items[0][quantity]": "1",
            "line_items[0][price_data][currency]": "eur",
            "line_items[0][price_data][unit_amount]": "4990",
            "line_items[0][price_data][product_data][name]": "Invoice 7",
            "metadata[invoice_id]": "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa",
            "metadata[tenant_id]": "stripe-shop",
            "payment_intent_data[metadata][invoice_id]": "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa",
            "customer_email": "client@example.com",
        }
        sent = route.calls[-1].request.headers
        assert sent["authorization"] == f"Bearer {KEY}" and sent["stripe-version"] == STRIPE_VERSION
        assert sent["idempotency-key"] == "session-stripe-shop-inv_aaaaaaaaaaaaaaaaaaaaaaaaaa"

    @respx.mock
    def test_retries_keep_the_key_and_end_with_one_session(self) -> None:
        route = respx.post(f"{BASE}/v1/checkout/sessions").mock(
            side_effect=[httpx.ReadTimeout("lost"), httpx.Response(500, json={}), httpx.Response(200, json=SESSION)]
        )
        stripe = adapter()
        for _ in range(2):
            with pytest.raises(ProviderUnavailable):
                stripe.create_payment(request())
        assert stripe.create_payment(request()).payment_id == "cs_test_a1b2"
        assert len({c.request.headers["idempotency-key"] for c in route.calls}) == 1

    @respx.mock
    def test_a_4xx_is_rejected_and_no_return_url_is_refused(self) -> None:
        respx.post(f"{BASE}/v1/checkout/sessions").mock(
            return_value=httpx.Response(400, json={"error": {"type": "invalid_request_error", "param": "expires_at"}})
        )
        with pytest.raises(ProviderRejected, match="expires_at"):
            adapter().create_payment(request())
        with pytest.raises(ProviderRejected, match="return_url"):
            adapter().create_payment(request(return_url=None))


class TestRefundAndExpire:
    @respx.mock
    def test_refund_resolves_the_payment_intent(self) -> None:
        respx.get(f"{BASE}/v1/checkout/sessions/cs_test_a1b2").mock(
            return_value=httpx.Response(200, json={**SESSION, "payment_intent": "pi_3N", "payment_status": "paid"})
        )
        route = respx.post(f"{BASE}/v1/refunds").mock(
            return_value=httpx.Response(
                200, json={"id": "re_1", "object": "refund", "status": "succeeded", "amount": 1_000}
            )
        )
        order = RefundOrder(
            tenant_id="stripe-shop",
            invoice_id="inv_x",
            payment_id="cs_test_a1b2",
            key="rf-1",
            amount=1_000,
            currency="EUR",
            payment_amount=4_990,
            reason="damaged",
        )
        result = adapter().refund(order)
        assert (result.ref, result.status, result.amount) == ("stripe:refund:re_1", "succeeded", 1_000)
        assert form(route) == {
            "payment_intent": "pi_3N",
            "amount": "1000",
            "metadata[refund_key]": "rf-1",
            "metadata[invoice_id]": "inv_x",
            "metadata[session_id]": "cs_test_a1b2",
            "metadata[reason]": "damaged",
        }
        assert route.calls[-1].request.headers["idempotency-key"] == "refund-stripe-shop-rf-1"

    @respx.mock
    def test_expire(self) -> None:
        route = respx.post(f"{BASE}/v1/checkout/sessions/cs_test_a1b2/expire").mock(
            return_value=httpx.Response(200, json={**SESSION, "status": "expired"})
        )
        adapter().cancel_payment("cs_test_a1b2")
        assert route.called


COMPLETED = {**SESSION, "status": "complete", "payment_status": "paid", "payment_intent": "pi_3N"}


class TestWebhook:
    def test_completed_and_paid_is_money(self) -> None:
        body = event("checkout.session.completed", COMPLETED)
        note = adapter().verify_notification(headers_for(body), body)
        assert (note.kind, note.payment_id, note.amount, note.operation_ref, note.event_id) == (
            "paid",
            "cs_test_a1b2",
            4_990,
            "stripe:pi_3N",
            "evt_1",
        )

    @pytest.mark.parametrize(
        ("event_type", "obj", "kind"),
        [
            ("checkout.session.completed", {**COMPLETED, "payment_status": "unpaid"}, "ignored"),
            ("checkout.session.async_payment_succeeded", COMPLETED, "paid"),
            ("checkout.session.async_payment_failed", COMPLETED, "declined"),
            ("checkout.session.expired", {**SESSION, "status": "expired"}, "cancelled"),
            ("customer.created", {"id": "cus_1"}, "ignored"),
        ],
    )
    def test_event_types(self, event_type: str, obj: dict[str, Any], kind: str) -> None:
        body = event(event_type, obj)
        assert adapter().verify_notification(headers_for(body), body).kind == kind

    @pytest.mark.parametrize(
        ("event_type", "status", "kind"),
        [
            ("refund.created", "succeeded", "refunded"),
            ("refund.updated", "succeeded", "refunded"),
            ("refund.updated", "pending", "ignored"),
            ("refund.updated", "canceled", "refund_failed"),
            ("refund.failed", "failed", "refund_failed"),
        ],
    )
    def test_refund_events_name_the_refund_like_the_api_answer(self, event_type: str, status: str, kind: str) -> None:
        refund = {
            "id": "re_1",
            "object": "refund",
            "status": status,
            "amount": 1_000,
            "payment_intent": "pi_3N",
            "metadata": {"refund_key": "rf-1", "session_id": "cs_test_a1b2"},
        }
        body = event(event_type, refund)
        note = adapter().verify_notification(headers_for(body), body)
        assert (note.kind, note.operation_ref, note.payment_id, note.refund_key, note.amount) == (
            kind,
            "stripe:refund:re_1",
            "cs_test_a1b2",
            "rf-1",
            1_000,
        )

    @respx.mock
    def test_a_dashboard_refund_finds_its_session_by_payment_intent(self) -> None:
        route = respx.get(f"{BASE}/v1/checkout/sessions").mock(
            return_value=httpx.Response(200, json={"object": "list", "data": [COMPLETED], "has_more": False})
        )
        body = event("refund.created", {"id": "re_2", "status": "succeeded", "amount": 500, "payment_intent": "pi_3N"})
        note = adapter().verify_notification(headers_for(body), body)
        assert note.payment_id == "cs_test_a1b2" and note.refund_key is None
        assert dict(route.calls[-1].request.url.params) == {"payment_intent": "pi_3N", "limit": "1"}

    def test_several_v1_values_any_may_match(self) -> None:
        body = event("checkout.session.completed", COMPLETED)
        good = sign(WHSEC, body).split(",")
        header = f"{good[0]},v1={'0' * 64},{good[1]}"
        assert adapter().verify_notification({"stripe-signature": header}, body).kind == "paid"

    @pytest.mark.parametrize(
        "make",
        [
            lambda b: {},
            lambda b: {"stripe-signature": "garbage"},
            lambda b: headers_for(b, "whsec_other"),
            lambda b: headers_for(b, t=int(time.time()) - 301),
            lambda b: headers_for(b, t=int(time.time()) + 301),
            lambda b: headers_for(b.replace(b"4990", b"1")),
        ],
        ids=["missing", "garbled", "wrong-secret", "stale", "future", "tampered-body"],
    )
    def test_bad_signatures(self, make: Any) -> None:
        body = event("checkout.session.completed", COMPLETED)
        with pytest.raises(InvalidSignature):
            adapter().verify_notification(make(body), body)

    def test_malformed_and_ack(self) -> None:
        body = b'{"id": "evt_1"}'
        with pytest.raises(MalformedNotification):
            adapter().verify_notification(headers_for(body), body)
        ack = adapter().acknowledgement()
        assert (ack.status_code, json.loads(ack.body)) == (200, {"received": True})


def charge(**overrides: Any) -> ChargeRequest:
    fields: dict[str, Any] = {
        "tenant_id": "stripe-shop",
        "invoice_id": "inv_bbbbbbbbbbbbbbbbbbbbbbbbbb",
        "order_id": "inv_bbbbbbbbbbbbbbbbbbbbbbbbbb",
        "amount": 4_990,
        "currency": "EUR",
        "description": "Subscription, November",
        "method": "cus_NffrFeUfNV2Hib/pm_1MqLiJLkdIwHu7ixUEgbFdYF",
        "customer": Customer(email="client@example.com"),
    }
    return ChargeRequest(**{**fields, **overrides})


def intent(status: str = "succeeded", **extra: Any) -> dict[str, Any]:
    return {
        "id": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
        "object": "payment_intent",
        "amount": 4_990,
        "currency": "eur",
        "status": status,
        "customer": "cus_NffrFeUfNV2Hib",
        "payment_method": "pm_1MqLiJLkdIwHu7ixUEgbFdYF",
        "setup_future_usage": "off_session",
        "last_payment_error": None,
        **extra,
    }


SAVING = {**COMPLETED, "customer_creation": "always", "metadata": {"save_method": "true"}}


class TestRecurrent:
    @respx.mock
    def test_a_saving_session_sets_up_off_session_use_and_creates_a_customer(self) -> None:
        route = respx.post(f"{BASE}/v1/checkout/sessions").mock(return_value=httpx.Response(200, json=SESSION))
        adapter().create_payment(request(save_method=True))
        sent = form(route)
        assert sent["payment_intent_data[setup_future_usage]"] == "off_session"
        assert sent["customer_creation"] == "always" and sent["metadata[save_method]"] == "true"
        adapter().create_payment(request())
        assert not {"payment_intent_data[setup_future_usage]", "customer_creation"} & set(form(route))

    @respx.mock
    def test_the_completed_session_names_the_saved_method_from_its_payment_intent(self) -> None:
        route = respx.get(f"{BASE}/v1/payment_intents/pi_3N").mock(return_value=httpx.Response(200, json=intent()))
        body = event("checkout.session.completed", SAVING)
        note = adapter().verify_notification(headers_for(body), body)
        assert (note.kind, note.saved_method) == ("paid", "cus_NffrFeUfNV2Hib/pm_1MqLiJLkdIwHu7ixUEgbFdYF")
        assert route.call_count == 1
        plain = event("checkout.session.completed", COMPLETED)
        assert adapter().verify_notification(headers_for(plain), plain).saved_method is None
        assert route.call_count == 1  # a session that saves nothing costs no request

    @respx.mock
    def test_charge_form_and_a_succeeded_result(self) -> None:
        route = respx.post(f"{BASE}/v1/payment_intents").mock(return_value=httpx.Response(200, json=intent()))
        result = adapter().charge_saved(charge())
        assert (result.payment_id, result.status) == ("pi_3MtwBwLkdIwHu7ix28a3tqPa", "succeeded")
        assert form(route) == {
            "amount": "4990",
            "currency": "eur",
            "customer": "cus_NffrFeUfNV2Hib",
            "payment_method": "pm_1MqLiJLkdIwHu7ixUEgbFdYF",
            "off_session": "true",
            "confirm": "true",
            "description": "Subscription, November",
            "metadata[invoice_id]": "inv_bbbbbbbbbbbbbbbbbbbbbbbbbb",
            "metadata[tenant_id]": "stripe-shop",
            "metadata[order_id]": "inv_bbbbbbbbbbbbbbbbbbbbbbbbbb",
        }
        headers = route.calls.last.request.headers
        assert headers["idempotency-key"] == "charge-stripe-shop-inv_bbbbbbbbbbbbbbbbbbbbbbbbbb"
        assert headers["authorization"] == f"Bearer {KEY}" and headers["stripe-version"] == STRIPE_VERSION

    @respx.mock
    def test_a_card_declined_402_is_a_failed_result(self) -> None:
        declined = intent("requires_payment_method")
        error = {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
            "payment_intent": declined,
        }
        respx.post(f"{BASE}/v1/payment_intents").mock(return_value=httpx.Response(402, json={"error": error}))
        result = adapter().charge_saved(charge())
        assert (result.payment_id, result.status, result.detail) == (declined["id"], "failed", "insufficient_funds")

    @respx.mock
    @pytest.mark.parametrize(
        ("status", "state"),
        [("requires_payment_method", "failed"), ("processing", "pending"), ("requires_action", "pending")],
    )
    def test_intent_statuses(self, status: str, state: str) -> None:
        respx.post(f"{BASE}/v1/payment_intents").mock(return_value=httpx.Response(200, json=intent(status)))
        assert adapter().charge_saved(charge()).status == state

    @respx.mock
    def test_a_retried_charge_keeps_its_key_and_other_errors_are_not_declines(self) -> None:
        route = respx.post(f"{BASE}/v1/payment_intents").mock(
            side_effect=[httpx.ReadTimeout("lost"), httpx.Response(500, json={}), httpx.Response(200, json=intent())]
        )
        stripe = adapter()
        for _ in range(2):
            with pytest.raises(ProviderUnavailable):
                stripe.charge_saved(charge())
        assert stripe.charge_saved(charge()).payment_id == "pi_3MtwBwLkdIwHu7ix28a3tqPa"
        assert len({c.request.headers["idempotency-key"] for c in route.calls}) == 1
        route.side_effect = None
        route.return_value = httpx.Response(400, json={"error": {"type": "invalid_request_error", "param": "customer"}})
        with pytest.raises(ProviderRejected, match="customer"):
            stripe.charge_saved(charge())
        with pytest.raises(ProviderRejected, match="<customer>/<payment_method>"):
            stripe.charge_saved(charge(method="pm_only"))


class TestRecurrentAgainstTheFake:
    def test_save_then_charge_then_decline(self) -> None:
        fake = FakeStripe("http://stripe.fake")
        fake.stop()  # events are recorded, not sent
        fake.accounts[KEY] = (WHSEC, "http://hub.test/n")
        config = StripeSettings(
            provider="stripe",
            base_url="http://stripe.fake",
            secret_key={"value": KEY},
            webhook_secret={"value": WHSEC},
        )
        stripe = StripeCheckout(config, KEY, WHSEC, transport=httpx.WSGITransport(app=fake))
        expires = datetime.now(UTC) + timedelta(hours=1)
        created = stripe.create_payment(request(save_method=True, expires_at=expires))
        httpx.Client(transport=httpx.WSGITransport(app=fake)).post(
            f"http://stripe.fake/_control/sessions/{created.payment_id}/complete"
        )
        delivery = fake.deliveries[-1]
        note = stripe.verify_notification(headers_for(delivery.body), delivery.body)
        assert note.kind == "paid" and note.saved_method and note.saved_method.startswith("cus_")
        paid = stripe.charge_saved(charge(method=note.saved_method))
        assert paid.status == "succeeded" and stripe.charge_saved(charge(method=note.saved_method)) == paid
        fake.faults["charge_decline"] = 1
        declined = stripe.charge_saved(charge(method=note.saved_method, order_id="inv_cccccccccccccccccccccccccc"))
        assert (declined.status, declined.detail) == ("failed", "insufficient_funds") and declined.payment_id
        assert len(fake.intents) == 3  # the session's, one charge (retried), one declined charge
