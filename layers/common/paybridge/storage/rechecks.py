"""Re-check items: one per invoice waiting for money, indexed by when the sweep next asks its provider.

- pk=INV#<tenant>#<invoice> sk=RECHECK  published_at, step (the next check's number),
  gsi4pk=RECHECK, gsi4sk=<next due, ISO UTC>#<tenant>#<invoice> while a check is due (removed after the last one or
  when the invoice stops waiting). Shares the RemindersDue index (another partition): the sweep queries
  `gsi4pk = RECHECK AND gsi4sk <= now` — no table scan. Claiming a check is a conditional update on the step read,
  so overlapping sweeps ask once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from paybridge.storage.reminders import GSI_REMINDERS
from paybridge.storage.table import TableStore, _n, _s, invoice_pk

RECHECK_PK = "RECHECK"


@dataclass(frozen=True)
class RecheckItem:
    tenant_id: str
    invoice_id: str
    published_at: datetime
    step: int
    due_key: str | None


class DynamoRecheckStore(TableStore):
    @staticmethod
    def _key(tenant_id: str, invoice_id: str) -> dict[str, Any]:
        return {"pk": _s(invoice_pk(tenant_id, invoice_id)), "sk": _s("RECHECK")}

    @staticmethod
    def due_key(due_at: datetime, tenant_id: str, invoice_id: str) -> str:
        return f"{due_at.isoformat()}#{tenant_id}#{invoice_id}"

    def plan(self, tenant_id: str, invoice_id: str, published_at: datetime, first_due: datetime | None) -> None:
        """Create the item once (a retried publish keeps the first)."""
        item: dict[str, Any] = {
            **self._key(tenant_id, invoice_id),
            "published_at": _s(published_at.isoformat()),
            "step": _n(0),
        }
        if first_due is not None:
            item["gsi4pk"] = _s(RECHECK_PK)
            item["gsi4sk"] = _s(self.due_key(first_due, tenant_id, invoice_id))
        try:
            self.client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except self.client.exceptions.ConditionalCheckFailedException:
            return

    def due(self, now: datetime, limit: int = 200) -> list[RecheckItem]:
        response = self.client.query(
            TableName=self._table,
            IndexName=GSI_REMINDERS,
            KeyConditionExpression="gsi4pk = :r AND gsi4sk <= :now",
            ExpressionAttributeValues={":r": _s(RECHECK_PK), ":now": _s(now.isoformat() + "~")},
            Limit=limit,
        )
        items = []
        for key in response.get("Items", []):
            _, tenant_id, invoice_id = key["pk"]["S"].split("#")
            item = self.get(tenant_id, invoice_id)
            if item is not None and item.due_key is not None:
                items.append(item)
        return items

    def get(self, tenant_id: str, invoice_id: str) -> RecheckItem | None:
        item = self.client.get_item(
            TableName=self._table, Key=self._key(tenant_id, invoice_id), ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        return RecheckItem(
            tenant_id=tenant_id,
            invoice_id=invoice_id,
            published_at=datetime.fromisoformat(item["published_at"]["S"]),
            step=int(item.get("step", {}).get("N", "0")),
            due_key=item.get("gsi4sk", {}).get("S"),
        )

    def claim(self, item: RecheckItem, next_due: datetime | None) -> bool:
        """Take check `item.step` and index the next one, if the item is still as read. False: another sweep did."""
        values: dict[str, Any] = {":step": _n(item.step), ":one": _n(1), ":expected": _s(item.due_key or "")}
        if next_due is not None:
            expression = "SET step = step + :one, gsi4sk = :next"
            values[":next"] = _s(self.due_key(next_due, item.tenant_id, item.invoice_id))
        else:
            expression = "SET step = step + :one REMOVE gsi4pk, gsi4sk"
        try:
            self.client.update_item(
                TableName=self._table,
                Key=self._key(item.tenant_id, item.invoice_id),
                UpdateExpression=expression,
                ConditionExpression="step = :step AND gsi4sk = :expected",
                ExpressionAttributeValues=values,
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def retry_at(self, item: RecheckItem, when: datetime) -> None:
        """The provider could not be asked: the same check again at `when` (its number was taken by `claim`)."""
        self.client.update_item(
            TableName=self._table,
            Key=self._key(item.tenant_id, item.invoice_id),
            UpdateExpression="SET step = step - :one, gsi4pk = :r, gsi4sk = :due",
            ExpressionAttributeValues={
                ":one": _n(1),
                ":r": _s(RECHECK_PK),
                ":due": _s(self.due_key(when, item.tenant_id, item.invoice_id)),
            },
        )

    def stop(self, item: RecheckItem) -> None:
        """The invoice no longer waits for money: nothing more is due."""
        self.client.update_item(
            TableName=self._table,
            Key=self._key(item.tenant_id, item.invoice_id),
            UpdateExpression="REMOVE gsi4pk, gsi4sk",
        )
