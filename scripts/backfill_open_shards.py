"""Move the open invoices written before `OpenByDue` was sharded (gsi2pk=OPEN) to their shard (gsi2pk=OPEN#<k>).
Run once per stage after deploying the sharded release; invoices written since carry their shard already, and
running it again changes nothing. Until it has run the sweep still finds them: it reads the legacy partition too.

    python scripts/backfill_open_shards.py --table paybridge-prod [--dry-run]

It reads the legacy partition through the index (no table scan) and writes only `gsi2pk`, only while the invoice is
the version it read and still in the legacy partition (an invoice changed meanwhile got its key from its own write).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def backfill(client: DynamoDBClient, table: str, dry_run: bool = False) -> dict[str, int]:
    from paybridge.storage.table import GSI_OPEN_BY_DUE, OPEN_PK, open_pk

    counts = {"legacy": 0, "moved": 0, "skipped": 0}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "IndexName": GSI_OPEN_BY_DUE,
        "KeyConditionExpression": "gsi2pk = :legacy",
        "ExpressionAttributeValues": {":legacy": {"S": OPEN_PK}},
    }
    for page in client.get_paginator("query").paginate(**kwargs):
        for key in page.get("Items", []):
            counts["legacy"] += 1
            if dry_run:
                continue
            item = client.get_item(TableName=table, Key={"pk": key["pk"], "sk": key["sk"]}, ConsistentRead=True).get(
                "Item"
            )
            if item is None or item.get("gsi2pk") != {"S": OPEN_PK}:
                counts["skipped"] += 1
                continue
            invoice_id = key["pk"]["S"].split("#")[2]
            try:
                client.update_item(
                    TableName=table,
                    Key={"pk": key["pk"], "sk": key["sk"]},
                    UpdateExpression="SET gsi2pk = :shard",
                    ConditionExpression="#v = :v AND gsi2pk = :legacy",
                    ExpressionAttributeNames={"#v": "version"},
                    ExpressionAttributeValues={
                        ":shard": {"S": open_pk(invoice_id)},
                        ":v": item["version"],
                        ":legacy": {"S": OPEN_PK},
                    },
                )
                counts["moved"] += 1
            except client.exceptions.ConditionalCheckFailedException:
                counts["skipped"] += 1  # it changed meanwhile: its own write keyed it
    return counts


if __name__ == "__main__":
    from backfill_cli import on_path, run

    on_path()
    sys.exit(run(backfill, __doc__))
