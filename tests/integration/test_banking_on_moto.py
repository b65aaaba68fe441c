"""Bank reconciliation on moto's DynamoDB: a line counts once whoever reads it and however often, a recorded decision
is the one applied even after a crash, and concurrent readers of one line pay once."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

from paybridge.domain.bank import Allocation, Decision, StatementLine
from paybridge.wiring import get_banking
from tests.conftest import Api, Sandbox

TENANT = "bank-shop"
ACCOUNT = "40702810900000012345"


def awaiting(http: Any, amount: int, number: str) -> dict[str, Any]:
    api = Api(http, tenant=TENANT)
    deal = Sandbox(http, tenant=TENANT, crm_token="sandbox-crm-token-bank-shop").new_deal(amount=amount)
    created = api.create(deal_id=deal["id"], number=number, amount=amount)
    assert created.status_code == 201, created.text
    return api.wait(created.json()["invoice_id"], lambda i: i["state"] == "awaiting_payment")


def line(amount: int, purpose: str, document: str) -> StatementLine:
    return StatementLine(
        source="sandbox",
        account=ACCOUNT,
        value_date=date(2026, 11, 24),
        amount=amount,
        purpose=purpose,
        payer_name="ООО П",
        payer_inn="7707083893",
        payer_account="40702810400000000001",
        document_number=document,
    )


def test_concurrent_readers_of_one_line_pay_the_invoice_once(http: Any, unique: Any) -> None:
    number = unique("C-")
    invoice = awaiting(http, 50_000, number)
    transfer = line(50_000, f"Оплата по счету № {number}", unique("d"))
    banking = get_banking()
    with ThreadPoolExecutor(max_workers=8) as pool:
        summaries = list(pool.map(lambda _: banking.reconcile_lines(TENANT, [transfer]), range(8)))
    assert sum(s.applied for s in summaries) >= 1
    final = Api(http, tenant=TENANT).wait(invoice["invoice_id"], lambda i: i["state"] == "paid")
    assert final["paid"] == 50_000
    assert [h["event"] for h in final["history"]].count("money_received") == 1


def test_a_recorded_decision_is_applied_after_a_crash_even_if_the_matcher_would_now_decide_otherwise(
    http: Any, unique: Any
) -> None:
    first, second = unique("S-"), unique("S-")
    a, b = awaiting(http, 30_000, first), awaiting(http, 20_000, second)
    transfer = line(50_000, f"Оплата по счетам {first} и {second}", unique("d"))
    banking = get_banking()
    # A run decided "split", recorded it and applied invoice A, then died before B
    decision = Decision(
        fingerprint=transfer.fingerprint,
        kind="split",
        allocations=(
            Allocation(invoice_id=a["invoice_id"], number=first, amount=30_000),
            Allocation(invoice_id=b["invoice_id"], number=second, amount=20_000),
        ),
        reason="amounts add up",
        numbers_found=(first, second),
    )
    banking.store.record_line(TENANT, transfer, decision)
    banking._apply(
        banking.tenants.get(TENANT),
        transfer,
        dataclasses.replace(decision, allocations=decision.allocations[:1]),
    )
    # The next reader of the line (A is paid now, so the matcher alone would no longer see a split) finishes the job
    summary = banking.reconcile_lines(TENANT, [transfer])
    assert summary.decisions == {"split": 1}
    api = Api(http, tenant=TENANT)
    assert api.wait(a["invoice_id"], lambda i: i["state"] == "paid")["paid"] == 30_000
    assert api.wait(b["invoice_id"], lambda i: i["state"] == "paid")["paid"] == 20_000
    # And again: a duplicate, nothing moves
    assert banking.reconcile_lines(TENANT, [transfer]).duplicates == 1
    assert api.get(a["invoice_id"])["paid"] == 30_000


def test_a_line_to_someone_elses_account_is_not_ours(http: Any, unique: Any) -> None:
    number = unique("X-")
    invoice = awaiting(http, 10_000, number)
    foreign = dataclasses.replace(line(10_000, f"Оплата сч. {number}", unique("d")), account="40702810000000099999")
    summary = get_banking().reconcile_lines(TENANT, [foreign])
    assert summary.not_ours == 1 and summary.applied == 0
    assert Api(http, tenant=TENANT).get(invoice["invoice_id"])["paid"] == 0
