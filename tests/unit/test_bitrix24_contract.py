"""Bitrix24 REST adapter against Bitrix24's documented wire format (respx stands in for the portal and for
oauth.bitrix.info): the query strings of batch commands, reads, batched writes and their per-update outcomes, OAuth
access and refresh, and the form-encoded events and robot calls."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
import respx

from paybridge.adapters.crm.base import (
    CrmWebhook,
    Deal,
    DealMoved,
    DealOp,
    DealUpdate,
    IssueInvoiceCommand,
    RateLimit,
)
from paybridge.adapters.crm.bitrix24 import Bitrix24, Bitrix24Settings, oauth_refresher, query_string
from paybridge.adapters.crm.oauth import MemoryTokenStore, OAuthSession, TokenPair
from paybridge.adapters.errors import CrmRejected, CrmUnavailable, InvalidSignature, MalformedNotification
from paybridge.domain.invoice import Customer
from tests.conftest import CountingThrottle

PORTAL = "acme.bitrix24.ru"
HOOK = f"https://{PORTAL}/rest/1/abcdef123456/"
OAUTH_BASE = f"https://{PORTAL}/rest/"
TOKEN_URL = "https://oauth.bitrix.info/oauth/token/"
APP_TOKEN = "app-token-51a2d3c4e5f6"
MEMBER_ID = "a223c6b3710f85df22e9377d6c4f7553"
CLIENT_ID, CLIENT_SECRET = "local.6672f0c3e1b2a4.12345678", "client-secret-xyz"
TRIGGER_STAGE = "C1:PREPAYMENT_INVOICE"
ROBOT_CODE = "paybridge_issue_invoice"
LINK_FIELD, NUMBER_FIELD = "UF_CRM_PAYBRIDGE_LINK", "UF_CRM_INVOICE_NO"
NOW = 1_750_000_000
URL = "https://pay.test/i/inv_101?a=1&b=2"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def settings(**overrides: Any) -> Bitrix24Settings:
    fields: dict[str, Any] = {
        "kind": "bitrix24",
        "portal": PORTAL,
        "auth": {"kind": "webhook", "url": {"value": HOOK}},
        "application_token": {"value": APP_TOKEN},
        "trigger": {"kind": "stage", "stage_id": TRIGGER_STAGE},
        "link_field": LINK_FIELD,
        "invoice_number_field": NUMBER_FIELD,
    }
    return Bitrix24Settings.model_validate({**fields, **overrides})


def oauth_settings(**overrides: Any) -> Bitrix24Settings:
    auth = {"kind": "oauth", "client_id": CLIENT_ID, "client_secret": {"value": CLIENT_SECRET}, "token_url": TOKEN_URL}
    return settings(auth=auth, **overrides)


def adapter(throttle: Callable[[str, RateLimit], None] | None = None, **kwargs: Any) -> Bitrix24:
    config = kwargs.pop("settings", None) or settings()
    return Bitrix24(config, APP_TOKEN, kwargs.pop("rest_base", HOOK), throttle=throttle or CountingThrottle(), **kwargs)


@pytest.fixture
def portal() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


# -- Bitrix24's answers ---------------------------------------------------------------------------------------------

TIME = {
    "start": 1750000000.123,
    "finish": 1750000000.187,
    "duration": 0.064,
    "processing": 0.031,
    "date_start": "2025-06-15T18:06:40+03:00",
    "date_finish": "2025-06-15T18:06:40+03:00",
    "operating_reset_at": 1750000600,
    "operating": 0,
}


def batch_answer(results: dict[str, Any], errors: dict[str, Any] | None = None) -> httpx.Response:
    """`batch` with halt=0. Bitrix24 is PHP: an empty map is serialised as `[]`."""
    return httpx.Response(
        200,
        json={
            "result": {
                "result": results or [],
                "result_error": errors or [],
                "result_total": [],
                "result_next": [],
                "result_time": {key: TIME for key in results},
            },
            "time": TIME,
        },
    )


def error_answer(status: int, error: str, description: str) -> httpx.Response:
    return httpx.Response(status, json={"error": error, "error_description": description})


QUERY_LIMIT = error_answer(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
ERROR_CORE = error_answer(400, "ERROR_CORE", "Unknown error: cmd is not an array")
EXPIRED = error_answer(401, "expired_token", "The access token provided has expired.")
NOT_FOUND = {"error": "", "error_description": "Not found"}


def deal_json(deal_id: str = "42", **overrides: Any) -> dict[str, Any]:
    deal: dict[str, Any] = {
        "ID": deal_id,
        "TITLE": "Поставка чая, март",
        "TYPE_ID": "SALE",
        "CATEGORY_ID": "1",
        "STAGE_ID": TRIGGER_STAGE,
        "STAGE_SEMANTIC_ID": "P",
        "IS_NEW": "N",
        "PROBABILITY": None,
        "CURRENCY_ID": "RUB",
        "OPPORTUNITY": "1500.50",
        "IS_MANUAL_OPPORTUNITY": "Y",
        "TAX_VALUE": "0.00",
        "LEAD_ID": None,
        "COMPANY_ID": "0",
        "CONTACT_ID": "7",
        "QUOTE_ID": None,
        "BEGINDATE": "2025-06-15T03:00:00+03:00",
        "CLOSEDATE": "2025-06-22T03:00:00+03:00",
        "ASSIGNED_BY_ID": "15",
        "CREATED_BY_ID": "1",
        "MODIFY_BY_ID": "1",
        "DATE_CREATE": "2025-06-15T12:00:00+03:00",
        "DATE_MODIFY": "2025-06-15T18:06:39+03:00",
        "OPENED": "Y",
        "CLOSED": "N",
        "COMMENTS": None,
        "SOURCE_ID": "WEB",
        "ORIGINATOR_ID": None,
        "ORIGIN_ID": None,
        LINK_FIELD: None,
        NUMBER_FIELD: "СЧ-2025/17",
        "UF_CRM_1718000000": "сайт",
    }
    deal.update(overrides)
    return deal


def contact_json(**overrides: Any) -> dict[str, Any]:
    contact: dict[str, Any] = {
        "ID": "7",
        "HONORIFIC": None,
        "NAME": "Иван",
        "SECOND_NAME": None,
        "LAST_NAME": "Петров",
        "TYPE_ID": "CLIENT",
        "SOURCE_ID": "WEB",
        "ASSIGNED_BY_ID": "15",
        "HAS_PHONE": "Y",
        "HAS_EMAIL": "Y",
        "PHONE": [
            {"ID": "11", "VALUE_TYPE": "WORK", "VALUE": "8 (912) 345-67-89", "TYPE_ID": "PHONE"},
            {"ID": "12", "VALUE_TYPE": "MOBILE", "VALUE": "+79990000000", "TYPE_ID": "PHONE"},
        ],
        "EMAIL": [{"ID": "5", "VALUE_TYPE": "WORK", "VALUE": "ivan@example.ru", "TYPE_ID": "EMAIL"}],
    }
    contact.update(overrides)
    return contact


def sent(route: respx.Route, index: int = -1) -> dict[str, Any]:
    return json.loads(route.calls[index].request.content)


def command(text: str) -> tuple[str, dict[str, str]]:
    """`method?query` → (method, decoded params); the query must be a well-formed form encoding."""
    method, _, query = text.partition("?")
    return method, dict(parse_qsl(query, keep_blank_values=True, strict_parsing=True))


_REF = re.compile(r"^\$result\[([^\]]+)\]\[([^\]]+)\]$")


class FakePortal:
    """Bitrix24's `batch` under respx: runs each command in order, resolves `$result[key][FIELD]` against the earlier
    commands of the same request, and refuses the (method, deal id) pairs it is told to."""

    def __init__(self, refuse: dict[tuple[str, str], dict[str, str]] | None = None) -> None:
        self.batches: list[dict[str, str]] = []
        self.refuse = refuse or {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert body["halt"] == 0 and set(body) <= {"halt", "cmd", "auth"}
        assert len(body["cmd"]) <= 50
        self.batches.append(body["cmd"])
        results: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for key, text in body["cmd"].items():
            method, params = command(text)
            for name, value in params.items():
                ref = _REF.match(value)
                if ref:
                    earlier = results.get(ref.group(1))
                    params[name] = str(earlier.get(ref.group(2), "")) if isinstance(earlier, dict) else ""
            deal_id = params.get("id") or params.get("fields[ENTITY_ID]") or ""
            if (method, deal_id) in self.refuse:
                errors[key] = self.refuse[(method, deal_id)]
                continue
            match method:
                case "crm.deal.update" | "crm.contact.update" | "crm.company.update":
                    results[key] = True
                case "crm.timeline.comment.add":
                    results[key] = 9000 + len(results)
                case "crm.deal.get":
                    results[key] = deal_json(deal_id)
                case "im.notify.system.add":
                    if not params.get("USER_ID"):
                        errors[key] = {"error": "USER_ID_EMPTY", "error_description": "User not specified"}
                        continue
                    results[key] = 1200 + len(results)
                case _:
                    errors[key] = {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}
        return batch_answer(results, errors)

    def keys_per_request(self) -> list[list[str]]:
        return [list(cmd) for cmd in self.batches]

    def calls(self, request: int = 0) -> list[tuple[str, dict[str, str]]]:
        return [command(text) for text in self.batches[request].values()]


def stage(name: str, url: str | None = None) -> DealOp:
    return DealOp(kind="set_stage", stage=name, payment_url=url)


def comment(text: str) -> DealOp:
    return DealOp(kind="comment", text=text)


def notify(text: str) -> DealOp:
    return DealOp(kind="notify_manager", text=text)


def to_customer(text: str = "Оплатите счёт") -> DealOp:
    return DealOp(kind="send_to_customer", customer=Customer(phone="+79123456789"), text=text)


def update(deal: str, *ops: DealOp, version: int = 1) -> DealUpdate:
    return DealUpdate(tenant_id="acme", deal_id=deal, invoice_id=f"inv_{deal}", version=version, ops=ops)


# ---------------------------------------------------------------------------------------------------------------
# query_string
# ---------------------------------------------------------------------------------------------------------------


class TestQueryString:
    def test_nested_fields_are_php_style(self) -> None:
        params = {"id": 42, "fields": {"STAGE_ID": "WON", LINK_FIELD: "x"}, "params": {"REGISTER_SONET_EVENT": "N"}}
        assert query_string(params) == (
            "id=42&fields[STAGE_ID]=WON&fields[UF_CRM_PAYBRIDGE_LINK]=x&params[REGISTER_SONET_EVENT]=N"
        )

    def test_deeper_nesting(self) -> None:
        assert query_string({"filter": {"ID": {"0": 1, "1": 2}}}) == "filter[ID][0]=1&filter[ID][1]=2"

    @pytest.mark.parametrize(
        ("value", "encoded"),
        [
            ("C1:WON", "C1%3AWON"),
            ("Да", "%D0%94%D0%B0"),
            ("a b", "a%20b"),
            ("a&b=c", "a%26b%3Dc"),
            ("https://pay.test/i?a=1&b=2", "https%3A%2F%2Fpay.test%2Fi%3Fa%3D1%26b%3D2"),
            ("100%+#", "100%25%2B%23"),
        ],
    )
    def test_values_are_percent_encoded(self, value: str, encoded: str) -> None:
        assert query_string({"fields": {"COMMENT": value}}) == f"fields[COMMENT]={encoded}"

    def test_values_survive_a_round_trip(self) -> None:
        comment_text = "Счёт № 7 на 1 500,50 ₽ оплачен & закрыт = готово; ссылка: https://pay.test/i?a=1&b=2 #x +y"
        text = query_string({"fields": {"ENTITY_ID": "42", "ENTITY_TYPE": "deal", "COMMENT": comment_text}})
        assert dict(parse_qsl(text, strict_parsing=True)) == {
            "fields[ENTITY_ID]": "42",
            "fields[ENTITY_TYPE]": "deal",
            "fields[COMMENT]": comment_text,
        }
        assert text.count("&") == 2  # the & of the values never split a pair

    def test_result_references_are_left_raw(self) -> None:
        text = query_string({"USER_ID": "$result[u0o1d][ASSIGNED_BY_ID]", "MESSAGE": "Частичная оплата"})
        assert text.startswith("USER_ID=$result[u0o1d][ASSIGNED_BY_ID]&MESSAGE=%D0%A7")
        assert query_string({"id": "$result[deal][CONTACT_ID]"}) == "id=$result[deal][CONTACT_ID]"

    def test_a_dollar_elsewhere_is_encoded(self) -> None:
        assert query_string({"MESSAGE": "cost $5 [x]"}) == "MESSAGE=cost%20%245%20%5Bx%5D"


# ---------------------------------------------------------------------------------------------------------------
# get_deal
# ---------------------------------------------------------------------------------------------------------------


class TestGetDeal:
    def test_deal_and_contact_in_one_batch(self, portal: respx.MockRouter) -> None:
        route = portal.post(f"{HOOK}batch.json").mock(
            return_value=batch_answer({"d0": deal_json("42"), "c0": contact_json()})
        )
        deal = adapter().get_deal("42")
        assert deal == Deal(
            deal_id="42",
            title="Поставка чая, март",
            amount=150050,
            currency="RUB",
            stage=TRIGGER_STAGE,
            customer=Customer(name="Иван Петров", email="ivan@example.ru", phone="+79123456789"),
            invoice_number="СЧ-2025/17",
            manager_id="15",
            contact_id="7",  # COMPANY_ID "0": no company
            fields={NUMBER_FIELD: "СЧ-2025/17", "UF_CRM_1718000000": "сайт"},  # the user fields with a value
        )
        assert route.call_count == 1 and len(portal.calls) == 1
        request = route.calls.last.request
        assert request.method == "POST" and str(request.url) == f"{HOOK}batch.json"
        assert request.headers["content-type"] == "application/json"
        assert sent(route) == {
            "halt": 0,
            "cmd": {"d0": "crm.deal.get?id=42", "c0": "crm.contact.get?id=$result[d0][CONTACT_ID]"},
        }  # an incoming webhook carries its secret in the URL: no auth in the body

    @pytest.mark.parametrize(
        ("opportunity", "amount"), [("1500.00", 150000), ("1500.5", 150050), ("0.00", 0), ("", 0), (None, 0)]
    )
    def test_amounts_in_minor_units(self, portal: respx.MockRouter, opportunity: Any, amount: int) -> None:
        portal.post(f"{HOOK}batch.json").mock(
            return_value=batch_answer({"d0": deal_json(OPPORTUNITY=opportunity), "c0": contact_json()})
        )
        assert adapter().get_deal("42").amount == amount

    def test_an_unreadable_amount_is_none(self, portal: respx.MockRouter) -> None:
        portal.post(f"{HOOK}batch.json").mock(
            return_value=batch_answer({"d0": deal_json(OPPORTUNITY="1500.505"), "c0": contact_json()})
        )
        assert adapter().get_deal("42").amount is None

    @pytest.mark.parametrize(
        ("phone", "expected"),
        [
            ("8 (912) 345-67-89", "+79123456789"),
            ("+7 912 345-67-89", "+79123456789"),
            ("79123456789", "+79123456789"),
            ("+49 30 1234567", "+49301234567"),
            ("12-34", None),
            ("", None),
        ],
    )
    def test_contact_phone_is_e164(self, portal: respx.MockRouter, phone: str, expected: str | None) -> None:
        contact = contact_json(PHONE=[{"ID": "11", "VALUE_TYPE": "WORK", "VALUE": phone, "TYPE_ID": "PHONE"}])
        portal.post(f"{HOOK}batch.json").mock(return_value=batch_answer({"d0": deal_json(), "c0": contact}))
        assert adapter().get_deal("42").customer.phone == expected

    def test_a_malformed_email_keeps_the_rest(self, portal: respx.MockRouter) -> None:
        contact = contact_json(EMAIL=[{"ID": "5", "VALUE_TYPE": "WORK", "VALUE": "ivan at mail", "TYPE_ID": "EMAIL"}])
        portal.post(f"{HOOK}batch.json").mock(return_value=batch_answer({"d0": deal_json(), "c0": contact}))
        assert adapter().get_deal("42").customer == Customer(name="Иван Петров", phone="+79123456789")

    def test_contact_without_email_or_phone(self, portal: respx.MockRouter) -> None:
        contact = contact_json(LAST_NAME=None, HAS_PHONE="N", HAS_EMAIL="N")
        del contact["PHONE"], contact["EMAIL"]
        portal.post(f"{HOOK}batch.json").mock(return_value=batch_answer({"d0": deal_json(), "c0": contact}))
        assert adapter().get_deal("42").customer == Customer(name="Иван")

    def test_invoice_number_only_from_the_configured_field(self, portal: respx.MockRouter) -> None:
        portal.post(f"{HOOK}batch.json").mock(return_value=batch_answer({"d0": deal_json(), "c0": contact_json()}))
        assert adapter(settings=settings(invoice_number_field=None)).get_deal("42").invoice_number is None
        assert adapter(settings=settings(invoice_number_field="TITLE")).get_deal("42").invoice_number == (
            "Поставка чая, март"
        )
        assert adapter(settings=settings(invoice_number_field="UF_CRM_OTHER")).get_deal("42").invoice_number is None

    def test_an_empty_number_field_means_none(self, portal: respx.MockRouter) -> None:
        portal.post(f"{HOOK}batch.json").mock(
            return_value=batch_answer({"d0": deal_json(**{NUMBER_FIELD: "  "}), "c0": contact_json()})
        )
        assert adapter().get_deal("42").invoice_number is None

    def test_a_deal_without_contact_still_reads(self, portal: respx.MockRouter) -> None:
        answer = batch_answer(
            {"d0": deal_json(CONTACT_ID=None, ASSIGNED_BY_ID=None)},
            {"c0": {"error": "", "error_description": "ID is not defined or invalid."}},
        )
        portal.post(f"{HOOK}batch.json").mock(return_value=answer)
        deal = adapter().get_deal("42")
        assert deal.deal_id == "42" and deal.amount == 150050
        assert deal.customer == Customer() and deal.manager_id is None

    def test_an_unknown_deal_is_rejected(self, portal: respx.MockRouter) -> None:
        answer = batch_answer(
            {}, {"d0": NOT_FOUND, "contact": {"error": "", "error_description": "ID is not defined or invalid."}}
        )
        portal.post(f"{HOOK}batch.json").mock(return_value=answer)
        with pytest.raises(CrmRejected, match=r"deal 404: Not found"):
            adapter().get_deal("404")

    def test_many_deals_are_read_50_per_request_without_contacts_and_missing_ones_left_out(
        self, portal: respx.MockRouter
    ) -> None:
        fake = FakePortal(refuse={("crm.deal.get", "7"): NOT_FOUND})
        route = portal.post(f"{HOOK}batch.json").mock(side_effect=fake)
        deals = adapter().get_deals([str(n) for n in range(1, 61)])
        assert route.call_count == 2 and [len(k) for k in fake.keys_per_request()] == [50, 10]
        assert {method for method, _ in fake.calls(0)} == {"crm.deal.get"}
        assert sorted(deals, key=int) == [str(n) for n in range(1, 61) if n != 7]
        assert deals["12"].deal_id == "12"

    def test_the_deal_id_is_encoded_in_the_command(self, portal: respx.MockRouter) -> None:
        route = portal.post(f"{HOOK}batch.json").mock(return_value=batch_answer({}, {"d0": NOT_FOUND}))
        with pytest.raises(CrmRejected):
            adapter().get_deal("42&id=43")
        assert sent(route)["cmd"]["d0"] == "crm.deal.get?id=42%26id%3D43"

    @pytest.mark.parametrize(
        "answer",
        [
            QUERY_LIMIT,
            error_answer(500, "INTERNAL_SERVER_ERROR", "Internal server error"),
            error_answer(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit."),
            httpx.Response(502, text="<html>Bad Gateway</html>"),
            httpx.ReadTimeout("slow"),
            httpx.ConnectError("refused"),
        ],
        ids=["503-limit", "500", "429-operating", "502-html", "timeout", "connect"],
    )
    def test_transient_failures(self, portal: respx.MockRouter, answer: Any) -> None:
        portal.post(f"{HOOK}batch.json").mock(side_effect=[answer])
        with pytest.raises(CrmUnavailable):
            adapter().get_deal("42")

    @pytest.mark.parametrize(
        "answer",
        [
            ERROR_CORE,
            error_answer(401, "NO_AUTH_FOUND", "Wrong authorization data"),
            error_answer(403, "insufficient_scope", "The request requires higher privileges than provided."),
            httpx.Response(200, json={"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}),
        ],
        ids=["400-core", "401-webhook", "403-scope", "200-error"],
    )
    def test_refusals(self, portal: respx.MockRouter, answer: httpx.Response) -> None:
        route = portal.post(f"{HOOK}batch.json").mock(return_value=answer)
        error = answer.json()["error"]
        with pytest.raises(CrmRejected, match=error):
            adapter().get_deal("42")
        assert route.call_count == 1  # a webhook has nothing to refresh


# ---------------------------------------------------------------------------------------------------------------
# apply
# ---------------------------------------------------------------------------------------------------------------


def mount(router: respx.MockRouter, fake: FakePortal, base: str = HOOK) -> respx.Route:
    return router.post(f"{base}batch.json").mock(side_effect=fake)


class TestApply:
    def test_distinct_deals_go_in_one_batch(self, portal: respx.MockRouter) -> None:
        fake = FakePortal()
        route = mount(portal, fake)
        updates = [
            update("42", stage("C1:EXECUTING", URL), comment("Счёт № 7 выставлен: 1 500,50 ₽ & ссылка")),
            update("43", comment("Оплачено частично"), notify("Частичная оплата по счёту № 8")),
            update("44", to_customer()),
            update("45", stage("C1:WON")),
        ]
        outcomes = adapter().apply(updates)
        assert [o.ok for o in outcomes] == [True, True, True, True]
        assert route.call_count == 1
        cmd = fake.batches[0]
        calls = fake.calls(0)
        assert [method for method, _ in calls] == [
            "crm.deal.update",
            "crm.timeline.comment.add",
            "crm.timeline.comment.add",
            "crm.deal.get",
            "im.notify.system.add",
            "crm.deal.update",
        ]
        assert calls[0][1] == {
            "id": "42",
            "fields[STAGE_ID]": "C1:EXECUTING",
            f"fields[{LINK_FIELD}]": URL,
            "params[REGISTER_SONET_EVENT]": "N",
        }
        assert calls[1][1] == {
            "fields[ENTITY_ID]": "42",
            "fields[ENTITY_TYPE]": "deal",
            "fields[COMMENT]": "Счёт № 7 выставлен: 1 500,50 ₽ & ссылка",
        }
        assert calls[2][1]["fields[ENTITY_ID]"] == "43" and calls[2][1]["fields[ENTITY_TYPE]"] == "deal"
        assert calls[3][1] == {"id": "43"}
        # the manager is the deal's responsible user, read by the command just before, in the same request
        read_key, notify_key = list(cmd)[3], list(cmd)[4]
        assert cmd[notify_key].startswith(f"im.notify.system.add?USER_ID=$result[{read_key}][ASSIGNED_BY_ID]&")
        assert read_key == f"{notify_key}d"
        assert calls[4][1]["MESSAGE"] == "Частичная оплата по счёту № 8"
        assert calls[5][1] == {"id": "45", "fields[STAGE_ID]": "C1:WON", "params[REGISTER_SONET_EVENT]": "N"}
        assert len(set(cmd)) == 6
        assert not any("44" in text for text in cmd.values())  # send_to_customer: the portal's robots message

    def test_send_to_customer_alone_sends_nothing(self, portal: respx.MockRouter) -> None:
        route = mount(portal, FakePortal())
        outcomes = adapter().apply([update("44", to_customer()), update("45", to_customer())])
        assert [o.ok for o in outcomes] == [True, True]
        assert not route.called and not portal.calls

    def test_no_link_field_configured(self, portal: respx.MockRouter) -> None:
        fake = FakePortal()
        mount(portal, fake)
        adapter(settings=settings(link_field=None)).apply([update("42", stage("C1:EXECUTING", URL))])
        assert fake.calls(0) == [
            (
                "crm.deal.update",
                {"id": "42", "fields[STAGE_ID]": "C1:EXECUTING", "params[REGISTER_SONET_EVENT]": "N"},
            )
        ]

    def test_25_updates_of_two_calls_fit_one_request(self, portal: respx.MockRouter) -> None:
        fake = FakePortal()
        route = mount(portal, fake)
        updates = [update(str(100 + n), stage("C1:WON"), comment(f"#{n}")) for n in range(25)]
        assert all(o.ok for o in adapter().apply(updates))
        assert route.call_count == 1 and len(fake.batches[0]) == 50

    def test_30_updates_of_two_calls_take_two_requests(self, portal: respx.MockRouter) -> None:
        fake = FakePortal()
        route = mount(portal, fake)
        throttle = CountingThrottle()
        updates = [update(str(100 + n), stage("C1:WON"), comment(f"#{n}")) for n in range(30)]
        outcomes = adapter(throttle).apply(updates)
        assert all(o.ok for o in outcomes) and len(outcomes) == 30
        assert route.call_count == 2
        assert [len(cmd) for cmd in fake.batches] == [50, 10]
        deals = [[command(text)[1].get("id") or command(text)[1]["fields[ENTITY_ID]"] for text in cmd.values()]
                 for cmd in fake.batches]  # fmt: skip
        assert deals[0] == [str(100 + n) for n in range(25) for _ in (0, 1)]
        assert deals[1] == [str(100 + n) for n in range(25, 30) for _ in (0, 1)]
        assert throttle.calls == [(PORTAL, RateLimit(2, 50))] * 2

    def test_an_update_is_never_split_across_requests(self, portal: respx.MockRouter) -> None:
        # 3 calls per update (comment, deal read, notify): 16 updates fill 48, the 17th goes in the next request
        fake = FakePortal()
        mount(portal, fake)
        updates = [update(str(100 + n), comment("x"), notify("y")) for n in range(17)]
        outcomes = adapter().apply(updates)
        assert all(o.ok for o in outcomes)  # every USER_ID reference resolved within its request
        assert [len(cmd) for cmd in fake.batches] == [48, 3]
        assert [method for method, _ in fake.calls(1)] == [
            "crm.timeline.comment.add",
            "crm.deal.get",
            "im.notify.system.add",
        ]

    def test_two_updates_of_one_deal_go_in_two_rounds_in_order(self, portal: respx.MockRouter) -> None:
        fake = FakePortal()
        route = mount(portal, fake)
        updates = [
            update("42", stage("C1:EXECUTING", URL), version=1),
            update("43", comment("other deal")),
            update("42", stage("C1:WON"), comment("Оплачено"), version=2),
        ]
        outcomes = adapter().apply(updates)
        assert [o.ok for o in outcomes] == [True, True, True]
        assert route.call_count == 2
        first, second = fake.calls(0), fake.calls(1)
        assert [(m, p.get("id") or p.get("fields[ENTITY_ID]")) for m, p in first] == [
            ("crm.deal.update", "42"),
            ("crm.timeline.comment.add", "43"),
        ]
        assert first[0][1]["fields[STAGE_ID]"] == "C1:EXECUTING"
        assert [(m, p.get("id") or p.get("fields[ENTITY_ID]")) for m, p in second] == [
            ("crm.deal.update", "42"),
            ("crm.timeline.comment.add", "42"),
        ]
        assert second[0][1]["fields[STAGE_ID]"] == "C1:WON"

    def test_three_updates_of_one_deal_take_three_rounds(self, portal: respx.MockRouter) -> None:
        fake = FakePortal()
        mount(portal, fake)
        updates = [update("42", stage(s)) for s in ("C1:EXECUTING", "C1:FINAL_INVOICE", "C1:WON")]
        assert all(o.ok for o in adapter().apply(updates))
        assert [fake.calls(n)[0][1]["fields[STAGE_ID]"] for n in range(3)] == [
            "C1:EXECUTING",
            "C1:FINAL_INVOICE",
            "C1:WON",
        ]

    @pytest.mark.parametrize(
        "answer",
        [
            QUERY_LIMIT,
            error_answer(500, "INTERNAL_SERVER_ERROR", "Internal server error"),
            httpx.Response(200, json={"error": "OVERLOAD_LIMIT", "error_description": "REST API is blocked"}),
            httpx.ReadTimeout("slow"),
        ],
        ids=["503-limit", "500", "overload", "timeout"],
    )
    def test_a_failed_request_retries_every_update(self, portal: respx.MockRouter, answer: Any) -> None:
        route = portal.post(f"{HOOK}batch.json").mock(side_effect=[answer])
        updates = [update("42", stage("C1:WON")), update("43", comment("x")), update("42", comment("y"))]
        outcomes = adapter().apply(updates)
        assert len(outcomes) == 3
        assert all(not o.ok and o.transient for o in outcomes)
        assert route.call_count == 1  # the later round is not tried
        if answer is QUERY_LIMIT:
            assert "QUERY_LIMIT_EXCEEDED" in outcomes[0].detail

    def test_a_limit_on_the_second_round_keeps_the_first_done(self, portal: respx.MockRouter) -> None:
        fake = FakePortal()
        answers = iter([None, QUERY_LIMIT])

        def respond(request: httpx.Request) -> httpx.Response:
            answer = next(answers)
            return answer if answer is not None else fake(request)

        route = portal.post(f"{HOOK}batch.json").mock(side_effect=respond)
        updates = [
            update("42", stage("C1:EXECUTING", URL)),
            update("43", comment("x")),
            update("42", stage("C1:WON")),
            update("44", to_customer()),
            update("42", comment("third")),
        ]
        outcomes = adapter().apply(updates)
        assert route.call_count == 2
        assert [o.ok for o in outcomes] == [True, True, False, True, False]
        assert outcomes[2].transient and outcomes[4].transient
        assert "QUERY_LIMIT_EXCEEDED" in outcomes[2].detail and "QUERY_LIMIT_EXCEEDED" in outcomes[4].detail

    def test_a_limit_on_the_second_request_of_a_round(self, portal: respx.MockRouter) -> None:
        fake = FakePortal()
        answers = iter([None, QUERY_LIMIT])

        def respond(request: httpx.Request) -> httpx.Response:
            answer = next(answers)
            return answer if answer is not None else fake(request)

        portal.post(f"{HOOK}batch.json").mock(side_effect=respond)
        updates = [update(str(100 + n), stage("C1:WON"), comment(f"#{n}")) for n in range(30)]
        updates.append(update("100", comment("second round")))
        outcomes = adapter().apply(updates)
        assert all(o.ok for o in outcomes[:25])
        assert all(not o.ok and o.transient for o in outcomes[25:])

    def test_a_refused_command_parks_its_update_only(self, portal: respx.MockRouter) -> None:
        fake = FakePortal(refuse={("crm.deal.update", "43"): NOT_FOUND})
        route = mount(portal, fake)
        updates = [
            update("42", stage("C1:WON"), comment("a")),
            update("43", stage("C1:WON"), comment("b")),
            update("44", comment("c")),
            update("43", comment("later update of the refused deal")),
        ]
        outcomes = adapter().apply(updates)
        assert [o.ok for o in outcomes] == [True, False, True, True]
        assert outcomes[1].transient is False
        assert "Not found" in outcomes[1].detail
        assert route.call_count == 2  # the refused update does not hold up the deal's next one

    def test_a_refusal_without_description_names_the_code(self, portal: respx.MockRouter) -> None:
        refusal = {"error": "ACCESS_DENIED", "error_description": ""}
        fake = FakePortal(refuse={("crm.timeline.comment.add", "42"): refusal})
        mount(portal, fake)
        outcomes = adapter().apply([update("42", comment("a")), update("43", comment("b"))])
        assert not outcomes[0].ok and not outcomes[0].transient and "ACCESS_DENIED" in outcomes[0].detail
        assert outcomes[1].ok

    def test_a_failed_manager_lookup_parks_the_update(self, portal: respx.MockRouter) -> None:
        fake = FakePortal(refuse={("crm.deal.get", "42"): NOT_FOUND})
        mount(portal, fake)
        outcomes = adapter().apply([update("42", notify("x")), update("43", notify("y"))])
        assert not outcomes[0].ok and not outcomes[0].transient
        assert "Not found" in outcomes[0].detail and "User not specified" in outcomes[0].detail
        assert outcomes[1].ok

    def test_the_throttle_is_asked_before_every_request(self, portal: respx.MockRouter) -> None:
        fake = FakePortal()
        mount(portal, fake)
        throttle = CountingThrottle()
        crm = adapter(throttle)
        crm.apply([update("42", stage("C1:WON")), update("42", comment("x")), update("43", comment("y"))])
        assert len(fake.batches) == 2
        assert throttle.calls == [(PORTAL, RateLimit(2, 50))] * 2
        assert crm.requests == 2
        assert crm.rate_limit == RateLimit(2, 50)

    def test_a_throttle_that_will_not_wait_retries_everything(self, portal: respx.MockRouter) -> None:
        route = mount(portal, FakePortal())

        def full(account: str, limit: RateLimit) -> None:
            raise CrmUnavailable(f"{account}: rate limit bucket is full")

        outcomes = adapter(full).apply([update("42", stage("C1:WON")), update("43", comment("x"))])
        assert all(not o.ok and o.transient for o in outcomes) and "bucket is full" in outcomes[0].detail
        assert not route.called

    # -- a whole-request refusal: retried (the account is at fault), earlier rounds stay done -------------------

    @pytest.mark.parametrize(
        "answer",
        [
            ERROR_CORE,
            error_answer(401, "NO_AUTH_FOUND", "Wrong authorization data"),
            error_answer(403, "insufficient_scope", "The request requires higher privileges than provided."),
        ],
        ids=["400-core", "401-webhook", "403-scope"],
    )
    def test_a_refused_request_gives_one_outcome_per_update(
        self, portal: respx.MockRouter, answer: httpx.Response
    ) -> None:
        portal.post(f"{HOOK}batch.json").mock(return_value=answer)
        outcomes = adapter().apply([update("42", stage("C1:WON")), update("43", comment("x"))])
        assert len(outcomes) == 2 and all(not o.ok and o.transient for o in outcomes)

    def test_a_refused_second_round_keeps_the_first_round_done(self, portal: respx.MockRouter) -> None:
        fake = FakePortal()
        answers = iter([None, ERROR_CORE])

        def respond(request: httpx.Request) -> httpx.Response:
            answer = next(answers)
            return answer if answer is not None else fake(request)

        portal.post(f"{HOOK}batch.json").mock(side_effect=respond)
        outcomes = adapter().apply([update("42", comment("first")), update("42", comment("second"))])
        assert outcomes[0].ok and not outcomes[1].ok and outcomes[1].transient

    def test_a_dead_refresh_token_keeps_updates_waiting(self, portal: respx.MockRouter) -> None:
        mount(portal, FakePortal(), OAUTH_BASE)

        def access() -> str:
            raise CrmRejected("acme:bitrix24: Bitrix24 refused the refresh token; re-install the app")

        crm = adapter(settings=oauth_settings(), rest_base=OAUTH_BASE, access=access)
        outcomes = crm.apply([update("42", stage("C1:WON")), update("43", comment("x"))])
        assert len(outcomes) == 2 and all(not o.ok and o.transient for o in outcomes)


# ---------------------------------------------------------------------------------------------------------------
# OAuth
# ---------------------------------------------------------------------------------------------------------------


class Tokens:
    def __init__(self) -> None:
        self.refreshes = 0
        self.current = "old-token"

    def access(self) -> str:
        return self.current

    def unauthorized(self) -> str:
        self.refreshes += 1
        self.current = f"new-token-{self.refreshes}"
        return self.current


def oauth_adapter(tokens: Tokens, throttle: CountingThrottle | None = None) -> Bitrix24:
    return adapter(
        throttle,
        settings=oauth_settings(),
        rest_base=OAUTH_BASE,
        access=tokens.access,
        on_unauthorized=tokens.unauthorized,
    )


class TestOAuthCalls:
    def test_the_access_token_goes_in_the_body(self, portal: respx.MockRouter) -> None:
        route = portal.post(f"{OAUTH_BASE}batch.json").mock(
            return_value=batch_answer({"d0": deal_json(), "c0": contact_json()})
        )
        tokens = Tokens()
        assert oauth_adapter(tokens).get_deal("42").deal_id == "42"
        assert str(route.calls.last.request.url) == "https://acme.bitrix24.ru/rest/batch.json"
        assert sent(route) == {
            "halt": 0,
            "cmd": {"d0": "crm.deal.get?id=42", "c0": "crm.contact.get?id=$result[d0][CONTACT_ID]"},
            "auth": "old-token",
        }
        assert tokens.refreshes == 0

    def test_an_expired_token_is_refreshed_once_and_the_call_repeated(self, portal: respx.MockRouter) -> None:
        route = portal.post(f"{OAUTH_BASE}batch.json").mock(
            side_effect=[EXPIRED, batch_answer({"d0": deal_json(), "c0": contact_json()})]
        )
        tokens, throttle = Tokens(), CountingThrottle()
        deal = oauth_adapter(tokens, throttle).get_deal("42")
        assert deal.manager_id == "15"
        assert tokens.refreshes == 1
        assert [sent(route, n)["auth"] for n in range(2)] == ["old-token", "new-token-1"]
        assert sent(route, 0)["cmd"] == sent(route, 1)["cmd"]
        assert len(throttle.calls) == 2  # the repeated call is a request too

    def test_apply_after_an_expired_token(self, portal: respx.MockRouter) -> None:
        fake = FakePortal()
        answers = iter([EXPIRED])

        def respond(request: httpx.Request) -> httpx.Response:
            return next(answers, None) or fake(request)

        route = portal.post(f"{OAUTH_BASE}batch.json").mock(side_effect=respond)
        tokens = Tokens()
        outcomes = oauth_adapter(tokens).apply([update("42", stage("C1:WON")), update("43", comment("x"))])
        assert [o.ok for o in outcomes] == [True, True]
        assert route.call_count == 2 and tokens.refreshes == 1
        assert sent(route)["auth"] == "new-token-1"

    def test_a_second_401_is_a_refusal_without_a_second_refresh(self, portal: respx.MockRouter) -> None:
        route = portal.post(f"{OAUTH_BASE}batch.json").mock(return_value=EXPIRED)
        tokens = Tokens()
        with pytest.raises(CrmRejected, match="expired_token"):
            oauth_adapter(tokens).get_deal("42")
        assert tokens.refreshes == 1 and route.call_count == 2


def token_answer(access: str, refresh: str, expires_in: int = 3600) -> httpx.Response:
    """oauth.bitrix.info's answer to a refresh."""
    return httpx.Response(
        200,
        json={
            "access_token": access,
            "expires": NOW + expires_in,
            "expires_in": expires_in,
            "scope": "crm,im,bizproc",
            "domain": "oauth.bitrix.info",
            "server_endpoint": "https://oauth.bitrix.info/rest/",
            "status": "L",
            "client_endpoint": OAUTH_BASE,
            "member_id": MEMBER_ID,
            "user_id": 1,
            "refresh_token": refresh,
        },
    )


