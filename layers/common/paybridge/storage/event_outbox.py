"""The domain events' outbox (see `app/publishing.py`).

- outbox batch: pk=PUBOUT#<shard> sk=<batch key>  doc=<the events' JSON>, created_at (ISO UTC)
  The batch key is the change's identity (`<invoice>.v<version>`, `<subscription>.p<period>.charged`, …); the shard
  (a hash of the key mod 16) spreads the writes, and the sweep reads all 16 partitions (small: a batch is deleted
  as soon as it is published). Written in the change's own transaction (`TableStore._outbox_put`)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from paybridge.app.publishing import OutboxBatch
from paybridge.domain.domain_events import DomainEvent
from paybridge.storage.table import TableStore, _s

SHARDS = 16


def outbox_pk(key: str) -> str:
    shard = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % SHARDS
    return f"PUBOUT#{shard}"


def batch_item(batch: OutboxBatch) -> dict[str, Any]:
    return {
        "pk": _s(outbox_pk(batch.key)),
        "sk": _s(batch.key),
        "doc": _s(json.dumps([e.envelope() for e in batch.events], ensure_ascii=False)),
        "created_at": _s(batch.created_at.isoformat()),
    }


def _batch(item: dict[str, Any]) -> OutboxBatch:
    events = tuple(DomainEvent.model_validate(e) for e in json.loads(item["doc"]["S"]))
    return OutboxBatch(key=item["sk"]["S"], events=events, created_at=datetime.fromisoformat(item["created_at"]["S"]))


class DynamoEventOutbox(TableStore):
    def get(self, key: str) -> OutboxBatch | None:
        item = self.client.get_item(
            TableName=self._table, Key={"pk": _s(outbox_pk(key)), "sk": _s(key)}, ConsistentRead=True
        ).get("Item")
        return _batch(item) if item else None

    def remove(self, key: str) -> None:
        self.client.delete_item(TableName=self._table, Key={"pk": _s(outbox_pk(key)), "sk": _s(key)})

    def older_than(self, moment: datetime, limit: int = 100) -> list[OutboxBatch]:
        found: list[OutboxBatch] = []
        for shard in range(SHARDS):
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "KeyConditionExpression": "pk = :pk",
                "FilterExpression": "created_at < :cutoff",
                "ExpressionAttributeValues": {":pk": _s(f"PUBOUT#{shard}"), ":cutoff": _s(moment.isoformat())},
            }
            while len(found) < limit:
                page = self.client.query(**kwargs)
                found.extend(_batch(item) for item in page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            if len(found) >= limit:
                break
        return found[:limit]
