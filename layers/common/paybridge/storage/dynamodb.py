"""DynamoDB single-table repository. Every state change is a conditional write.

Items
- invoice:        pk=INV#<tenant>#<invoice>  sk=INVOICE       doc=<invoice JSON>, version, state, task_token
                  gsi1pk=PSP#<provider>#<payment_id> (lookup by the PSP's payment id)
                  gsi2pk=OPEN, gsi2sk=<expires_at>#<tenant>#<invoice> while the invoice waits for money
                  gsi3pk=NUM#<tenant>#<normalized number> (bank matching: invoices by the number in a purpose)
                  gsi5pk=STATE#<tenant>#<state>, gsi5sk=<created_at>#<invoice> (the ops list: by state, oldest first)
- deal index:     pk=DEAL#<tenant>#<deal>    sk=INV#<invoice>  written with the invoice (a deal's invoices)
- audit entry:    pk=INV#<tenant>#<invoice>  sk=AUDIT#<at>#<version>
- provider event: pk=EVT#<provider>#<event_id> sk=EVENT       (conditional put: recorded once), ttl
- tenant config:  pk=TENANT#<tenant>         sk=CONFIG        config=<tenant JSON>, gsi2pk=TENANTS, gsi2sk=<tenant>
- bank line:      pk=BANK#<tenant>#<fingerprint> sk=LINE  line, decision, state (see storage/bank.py)
                  gsi1pk=BANKREVIEW#<tenant>, gsi1sk=<value date>#<fingerprint> while a person must decide
- bank cursor:    pk=BANKCURSOR#<tenant>#<account> sk=CURSOR  window_from, window_to, cursor, polled_at
- lever key:      pk=OPSKEY#<tenant>#<Idempotency-Key> sk=KEY  fingerprint, lever, result (see storage/lever_keys.py)
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from paybridge.domain.invoice import OPEN_STATES, AuditEntry, Invoice
from paybridge.storage.errors import ConcurrentModification, DuplicateProviderEvent
from paybridge.storage.repository import ProviderEventRecord, Saved
from paybridge.tenants import TenantConfig, TenantNotFound, parse_tenants

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

INVOICE_SK = "INVOICE"
OPEN_PK = "OPEN"
GSI_BY_PAYMENT = "ByPaymentId"
GSI_OPEN_BY_DUE = "OpenByDue"
GSI_BY_NUMBER = "ByNumber"
GSI_BY_STATE = "ByState"
TENANTS_PK = "TENANTS"


def number_key(tenant_id: str, number: str) -> str:
    from paybridge.domain.reconcile import normalize_number

    return f"NUM#{tenant_id}#{normalize_number(number)}"


def state_key(tenant_id: str, state: str) -> str:
    return f"STATE#{tenant_id}#{state}"


def deal_key(tenant_id: str, deal_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"DEAL#{tenant_id}#{deal_id}"}}


def _client() -> DynamoDBClient:
    import boto3  # lazy: keeps cold starts small

    return boto3.client("dynamodb")


def invoice_pk(tenant_id: str, invoice_id: str) -> str:
    return f"INV#{tenant_id}#{invoice_id}"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


class TableStore:
    """What every store on the single table shares: its name and a boto3 client made on first use."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None):
        self._table = table_name
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = _client()
        return self._client


