"""Drift on the local stack: a deal moved back by hand is found and written again; a deal moved on to a stage that is
not ours is reported, not overwritten; money the provider holds without a notification is recorded; only ops keys."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Api, Sandbox, payment_id_of

OPS = {"x-api-key": "demo-ops-key", "x-actor": "anna"}


def check(http: httpx.Client) -> dict[str, Any]:
    response = http.post("/v1/demo/drift", headers=OPS)
    assert response.status_code == 200, response.text
    return dict(response.json())


def mine(report: dict[str, Any], invoice_id: str) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["invoice_id"] == invoice_id]


def test_a_deal_moved_back_by_hand_is_found_and_repaired_and_one_moved_on_is_only_reported(
    http: httpx.Client, sandbox: Sandbox, api: Api
) -> None:
    back, on = sandbox.new_deal(amount=31_000), sandbox.new_deal(amount=32_000)
    invoices = {}
    for deal in (back, on):
        invoice = api.issue_awaiting(deal["id"], amount=deal["amount"])
        assert sandbox.pay(payment_id_of(invoice), "pay").status_code == 200
        sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "PAID")
        invoices[deal["id"]] = invoice["invoice_id"]
    # A manager drags one deal back to "awaiting payment" (a stage of ours) and the other on to "WON" (not ours)
    for deal, stage in ((back, "AWAITING_PAYMENT"), (on, "WON")):
        moved = http.patch(f"{sandbox.crm}/deals/{deal['id']}", json={"stage": stage}, headers=sandbox.auth)
        assert moved.status_code == 200

    report = check(http)

    (behind,) = mine(report, invoices[back["id"]])
    assert behind["kind"] == "deal_behind_invoice" and behind["repaired"] is True
    assert "AWAITING_PAYMENT" in behind["detail"] and "PAID" in behind["detail"]
    sandbox.wait_deal(back["id"], lambda d: d["stage"] == "PAID")
    (moved_on,) = mine(report, invoices[on["id"]])
    assert moved_on["kind"] == "deal_moved_on" and moved_on["repaired"] is False
    assert sandbox.deal(on["id"])["stage"] == "WON"  # a person's decision is not overwritten
    assert report["found"] >= 2 and report["repaired"] >= 1
    # The check is kept: the newest first
    latest = http.get("/v1/demo/drift", headers=OPS).json()["reports"][0]
    assert latest["at"] == report["at"] and latest["found"] == report["found"]
    # Repaired: the next check finds nothing more about that deal
    assert mine(check(http), invoices[back["id"]]) == []


def test_money_the_provider_holds_without_a_notification_is_found_and_recorded(
    http: httpx.Client, sandbox: Sandbox, api: Api
) -> None:
    deal = sandbox.new_deal(amount=41_000)
    invoice = api.issue_awaiting(deal["id"], amount=41_000)
    assert http.post("/sandbox/psp/api/faults", json={"lose_notification": 1}).status_code == 200
    assert sandbox.pay(payment_id_of(invoice), "pay").status_code == 200
    assert api.get(invoice["invoice_id"])["state"] == "awaiting_payment"

    (found,) = mine(check(http), invoice["invoice_id"])

    assert found["kind"] == "invoice_behind_provider" and found["repaired"] is True
    assert api.get(invoice["invoice_id"])["state"] == "paid"
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "PAID")


def test_drift_needs_an_ops_key(http: httpx.Client, api: Api) -> None:
    for method in ("GET", "POST"):
        answer = http.request(method, "/v1/demo/drift", headers={**api.headers, "x-actor": "anna"})
        assert answer.status_code == 403 and answer.headers["content-type"].startswith("application/problem+json")
    assert http.get("/v1/demo/drift").status_code == 401
