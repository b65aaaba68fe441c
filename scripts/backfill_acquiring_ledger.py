"""Index the provider money facts recorded before the acquiring ledger existed, so that payouts of those payments are
matched and the months before show in the reconciliation report. Run once per stage after deploying the release;
money recorded since carries its ledger keys from its own write, and running it again changes nothing.

    python scripts/backfill_acquiring_ledger.py --table paybridge-prod [--dry-run]

It scans the table for audit entries without ledger keys (a one-off Scan: no index holds them), keeps those of a
provider's payment or refund (`money_received` / `refund_confirmed` with a `tbank:` `yookassa:` `stripe:` `sandbox:`
ref), reads the invoice once for the payment's method, and writes only `gsi1pk` / `gsi1sk`, only where none is set.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def backfill(client: DynamoDBClient, table: str, dry_run: bool = False) -> dict[str, int]:
    from paybridge.domain.invoice import AuditEntry, Invoice
    from paybridge.storage.settlements import ledger_keys

    counts = {"audit_entries": 0, "indexed": 0, "skipped": 0}
    invoices: dict[str, Invoice | None] = {}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "begins_with(sk, :audit) AND attribute_not_exists(gsi1pk)",
        "ExpressionAttributeValues": {":audit": {"S": "AUDIT#"}},
    }
    for page in client.get_paginator("scan").paginate(**kwargs):
        for item in page.get("Items", []):
            counts["audit_entries"] += 1
            audit = AuditEntry.model_validate_json(item["doc"]["S"])
            if audit.event not in ("money_received", "refund_confirmed"):
                continue
            pk = item["pk"]["S"]
            if pk not in invoices:
                found = client.get_item(TableName=table, Key={"pk": item["pk"], "sk": {"S": "INVOICE"}}).get("Item")
                invoices[pk] = Invoice.model_validate_json(found["doc"]["S"]) if found else None
            invoice = invoices[pk]
            keys = ledger_keys(invoice, audit) if invoice is not None else {}
            if not keys:
                continue
            if dry_run:
                counts["indexed"] += 1
                continue
            try:
                client.update_item(
                    TableName=table,
                    Key={"pk": item["pk"], "sk": item["sk"]},
                    UpdateExpression="SET gsi1pk = :pk, gsi1sk = :sk",
                    ConditionExpression="attribute_exists(pk) AND attribute_not_exists(gsi1pk)",
                    ExpressionAttributeValues={":pk": keys["gsi1pk"], ":sk": keys["gsi1sk"]},
                )
                counts["indexed"] += 1
            except client.exceptions.ConditionalCheckFailedException:
                counts["skipped"] += 1
    return counts


def main() -> int:
    import boto3

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", required=True)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    print(backfill(boto3.client("dynamodb"), args.table, args.dry_run))
    return 0


if __name__ == "__main__":
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sys.path[:0] = [str(root / "layers" / "common"), str(root)]
    sys.exit(main())