class DynamoInvoiceRepository(TableStore):
    def __init__(self, table_name: str, client: DynamoDBClient | None = None, event_retention_days: int = 400):
        super().__init__(table_name, client)
        self._event_ttl = event_retention_days * 86400

    # -- mapping -------------------------------------------------------------------------------------------------

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
            item["gsi2pk"] = _s(OPEN_PK)
            item["gsi2sk"] = _s(f"{invoice.expires_at.isoformat()}#{invoice.tenant_id}#{invoice.invoice_id}")
        item["gsi3pk"] = _s(number_key(invoice.tenant_id, invoice.number))
        item["gsi5pk"] = _s(state_key(invoice.tenant_id, invoice.state.value))
        item["gsi5sk"] = _s(f"{invoice.created_at.isoformat()}#{invoice.invoice_id}")
        return item

    @staticmethod
    def _from_item(item: dict[str, Any]) -> Saved:
        invoice = Invoice.model_validate_json(item["doc"]["S"])
        token = item.get("task_token", {}).get("S")
        return Saved(invoice=invoice, task_token=token)

    def _audit_item(self, invoice: Invoice, audit: AuditEntry) -> dict[str, Any]:
        return {
            "pk": _s(invoice_pk(invoice.tenant_id, invoice.invoice_id)),
            "sk": _s(f"AUDIT#{audit.at.isoformat()}#{invoice.version:06d}"),
            "doc": _s(audit.model_dump_json()),
        }

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

    # -- interface -----------------------------------------------------------------------------------------------

    def create(self, invoice: Invoice, audit: AuditEntry) -> tuple[Invoice, bool]:
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
                ]
            )
        except self.client.exceptions.TransactionCanceledException:
            existing = self.get(invoice.tenant_id, invoice.invoice_id)
            if existing is None:  # pragma: no cover - cancelled for another reason (throttling): let it surface
                raise
            return existing, False
        return invoice, True

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

    def save(
        self,
        invoice: Invoice,
        expected_version: int,
        audit: AuditEntry | None,
        provider_event: ProviderEventRecord | None = None,
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
        for attr in ("gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi5pk", "gsi5sk"):
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
        # Read back after the write: a wait that stored its token before this write is seen here; one that stores
        # it after sees this write in its own ALL_NEW answer. Either way the lifecycle is resumed (see services).
        return self.get_saved(invoice.tenant_id, invoice.invoice_id) or Saved(invoice=invoice, task_token=None)

    def record_provider_event(self, record: ProviderEventRecord) -> None:
        try:
            self.client.put_item(
                TableName=self._table,
                Item=self._event_item(record),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            raise DuplicateProviderEvent(record.event_id) from None

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

    def set_task_token(self, tenant_id: str, invoice_id: str, task_token: str) -> Saved:
        response = self.client.update_item(
            TableName=self._table,
            Key={"pk": _s(invoice_pk(tenant_id, invoice_id)), "sk": _s(INVOICE_SK)},
            UpdateExpression="SET task_token = :t",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":t": _s(task_token)},
            ReturnValues="ALL_NEW",
        )
        return self._from_item(response["Attributes"])

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
        for start in range(0, len(unique), 100):
            pending: Any = {
                self._table: {
                    "Keys": [
                        {"pk": _s(invoice_pk(t, i)), "sk": _s(INVOICE_SK)} for t, i in unique[start : start + 100]
                    ],
                    "ConsistentRead": True,
                }
            }
            while pending:
                response = self.client.batch_get_item(RequestItems=pending)
                for item in response.get("Responses", {}).get(self._table, []):
                    invoice = self._from_item(item).invoice
                    found[invoice.invoice_id] = invoice
                pending = response.get("UnprocessedKeys") or None
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

    def open_invoices_due_before(self, iso_time: str, limit: int = 100) -> list[Invoice]:
        response = self.client.query(
            TableName=self._table,
            IndexName=GSI_OPEN_BY_DUE,
            KeyConditionExpression="gsi2pk = :open AND gsi2sk < :due",
            ExpressionAttributeValues={":open": _s(OPEN_PK), ":due": _s(iso_time)},
            Limit=limit,
        )
        invoices = []
        for item in response.get("Items", []):
            _, tenant_id, invoice_id = item["pk"]["S"].split("#")
            invoice = self.get(tenant_id, invoice_id)
            if invoice is not None and invoice.is_open:
                invoices.append(invoice)
        return invoices


class DynamoTenantDirectory(TableStore):
    """Tenant configuration items in the table, cached for the life of the execution environment."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None, ttl_seconds: int = 60):
        super().__init__(table_name, client)
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, TenantConfig]] = {}

    def get(self, tenant_id: str) -> TenantConfig:
        cached = self._cache.get(tenant_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        response = self.client.get_item(
            TableName=self._table, Key={"pk": _s(f"TENANT#{tenant_id}"), "sk": _s("CONFIG")}
        )
        item = response.get("Item")
        if not item:
            raise TenantNotFound(tenant_id)
        tenant = parse_tenants({"tenants": [json.loads(item["config"]["S"])]}, f"tenant item {tenant_id}")[tenant_id]
        self._cache[tenant_id] = (time.monotonic() + self._ttl, tenant)
        return tenant

    def put(self, tenant: TenantConfig) -> None:
        self.client.put_item(
            TableName=self._table,
            Item={
                "pk": _s(f"TENANT#{tenant.tenant_id}"),
                "sk": _s("CONFIG"),
                "config": _s(tenant.model_dump_json()),
                "gsi2pk": _s(TENANTS_PK),
                "gsi2sk": _s(tenant.tenant_id),
            },
        )

    def tenant_ids(self) -> list[str]:
        ids: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": GSI_OPEN_BY_DUE,
            "KeyConditionExpression": "gsi2pk = :t",
            "ExpressionAttributeValues": {":t": _s(TENANTS_PK)},
        }
        while True:
            page = self.client.query(**kwargs)
            ids += [item["gsi2sk"]["S"] for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return ids
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
