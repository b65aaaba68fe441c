"""Per-invoice items indexed by when something is next due, on the `RemindersDue` index (gsi4pk = the kind's
partition, gsi4sk = <due, ISO UTC>#<tenant>#<invoice>): reminders and re-checks. A schedule queries
`gsi4pk = <kind> AND gsi4sk <= now` — never a table scan — and reads each item itself (the index lags); the kind's
store claims the work with a conditional update so overlapping runs do it once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar

from paybridge.storage.table import TableStore, _s, invoice_pk

GSI_REMINDERS = "RemindersDue"


class DueIndexStore(TableStore):
    #: The item's sort key beside the invoice (`REMINDER`, `RECHECK`) and its partition of the index.
    SORT_KEY: ClassVar[str]
    PARTITION: ClassVar[str]

    @classmethod
    def _key(cls, tenant_id: str, invoice_id: str) -> dict[str, Any]:
        return {"pk": _s(invoice_pk(tenant_id, invoice_id)), "sk": _s(cls.SORT_KEY)}

    @staticmethod
    def due_key(due_at: datetime, tenant_id: str, invoice_id: str) -> str:
        return f"{due_at.isoformat()}#{tenant_id}#{invoice_id}"

    def _plan(self, tenant_id: str, invoice_id: str, first_due: datetime | None, **attributes: Any) -> None:
        """Create the item once (a retried publish keeps the first), indexed under `first_due` if any."""
        item: dict[str, Any] = {**self._key(tenant_id, invoice_id), **attributes}
        if first_due is not None:
            item["gsi4pk"] = _s(self.PARTITION)
            item["gsi4sk"] = _s(self.due_key(first_due, tenant_id, invoice_id))
        try:
            self.client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except self.client.exceptions.ConditionalCheckFailedException:
            return

    def _due_invoices(self, now: datetime, limit: int) -> Iterator[tuple[str, str]]:
        """(tenant, invoice) of the items indexed as due at `now`, soonest first."""
        response = self.client.query(
            TableName=self._table,
            IndexName=GSI_REMINDERS,
            KeyConditionExpression="gsi4pk = :r AND gsi4sk <= :now",
            ExpressionAttributeValues={":r": _s(self.PARTITION), ":now": _s(now.isoformat() + "~")},
            Limit=limit,
        )
        for key in response.get("Items", []):
            _, tenant_id, invoice_id = key["pk"]["S"].split("#")
            yield tenant_id, invoice_id

    def _read(self, tenant_id: str, invoice_id: str) -> dict[str, Any] | None:
        item = self.client.get_item(
            TableName=self._table, Key=self._key(tenant_id, invoice_id), ConsistentRead=True
        ).get("Item")
        return item or None

    def _stop(self, tenant_id: str, invoice_id: str) -> None:
        """Nothing more is due (the invoice no longer waits for money)."""
        self.client.update_item(
            TableName=self._table, Key=self._key(tenant_id, invoice_id), UpdateExpression="REMOVE gsi4pk, gsi4sk"
        )
