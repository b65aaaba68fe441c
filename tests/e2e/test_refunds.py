"""Refunds end to end on the sandbox PSP: the route, the provider's confirmation, the deal's stage, idempotency by
the client's key, and the guarantee that refunds never exceed what was paid."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.conftest import Api, Sandbox, payment_id_of


class Refunds:
    def __init__(self, api: Api) -> None:
        self.api = api

    def post(self, invoice_id: str, key: str | None, **body: Any) -> httpx.Response:
        headers = dict(self.api.headers)
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.api.http.post(f"/v1/{self.api.tenant}/invoices/{invoice_id}/refunds", json=body, headers=headers)


@pytest.fixture
def refunds(api: Api) -> Refunds:
    return Refunds(api)


def paid_invoice(sandbox: Sandbox, api: Api, amount: int) -> tuple[dict[str, Any], dict[str, Any]]:
    deal = sandbox.new_deal(amount=amount)
    invoice = api.issue_awaiting(deal["id"], amount=amount)
    assert sandbox.pay(payment_id_of(invoice), "pay").status_code == 200
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "PAID")
    return deal, api.wait(invoice["invoice_id"], lambda i: i["state"] == "paid")


def test_partial_then_full_refund_moves_the_invoice_and_the_deal(
    sandbox: Sandbox, api: Api, refunds: Refunds, unique: Any
) -> None:
    deal, invoice = paid_invoice(sandbox, api, 100_000)
    first = refunds.post(invoice["invoice_id"], unique("r"), amount=30_000, reason="one item returned")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["status"] == "succeeded" and body["amount"] == 30_000 and body["provider_ref"].startswith("sandbox:")
    assert body["invoice"]["state"] == "partially_refunded" and body["invoice"]["refunded"] == 30_000
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "PARTIALLY_REFUNDED")
    # The rest: no amount means everything still refundable
    rest = refunds.post(invoice["invoice_id"], unique("r"))
    assert rest.status_code == 201 and rest.json()["amount"] == 70_000
    # The stage lands before the timeline entry: wait for the entry
    sandbox.wait_deal(
        deal["id"],
        lambda d: d["stage"] == "REFUNDED" and any("возвращено 1 000.00 RUB." in t["text"] for t in d["timeline"]),
    )
    # The PSP's refund notifications arrive after the API answers: still 100 000 refunded, not 200 000
    payment = sandbox.http.get(f"/sandbox/psp/api/payments/{invoice['payment_id']}").json()
    assert payment["refunded"] == 100_000
    deliveries = sandbox.http.get("/sandbox/psp/api/deliveries").json()
    mine = [d for d in deliveries if d["payment_id"] == invoice["payment_id"] and d["type"] == "refund.succeeded"]
    assert len(mine) == 2
    after = api.wait(invoice["invoice_id"], lambda i: i["state"] == "refunded")
    assert after["refunded"] == 100_000 and after["paid"] == 100_000
    assert [r["status"] for r in after["refunds"]] == ["succeeded", "succeeded"]


def test_the_same_key_never_refunds_twice(sandbox: Sandbox, api: Api, refunds: Refunds, unique: Any) -> None:
    _, invoice = paid_invoice(sandbox, api, 50_000)
    key = unique("r")
    first = refunds.post(invoice["invoice_id"], key, amount=10_000)
    again = refunds.post(invoice["invoice_id"], key, amount=10_000)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["provider_ref"] == first.json()["provider_ref"]
    other_amount = refunds.post(invoice["invoice_id"], key, amount=20_000)
    assert other_amount.status_code == 409 and other_amount.json()["type"].endswith("/invoice-conflict")
    payment = sandbox.http.get(f"/sandbox/psp/api/payments/{invoice['payment_id']}").json()
    assert payment["refunded"] == 10_000


def test_concurrent_refunds_never_exceed_what_was_paid(
    sandbox: Sandbox, api: Api, refunds: Refunds, unique: Any
) -> None:
    _, invoice = paid_invoice(sandbox, api, 40_000)
    keys = [unique("r") for _ in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda k: refunds.post(invoice["invoice_id"], k, amount=30_000), keys))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201, 409, 409, 409], [a.text for a in answers]
    payment = sandbox.http.get(f"/sandbox/psp/api/payments/{invoice['payment_id']}").json()
    assert payment["refunded"] == 30_000
    assert api.get(invoice["invoice_id"])["refunded"] == 30_000


@pytest.mark.parametrize(
    ("key", "body", "status", "slug"),
    [
        (None, {"amount": 1_000}, 422, "validation-error"),
        ("bad key with spaces", {"amount": 1_000}, 422, "validation-error"),
        ("k-ok", {"amount": 10.5}, 422, "validation-error"),
        ("k-ok", {"amount": 0}, 422, "validation-error"),
        ("k-ok", {"amount": 999_999}, 409, "invalid-transition"),
        ("k-ok", {"amount": 1_000, "items": [{"name": "x", "price": 999, "vat": "none"}]}, 422, "validation-error"),
    ],
    ids=["no-key", "bad-key", "float-amount", "zero", "more-than-paid", "items-do-not-add-up"],
)
def test_bad_refund_requests_are_refused_and_write_nothing(
    sandbox: Sandbox, api: Api, refunds: Refunds, key: str | None, body: dict[str, Any], status: int, slug: str
) -> None:
    _, invoice = paid_invoice(sandbox, api, 20_000)
    answer = refunds.post(invoice["invoice_id"], key, **body)
    assert answer.status_code == status, answer.text
    assert answer.json()["type"].endswith(f"/{slug}")
    after = api.get(invoice["invoice_id"])
    assert after["refunds"] == [] and after["refunded"] == 0
    assert [h["event"] for h in after["history"]] == [h["event"] for h in invoice["history"]]
    assert sandbox.http.get(f"/sandbox/psp/api/payments/{invoice['payment_id']}").json()["refunded"] == 0


def test_an_unpaid_invoice_cannot_be_refunded(sandbox: Sandbox, api: Api, refunds: Refunds, unique: Any) -> None:
    deal = sandbox.new_deal(amount=10_000)
    invoice = api.issue_awaiting(deal["id"], amount=10_000)
    answer = refunds.post(invoice["invoice_id"], unique("r"))
    assert answer.status_code == 409 and "nothing was paid" in answer.json()["detail"]
    assert api.get(invoice["invoice_id"])["refunds"] == []


def test_a_refund_after_the_lifecycle_ended_is_published_to_the_deal_without_an_execution(
    stack: Any, sandbox: Sandbox, api: Api, refunds: Refunds, unique: Any
) -> None:
    import boto3

    from devstack.aws import ACCOUNT, REGION, STATE_MACHINE_NAME

    deal, invoice = paid_invoice(sandbox, api, 10_000)
    assert refunds.post(invoice["invoice_id"], unique("r"), amount=4_000).status_code == 201
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "PARTIALLY_REFUNDED")
    machine = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STATE_MACHINE_NAME}"
    executions = boto3.client("stepfunctions").list_executions(stateMachineArn=machine, maxResults=1000)["executions"]
    names = [e["name"] for e in executions if e["name"].startswith(invoice["invoice_id"])]
    assert names == [invoice["invoice_id"]]  # only the one that created the payment
    assert stack.aws.entered_states(names[0]) == ["Start", "CreatePayment"]
