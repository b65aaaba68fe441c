"""What attackers and sloppy clients send (issue 13): every answer is a 4xx problem JSON (never a 5xx), the key is
checked before the body, an unknown tenant and a wrong key are the same 401, and a refused request writes nothing."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from paybridge.domain.invoice import invoice_id_for
from tests.conftest import API_KEY

pytestmark = pytest.mark.e2e
KEY = {"X-Api-Key": API_KEY}
DEEP = b"[" * 100_000
JSON_ROUTES = [
    "/v1/demo/invoices",
    "/v1/demo/deals/D-1/schedules",
    "/v1/demo/subscriptions",
    "/v1/demo/invoices/inv_aaaaaaaaaaaaaaaaaaaaaaaaaa/cancel",
]
WEBHOOKS = [
    "/psp/demo/sandbox",
    "/psp/tbank-shop/tbank",
    "/psp/yookassa-shop/yookassa",
    "/psp/stripe-shop/stripe",
    "/crm/demo/sandbox",
    "/crm/bitrix-shop/bitrix24",
    "/crm/amo-shop/amocrm?token=x",
    "/bank/bank-shop/tbank?token=x",
]


def problem(answer: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, (answer.status_code, answer.text[:300])
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["status"] == status and {"type", "title", "detail"} <= set(body)
    if slug:
        assert body["type"].endswith(f"/{slug}"), body
    return body


@pytest.mark.parametrize("path", JSON_ROUTES)
def test_deep_json_with_the_key_is_a_400(http: httpx.Client, path: str) -> None:
    answer = http.post(path, headers={**KEY, "Content-Type": "application/json"}, content=DEEP)
    assert "nested deeper" in problem(answer, 400, "bad-request")["detail"]


@pytest.mark.parametrize("path", WEBHOOKS)
def test_deep_json_on_a_webhook_is_a_4xx_problem(http: httpx.Client, path: str) -> None:
    answer = http.post(path, headers={"Content-Type": "application/json"}, content=DEEP)
    assert answer.status_code in (400, 401), answer.text[:300]
    problem(answer, answer.status_code)


@pytest.mark.parametrize(
    ("headers", "body", "status", "slug"),
    [
        ({"Content-Type": "application/json"}, b'{"deal_id": "\xff\xfe"}', 400, "bad-request"),  # not UTF-8
        ({"Content-Type": "application/json"}, b'{"amount": NaN}', 400, "bad-request"),
        ({"Content-Type": "application/json"}, b'{"amount": ' + b"9" * 5000 + b"}", 400, "bad-request"),
        ({"Content-Type": "text/xml"}, b"<invoice/>", 415, "unsupported-media-type"),
        ({"Content-Type": "multipart/form-data"}, b"--x\r\n", 415, "unsupported-media-type"),  # no boundary
        ({"Content-Type": "application/json; charset=latin-1"}, b"{}", 415, "unsupported-media-type"),
        ({"Content-Type": "application/json"}, b'{"a": "' + b"x" * 300_000 + b'"}', 413, "payload-too-large"),
    ],
)
def test_unreadable_bodies_are_problems(
    http: httpx.Client, headers: dict[str, str], body: bytes, status: int, slug: str
) -> None:
    problem(http.post("/v1/demo/invoices", headers={**KEY, **headers}, content=body), status, slug)


def test_the_key_is_checked_before_the_body_and_tenants_cannot_be_enumerated(http: httpx.Client) -> None:
    invalid = {"deal_id": "", "amount": "lots"}
    # An anonymous caller learns nothing about the body …
    no_key = problem(http.post("/v1/demo/invoices", json=invalid), 401, "unauthorized")
    deep = problem(http.post("/v1/demo/invoices", content=DEEP, headers={"Content-Type": "application/json"}), 401)
    wrong = problem(http.post("/v1/demo/invoices", json=invalid, headers={"X-Api-Key": "guess"}), 401)
    # … nor whether the tenant exists
    unknown = problem(http.post("/v1/no-such-tenant/invoices", json=invalid, headers=KEY), 401)
    bad_slug = problem(http.get("/v1/NOT_A_SLUG!/invoices/inv_aaaaaaaaaaaaaaaaaaaaaaaaaa", headers=KEY), 401)
    assert no_key == deep == wrong == unknown == bad_slug
    # With the key, the same body is a 422 naming the fields
    assert problem(http.post("/v1/demo/invoices", json=invalid, headers=KEY), 422, "validation-error")["errors"]


def test_webhooks_of_an_unknown_tenant_or_route_answer_like_a_bad_signature(http: httpx.Client) -> None:
    body = json.dumps({"event_id": "e", "payment_id": "p", "status": "succeeded", "amount": 1})
    forged = problem(http.post("/psp/demo/sandbox", content=body), 401, "invalid-signature")
    unknown = problem(http.post("/psp/no-such-tenant/sandbox", content=body), 401, "invalid-signature")
    other_provider = problem(http.post("/psp/demo/stripe", content=body), 401, "invalid-signature")
    assert forged == unknown == other_provider


def test_a_staged_payment_whose_stage_numbers_do_not_fit_writes_nothing(http: httpx.Client, sandbox: Any) -> None:
    # 38 characters + "/10" is over an invoice number's 40: refused before the first stage is issued
    deal, number = str(sandbox.new_deal(100_000)["id"]), "N" * 38
    stages = [{"name": f"stage {k}", "percent": 10} for k in range(10)]
    body = {"number": number, "total": 100_000, "stages": stages}
    path = f"/v1/demo/deals/{deal}/schedules"
    for _attempt in range(2):  # a retry gets the same answer, never a crash
        assert "no room for the stage suffix" in problem(http.post(path, json=body, headers=KEY), 422)["detail"]
    # the same schedule with a number that fits issues all ten
    assert http.get(f"/v1/demo/invoices/{invoice_id_for('demo', deal, number + '/1')}", headers=KEY).status_code == 404
    ok = http.post(path, json={**body, "number": "N" * 37}, headers=KEY)
    assert ok.status_code == 201 and len(ok.json()["invoices"]) == 10


def test_a_subscription_plan_that_cannot_number_its_invoices_is_refused_before_it_is_saved(
    http: httpx.Client, sandbox: Any
) -> None:
    body = {
        "deal_id": sandbox.new_deal(9_900)["id"],
        "plan": "p" * 40,
        "amount": 99_00,
        "customer": {"email": "a@b.ru"},
    }
    problem(http.post("/v1/demo/subscriptions", json=body, headers=KEY), 422, "validation-error")
    created = http.post("/v1/demo/subscriptions", json={**body, "plan": "p" * 31}, headers=KEY)
    assert created.status_code == 201 and created.json()["first_invoice"] is not None


def test_an_upload_over_the_limit_is_a_413_and_a_wrong_type_a_415(http: httpx.Client) -> None:
    from paybridge.http.entry import MAX_UPLOAD_BYTES

    headers = {**KEY, "Content-Type": "application/octet-stream"}
    big = b"1CClientBankExchange\r\n" + b"x" * MAX_UPLOAD_BYTES
    problem(http.post("/bank/bank-shop/statements", content=big, headers=headers), 413, "payload-too-large")
    form = {**KEY, "Content-Type": "multipart/form-data"}
    problem(http.post("/bank/bank-shop/statements", content=b"--", headers=form), 415, "unsupported-media-type")


def test_an_unexpected_error_is_a_500_problem_with_a_correlation_id_and_nothing_internal(
    stack: Any, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from paybridge.app.invoices import Invoices

    def boom(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("internal detail: table paybridge-secret-name")

    monkeypatch.setattr(Invoices, "get_invoice", boom)
    answer = http.get("/v1/demo/invoices/inv_aaaaaaaaaaaaaaaaaaaaaaaaaa", headers=KEY)
    body = problem(answer, 500, "internal-error")
    assert body["correlation_id"] and "internal detail" not in answer.text and "RuntimeError" not in answer.text
