"""DynamoDB single-table repository. Every state change is a conditional write.

Items
- invoice:        pk=INV#<tenant>#<invoice>  sk=INVOICE       doc=<invoice JSON>, version, state
                  (task_token: only on items written before the lifecycle stopped waiting in Step Functions)
                  gsi1pk=PSP#<provider>#<payment_id> (lookup by the PSP's payment id)
                  gsi2pk=OPEN#<shard>, gsi2sk=<expires_at>#<tenant>#<invoice> while the invoice waits for money
                  (shard = hash(invoice id) mod OPEN_SHARDS; older items: gsi2pk=OPEN, see storage/table.py)
                  gsi3pk=NUM#<tenant>#<normalized number> (bank matching: invoices by the number in a purpose)
                  gsi5pk=STATE#<tenant>#<state>, gsi5sk=<created_at>#<invoice> (the ops list: by state, oldest first)
                  gsi6pk=PII#<tenant>, gsi6sk=<created_at>#<invoice> while it is closed and holds customer data
                  (the retention sweep and erasure requests: see storage/retention.py)
- deal index:     pk=DEAL#<tenant>#<deal>    sk=INV#<invoice>  written with the invoice (a deal's invoices)
- audit entry:    pk=INV#<tenant>#<invoice>  sk=AUDIT#<at>#<version>
                  a provider's money fact (a payment or refund through a PSP) is also the acquiring ledger:
                  gsi1pk=ACQ#<tenant>#<provider>, gsi1sk=<at>#<P|R>#<amount>#<method>#<ref> (storage/settlements.py)
- provider event: pk=EVT#<provider>#<event_id> sk=EVENT       (conditional put: recorded once), ttl
- tenant config:  pk=TENANT#<tenant>         sk=CONFIG        config=<tenant JSON>, gsi2pk=TENANTS, gsi2sk=<tenant>
- bank line:      pk=BANK#<tenant>#<fingerprint> sk=LINE  line, decision, state (see storage/bank.py)
                  gsi1pk=BANKREVIEW#<tenant>, gsi1sk=<value date>#<fingerprint> while a person must decide
- bank cursor:    pk=BANKCURSOR#<tenant>#<account> sk=CURSOR  window_from, window_to, cursor, polled_at
- lever key:      pk=OPSKEY#<tenant>#<Idempotency-Key> sk=KEY  fingerprint, lever, result (see storage/lever_keys.py)
- outbox batch:   pk=PUBOUT#<shard> sk=<invoice>.v<version>  the change's domain events until published, written in
                  the change's transaction (see storage/event_outbox.py)
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from paybridge.domain.invoice import FINAL_STATES, OPEN_STATES, AuditEntry, Invoice
from paybridge.storage.errors import ConcurrentModification, DuplicateProviderEvent
from paybridge.storage.repository import ProviderEventRecord, Saved
from paybridge.storage.settlements import ledger_keys

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from paybridge.app.publishing import OutboxBatch
from paybridge.storage.invoice_queries import InvoiceQueries
from paybridge.storage.table import (
    INVOICE_SK,
    _n,
    _s,
    deal_key,
    invoice_pk,
    number_key,
    open_pk,
    retention_key,
    state_key,
)


class DynamoInvoiceRepository(InvoiceQueries):
    def __init__(self, table_name: str, client: DynamoDBClient | None = None, event_retention_days: int = 400):
        super().__init__(table_name, client)
        self._event_ttl = event_retention_days * 86400

    def _invoice_item(self, invoice: Invoice) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": _s(invoice_pk(invoice.tenant_id, invoice.invoice_id)),
            "sk": _s(INVOICE_SK),
            "doc": _s(invoice.model_dump_json()),
            "version": _n(invoice.version),
            "state": _s(invoice.state.value),
            "tenant_id": _s(invoice.tenant_id),
        }
        if invoice.payment_id:
            item["gsi1pk"] = _s(f"PSP#{invoice.provider}#{invoice.payment_id}")
            item["gsi1sk"] = _s(INVOICE_SK)
        if invoice.state in OPEN_STATES:
            item["gsi2pk"] = _s(open_pk(invoice.invoice_id))
            item["gsi2sk"] = _s(f"{invoice.expires_at.isoformat()}#{invoice.tenant_id}#{invoice.invoice_id}")
        item["gsi3pk"] = _s(number_key(invoice.tenant_id, invoice.number))
        item["gsi5pk"] = _s(state_key(invoice.tenant_id, invoice.state.value))
        item["gsi5sk"] = _s(f"{invoice.created_at.isoformat()}#{invoice.invoice_id}")
        if invoice.state in FINAL_STATES and invoice.customer.holds_data:  # personal data a retention erases
            item["gsi6pk"] = _s(retention_key(invoice.tenant_id))
            item["gsi6sk"] = _s(f"{invoice.created_at.isoformat()}#{invoice.invoice_id}")
        return item

    def _audit_item(self, invoice: Invoice, audit: AuditEntry) -> dict[str, Any]:
        item = {
            "pk": _s(invoice_pk(invoice.tenant_id, invoice.invoice_id)),
            "sk": _s(f"AUDIT#{audit.at.isoformat()}#{invoice.version:06d}"),
            "doc": _s(audit.model_dump_json()),
        }
        item.update(ledger_keys(invoice, audit))  # written in the change's own transaction: once per money fact
        return item

    def _event_item(self, record: ProviderEventRecord) -> dict[str, Any]:
        item = {
            "pk": _s(f"EVT#{record.provider}#{record.event_id}"),
            "sk": _s("EVENT"),
            "tenant_id": _s(record.tenant_id),
            "summary": _s(record.summary),
            "ttl": _n(int(time.time()) + self._event_ttl),
        }
        if record.invoice_id:
            item["invoice_id"] = _s(record.invoice_id)
        return item

    def create(self, invoice: Invoice, audit: AuditEntry, outbox: OutboxBatch | None = None) -> tuple[Invoice, bool]:
        outbox_put = [self._outbox_put(outbox)] if outbox else []
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": self._invoice_item(invoice),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {"Put": {"TableName": self._table, "Item": self._audit_item(invoice, audit)}},
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": {
                                **deal_key(invoice.tenant_id, invoice.deal_id),
                                "sk": _s(f"INV#{invoice.invoice_id}"),
                            },
                        }
                    },
                    *outbox_put,  # type: ignore[list-item]
                ]
            )
        except self.client.exceptions.TransactionCanceledException:
            existing = self.get(invoice.tenant_id, invoice.invoice_id)
            if existing is None:  # pragma: no cover - cancelled for another reason (throttling): let it surface
                raise
            return existing, False
        return invoice, True

    def save(
        self,
        invoice: Invoice,
        expected_version: int,
        audit: AuditEntry | None,
        provider_event: ProviderEventRecord | None = None,
        outbox: OutboxBatch | None = None,
    ) -> Saved:
        item = self._invoice_item(invoice)
        names = {"#doc": "doc", "#v": "version", "#st": "state"}
        values: dict[str, Any] = {
            ":doc": item["doc"],
            ":v": item["version"],
            ":st": item["state"],
            ":expected": _n(expected_version),
        }
        sets = ["#doc = :doc", "#v = :v", "#st = :st"]
        removes = []
        for attr in (
            "gsi1pk",
            "gsi1sk",
            "gsi2pk",
            "gsi2sk",
            "gsi3pk",
            "gsi5pk",
            "gsi5sk",
            "gsi6pk",
            "gsi6sk",
        ):
            if attr in item:
                sets.append(f"{attr} = :{attr}")
                values[f":{attr}"] = item[attr]
            else:
                removes.append(attr)
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        update = {
            "TableName": self._table,
            "Key": {"pk": item["pk"], "sk": item["sk"]},
            "UpdateExpression": expression,
            "ConditionExpression": "#v = :expected",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        transact: list[dict[str, Any]] = [{"Update": update}]
        if audit is not None:
            transact.append({"Put": {"TableName": self._table, "Item": self._audit_item(invoice, audit)}})
        if outbox is not None:  # before the provider event: its cancellation reason is read as the last one
            transact.append(self._outbox_put(outbox))
        if provider_event is not None:
            transact.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": self._event_item(provider_event),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        try:
            self.client.transact_write_items(TransactItems=transact)  # type: ignore[arg-type]
        except self.client.exceptions.TransactionCanceledException as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if provider_event is not None and len(reasons) == len(transact) and reasons[-1] == "ConditionalCheckFailed":
                raise DuplicateProviderEvent(provider_event.event_id) from None
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise ConcurrentModification(invoice.invoice_id) from None
            raise
        return Saved(invoice=invoice, task_token=None)  # written as is: nothing to read back

    def record_provider_event(self, record: ProviderEventRecord) -> None:
        try:
            self.client.put_item(
                TableName=self._table,
                Item=self._event_item(record),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            raise DuplicateProviderEvent(record.event_id) from None
