"""Closed invoices that still hold their customer's personal data, read from the sparse `ByRetention` index
(gsi6pk=PII#<tenant>, gsi6sk=<created_at>#<invoice>): an invoice is in it from its close until its data is erased,
so the daily sweep reads only what is left to erase, never the erased history again."""

from __future__ import annotations

from paybridge.domain.invoice import Invoice
from paybridge.storage.invoice_queries import InvoiceQueries
from paybridge.storage.table import retention_key, retention_keys


class DynamoRetentionIndex(InvoiceQueries):
    def _keys(self, tenant_id: str, before: str | None, limit: int) -> list[tuple[str, str]]:
        pks = retention_keys(self.client, self._table, retention_key(tenant_id), before, limit)
        return [(tenant_id, pk.split("#")[2]) for pk in pks]

    def closed_with_data(self, tenant_id: str, created_before: str | None = None, limit: int = 1000) -> list[Invoice]:
        """Closed invoices of the tenant holding customer data (issued before `created_before`), oldest first."""
        # the index is eventually consistent: the item itself decides
        return [
            i
            for i in self._get_many(self._keys(tenant_id, created_before, limit))
            if not i.is_open and i.customer_erased_at is None and i.customer.holds_data
        ]
