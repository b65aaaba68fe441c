"""Reading invoices: by id, by the provider's payment id, by number, by state, by deal, open ones by deadline (every
shard of `OpenByDue`), and an invoice's history. `DynamoInvoiceRepository` adds the writes."""

from __future__ import annotations

import heapq
from itertools import islice
from typing import TYPE_CHECKING, Any

from paybridge.domain.invoice import AuditEntry, Invoice
from paybridge.storage.repository import Saved

if TYPE_CHECKING:
    pass
from paybridge.storage.table import (
    GSI_BY_NUMBER,
    GSI_BY_PAYMENT,
    GSI_BY_STATE,
    GSI_OPEN_BY_DUE,
    INVOICE_SK,
    TableStore,
    _s,
    deal_key,
    invoice_pk,
    number_key,
    open_partitions,
    state_key,
)


class InvoiceQueries(TableStore):
    @staticmethod
    def _from_item(item: dict[str, Any]) -> Saved:
        invoice = Invoice.model_validate_json(item["doc"]["S"])
        token = item.get("task_token", {}).get("S")
        return Saved(invoice=invoice, task_token=token)

    def _get_item(self, tenant_id: str, invoice_id: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self._table,
            Key={"pk": _s(invoice_pk(tenant_id, invoice_id)), "sk": _s(INVOICE_SK)},
            ConsistentRead=True,
        )
        return response.get("Item")

    def get(self, tenant_id: str, invoice_id: str) -> Invoice | None:
        item = self._get_item(tenant_id, invoice_id)
        return self._from_item(item).invoice if item else None

    def get_saved(self, tenant_id: str, invoice_id: str) -> Saved | None:
        item = self._get_item(tenant_id, invoice_id)
        return self._from_item(item) if item else None

    def find_by_payment(self, provider: str, payment_id: str) -> Invoice | None:
        response = self.client.query(
            TableName=self._table,
            IndexName=GSI_BY_PAYMENT,
            KeyConditionExpression="gsi1pk = :pk",
            ExpressionAttributeValues={":pk": _s(f"PSP#{provider}#{payment_id}")},
            Limit=1,
        )
        items = response.get("Items", [])
        if not items:
            return None
        key = items[0]["pk"]["S"].split("#")
        return self.get(key[1], key[2])  # the index is eventually consistent: read the item itself

    def history(self, tenant_id: str, invoice_id: str) -> list[AuditEntry]:
        entries: list[AuditEntry] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :audit)",
            "ExpressionAttributeValues": {":pk": _s(invoice_pk(tenant_id, invoice_id)), ":audit": _s("AUDIT#")},
            "ConsistentRead": True,
        }
        while True:
            response = self.client.query(**kwargs)
            entries.extend(AuditEntry.model_validate_json(i["doc"]["S"]) for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return entries
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def find_by_number(self, tenant_id: str, number: str) -> list[Invoice]:
        """Every invoice of the tenant with this number (normalized), whatever its state."""
        response = self.client.query(
            TableName=self._table,
            IndexName=GSI_BY_NUMBER,
            KeyConditionExpression="gsi3pk = :num",
            ExpressionAttributeValues={":num": _s(number_key(tenant_id, number))},
        )
        invoices = []
        for item in response.get("Items", []):
            _, found_tenant, invoice_id = item["pk"]["S"].split("#")
            invoice = self.get(found_tenant, invoice_id)
            if invoice is not None:
                invoices.append(invoice)
        return invoices

    def _get_many(self, keys: list[tuple[str, str]]) -> list[Invoice]:
        """The invoices themselves (the indexes hold keys only), in the order of `keys`."""
        found: dict[str, Invoice] = {}
        unique = list(dict.fromkeys(keys))
        for item in self._batch_get([{"pk": _s(invoice_pk(t, i)), "sk": _s(INVOICE_SK)} for t, i in unique]):
            invoice = self._from_item(item).invoice
            found[invoice.invoice_id] = invoice
        return [found[i] for _, i in unique if i in found]

    def list_by_state(
        self, tenant_id: str, state: str, created_before: str | None = None, limit: int = 100, newest: bool = False
    ) -> list[Invoice]:
        """The tenant's invoices in `state`, oldest first (`newest`: newest first), created before `created_before`
        (an ISO time)."""
        condition = "gsi5pk = :state"
        values: dict[str, Any] = {":state": _s(state_key(tenant_id, state))}
        if created_before is not None:
            condition += " AND gsi5sk < :before"
            values[":before"] = _s(created_before)
        response = self.client.query(
            TableName=self._table,
            IndexName=GSI_BY_STATE,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=not newest,
            Limit=limit,
        )
        keys = [(tenant_id, item["pk"]["S"].split("#")[2]) for item in response.get("Items", [])]
        # the index is eventually consistent: the item itself decides (it may have moved on to another state)
        return [i for i in self._get_many(keys) if i.state.value == state]

    def issued_between(self, tenant_id: str, start: str, end: str) -> list[Invoice]:
        """Every invoice of the tenant created in [start, end) (ISO times in UTC), whatever its state: one Query per
        state partition of `ByState` (its sort key starts with the creation time), never a scan. For the report."""
        from paybridge.domain.invoice import InvoiceState

        keys: list[tuple[str, str]] = []
        for state in InvoiceState:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": GSI_BY_STATE,
                "KeyConditionExpression": "gsi5pk = :state AND gsi5sk BETWEEN :start AND :end",
                "ExpressionAttributeValues": {
                    ":state": _s(state_key(tenant_id, state.value)),
                    ":start": _s(start),
                    ":end": _s(end),
                },
            }
            while True:
                response = self.client.query(**kwargs)
                keys += [(tenant_id, item["pk"]["S"].split("#")[2]) for item in response.get("Items", [])]
                if "LastEvaluatedKey" not in response:
                    break
                kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        # an invoice that changed state meanwhile may be listed twice (the index lags): `_get_many` reads each once
        return [i for i in self._get_many(keys) if start <= i.created_at.isoformat() < end]

    def list_by_deal(self, tenant_id: str, deal_id: str) -> list[Invoice]:
        """Every invoice issued for the deal, whatever its state."""
        keys: list[tuple[str, str]] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :deal AND begins_with(sk, :inv)",
            "ExpressionAttributeValues": {":deal": deal_key(tenant_id, deal_id)["pk"], ":inv": _s("INV#")},
            "ConsistentRead": True,
        }
        while True:
            response = self.client.query(**kwargs)
            keys += [(tenant_id, item["sk"]["S"][4:]) for item in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return self._get_many(keys)

    #: Threads reading the open-invoice partitions at once (1: one after another). Each read is one network round
    #: trip, so 8 threads make a sweep's 17 Queries ~3 round trips instead of 17 (botocore pools 10 connections).
    open_read_workers = 8

    def _open_keys(self, partition: str, iso_time: str, limit: int) -> list[tuple[str, str, str]]:
        """(gsi2sk, tenant, invoice) of the partition's first `limit` invoices due before `iso_time`, by due time."""
        response = self.client.query(
            TableName=self._table,
            IndexName=GSI_OPEN_BY_DUE,
            KeyConditionExpression="gsi2pk = :open AND gsi2sk < :due",
            ExpressionAttributeValues={":open": _s(partition), ":due": _s(iso_time)},
            Limit=limit,
        )
        keys = []
        for item in response.get("Items", []):
            _, tenant_id, invoice_id = item["pk"]["S"].split("#")
            keys.append((item["gsi2sk"]["S"], tenant_id, invoice_id))
        return keys

    def open_invoices_due_before(self, iso_time: str, limit: int = 100) -> list[Invoice]:
        """Open invoices due before `iso_time`, earliest first, at most `limit`: every shard of `OpenByDue` and the
        legacy partition read (each its first `limit`), merged by due time."""
        partitions = open_partitions()
        if self.open_read_workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(self.open_read_workers, len(partitions))) as pool:
                per_partition = list(pool.map(lambda p: self._open_keys(p, iso_time, limit), partitions))
        else:
            per_partition = [self._open_keys(p, iso_time, limit) for p in partitions]
        merged = list(islice(heapq.merge(*per_partition), limit))
        # the index is eventually consistent: the item itself decides (it may have been paid meanwhile)
        return [i for i in self._get_many([(t, i) for _, t, i in merged]) if i.is_open]
