"""Closed invoices that still hold their customer's personal data, read from the sparse `ByRetention` index
(gsi6pk=PII#<tenant>, gsi6sk=<created_at>#<invoice>): an invoice is in it from its close until its data is erased,
so the daily sweep reads only what is left to erase, never the erased history again."""

from __future__ import annotations

from typing import Any

from paybridge.domain.invoice import Invoice
from paybridge.storage.invoice_queries import InvoiceQueries
from paybridge.storage.table import GSI_BY_RETENTION, _s, retention_key


class DynamoRetentionIndex(InvoiceQueries):
    def _keys(self, tenant_id: str, before: str | None, limit: int) -> list[tuple[str, str]]:
        condition = "gsi6pk = :pk"
        values: dict[str, Any] = {":pk": _s(retention_key(tenant_id))}
        if before is not None:
            condition += " AND gsi6sk < :before"
            values[":before"] = _s(before)
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": GSI_BY_RETENTION,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        keys: list[tuple[str, str]] = []
        while len(keys) < limit:
            page = self.client.query(**kwargs)
            keys += [(tenant_id, item["pk"]["S"].split("#")[2]) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return keys[:limit]

    def closed_with_data(self, tenant_id: str, created_before: str | None = None, limit: int = 1000) -> list[Invoice]:
        """Closed invoices of the tenant holding customer data (issued before `created_before`), oldest first."""
        # the index is eventually consistent: the item itself decides
        return [
            i
            for i in self._get_many(self._keys(tenant_id, created_before, limit))
            if not i.is_open and i.customer_erased_at is None and any(i.customer.model_dump().values())
        ]