class TestOAuthRefresher:
    def test_request_and_answer(self, portal: respx.MockRouter) -> None:
        route = portal.get(url__startswith=TOKEN_URL).mock(return_value=token_answer("a1", "r1", 3600))
        pair = oauth_refresher(TOKEN_URL, CLIENT_ID, CLIENT_SECRET, clock=lambda: NOW + 0.7)("r0")
        assert pair == TokenPair(access_token="a1", refresh_token="r1", expires_at=NOW + 3600)
        request = route.calls.last.request
        assert request.method == "GET" and not request.content
        assert request.url.copy_with(query=None) == httpx.URL(TOKEN_URL)
        assert dict(request.url.params) == {
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": "r0",
        }

    def test_the_lifetime_comes_from_the_answer(self, portal: respx.MockRouter) -> None:
        portal.get(url__startswith=TOKEN_URL).mock(return_value=token_answer("a1", "r1", 1800))
        pair = oauth_refresher(TOKEN_URL, CLIENT_ID, CLIENT_SECRET, clock=lambda: NOW)("r0")
        assert pair.expires_at == NOW + 1800

    @pytest.mark.parametrize("status", [400, 401])
    def test_a_dead_refresh_token_means_reinstalling(self, portal: respx.MockRouter, status: int) -> None:
        portal.get(url__startswith=TOKEN_URL).mock(
            return_value=error_answer(status, "invalid_grant", "Invalid refresh token")
        )
        with pytest.raises(CrmRejected, match="re-install"):
            oauth_refresher(TOKEN_URL, CLIENT_ID, CLIENT_SECRET)("r0")

    @pytest.mark.parametrize("answer", [httpx.Response(500), httpx.Response(503), httpx.ReadTimeout("slow")])
    def test_transient_failures(self, portal: respx.MockRouter, answer: Any) -> None:
        portal.get(url__startswith=TOKEN_URL).mock(side_effect=[answer])
        with pytest.raises(CrmUnavailable):
            oauth_refresher(TOKEN_URL, CLIENT_ID, CLIENT_SECRET)("r0")


