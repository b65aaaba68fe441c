"""A seeded month of T-Bank acquiring on moto's DynamoDB (the local stack's table): card and SBP payments recorded on
27–29 November, a refund deducted from a payout, a payout arriving through the T-Bank business API and in a 1C file
(counted once), a payout short by exactly one payment (flagged, naming it), a payment never paid out (reported after
the provider's usual delay) — and the month's reconciliation report."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from typing import Any

from paybridge.app.changes import InvoiceChanges
from paybridge.domain.bank import StatementLine
from paybridge.domain.events import MoneyReceived, RefundConfirmed
from paybridge.storage.repository import ProviderEventRecord
from paybridge.wiring import get_banking, get_changes, get_settlements
from tests.conftest import Api, Sandbox

TENANT = "acquiring-shop"
ACCOUNT = "40702810500000054321"
TBANK_INN = "7710140679"


def recorded_at(changes: InvoiceChanges, invoice_id: str, at: datetime, event: Any, ref: str) -> None:
    """A T-Bank money fact as its notification records it, at `at` (the clock of the change)."""
    at_then = dataclasses.replace(changes, clock=lambda: at)
    record = ProviderEventRecord(provider="tbank", event_id=ref, tenant_id=TENANT, invoice_id=invoice_id, summary="")
    at_then.apply(TENANT, invoice_id, event, record, announce=event.kind)


def payout(amount: int, purpose: str, day: date, document: str, source: str) -> StatementLine:
    return StatementLine(
        source=source,  # type: ignore[arg-type]
        account=ACCOUNT,
        value_date=day,
        amount=amount,
        purpose=purpose,
        payer_name='АО "ТБанк"',
        payer_inn=TBANK_INN,
        payer_account="30232810100000000974",
        document_number=document,
    )


def test_a_seeded_month_of_tbank_acquiring_reconciles(http: Any, unique: Any) -> None:
    api = Api(http, tenant=TENANT)
    crm = Sandbox(http, tenant=TENANT, crm_token="sandbox-crm-token-acquiring-shop")
    changes = get_changes()
    plan = {  # name: (amount, method, day of November, hour UTC)
        "A": (1_000_000, "card", 27, 9), "B": (500_000, "sbp", 27, 12), "C": (200_000, "card", 27, 15),
        "D": (300_000, "card", 28, 8), "E": (400_000, "card", 28, 10), "F": (100_000, "sbp", 28, 11),
        "G": (600_000, "card", 29, 10),
    }  # fmt: skip
    invoices: dict[str, dict[str, Any]] = {}
    refs: dict[str, str] = {}
    for name, (amount, method, day, hour) in plan.items():
        deal = crm.new_deal(amount=amount)
        created = api.create(deal_id=deal["id"], number=unique(f"N{name}-"), amount=amount)
        assert created.status_code == 201, created.text
        invoice = api.wait(created.json()["invoice_id"], lambda i: i["state"] == "awaiting_payment")
        refs[name] = f"tbank:{unique('41')}"
        at = datetime(2026, 11, day, hour, tzinfo=UTC)
        recorded_at(
            changes, invoice["invoice_id"], at, MoneyReceived(ref=refs[name], amount=amount, method=method), refs[name]
        )
        invoices[name] = invoice
    refund_ref = f"tbank:refund:{refs['A']}:r1"
    recorded_at(
        changes, invoices["A"]["invoice_id"], datetime(2026, 11, 27, 18, tzinfo=UTC),
        RefundConfirmed(ref=refund_ref, amount=100_000), refund_ref,
    )  # fmt: skip

    banking = get_banking()
    # 30.11: the payout for 27.11 — A + B + C less 2.49 % and the refund — polled from the bank's API, then in 1C
    first = 1_000_000 - 24_900 + 500_000 - 12_450 + 200_000 - 4_980 - 100_000
    purpose = "Перечисление средств по операциям интернет-эквайринга за 27.11.2026. НДС не облагается"
    polled = banking.reconcile_lines(TENANT, [payout(first, purpose, date(2026, 11, 30), "901", "tbank_api")])
    [decision] = polled.records
    assert decision.kind == "settlement" and not decision.needs_a_person, decision.reason
    assert decision.settlement is not None and decision.settlement.fees == 24_900 + 12_450 + 4_980
    uploaded = banking.reconcile_lines(TENANT, [payout(first, purpose, date(2026, 11, 30), "901", "1c_file")])
    assert (uploaded.duplicates, uploaded.records) == (1, [])  # the same payout in the 1C file: once

    # 30.11: the payout for 28.11 leaves E out — flagged, naming it; D and F are settled
    second = 300_000 - 7_470 + 100_000 - 2_490
    short = banking.reconcile_lines(
        TENANT,
        [payout(second, "Возмещение по операциям эквайринга за 28.11.2026", date(2026, 11, 30), "902", "1c_file")],
    )
    [flagged] = short.records
    assert flagged.kind == "settlement" and flagged.needs_a_person and short.needs_a_person == 1
    assert flagged.settlement is not None and flagged.settlement.missing == (refs["E"],)
    assert refs["E"] in flagged.reason and invoices["E"]["invoice_id"] in flagged.reason
    assert any(r.decision.fingerprint == flagged.fingerprint for r in banking.review(TENANT))

    # the invoices say where their money is; customers' invoices were never paid by the payouts
    a = api.get(invoices["A"]["invoice_id"])
    assert a["paid"] == 1_000_000 and a["refunded"] == 100_000  # nothing from the payout lines landed on it
    trail = {t["ref"]: t for t in a["money_trail"]}
    assert trail[refs["A"]]["stage"] == "settled" and trail[refs["A"]]["settled_on"] == "2026-11-30"
    assert trail[refs["A"]]["fee"] == 24_900 and trail[refs["A"]]["fee_basis"] == "estimate"
    assert trail[refund_ref]["stage"] == "settled"
    assert [t["stage"] for t in api.get(invoices["E"]["invoice_id"])["money_trail"]] == ["recorded"]

    report = get_settlements().report(TENANT, "2026-11", today=date(2026, 12, 4))
    tbank = next(p for p in report["providers"] if p["provider"] == "tbank")
    assert tbank["recorded"] == {"count": 7, "amount": 3_100_000}
    assert tbank["by_method"] == {"card": 2_500_000, "sbp": 600_000}
    assert tbank["refunds"] == {"count": 1, "amount": 100_000}
    assert tbank["settled"] == {"count": 5, "amount": 2_100_000}
    assert tbank["payouts"] == {"count": 2, "amount": first + second, "fees": 42_330 + 9_960}
    assert sorted(u["ref"] for u in tbank["unsettled"]) == sorted([refs["E"], refs["G"]])  # past 2 working days
    assert [d["missing"] for d in tbank["differences"]] == [[refs["E"]]]
    assert report["totals"] == {
        "recorded": 3_100_000, "settled": 2_100_000, "fees": 42_330 + 9_960, "unsettled": 1_000_000, "differences": 1,
    }  # fmt: skip


def test_money_recorded_before_the_ledger_is_indexed_once_by_the_backfill(http: Any, unique: Any) -> None:
    from paybridge.storage.table import invoice_pk
    from paybridge.wiring import get_repo, get_settings
    from scripts.backfill_acquiring_ledger import backfill

    api = Api(http, tenant=TENANT)
    deal = Sandbox(http, tenant=TENANT, crm_token="sandbox-crm-token-acquiring-shop").new_deal(amount=70_000)
    created = api.create(deal_id=deal["id"], number=unique("OLD-"), amount=70_000)
    invoice = api.wait(created.json()["invoice_id"], lambda i: i["state"] == "awaiting_payment")
    ref = f"tbank:{unique('42')}"
    at = datetime(2026, 10, 5, 9, tzinfo=UTC)
    recorded_at(get_changes(), invoice["invoice_id"], at, MoneyReceived(ref=ref, amount=70_000, method="card"), ref)
    client, table = get_repo().client, get_settings().table_name  # type: ignore[attr-defined]
    pk = {"S": invoice_pk(TENANT, invoice["invoice_id"])}
    audits = client.query(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :a)",
        ExpressionAttributeValues={":pk": pk, ":a": {"S": "AUDIT#"}},
    )["Items"]
    [money] = [a for a in audits if "gsi1pk" in a]
    # Given the audit entry as the release before the ledger wrote it
    client.update_item(TableName=table, Key={"pk": pk, "sk": money["sk"]}, UpdateExpression="REMOVE gsi1pk, gsi1sk")
    store = get_settlements().store
    october = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 31, tzinfo=UTC))
    assert ref not in {op.ref for op in store.operations(TENANT, "tbank", *october)}

    assert backfill(client, table, dry_run=True)["indexed"] >= 1
    assert ref not in {op.ref for op in store.operations(TENANT, "tbank", *october)}  # a dry run writes nothing
    assert backfill(client, table)["indexed"] >= 1

    [found] = [op for op in store.operations(TENANT, "tbank", *october) if op.ref == ref]
    assert (found.amount, found.method, found.invoice_id, found.recorded_at) == (
        70_000,
        "card",
        invoice["invoice_id"],
        at,
    )
    assert backfill(client, table)["indexed"] == 0  # again: nothing to do
