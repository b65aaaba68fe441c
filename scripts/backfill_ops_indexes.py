"""Index the invoices written before the ops levers existed: their `ByState` keys (the invoice list) and their deal
index item (a deal's invoices, for the re-sync). Run once per stage after deploying the `ByState` index; invoices
written since carry both already, and running it again changes nothing.

    python scripts/backfill_ops_indexes.py --table paybridge-prod [--dry-run]

Only index attributes are written, and only while the invoice is the version that was read (an invoice changed
meanwhile got its keys from its own write): no invoice fact, version or history changes.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def backfill(client: DynamoDBClient, table: str, dry_run: bool = False) -> dict[str, int]:
    from paybridge.domain.invoice import Invoice
    from paybridge.storage.table import INVOICE_SK, deal_key, state_key

    counts = {"invoices": 0, "indexed": 0}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "sk = :sk AND attribute_not_exists(gsi5pk)",
        "ExpressionAttributeValues": {":sk": {"S": INVOICE_SK}},
    }
    for page in client.get_paginator("scan").paginate(**kwargs):
        for item in page.get("Items", []):
            invoice = Invoice.model_validate_json(item["doc"]["S"])
            counts["invoices"] += 1
            if dry_run:
                continue
            client.put_item(
                TableName=table,
                Item={**deal_key(invoice.tenant_id, invoice.deal_id), "sk": {"S": f"INV#{invoice.invoice_id}"}},
            )
            try:
                client.update_item(
                    TableName=table,
                    Key={"pk": item["pk"], "sk": item["sk"]},
                    UpdateExpression="SET gsi5pk = :pk, gsi5sk = :sk",
                    ConditionExpression="#v = :v",
                    ExpressionAttributeNames={"#v": "version"},
                    ExpressionAttributeValues={
                        ":pk": {"S": state_key(invoice.tenant_id, invoice.state.value)},
                        ":sk": {"S": f"{invoice.created_at.isoformat()}#{invoice.invoice_id}"},
                        ":v": item["version"],
                    },
                )
                counts["indexed"] += 1
            except client.exceptions.ConditionalCheckFailedException:
                pass  # it changed meanwhile: its own write indexed it
    return counts


if __name__ == "__main__":
    from backfill_cli import on_path, run

    on_path()
    sys.exit(run(backfill, __doc__))
