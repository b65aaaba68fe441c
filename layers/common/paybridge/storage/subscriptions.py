"""Subscriptions in the single table.

- pk=SUB#<tenant>#<subscription> sk=SUBSCRIPTION  doc=<Subscription JSON>, version; gsi4pk=SUBDUE,
  gsi4sk=<next due, ISO UTC>#<tenant>#<subscription> while something is due (a notice, a charge, a charge's outcome).
  Shares the RemindersDue index (another partition); every change is conditional on the version read.
  gsi6pk=SUBPII#<tenant>, gsi6sk=<closed at>#<subscription> while it is cancelled or blocked and still holds its
  customer's data (the `ByRetention` index; erased ones leave it).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from paybridge.domain.subscriptions import Subscription
from paybridge.storage.due_index import GSI_REMINDERS
from paybridge.storage.errors import SubscriptionConflict
from paybridge.storage.table import TableStore, _n, _s, retention_key, retention_keys

if TYPE_CHECKING:
    from paybridge.app.publishing import OutboxBatch

SUB_DUE_PK = "SUBDUE"


class DynamoSubscriptionStore(TableStore):
    @staticmethod
    def _key(tenant_id: str, subscription_id: str) -> dict[str, Any]:
        return {"pk": _s(f"SUB#{tenant_id}#{subscription_id}"), "sk": _s("SUBSCRIPTION")}

    def get(self, tenant_id: str, subscription_id: str) -> Subscription | None:
        item = self.client.get_item(
            TableName=self._table, Key=self._key(tenant_id, subscription_id), ConsistentRead=True
        ).get("Item")
        return Subscription.model_validate_json(item["doc"]["S"]) if item else None

    def create(self, sub: Subscription) -> tuple[Subscription, bool]:
        try:
            self.client.put_item(
                TableName=self._table,
                Item={
                    **self._key(sub.tenant_id, sub.subscription_id),
                    "doc": _s(sub.model_dump_json()),
                    "version": _n(sub.version),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            existing = self.get(sub.tenant_id, sub.subscription_id)
            if existing is None:  # pragma: no cover - it existed a moment ago
                raise
            return existing, False
        return sub, True

    def save(
        self, sub: Subscription, expected_version: int, due: datetime | None, outbox: OutboxBatch | None = None
    ) -> None:
        """The new version, conditional on the one read; with `outbox`, the change's events in the same transaction."""
        values: dict[str, Any] = {":doc": _s(sub.model_dump_json()), ":v": _n(sub.version), ":e": _n(expected_version)}
        sets, removes = ["doc = :doc", "version = :v"], []
        if due is not None:
            sets += ["gsi4pk = :p", "gsi4sk = :d"]
            values[":p"] = _s(SUB_DUE_PK)
            values[":d"] = _s(f"{due.isoformat()}#{sub.tenant_id}#{sub.subscription_id}")
        else:
            removes += ["gsi4pk", "gsi4sk"]
        if sub.holds_closed_customer_data:
            sets += ["gsi6pk = :r", "gsi6sk = :rs"]  # closed, still holding its customer's data: retention's
            values[":r"] = _s(retention_key(sub.tenant_id, "SUBPII"))
            values[":rs"] = _s(f"{(sub.closed_at or sub.started_at).isoformat()}#{sub.subscription_id}")
        else:
            removes += ["gsi6pk", "gsi6sk"]
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        update = {
            "Key": self._key(sub.tenant_id, sub.subscription_id),
            "UpdateExpression": expression,
            "ConditionExpression": "version = :e",
            "ExpressionAttributeValues": values,
        }
        try:
            self._write_one({"Update": update}, outbox)
        except self.client.exceptions.ConditionalCheckFailedException:
            raise SubscriptionConflict(sub.subscription_id) from None

    def closed_with_data(
        self, tenant_id: str, closed_before: str | None = None, limit: int = 1000
    ) -> list[Subscription]:
        """Cancelled or blocked subscriptions of the tenant still holding customer data (closed before
        `closed_before`), oldest first — from the sparse `ByRetention` index; the item itself decides."""
        pks = retention_keys(self.client, self._table, retention_key(tenant_id, "SUBPII"), closed_before, limit)
        subs = [self.get(tenant_id, pk.split("#")[2]) for pk in pks]
        return [sub for sub in subs if sub is not None and sub.holds_closed_customer_data]

    def due(self, now: datetime | None, limit: int = 500) -> list[Subscription]:
        """Subscriptions with something due by `now` (all indexed ones when `now` is None: the MRR sum)."""
        condition = "gsi4pk = :p" + (" AND gsi4sk <= :now" if now is not None else "")
        values: dict[str, Any] = {":p": _s(SUB_DUE_PK)}
        if now is not None:
            values[":now"] = _s(now.isoformat() + "~")
        response = self.client.query(
            TableName=self._table,
            IndexName=GSI_REMINDERS,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            Limit=limit,
        )
        subs = []
        for key in response.get("Items", []):
            _, tenant_id, subscription_id = key["pk"]["S"].split("#")
            sub = self.get(tenant_id, subscription_id)
            if sub is not None:
                subs.append(sub)
        return subs
