"""End-to-end on the local stack, over HTTP: the CRM click, the PSP checkout, the deal following the money."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest

from devstack.demo import run_demo
from tests.conftest import Api, Sandbox, payment_id_of

pytestmark = pytest.mark.e2e


def test_demo_scenario_ends_paid_within_a_second(stack: Any) -> None:
    # Given the local stack / When the scripted demo runs
    summary = run_demo(stack.url, out=lambda _line: None)
    # Then the invoice is paid, the deal is PAID, and the CRM heard of it within a second of the notification
    assert summary["final_state"] == "paid"
    assert summary["deal_stage"] == "PAID"
    assert 0 < summary["seconds_to_crm"] < 1.0


def test_crm_click_issues_one_invoice_and_the_link_lands_in_the_deal(sandbox: Sandbox, api: Api) -> None:
    deal = sandbox.new_deal(amount=250_000, contact={"email": "a@example.com"})
    first = sandbox.click_issue(deal["id"])
    second = sandbox.click_issue(deal["id"])
    assert first["webhook_status"] == 200 and first["answer"]["status"] == "issued"
    assert second["answer"]["status"] == "exists" and not second["answer"]["invoices"][0]["created"]
    assert [i["invoice_id"] for i in second["answer"]["invoices"]] == [first["answer"]["invoices"][0]["invoice_id"]]
    published = sandbox.wait_deal(deal["id"], lambda d: bool(d["payment_url"]))
    assert published["stage"] == "AWAITING_PAYMENT"
    invoice = api.get(first["answer"]["invoices"][0]["invoice_id"])
    assert invoice["amount"] == 250_000 and invoice["payment_url"] == published["payment_url"]
    # And the client got the link (sent after the deal was updated: poll for it)
    deadline = time.monotonic() + 10
    while True:
        messages = sandbox.http.get(f"{sandbox.crm}/messages", headers=sandbox.auth).json()
        mine = [m for m in messages if m["deal_id"] == deal["id"]]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(mine) == 1 and published["payment_url"] in mine[0]["text"] and mine[0]["to_email"] == "a@example.com"


def test_partial_payment_then_the_rest(stack: Any, sandbox: Sandbox, api: Api) -> None:
    deal = sandbox.new_deal(amount=100_000)
    invoice = api.issue_awaiting(deal["id"], amount=100_000)
    payment_id = payment_id_of(invoice)

    # When the client pays 40 000 of 100 000
    assert sandbox.pay(payment_id, "part", 40_000).status_code == 200
    partial = sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "PARTIALLY_PAID" and bool(d["notifications"]))
    # Then the deal is partially paid and the manager is told the shortfall
    assert "600.00 RUB" in partial["notifications"][-1]["text"]
    assert api.get(invoice["invoice_id"])["state"] == "partially_paid"

    # When the rest comes
    assert sandbox.pay(payment_id, "pay").status_code == 200
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "PAID")
    final = api.wait(invoice["invoice_id"], lambda i: i["state"] == "paid")
    assert final["paid"] == 100_000
    # Nothing waited in Step Functions: the execution ended once the link was published
    assert stack.aws.entered_states(invoice["invoice_id"]) == ["Start", "CreatePayment"]


def test_decline_keeps_the_invoice_payable(sandbox: Sandbox, api: Api) -> None:
    deal = sandbox.new_deal(amount=70_000)
    invoice = api.issue_awaiting(deal["id"], amount=70_000)
    assert sandbox.pay(payment_id_of(invoice), "decline").status_code == 200
    declined = sandbox.wait_deal(deal["id"], lambda d: any("отклонена" in t["text"] for t in d["timeline"]))
    assert declined["stage"] == "AWAITING_PAYMENT"
    after = api.get(invoice["invoice_id"])
    assert after["state"] == "awaiting_payment" and any(h["event"] == "payment_declined" for h in after["history"])
    # The client tries again and pays
    assert sandbox.pay(payment_id_of(invoice), "pay").status_code == 200
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "PAID")


def test_link_expires_and_the_payment_is_cancelled_at_the_psp(stack: Any, sandbox: Sandbox, api: Api) -> None:
    deal = sandbox.new_deal(amount=50_000)
    invoice = api.issue_awaiting(deal["id"], amount=50_000, lifetime_seconds=4)
    # The deadline passes; the deadline sweep's next run (every minute: run now) starts the expiry
    time.sleep(max(0.0, datetime.fromisoformat(invoice["expires_at"]).timestamp() - time.time()) + 0.1)
    swept = stack.aws.invoke("DeadlineSweepFunction", {"source": "aws.events", "detail-type": "Scheduled Event"})
    assert swept["started"] >= 1
    # The stage lands before the manager's message: wait for both, then check what the message says
    expired = sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "EXPIRED" and bool(d["notifications"]), timeout=20)
    assert any("истёк" in n["text"] for n in expired["notifications"])
    assert api.get(invoice["invoice_id"])["state"] == "expired"
    payment = sandbox.http.get(f"/sandbox/psp/api/payments/{payment_id_of(invoice)}").json()
    assert payment["status"] == "canceled"
    assert sandbox.pay(payment_id_of(invoice), "pay").status_code == 409
    expiry = f"{invoice['invoice_id']}-expiry"
    deadline = time.monotonic() + 10
    while stack.aws.execution(expiry)["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.aws.entered_states(expiry) == ["Start", "ExpireInvoice", "IsFinal", "Done"]
    # A second run of the sweep finds nothing due
    again = stack.aws.invoke("DeadlineSweepFunction", {"source": "aws.events", "detail-type": "Scheduled Event"})
    assert invoice["invoice_id"] not in str(again)


def test_cancel_unpaid_invoice(stack: Any, sandbox: Sandbox, api: Api) -> None:
    deal = sandbox.new_deal(amount=30_000)
    invoice = api.issue_awaiting(deal["id"], amount=30_000)
    response = api.cancel(invoice["invoice_id"], "client changed their mind")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    sandbox.wait_deal(deal["id"], lambda d: d["stage"] == "CANCELLED")
    assert api.cancel(invoice["invoice_id"]).status_code == 200  # idempotent
    payment = sandbox.http.get(f"/sandbox/psp/api/payments/{payment_id_of(invoice)}").json()
    assert payment["status"] == "canceled"
    deadline = time.monotonic() + 10
    while stack.aws.execution(invoice["invoice_id"])["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.aws.execution(invoice["invoice_id"])["status"] == "SUCCEEDED"


def test_paid_invoice_cannot_be_cancelled(sandbox: Sandbox, api: Api) -> None:
    deal = sandbox.new_deal(amount=20_000)
    invoice = api.issue_awaiting(deal["id"], amount=20_000)
    sandbox.pay(payment_id_of(invoice), "pay")
    api.wait(invoice["invoice_id"], lambda i: i["state"] == "paid")
    response = api.cancel(invoice["invoice_id"])
    assert response.status_code == 409
    assert response.json()["type"].endswith("/invalid-transition")
    assert api.get(invoice["invoice_id"])["state"] == "paid"
