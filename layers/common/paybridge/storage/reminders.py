"""Reminder items: one per invoice waiting for money, indexed by its next due time.

- pk=INV#<tenant>#<invoice> sk=REMINDER  published_at, sent (string set of reminder keys),
  gsi4pk=REMIND, gsi4sk=<next due, ISO UTC>#<tenant>#<invoice> while a reminder is due (removed after the last one
  or when the invoice stops waiting). The schedule queries `gsi4pk = REMIND AND gsi4sk <= now` — no table scan.
Claiming a reminder is a conditional update (its key not yet in `sent`, the item still at the due time read), so
overlapping schedule runs and retries send it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from paybridge.storage.due_index import DueIndexStore
from paybridge.storage.table import _s

REMIND_PK = "REMIND"


@dataclass(frozen=True)
class ReminderItem:
    tenant_id: str
    invoice_id: str
    published_at: datetime
    sent: frozenset[str]
    due_key: str | None  # the gsi4sk it is indexed under (None: nothing due)


class DynamoReminderStore(DueIndexStore):
    SORT_KEY = "REMINDER"
    PARTITION = REMIND_PK

    def plan(self, tenant_id: str, invoice_id: str, published_at: datetime, first_due: datetime | None) -> None:
        """Create the item once (a retried publish keeps the first)."""
        self._plan(tenant_id, invoice_id, first_due, published_at=_s(published_at.isoformat()))

    def due(self, now: datetime, limit: int = 200) -> list[ReminderItem]:
        items = [self.get(tenant_id, invoice_id) for tenant_id, invoice_id in self._due_invoices(now, limit)]
        return [item for item in items if item is not None and item.due_key is not None]

    def get(self, tenant_id: str, invoice_id: str) -> ReminderItem | None:
        item = self._read(tenant_id, invoice_id)
        if item is None:
            return None
        return ReminderItem(
            tenant_id=tenant_id,
            invoice_id=invoice_id,
            published_at=datetime.fromisoformat(item["published_at"]["S"]),
            sent=frozenset(item.get("sent", {}).get("SS", [])),
            due_key=item.get("gsi4sk", {}).get("S"),
        )

    def claim(self, item: ReminderItem, key: str, next_due: datetime | None) -> bool:
        """Mark `key` sent and index the next due time, if the item is still as read. False: someone else did."""
        values: dict[str, Any] = {":key": {"SS": [key]}, ":k": _s(key), ":expected": _s(item.due_key or "")}
        if next_due is not None:
            expression = "ADD sent :key SET gsi4sk = :next"
            values[":next"] = _s(self.due_key(next_due, item.tenant_id, item.invoice_id))
        else:
            expression = "ADD sent :key REMOVE gsi4pk, gsi4sk"
        try:
            self.client.update_item(
                TableName=self._table,
                Key=self._key(item.tenant_id, item.invoice_id),
                UpdateExpression=expression,
                ConditionExpression="gsi4sk = :expected AND NOT contains(sent, :k)",
                ExpressionAttributeValues=values,
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def reindex(self, item: ReminderItem, next_due: datetime) -> None:
        """Nothing to send yet (e.g. quiet hours): index the item under its next due time."""
        try:
            self.client.update_item(
                TableName=self._table,
                Key=self._key(item.tenant_id, item.invoice_id),
                UpdateExpression="SET gsi4sk = :next",
                ConditionExpression="gsi4sk = :expected",
                ExpressionAttributeValues={
                    ":next": _s(self.due_key(next_due, item.tenant_id, item.invoice_id)),
                    ":expected": _s(item.due_key or ""),
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return

    def release(self, item: ReminderItem, key: str) -> None:
        """Sending failed: make `key` due again at the time it was due."""
        self.client.update_item(
            TableName=self._table,
            Key=self._key(item.tenant_id, item.invoice_id),
            UpdateExpression="DELETE sent :key SET gsi4pk = :r, gsi4sk = :due",
            ExpressionAttributeValues={":key": {"SS": [key]}, ":r": _s(REMIND_PK), ":due": _s(item.due_key or "")},
        )

    def stop(self, item: ReminderItem) -> None:
        """The invoice no longer waits for money: nothing more is due."""
        self._stop(item.tenant_id, item.invoice_id)
