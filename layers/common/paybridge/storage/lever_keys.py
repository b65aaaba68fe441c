"""The `Idempotency-Key`s of a person's levers, in the single table.

Item: pk=OPSKEY#<tenant>#<key> sk=KEY  fingerprint (of the lever, its target and its body), lever, actor, claimed_at,
result (the first outcome, JSON; absent while the work is under way), ttl. A key names one request: claiming it for
another fingerprint fails, and the first stored result is the one every repeat gets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from paybridge.storage.errors import IdempotencyKeyReused
from paybridge.storage.table import TableStore, _n, _s

#: How long a key is remembered (the effects themselves stay deduplicated by the key for good).
KEY_TTL_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class LeverKey:
    key: str
    fingerprint: str
    lever: str
    actor: str
    result: str | None


class DynamoLeverKeys(TableStore):
    @staticmethod
    def _key(tenant_id: str, key: str) -> dict[str, Any]:
        return {"pk": _s(f"OPSKEY#{tenant_id}#{key}"), "sk": _s("KEY")}

    @staticmethod
    def _record(key: str, item: dict[str, Any]) -> LeverKey:
        return LeverKey(
            key=key,
            fingerprint=item["fingerprint"]["S"],
            lever=item["lever"]["S"],
            actor=item["actor"]["S"],
            result=item["result"]["S"] if "result" in item else None,
        )

    def get(self, tenant_id: str, key: str) -> LeverKey | None:
        item = self.client.get_item(TableName=self._table, Key=self._key(tenant_id, key), ConsistentRead=True).get(
            "Item"
        )
        return self._record(key, item) if item else None

    def claim(self, tenant_id: str, key: str, fingerprint: str, lever: str, actor: str) -> LeverKey:
        """Take the key for this request (IdempotencyKeyReused when it names another); taking it again is a no-op."""
        try:
            response = self.client.update_item(
                TableName=self._table,
                Key=self._key(tenant_id, key),
                UpdateExpression=(
                    "SET fingerprint = if_not_exists(fingerprint, :fp), lever = if_not_exists(lever, :lever), "
                    "actor = if_not_exists(actor, :actor), claimed_at = if_not_exists(claimed_at, :at), #ttl = :ttl"
                ),
                ConditionExpression="attribute_not_exists(pk) OR fingerprint = :fp",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={
                    ":fp": _s(fingerprint),
                    ":lever": _s(lever),
                    ":actor": _s(actor),
                    ":at": _s(datetime.now(UTC).isoformat()),
                    ":ttl": _n(int(time.time()) + KEY_TTL_SECONDS),
                },
                ReturnValues="ALL_NEW",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            raise IdempotencyKeyReused(key) from None
        return self._record(key, response["Attributes"])

    def complete(self, tenant_id: str, key: str, fingerprint: str, result: str) -> tuple[str, bool]:
        """Store the request's outcome unless one is stored; either way, the stored one (the first), and whether it
        is this one."""
        try:
            self.client.update_item(
                TableName=self._table,
                Key=self._key(tenant_id, key),
                UpdateExpression="SET #result = :result",
                ConditionExpression="fingerprint = :fp AND attribute_not_exists(#result)",
                ExpressionAttributeNames={"#result": "result"},
                ExpressionAttributeValues={":fp": _s(fingerprint), ":result": _s(result)},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            stored = self.get(tenant_id, key)
            if stored is None or stored.fingerprint != fingerprint or stored.result is None:
                raise IdempotencyKeyReused(key) from None
            return stored.result, False
        return result, True
