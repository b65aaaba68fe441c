"""A deal paid in stages on the local stack: 30 % advance then 70 %, each its own invoice and lifecycle, the deal
going "Advance paid" then "Paid"."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import API_KEY, Api, Sandbox


def schedule(http: httpx.Client, deal_id: str, body: dict[str, Any]) -> httpx.Response:
    return http.post(f"/v1/demo/deals/{deal_id}/schedules", json=body, headers={"x-api-key": API_KEY})


def test_a_staged_deal_goes_advance_paid_then_paid(http: httpx.Client, sandbox: Sandbox, api: Api, unique: Any) -> None:
    deal = sandbox.new_deal(amount=1_000_000)
    body = {
        "number": unique("ST-"),
        "total": 1_000_000,
        "stages": [{"name": "Аванс 30%", "percent": 30}, {"name": "Оплата по факту поставки", "percent": 70}],
    }
    answer = schedule(http, deal["id"], body)
    assert answer.status_code == 201, answer.text
    advance, final = answer.json()["invoices"]
    assert (advance["amount"], final["amount"]) == (300_000, 700_000)
    assert advance["number"].endswith("/1") and final["part"]["name"] == "Оплата по факту поставки"
    # The same schedule again: the same invoices, nothing new
    again = schedule(http, deal["id"], body)
    assert again.status_code == 200 and [i["invoice_id"] for i in again.json()["invoices"]] == [
        advance["invoice_id"],
        final["invoice_id"],
    ]
    first = api.wait(advance["invoice_id"], lambda i: i["state"] == "awaiting_payment")
    second = api.wait(final["invoice_id"], lambda i: i["state"] == "awaiting_payment")
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "AWAITING_PAYMENT")
    assert sandbox.pay(first["payment_url"].rsplit("/", 1)[-1]).status_code == 200
    advanced = sandbox.wait_deal(
        deal["id"],
        lambda d: d["stage"] == "ADVANCE_PAID" and any("оплачен" in e["text"] for e in d["timeline"]),
    )
    assert any("оплачен" in e["text"] and "Этап 1 из 2: Аванс 30%" in e["text"] for e in advanced["timeline"])
    assert sandbox.pay(second["payment_url"].rsplit("/", 1)[-1]).status_code == 200
    done = sandbox.wait_deal(
        deal["id"],
        lambda d: d["stage"] == "PAID" and any("оплачен" in e["text"] and "Этап 2" in e["text"] for e in d["timeline"]),
    )
    assert done["stage"] == "PAID"


def test_a_schedule_that_does_not_add_up_is_refused_and_writes_nothing(
    http: httpx.Client, sandbox: Sandbox, unique: Any
) -> None:
    deal = sandbox.new_deal(amount=1_000)
    number = unique("BAD-")
    body = {"number": number, "total": 1_000, "stages": [{"name": "a", "percent": 30}, {"name": "b", "percent": 60}]}
    answer = schedule(http, deal["id"], body)
    assert answer.status_code == 422 and answer.json()["type"].endswith("/schedule-invalid")
    from paybridge.domain.invoice import invoice_id_for
    from paybridge.wiring import get_repo

    assert get_repo().get("demo", invoice_id_for("demo", deal["id"], f"{number}/1")) is None
