"""The single table: its key helpers, index names and the base of every store (table name + a lazily made
client). The items each store keeps are listed in `storage/dynamodb.py`."""

from __future__ import annotations

import hashlib
import itertools
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from paybridge.app.publishing import OutboxBatch


INVOICE_SK = "INVOICE"
#: DynamoDB's caps: keys per BatchGetItem, items per BatchWriteItem
BATCH_GET_KEYS, BATCH_WRITE_ITEMS = 100, 25


#: The `OpenByDue` index is sharded: an open invoice is written under `OPEN#<k>`, k = a hash of its id mod
#: OPEN_SHARDS, so no partition key takes more than ~1/OPEN_SHARDS of the index's writes (DynamoDB allows ~1,000
#: writes/s per partition key: one shared key capped the deployment at ~500 invoices/s, 16 shards at ~8,000).
#: The sweep reads every shard and merges them by due time. Changing the count moves an invoice to another shard
#: on its next write only; the reader reads `open_partitions()` — so raise it together with a backfill.
OPEN_SHARDS = 16


#: The single partition every open invoice shared before sharding. Items written by an older release (or by an old
#: Lambda during a deploy) still carry it until `scripts/backfill_open_shards.py` moves them; the reader keeps
#: reading it (one Query of an empty partition once the backfill has run — reads were never the hot part).
OPEN_PK = "OPEN"


def open_shard(invoice_id: str) -> int:
    """The invoice's shard: stable across processes and releases (not Python's salted `hash`)."""
    digest = hashlib.blake2b(invoice_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % OPEN_SHARDS


def open_pk(invoice_id: str) -> str:
    return f"{OPEN_PK}#{open_shard(invoice_id)}"


def open_partitions(include_legacy: bool = True) -> tuple[str, ...]:
    """Every partition key of open invoices in `OpenByDue`: the shards, then the legacy one."""
    shards = tuple(f"{OPEN_PK}#{k}" for k in range(OPEN_SHARDS))
    return (*shards, OPEN_PK) if include_legacy else shards


GSI_BY_PAYMENT = "ByPaymentId"


GSI_OPEN_BY_DUE = "OpenByDue"


GSI_BY_NUMBER = "ByNumber"


GSI_BY_STATE = "ByState"


#: Closed invoices that still hold their customer's personal data (sparse: erased ones leave it).
GSI_BY_RETENTION = "ByRetention"


def retention_key(tenant_id: str, kind: str = "PII") -> str:
    """The index partition of one tenant's items still holding personal data: `PII` (closed invoices), `SUBPII`
    (closed subscriptions), `BANKPII` (bank lines with the payer's name, INN or account)."""
    return f"{kind}#{tenant_id}"


def retention_keys(client: DynamoDBClient, table: str, partition: str, before: str | None, limit: int) -> list[str]:
    """The `pk`s in one `ByRetention` partition (sort key before `before`), oldest first, at most `limit`."""
    condition = "gsi6pk = :pk"
    values: dict[str, Any] = {":pk": _s(partition)}
    if before is not None:
        condition += " AND gsi6sk < :before"
        values[":before"] = _s(before)
    kwargs: dict[str, Any] = {
        "TableName": table,
        "IndexName": GSI_BY_RETENTION,
        "KeyConditionExpression": condition,
        "ExpressionAttributeValues": values,
    }
    keys: list[str] = []
    while len(keys) < limit:
        page = client.query(**kwargs)
        keys += [item["pk"]["S"] for item in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return keys[:limit]


TENANTS_PK = "TENANTS"


def number_key(tenant_id: str, number: str) -> str:
    from paybridge.domain.reconcile import normalize_number

    return f"NUM#{tenant_id}#{normalize_number(number)}"


def state_key(tenant_id: str, state: str) -> str:
    return f"STATE#{tenant_id}#{state}"


def deal_key(tenant_id: str, deal_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"DEAL#{tenant_id}#{deal_id}"}}


def _client() -> DynamoDBClient:
    import boto3  # lazy: keeps cold starts small

    return boto3.client("dynamodb")


def invoice_pk(tenant_id: str, invoice_id: str) -> str:
    return f"INV#{tenant_id}#{invoice_id}"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _backoff(attempt: int) -> float:
    """Seconds before asking again for what a batch request left unprocessed (AWS: back off exponentially)."""
    return min(0.05 * 2**attempt, 2.0)


class TableStore:
    """What every store on the single table shares: its name and a boto3 client made on first use."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None):
        self._table = table_name
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = _client()
        return self._client

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The items found under `keys` (strongly consistent; in no particular order): `BatchGetItem` in requests of
        100 keys, its unprocessed keys asked again (after a growing pause) until none is left."""
        found: list[dict[str, Any]] = []
        unique = list({(key["pk"]["S"], key["sk"]["S"]): key for key in keys}.values())  # DynamoDB refuses twins
        for start in range(0, len(unique), BATCH_GET_KEYS):
            request: Any = {self._table: {"Keys": unique[start : start + BATCH_GET_KEYS], "ConsistentRead": True}}
            for attempt in itertools.count():
                answer = self.client.batch_get_item(RequestItems=request)
                found += answer.get("Responses", {}).get(self._table, [])
                request = answer.get("UnprocessedKeys") or None
                if not request:
                    break
                time.sleep(_backoff(attempt))
        return found

    def _batch_put(self, items: list[dict[str, Any]]) -> None:
        """Unconditional puts of distinct items: `BatchWriteItem` in requests of 25, its unprocessed items sent
        again (after a growing pause) until none is left. Each put is atomic; the batch as a whole is not."""
        for start in range(0, len(items), BATCH_WRITE_ITEMS):
            request: Any = {
                self._table: [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH_WRITE_ITEMS]]
            }
            for attempt in itertools.count():
                answer = self.client.batch_write_item(RequestItems=request)
                request = answer.get("UnprocessedItems") or None
                if not request:
                    break
                time.sleep(_backoff(attempt))

    def _outbox_put(self, batch: OutboxBatch) -> dict[str, Any]:
        """A change's domain events as one Put of the change's own transaction (the transactional outbox)."""
        from paybridge.storage.event_outbox import batch_item  # lazy: a handler that writes no events never loads it

        return {"Put": {"TableName": self._table, "Item": batch_item(batch)}}

    def _write_one(self, write: dict[str, Any], outbox: OutboxBatch | None) -> None:
        """One write — `{"Put": …}` or `{"Update": …}` without the table name — alone, or with the change's events
        in one transaction. A failed condition raises `ConditionalCheckFailedException` either way."""
        kind, request = next(iter(write.items()))
        request = {"TableName": self._table, **request}
        if outbox is None:
            if kind == "Put":
                self.client.put_item(**request)
            else:
                self.client.update_item(**request)
            return
        try:
            self.client.transact_write_items(TransactItems=[{kind: request}, self._outbox_put(outbox)])  # type: ignore[list-item,misc]
        except self.client.exceptions.TransactionCanceledException as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise self.client.exceptions.ConditionalCheckFailedException(
                    {"Error": {"Code": "ConditionalCheckFailedException", "Message": "condition failed"}}, kind
                ) from None
            raise