class FakeBitrixOAuth:
    """oauth.bitrix.info and the portal under respx: single-use refresh tokens, access tokens that expire."""

    def __init__(self) -> None:
        self.refresh_tokens = {"r0"}
        self.access_tokens: set[str] = set()
        self.minted = 0
        self.seen_refresh: list[str] = []

    def token(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        assert (params["grant_type"], params["client_id"], params["client_secret"]) == (
            "refresh_token",
            CLIENT_ID,
            CLIENT_SECRET,
        )
        refresh = params["refresh_token"]
        self.seen_refresh.append(refresh)
        if refresh not in self.refresh_tokens:
            return error_answer(400, "invalid_grant", "Invalid refresh token")
        self.refresh_tokens.remove(refresh)
        self.minted += 1
        access, new_refresh = f"a{self.minted}", f"r{self.minted}"
        self.access_tokens.add(access)
        self.refresh_tokens.add(new_refresh)
        return token_answer(access, new_refresh)

    def batch(self, request: httpx.Request) -> httpx.Response:
        if json.loads(request.content).get("auth") not in self.access_tokens:
            return EXPIRED
        return batch_answer({"d0": deal_json(), "c0": contact_json()})


class TestOAuthEndToEnd:
    def test_tokens_rotate_through_the_session(self, portal: respx.MockRouter) -> None:
        server = FakeBitrixOAuth()
        portal.get(url__startswith=TOKEN_URL).mock(side_effect=server.token)
        portal.post(f"{OAUTH_BASE}batch.json").mock(side_effect=server.batch)
        now = [float(NOW)]
        store = MemoryTokenStore()
        session = OAuthSession(
            store,
            "acme:bitrix24",
            refresh=oauth_refresher(TOKEN_URL, CLIENT_ID, CLIENT_SECRET, clock=lambda: now[0]),
            initial=TokenPair(access_token="", refresh_token="r0", expires_at=0),
            clock=lambda: now[0],
        )
        crm = Bitrix24(
            oauth_settings(), APP_TOKEN, OAUTH_BASE, access=session.access_token, on_unauthorized=session.invalidate
        )

        crm.get_deal("42")  # no access token yet: r0 → a1/r1
        crm.get_deal("42")  # a1 still good
        assert server.minted == 1
        now[0] += 3600  # a1 expires (the session refreshes early): r1 → a2/r2
        crm.get_deal("42")
        assert server.minted == 2
        server.access_tokens.clear()  # the portal refuses a2: 401 → r2 → a3/r3, the call is repeated
        assert crm.get_deal("42").deal_id == "42"
        assert server.minted == 3
        assert server.seen_refresh == ["r0", "r1", "r2"]  # every refresh used the newest refresh token
        stored = store.load("acme:bitrix24")
        assert stored is not None and (stored.pair.access_token, stored.pair.refresh_token) == ("a3", "r3")
        assert stored.pair.expires_at == int(now[0]) + 3600 and stored.version == 4
        with pytest.raises(CrmRejected, match="re-install"):  # a used refresh token is dead
            oauth_refresher(TOKEN_URL, CLIENT_ID, CLIENT_SECRET)("r1")


# ---------------------------------------------------------------------------------------------------------------
# parse_webhook
# ---------------------------------------------------------------------------------------------------------------


def event_form(event: str = "ONCRMDEALUPDATE", deal: str | None = "42", **overrides: str | None) -> dict[str, str]:
    form: dict[str, str | None] = {
        "event": event,
        "event_handler_id": "9",
        "data[FIELDS][ID]": deal,
        "ts": str(NOW),
        "auth[domain]": PORTAL,
        "auth[client_endpoint]": OAUTH_BASE,
        "auth[server_endpoint]": "https://oauth.bitrix.info/rest/",
        "auth[member_id]": MEMBER_ID,
        "auth[application_token]": APP_TOKEN,
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def robot_form(code: str = ROBOT_CODE, document: str = "DEAL_42", **overrides: str | None) -> dict[str, str]:
    form: dict[str, str | None] = {
        "workflow_id": "667d4a2b1c3e58.41234567",
        "code": code,
        "document_id[0]": "crm",
        "document_id[1]": "CCrmDocumentDeal",
        "document_id[2]": document,
        "document_type[0]": "crm",
        "document_type[1]": "CCrmDocumentDeal",
        "document_type[2]": "DEAL",
        "event_token": "667d4a2b1c3e58.41234567|A12345_67890_11111_22222|abc123def456.789",
        "properties[amount]": "1500.50",
        "use_subscription": "N",
        "timeout_duration": "0",
        "ts": str(NOW),
        "auth[access_token]": "s6p6eclrvim6da22ft9ch94ekreb52lv",
        "auth[expires]": str(NOW + 3600),
        "auth[expires_in]": "3600",
        "auth[scope]": "crm,bizproc",
        "auth[domain]": PORTAL,
        "auth[server_endpoint]": "https://oauth.bitrix.info/rest/",
        "auth[status]": "L",
        "auth[client_endpoint]": OAUTH_BASE,
        "auth[member_id]": MEMBER_ID,
        "auth[user_id]": "1",
        "auth[refresh_token]": "4s386p3q0tr8dy89xvmt96234v3dljg8",
        "auth[application_token]": APP_TOKEN,
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def body_of(form: dict[str, str]) -> bytes:
    return urlencode(form).encode()


def stage_adapter() -> Bitrix24:
    return adapter()


def robot_adapter() -> Bitrix24:
    return adapter(settings=settings(trigger={"kind": "robot", "code": ROBOT_CODE}))


class TestParseWebhook:
    @pytest.mark.parametrize("event", ["ONCRMDEALUPDATE", "ONCRMDEALADD"])
    def test_a_deal_event_asks_for_an_invoice_in_the_trigger_stage(self, event: str) -> None:
        result = stage_adapter().parse_webhook(FORM, body_of(event_form(event)), {})
        assert result == CrmWebhook(
            commands=(IssueInvoiceCommand(deal_id="42", when_stage=TRIGGER_STAGE),), moves=(DealMoved(deal_id="42"),)
        )

    def test_the_raw_body_bitrix24_sends(self) -> None:
        body = (
            b"event=ONCRMDEALUPDATE&event_handler_id=9&data%5BFIELDS%5D%5BID%5D=1007&ts=1750000000"
            b"&auth%5Bdomain%5D=acme.bitrix24.ru&auth%5Bclient_endpoint%5D=https%3A%2F%2Facme.bitrix24.ru%2Frest%2F"
            b"&auth%5Bserver_endpoint%5D=https%3A%2F%2Foauth.bitrix.info%2Frest%2F"
            b"&auth%5Bmember_id%5D=a223c6b3710f85df22e9377d6c4f7553&auth%5Bapplication_token%5D=app-token-51a2d3c4e5f6"
        )
        assert stage_adapter().parse_webhook(FORM, body, {}) == CrmWebhook(
            commands=(IssueInvoiceCommand(deal_id="1007", when_stage=TRIGGER_STAGE),),
            moves=(DealMoved(deal_id="1007"),),
        )

    def test_the_deal_id_is_trimmed(self) -> None:
        result = stage_adapter().parse_webhook(FORM, body_of(event_form(deal=" 42 ")), {})
        assert result.commands == (IssueInvoiceCommand(deal_id="42", when_stage=TRIGGER_STAGE),)

    @pytest.mark.parametrize("event", ["ONCRMCONTACTUPDATE", "ONCRMDEALDELETE", "ONCRMLEADADD", "ONAPPINSTALL"])
    def test_other_events_are_ignored(self, event: str) -> None:
        result = stage_adapter().parse_webhook(FORM, body_of(event_form(event)), {})
        assert not result.commands and result.ignored == (f"event {event} does not ask for an invoice",)

    def test_deal_events_are_ignored_when_a_robot_triggers(self) -> None:
        result = robot_adapter().parse_webhook(FORM, body_of(event_form()), {})
        assert not result.commands and result.ignored

    def test_our_robot_asks_for_an_invoice(self) -> None:
        result = robot_adapter().parse_webhook(FORM, body_of(robot_form()), {})
        assert result == CrmWebhook(commands=(IssueInvoiceCommand(deal_id="42"),))
        assert result.commands[0].when_stage is None  # a robot runs on purpose: no stage guard

    def test_the_raw_robot_body(self) -> None:
        body = (
            b"workflow_id=667d4a2b1c3e58.41234567&code=paybridge_issue_invoice&document_id%5B0%5D=crm"
            b"&document_id%5B1%5D=CCrmDocumentDeal&document_id%5B2%5D=DEAL_1007&document_type%5B0%5D=crm"
            b"&document_type%5B1%5D=CCrmDocumentDeal&document_type%5B2%5D=DEAL"
            b"&event_token=667d4a2b1c3e58.41234567%7CA12345_67890_11111_22222%7Cabc123def456.789"
            b"&use_subscription=N&timeout_duration=0&ts=1750000000&auth%5Bdomain%5D=acme.bitrix24.ru"
            b"&auth%5Bmember_id%5D=a223c6b3710f85df22e9377d6c4f7553&auth%5Bapplication_token%5D=app-token-51a2d3c4e5f6"
        )
        assert robot_adapter().parse_webhook(FORM, body, {}) == CrmWebhook(
            commands=(IssueInvoiceCommand(deal_id="1007"),)
        )

    def test_a_robot_call_without_event_token(self) -> None:
        # a robot that does not wait for an answer still names itself by `code`
        body = body_of(robot_form(code="other_robot", event_token=None))
        result = robot_adapter().parse_webhook(FORM, body, {})
        assert not result.commands and result.ignored == ("robot 'other_robot' is not ours",)
        result = robot_adapter().parse_webhook(FORM, body_of(robot_form(event_token=None)), {})
        assert result.commands == (IssueInvoiceCommand(deal_id="42"),)

    def test_another_robot_is_ignored(self) -> None:
        result = robot_adapter().parse_webhook(FORM, body_of(robot_form(code="other_robot")), {})
        assert not result.commands and result.ignored == ("robot 'other_robot' is not ours",)

    def test_a_robot_call_is_ignored_when_a_stage_triggers(self) -> None:
        result = stage_adapter().parse_webhook(FORM, body_of(robot_form()), {})
        assert not result.commands and result.ignored

    @pytest.mark.parametrize("document", ["CONTACT_7", "LEAD_42", "DEAL_", "DEAL_42a", "42", ""])
    def test_a_robot_without_a_deal_is_malformed(self, document: str) -> None:
        with pytest.raises(MalformedNotification, match="DEAL_"):
            robot_adapter().parse_webhook(FORM, body_of(robot_form(document=document)), {})

    def test_a_robot_without_document_id_is_malformed(self) -> None:
        with pytest.raises(MalformedNotification):
            robot_adapter().parse_webhook(FORM, body_of(robot_form(**{"document_id[2]": None})), {})

    @pytest.mark.parametrize("token", ["wrong-token", APP_TOKEN + "x", APP_TOKEN[:-1], "", None])
    @pytest.mark.parametrize("form", [event_form, robot_form], ids=["event", "robot"])
    def test_a_wrong_application_token_is_refused(self, form: Callable[..., dict[str, str]], token: Any) -> None:
        body = body_of(form(**{"auth[application_token]": token}))
        with pytest.raises(InvalidSignature, match=r"application_token"):
            robot_adapter().parse_webhook(FORM, body, {})
        with pytest.raises(InvalidSignature, match=r"application_token"):
            stage_adapter().parse_webhook(FORM, body, {})

    @pytest.mark.parametrize("domain", ["evil.bitrix24.ru", "acme.bitrix24.com", "acme.bitrix24.ru.evil.test", ""])
    def test_another_portal_is_refused(self, domain: str) -> None:
        with pytest.raises(InvalidSignature, match="portal"):
            stage_adapter().parse_webhook(FORM, body_of(event_form(**{"auth[domain]": domain})), {})
        with pytest.raises(InvalidSignature, match="portal"):
            robot_adapter().parse_webhook(FORM, body_of(robot_form(**{"auth[domain]": domain})), {})

    def test_a_missing_domain_is_refused(self) -> None:
        with pytest.raises(InvalidSignature):
            stage_adapter().parse_webhook(FORM, body_of(event_form(**{"auth[domain]": None})), {})

    def test_the_token_is_checked_before_the_shape(self) -> None:
        forged = {"event": "", "auth[application_token]": "nope", "auth[domain]": PORTAL}
        with pytest.raises(InvalidSignature):
            stage_adapter().parse_webhook(FORM, body_of(forged), {})

    @pytest.mark.parametrize("event", [None, ""])
    def test_a_missing_event_is_malformed(self, event: str | None) -> None:
        form = event_form()
        del form["event"]
        if event is not None:
            form["event"] = event
        with pytest.raises(MalformedNotification, match="event"):
            stage_adapter().parse_webhook(FORM, body_of(form), {})

    @pytest.mark.parametrize("deal", [None, "", "  ", "abc", "42a", "-42", "4 2", "42.0", "DEAL_42"])
    def test_a_bad_deal_id_is_malformed(self, deal: str | None) -> None:
        with pytest.raises(MalformedNotification, match=r"data\[FIELDS\]\[ID\]"):
            stage_adapter().parse_webhook(FORM, body_of(event_form(deal=deal)), {})

    @pytest.mark.parametrize("deal", ["²", "４２", "٤٢"])
    def test_non_ascii_digits_are_not_a_deal_id(self, deal: str) -> None:
        with pytest.raises(MalformedNotification):
            stage_adapter().parse_webhook(FORM, body_of(event_form(deal=deal)), {})

    @pytest.mark.parametrize("deal", ["４２", "٤٢"])
    def test_non_ascii_digits_are_not_a_robot_deal(self, deal: str) -> None:
        with pytest.raises(MalformedNotification):
            robot_adapter().parse_webhook(FORM, body_of(robot_form(document=f"DEAL_{deal}")), {})

    @pytest.mark.parametrize(
        "body",
        [
            b"\xff\xfe\xfd",
            "event=ONCRMDEALUPDATE&data[FIELDS][ID]=42&auth[domain]=acme.bitrix24.ru".encode("utf-16"),
            json.dumps({"event": "ONCRMDEALUPDATE", "auth": {"application_token": APP_TOKEN}}).encode(),
            b"just some text",
            b"event=ONCRMDEALUPDATE&&data[FIELDS][ID]=42",
        ],
        ids=["not-utf8", "utf16", "json", "text", "empty-pair"],
    )
    def test_a_body_that_is_no_form_is_malformed(self, body: bytes) -> None:
        with pytest.raises(MalformedNotification, match="not a form-encoded body"):
            stage_adapter().parse_webhook({"Content-Type": "application/json"}, body, {})


class TestMergedUpdates:
    """`merge_updates`: several pending updates of one deal become one (the last stage, every comment)."""

    def merging(self) -> Bitrix24:
        return adapter(settings=settings(merge_updates=True))

    def test_two_updates_of_one_deal_become_one_in_one_request(self, portal: respx.MockRouter) -> None:
        # Given the link-published and the paid update of deal 42 waiting together, and another deal's
        fake = FakePortal()
        route = mount(portal, fake)
        updates = [
            update("42", stage("C1:EXECUTING", URL), comment("Ссылка"), version=1),
            update("43", comment("other deal")),
            update("42", stage("C1:WON"), comment("Оплачено"), version=2),
        ]
        # When they are applied
        outcomes = self.merging().apply(updates)
        # Then one request carries one stage write for 42 (the last stage, with the link) and both its comments
        assert [o.ok for o in outcomes] == [True, True, True]
        assert route.call_count == 1
        calls = fake.calls(0)
        assert [(m, p.get("id") or p.get("fields[ENTITY_ID]")) for m, p in calls] == [
            ("crm.deal.update", "42"),
            ("crm.timeline.comment.add", "42"),
            ("crm.timeline.comment.add", "42"),
            ("crm.timeline.comment.add", "43"),
        ]
        assert calls[0][1]["fields[STAGE_ID]"] == "C1:WON"
        assert calls[0][1][f"fields[{LINK_FIELD}]"] == URL
        assert [p["fields[COMMENT]"] for m, p in calls[1:3]] == ["Ссылка", "Оплачено"]

    def test_a_refused_stage_write_parks_every_update_that_asked_for_a_stage(self, portal: respx.MockRouter) -> None:
        refusal = {"error": "ERROR_CORE", "error_description": "Unknown stage"}
        fake = FakePortal(refuse={("crm.deal.update", "42"): refusal})
        mount(portal, fake)
        updates = [update("42", stage("C1:X"), version=1), update("42", stage("C1:Y"), comment("c"), version=2)]
        outcomes = self.merging().apply(updates)
        assert [o.ok for o in outcomes] == [False, False]
        assert not any(o.transient for o in outcomes)

    def test_batches_are_filled_to_fifty_calls(self, portal: respx.MockRouter) -> None:
        fake = FakePortal()
        mount(portal, fake)
        updates = [update(str(100 + n), stage("C1:WON"), comment("Оплачено")) for n in range(60)]
        assert all(o.ok for o in self.merging().apply(updates))
        assert [len(cmd) for cmd in fake.batches] == [50, 50, 20]

    def test_echo_counts_are_the_stage_writes_sent(self) -> None:
        updates = [update("42", stage("A"), comment("c")), update("42", stage("B")), update("43", comment("c"))]
        assert adapter().echo_counts(updates) == {"42": 2}
        assert self.merging().echo_counts(updates) == {"42": 1}
        robot = adapter(settings=settings(trigger={"kind": "robot", "code": ROBOT_CODE}))
        assert robot.echo_counts(updates) == {}  # a robot trigger binds no change event: no echo
