"""Acquiring settlements end to end on the local stack: YooKassa card and SBP payments and a refund, its payouts on
the T-Bank business statement (API + webhook) and in a 1C file, matched three ways and reported for the month."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from devstack.demo_settlements import ACCOUNT, TENANT, Shop, run_settlement_demo
from paybridge.wiring import get_banking
from tests.conftest import Sandbox, poll

API = {"x-api-key": "demo-api-key"}


def test_the_month_reconciles_three_ways(http: Any, stack: Any) -> None:
    lines: list[str] = []
    summary = run_settlement_demo(stack.url, out=lines.append)
    assert summary["payout_kinds"] == ["settlement"]
    assert summary["first_payout_matched"] and summary["upload_duplicates"] == 1  # the API and the 1C file: once
    assert summary["short_payout_flagged"] and summary["review_lines"] >= 1
    assert summary["late_payment_settled"]

    report = http.get(f"/v1/{TENANT}/reconciliation", params={"month": summary["month"]}, headers=API).json()
    yookassa = next(p for p in report["providers"] if p["provider"] == "yookassa")
    assert yookassa["by_method"]["card"] >= 2_800_000 and yookassa["by_method"]["sbp"] >= 600_000
    assert yookassa["refunds"] == {"count": 1, "amount": 200_000}  # confirmed by the answer and the notification: once
    assert yookassa["settled"]["amount"] == yookassa["recorded"]["amount"]  # every payment reached the bank
    assert yookassa["fees"] == yookassa["fees_exact"]  # YooKassa's own income_amount, nothing estimated
    assert (
        yookassa["payouts"]["amount"]
        == yookassa["recorded"]["amount"] - yookassa["refunds"]["amount"] - (yookassa["payouts"]["fees"])
    )
    assert any("is missing from this payout" in r for d in yookassa["differences"] for r in d["reasons"])
    assert set(report["totals"]) >= {"recorded", "settled", "fees", "unsettled", "differences"}
    assert report["totals"]["unsettled"] == 0

    # the short payout on the review list: a person may dismiss it once explained, never assign it to invoices
    line = next(x for x in Shop(http).review() if x["decision"]["kind"] == "settlement")
    assert line["decision"]["settlement"]["flagged"] and line["decision"]["settlement"]["missing"]
    path = f"/v1/{TENANT}/bank/review/{line['decision']['fingerprint']}/resolve"
    ops = {"x-api-key": "demo-ops-key", "X-Actor": "anna"}
    assign = {"assign": [{"invoice_id": line["decision"]["settlement"]["settled"][0]["invoice_id"], "amount": 100}]}
    refused = http.post(
        path, headers={**ops, "Idempotency-Key": "payout-assign"}, json={**assign, "reason": "the shortfall is ours"}
    )
    assert refused.status_code == 422 and "not a customer's payment" in refused.json()["detail"]
    dismissed = http.post(
        path,
        headers={**ops, "Idempotency-Key": "payout-dismiss"},
        json={"dismiss": {"reason": "YooKassa paid the missing payment in the next payout"}},
    )
    assert dismissed.status_code == 200, dismissed.text
    assert not [x for x in Shop(http).review() if x["decision"]["fingerprint"] == line["decision"]["fingerprint"]]


def test_a_payout_is_never_a_customer_payment_and_the_deal_hears_once(http: Any) -> None:
    shop = Shop(http)
    invoice = shop.pay(shop.invoice(f"ЭК-T-{datetime.now(UTC):%H%M%S%f}", 990_000), "bank_card")
    payout = shop.payout()
    # the bank shows it; the poller (not the webhook) reads it: its record's kind is `settlement`
    shop.http.post(
        "/fake/tbank_business/_control/operations",
        json={
            "account": ACCOUNT,
            "amount": payout["amount"],
            "purpose": payout["purpose"],
            "payer_name": payout["payer_name"],
            "payer_inn": payout["payer_inn"],
            "payer_account": payout["payer_account"],
            "document_number": "P-1",
            "notify": False,
        },
    )
    polled = get_banking().poll(TENANT, datetime.now(UTC), force=True)
    assert [d.kind for d in polled.records] == ["settlement"] and polled.needs_a_person == 0
    again = shop.upload(payout, "P-1")
    assert again["duplicates"] == 1 and again["applied"] == 0
    assert not [line for line in shop.review() if line["amount"] == payout["amount"]]

    trail = shop.get(invoice["invoice_id"])["money_trail"]
    assert [(t["kind"], t["stage"], t["fee"], t["fee_basis"]) for t in trail] == [
        ("payment", "settled", 34_650, "exact")  # 3.5 % of 9 900.00, YooKassa's income_amount
    ]
    sandbox = Sandbox(http, tenant=TENANT, crm_token="sandbox-crm-token-acquiring-shop")
    deal = sandbox.wait_deal(
        invoice["deal_id"], lambda d: any("поступила на расчётный счёт" in t["text"] for t in d["timeline"])
    )
    assert sum("поступила на расчётный счёт" in t["text"] for t in deal["timeline"]) == 1
    assert "комиссия 346.50" in next(t["text"] for t in deal["timeline"] if "расчётный счёт" in t["text"])


def test_the_report_refuses_a_bad_month_and_needs_a_key(http: Any) -> None:
    bad = http.get(f"/v1/{TENANT}/reconciliation", params={"month": "2026-13"}, headers=API)
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    assert http.get(f"/v1/{TENANT}/reconciliation", params={"month": "2026-11"}).status_code == 401
    assert http.get("/v1/demo/reconciliation", params={"month": "2026-11"}, headers=API).status_code == 404
    poll(
        "an empty month",
        lambda: http.get(f"/v1/{TENANT}/reconciliation", params={"month": "2020-01"}, headers=API).json(),
        lambda r: r["totals"]["recorded"] == 0,
        5,
    )


def test_make_reconcile_report_prints_a_table_writes_html_and_ends_with_json(stack: Any, tmp_path: Any) -> None:
    import json
    import subprocess
    import sys
    from zoneinfo import ZoneInfo

    from tests.conftest import ROOT

    month = f"{datetime.now(UTC).astimezone(ZoneInfo('Europe/Moscow')):%Y-%m}"  # the scenario above ran this month
    out = tmp_path / "reconciliation.html"
    result = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, "scripts/reconcile_report.py", "--tenant", TENANT, "--month", month, "--html", str(out)],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PAYBRIDGE_PORT": stack.url.rsplit(":", 1)[1]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    last = json.loads(lines[-1])
    assert {"recorded", "settled", "fees", "unsettled", "differences"} <= set(last)
    assert last["tenant"] == TENANT and last["recorded"] > 0 and last["differences"] >= 1
    text = "\n".join(lines)
    assert "yookassa" in text and "is missing from this payout" in text
    page = out.read_text(encoding="utf-8")
    assert "<svg" in page and "<script" not in page and "is missing from this payout" in page
