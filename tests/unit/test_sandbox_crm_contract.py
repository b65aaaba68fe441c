"""The sandbox CRM adapter (paybridge.adapters.crm.sandbox): the Bitrix24-like inbound webhook and the REST calls
it makes (mocked with respx)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import respx

from paybridge.adapters.crm.base import CrmWebhook, Deal, IssueInvoiceCommand
from paybridge.adapters.crm.sandbox import ISSUE_EVENT, SandboxCrm
from paybridge.adapters.errors import CrmRejected, CrmUnavailable, InvalidSignature, MalformedNotification
from paybridge.domain.invoice import Customer

TOKEN = "sandbox-crm-token-demo"
BASE = "http://crm.test/sandbox/crm/demo"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def body_of(form: dict[str, str]) -> bytes:
    return urlencode(form).encode()


@pytest.fixture
def crm() -> SandboxCrm:
    return SandboxCrm(BASE, TOKEN, transport=httpx.MockTransport(lambda r: httpx.Response(599)))


def base_form(**overrides: str | None) -> dict[str, str]:
    form: dict[str, str | None] = {
        "event": ISSUE_EVENT,
        "data[FIELDS][ID]": "42",
        "ts": "1750000000",
        "auth[application_token]": TOKEN,
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


# ---------------------------------------------------------------------------------------------------------------
# parse_webhook
# ---------------------------------------------------------------------------------------------------------------


class TestParseWebhook:
    def test_issue_invoice_command(self, crm: SandboxCrm) -> None:
        # Given the documented webhook with the right application token
        body = body_of(base_form())
        # When it is parsed
        command = crm.parse_webhook(FORM, body, {})
        # Then it asks to issue an invoice for the deal, no number given
        assert command == CrmWebhook(commands=(IssueInvoiceCommand(deal_id="42", number=None),))

    def test_issue_invoice_command_with_number(self, crm: SandboxCrm) -> None:
        body = body_of(base_form(**{"data[FIELDS][INVOICE_NUMBER]": "INV-2025/07"}))
        assert crm.parse_webhook(FORM, body, {}) == CrmWebhook(
            commands=(IssueInvoiceCommand(deal_id="42", number="INV-2025/07"),)
        )

    def test_raw_bitrix_style_body(self, crm: SandboxCrm) -> None:
        # The exact bytes a Bitrix24-like CRM sends (brackets percent-encoded)
        body = (
            b"event=ONCRMDEALISSUEINVOICE&data%5BFIELDS%5D%5BID%5D=1007&data%5BFIELDS%5D%5BINVOICE_NUMBER%5D=A-1"
            b"&ts=1750000000&auth%5Bapplication_token%5D=sandbox-crm-token-demo"
        )
        assert crm.parse_webhook(FORM, body, {}) == CrmWebhook(
            commands=(IssueInvoiceCommand(deal_id="1007", number="A-1"),)
        )

    def test_deal_id_is_trimmed(self, crm: SandboxCrm) -> None:
        body = body_of(base_form(**{"data[FIELDS][ID]": "  42 "}))
        command = crm.parse_webhook(FORM, body, {})
        assert isinstance(command, CrmWebhook) and len(command.commands) == 1
        assert command.commands[0].deal_id == "42"

    def test_empty_invoice_number_means_none(self, crm: SandboxCrm) -> None:
        body = (
            b"event=ONCRMDEALISSUEINVOICE&data[FIELDS][ID]=42&data[FIELDS][INVOICE_NUMBER]=&auth[application_token]="
            + (TOKEN.encode())
        )
        assert crm.parse_webhook(FORM, body, {}) == CrmWebhook(
            commands=(IssueInvoiceCommand(deal_id="42", number=None),)
        )

    @pytest.mark.parametrize("token", ["wrong-token", "sandbox-crm-token-qr", TOKEN + "x", TOKEN[:-1]])
    def test_wrong_token(self, crm: SandboxCrm, token: str) -> None:
        body = body_of(base_form(**{"auth[application_token]": token}))
        with pytest.raises(InvalidSignature, match=r"auth\[application_token\] does not match"):
            crm.parse_webhook(FORM, body, {})

    def test_missing_token(self, crm: SandboxCrm) -> None:
        body = body_of(base_form(**{"auth[application_token]": None}))
        with pytest.raises(InvalidSignature):
            crm.parse_webhook(FORM, body, {})

    def test_token_is_checked_before_anything_else(self, crm: SandboxCrm) -> None:
        # A forged call is InvalidSignature even when it also lacks fields or is another event
        with pytest.raises(InvalidSignature):
            crm.parse_webhook(FORM, body_of({"event": "ONCRMDEALUPDATE", "auth[application_token]": "nope"}), {})
        with pytest.raises(InvalidSignature):
            crm.parse_webhook(FORM, body_of({"event": ISSUE_EVENT}), {})

    @pytest.mark.parametrize("event", ["ONCRMDEALUPDATE", "ONCRMDEALADD", "oncrmdealissueinvoice"])
    def test_other_event_is_ignored(self, crm: SandboxCrm, event: str) -> None:
        body = body_of(base_form(event=event))
        result = crm.parse_webhook(FORM, body, {})
        assert isinstance(result, CrmWebhook) and not result.commands and result.ignored
        assert result.ignored == (f"event {event} is not an invoice request",)

    def test_missing_event(self, crm: SandboxCrm) -> None:
        with pytest.raises(MalformedNotification, match="missing field: event"):
            crm.parse_webhook(FORM, body_of(base_form(event=None)), {})

    @pytest.mark.parametrize("deal_id", [None, "", "   "])
    def test_missing_deal_id(self, crm: SandboxCrm, deal_id: str | None) -> None:
        # Given the right token and event, but no deal id
        form = base_form(**{"data[FIELDS][ID]": None})
        if deal_id is not None:
            form["data[FIELDS][ID]"] = deal_id
        # Then the call is malformed
        with pytest.raises(MalformedNotification, match=r"missing field: data\[FIELDS\]\[ID\]"):
            crm.parse_webhook(FORM, body_of(form), {})

    @pytest.mark.parametrize(
        "body",
        [
            json.dumps({"event": ISSUE_EVENT, "auth": {"application_token": TOKEN}}).encode(),
            b"just some text",
            b"event=ONCRMDEALISSUEINVOICE&&data[FIELDS][ID]=42",
            b"\xff\xfe\xfd",
        ],
        ids=["json", "text", "empty-pair", "not-utf8"],
    )
    def test_not_form_encoded(self, crm: SandboxCrm, body: bytes) -> None:
        with pytest.raises(MalformedNotification, match="not a form-encoded body"):
            crm.parse_webhook({"Content-Type": "application/json"}, body, {})

    def test_first_value_wins_for_repeated_fields(self, crm: SandboxCrm) -> None:
        body = body_of(base_form()) + b"&data[FIELDS][ID]=43"
        assert crm.parse_webhook(FORM, body, {}) == CrmWebhook(
            commands=(IssueInvoiceCommand(deal_id="42", number=None),)
        )


# ---------------------------------------------------------------------------------------------------------------
# REST calls
# ---------------------------------------------------------------------------------------------------------------


def client() -> SandboxCrm:
    return SandboxCrm(BASE + "/", TOKEN)


def assert_authorized(request: httpx.Request) -> None:
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


class TestRest:
    @respx.mock(base_url=BASE, assert_all_called=True)
    def test_get_deal(self, respx_mock: respx.MockRouter) -> None:
        # Given the CRM has the deal
        deal_json: dict[str, Any] = {
            "id": 42,
            "title": "Website redesign",
            "amount": 150050,
            "currency": "RUB",
            "stage": "NEW",
            "contact": {"name": "Ivan", "email": "ivan@example.com", "phone": "+79001234567"},
            "invoice_number": "INV-7",
        }
        route = respx_mock.get("/api/deals/42").mock(return_value=httpx.Response(200, json=deal_json))
        # When it is fetched
        deal = client().get_deal("42")
        # Then it is mapped (the numeric id becomes a string)
        assert deal == Deal(
            deal_id="42",
            title="Website redesign",
            amount=150050,
            currency="RUB",
            stage="NEW",
            customer=Customer(name="Ivan", email="ivan@example.com", phone="+79001234567"),
            invoice_number="INV-7",
        )
        request = route.calls.last.request
        assert str(request.url) == "http://crm.test/sandbox/crm/demo/api/deals/42"
        assert_authorized(request)

    @respx.mock(base_url=BASE)
    def test_get_deal_minimal(self, respx_mock: respx.MockRouter) -> None:
        respx_mock.get("/api/deals/7").mock(return_value=httpx.Response(200, json={"id": "7", "contact": None}))
        deal = client().get_deal("7")
        assert deal == Deal(deal_id="7")
        assert deal.customer == Customer()
        assert deal.amount is None

    @respx.mock(base_url=BASE)
    def test_get_unknown_deal_is_rejected(self, respx_mock: respx.MockRouter) -> None:
        respx_mock.get("/api/deals/404").mock(return_value=httpx.Response(404, json={"error": "no such deal"}))
        with pytest.raises(CrmRejected, match=r"GET /api/deals/404: HTTP 404: .*no such deal"):
            client().get_deal("404")

    @pytest.mark.parametrize("status", [429, 500, 503])
    @respx.mock(base_url=BASE)
    def test_get_deal_when_the_crm_is_down(self, respx_mock: respx.MockRouter, status: int) -> None:
        respx_mock.get("/api/deals/42").mock(return_value=httpx.Response(status))
        with pytest.raises(CrmUnavailable, match=f"HTTP {status}"):
            client().get_deal("42")

    @respx.mock(base_url=BASE)
    def test_get_deal_timeout(self, respx_mock: respx.MockRouter) -> None:
        respx_mock.get("/api/deals/42").mock(side_effect=httpx.ConnectTimeout)
        with pytest.raises(CrmUnavailable, match="ConnectTimeout"):
            client().get_deal("42")

    @pytest.mark.parametrize(
        ("kwargs", "sent"),
        [
            ({"stage": "PAID"}, {"stage": "PAID"}),
            ({"payment_url": "https://psp.test/pay/1"}, {"payment_url": "https://psp.test/pay/1"}),
            (
                {"stage": "AWAITING_PAYMENT", "payment_url": "https://psp.test/pay/1"},
                {"stage": "AWAITING_PAYMENT", "payment_url": "https://psp.test/pay/1"},
            ),
        ],
    )
    @respx.mock(base_url=BASE, assert_all_called=True)
    def test_update_deal(self, respx_mock: respx.MockRouter, kwargs: dict[str, str], sent: dict[str, str]) -> None:
        route = respx_mock.patch("/api/deals/42").mock(return_value=httpx.Response(200, json={}))
        client().update_deal("42", **kwargs)
        assert route.call_count == 1
        request = route.calls.last.request
        assert request.method == "PATCH"
        assert str(request.url) == "http://crm.test/sandbox/crm/demo/api/deals/42"
        assert json.loads(request.content) == sent
        assert_authorized(request)

    @respx.mock(base_url=BASE, assert_all_called=False)
    def test_update_deal_with_nothing_sends_nothing(self, respx_mock: respx.MockRouter) -> None:
        route = respx_mock.patch("/api/deals/42").mock(return_value=httpx.Response(200))
        client().update_deal("42")
        assert route.call_count == 0
        assert len(respx_mock.calls) == 0

    @respx.mock(base_url=BASE)
    def test_update_deal_rejected(self, respx_mock: respx.MockRouter) -> None:
        respx_mock.patch("/api/deals/42").mock(return_value=httpx.Response(422, text="unknown stage"))
        with pytest.raises(CrmRejected, match="PATCH /api/deals/42: HTTP 422: unknown stage"):
            client().update_deal("42", stage="WON")

    @respx.mock(base_url=BASE, assert_all_called=True)
    def test_add_timeline(self, respx_mock: respx.MockRouter) -> None:
        route = respx_mock.post("/api/deals/42/timeline").mock(return_value=httpx.Response(201, json={}))
        client().add_timeline("42", "PayBridge: счёт № 7 оплачен")
        request = route.calls.last.request
        assert str(request.url) == "http://crm.test/sandbox/crm/demo/api/deals/42/timeline"
        assert json.loads(request.content) == {"text": "PayBridge: счёт № 7 оплачен"}
        assert_authorized(request)

    @respx.mock(base_url=BASE, assert_all_called=True)
    def test_notify_manager(self, respx_mock: respx.MockRouter) -> None:
        route = respx_mock.post("/api/deals/42/notifications").mock(return_value=httpx.Response(201, json={}))
        client().notify_manager("42", "check the invoice")
        request = route.calls.last.request
        assert request.method == "POST"
        assert str(request.url) == "http://crm.test/sandbox/crm/demo/api/deals/42/notifications"
        assert json.loads(request.content) == {"text": "check the invoice"}
        assert_authorized(request)

    @respx.mock(base_url=BASE, assert_all_called=True)
    def test_send_to_customer(self, respx_mock: respx.MockRouter) -> None:
        route = respx_mock.post("/api/messages").mock(return_value=httpx.Response(201, json={}))
        customer = Customer(name="Ivan", email="ivan@example.com", phone="+79001234567")
        client().send_to_customer("42", customer, "Pay here: https://psp.test/pay/1")
        request = route.calls.last.request
        assert str(request.url) == "http://crm.test/sandbox/crm/demo/api/messages"
        assert json.loads(request.content) == {
            "deal_id": "42",
            "to_email": "ivan@example.com",
            "to_phone": "+79001234567",
            "text": "Pay here: https://psp.test/pay/1",
        }
        assert_authorized(request)

    @respx.mock(base_url=BASE)
    def test_send_to_customer_with_email_only(self, respx_mock: respx.MockRouter) -> None:
        route = respx_mock.post("/api/messages").mock(return_value=httpx.Response(201, json={}))
        client().send_to_customer("42", Customer(email="ivan@example.com"), "hi")
        sent = json.loads(route.calls.last.request.content)
        assert sent["to_email"] == "ivan@example.com"
        assert sent["to_phone"] is None

    @pytest.mark.parametrize(
        ("call", "path"),
        [
            (lambda c: c.add_timeline("42", "t"), "/api/deals/42/timeline"),
            (lambda c: c.notify_manager("42", "t"), "/api/deals/42/notifications"),
            (lambda c: c.send_to_customer("42", Customer(), "t"), "/api/messages"),
        ],
        ids=["timeline", "notifications", "messages"],
    )
    @respx.mock(base_url=BASE)
    def test_post_errors_are_mapped(self, respx_mock: respx.MockRouter, call: Any, path: str) -> None:
        route = respx_mock.post(path)
        route.mock(return_value=httpx.Response(503))
        with pytest.raises(CrmUnavailable):
            call(client())
        route.mock(return_value=httpx.Response(400, text="bad"))
        with pytest.raises(CrmRejected):
            call(client())
        route.mock(side_effect=httpx.ReadTimeout)
        with pytest.raises(CrmUnavailable):
            call(client())
