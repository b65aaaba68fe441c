"""Put what an older release wrote into the retention's reach: cancelled or blocked subscriptions still holding
their customer's data, and bank lines holding a payer's name, INN or account, get their `ByRetention` keys
(`SUBPII#<tenant>`, `BANKPII#<tenant>`). Run once per stage after deploying the release that erases them; items
written since carry the keys already, and running it again changes nothing.

    python scripts/backfill_retention_index.py --table paybridge-prod [--dry-run]

A subscription closed before `closed_at` existed counts its retention from its start (it was closed at some point
after that); a bank line from its recording. Only index attributes are written, and only while the item is what was
read (a subscription's version; a line not erased meanwhile): no fact, version or history changes.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def backfill(client: DynamoDBClient, table: str, dry_run: bool = False) -> dict[str, int]:
    from paybridge.domain.bank import LINE_JSON
    from paybridge.domain.subscriptions import Subscription
    from paybridge.storage.table import retention_key

    counts = {"subscriptions": 0, "bank_lines": 0, "indexed": 0}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "(sk = :sub OR sk = :line) AND attribute_not_exists(gsi6pk)",
        "ExpressionAttributeValues": {":sub": {"S": "SUBSCRIPTION"}, ":line": {"S": "LINE"}},
    }
    for page in client.get_paginator("scan").paginate(**kwargs):
        for item in page.get("Items", []):
            if item["sk"]["S"] == "SUBSCRIPTION":
                sub = Subscription.model_validate_json(item["doc"]["S"])
                if not sub.holds_closed_customer_data:
                    continue
                counts["subscriptions"] += 1
                partition = retention_key(sub.tenant_id, "SUBPII")
                sort = f"{(sub.closed_at or sub.started_at).isoformat()}#{sub.subscription_id}"
                condition, values = "version = :v", {":v": item["version"]}
            else:
                line = LINE_JSON.validate_json(item["line"]["S"])
                if not line.has_payer_data or "payer_erased_at" in item:
                    continue
                counts["bank_lines"] += 1
                fingerprint = item["pk"]["S"].rsplit("#", 1)[-1]
                partition = retention_key(item["tenant_id"]["S"], "BANKPII")
                sort = f"{item['recorded_at']['S']}#{fingerprint}"
                condition, values = "attribute_not_exists(payer_erased_at)", {}
            if dry_run:
                continue
            try:
                client.update_item(
                    TableName=table,
                    Key={"pk": item["pk"], "sk": item["sk"]},
                    UpdateExpression="SET gsi6pk = :p, gsi6sk = :s",
                    ConditionExpression=condition,
                    ExpressionAttributeValues={":p": {"S": partition}, ":s": {"S": sort}, **values},
                )
                counts["indexed"] += 1
            except client.exceptions.ConditionalCheckFailedException:
                pass  # it changed meanwhile: its own write indexed it (or erased it)
    return counts


if __name__ == "__main__":
    from backfill_cli import on_path, run

    on_path()
    sys.exit(run(backfill, __doc__))
