"""The one-off backfill of the ops indexes on moto's table: an invoice written before the levers existed (no
`ByState` keys, no deal index item) is listed and re-synced once indexed, and nothing else about it changes."""

from __future__ import annotations

from typing import Any

from paybridge.storage.table import invoice_pk
from paybridge.wiring import get_repo, get_settings
from scripts.backfill_ops_indexes import backfill
from tests.conftest import Api, Sandbox


def test_an_invoice_from_before_the_levers_is_indexed_once_and_only_its_index_changes(
    http: Any, sandbox: Sandbox, api: Api
) -> None:
    deal = sandbox.new_deal(amount=10_000)
    invoice = api.issue_awaiting(deal["id"], amount=10_000)
    client, table = get_repo().client, get_settings().table_name  # type: ignore[attr-defined]
    key = {"pk": {"S": invoice_pk("demo", invoice["invoice_id"])}, "sk": {"S": "INVOICE"}}
    # Given the invoice as an older release wrote it
    client.update_item(TableName=table, Key=key, UpdateExpression="REMOVE gsi5pk, gsi5sk")
    client.delete_item(
        TableName=table, Key={"pk": {"S": f"DEAL#demo#{deal['id']}"}, "sk": {"S": f"INV#{invoice['invoice_id']}"}}
    )
    ops = {"x-api-key": "demo-ops-key"}
    assert http.get("/v1/demo/invoices", params={"deal_id": deal["id"]}, headers=ops).json()["count"] == 0
    before = client.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]

    counts = backfill(client, table)

    assert counts["indexed"] >= 1
    after = client.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    assert {k: v for k, v in after.items() if not k.startswith("gsi5")} == before
    assert after["gsi5pk"] == {"S": "STATE#demo#awaiting_payment"}
    listed = http.get("/v1/demo/invoices", params={"deal_id": deal["id"]}, headers=ops).json()
    assert [i["invoice_id"] for i in listed["invoices"]] == [invoice["invoice_id"]]
    by_state = http.get("/v1/demo/invoices", params={"state": "awaiting_payment", "limit": 200}, headers=ops).json()
    assert invoice["invoice_id"] in {i["invoice_id"] for i in by_state["invoices"]}
    # running it again changes nothing
    assert backfill(client, table)["indexed"] == 0
