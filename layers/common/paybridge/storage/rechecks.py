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

from paybridge.storage.due_index import DueIndexStore
from paybridge.storage.table import _n, _s

RECHECK_PK = "RECHECK"


@dataclass(frozen=True)
class RecheckItem:
    tenant_id: str
    invoice_id: str
    published_at: datetime
    step: int
    due_key: str | None


class DynamoRecheckStore(DueIndexStore):
    SORT_KEY = "RECHECK"
    PARTITION = RECHECK_PK

    def plan(self, tenant_id: str, invoice_id: str, published_at: datetime, first_due: datetime | None) -> None:
        """Create the item once (a retried publish keeps the first)."""
        self._plan(tenant_id, invoice_id, first_due, published_at=_s(published_at.isoformat()), step=_n(0))

    def due(self, now: datetime, limit: int = 200) -> list[RecheckItem]:
        items = [self.get(tenant_id, invoice_id) for tenant_id, invoice_id in self._due_invoices(now, limit)]
        return [item for item in items if item is not None and item.due_key is not None]

    def get(self, tenant_id: str, invoice_id: str) -> RecheckItem | None:
        item = self._read(tenant_id, invoice_id)
        if item is None:
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
        self._stop(item.tenant_id, item.invoice_id)
