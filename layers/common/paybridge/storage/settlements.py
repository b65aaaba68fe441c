"""Acquiring settlements in the single table: the ledger of provider operations, which payout settled each, and the
payouts themselves.

Items
- ledger:    the audit entry of a provider's money fact (`money_received` / `refund_confirmed` with a PSP ref), written
             in the change's own transaction (storage/dynamodb.py `_audit_item`): gsi1pk=ACQ#<tenant>#<provider>,
             gsi1sk=<at>#<P|R>#<amount>#<method>#<ref> — the index is KEYS_ONLY, so the key carries what the
             matcher needs and a month is one Query per provider, no item reads. A refund linked to its request
             later writes a second entry with the same ref: readers keep the first.
- settled:   pk=SETTLED#<tenant>#<ref> sk=SETTLED  fingerprint, value_date, fee, basis, provider, invoice_id, amount,
             kind. Put once (conditional): an operation is paid out by one payout.
- payout:    pk=SETTLE#<tenant>#<fingerprint> sk=SETTLEMENT  line, match (JSON), flagged;
             gsi1pk=SETTLEMENTS#<tenant>, gsi1sk=<value date>#<fingerprint> (the month's payouts, for the report).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from paybridge.storage.table import GSI_BY_PAYMENT, TableStore, _n, _s

if TYPE_CHECKING:  # imported where used: every invoice write calls `ledger_keys`, which needs none of them
    from paybridge.domain.bank import StatementLine
    from paybridge.domain.invoice import AuditEntry, Invoice
    from paybridge.domain.settlement import ProviderOperation, SettledItem, SettlementMatch

#: Providers whose money facts are acquiring operations (their refs are `<provider>:…`).
LEDGER_PROVIDERS = frozenset({"tbank", "yookassa", "stripe", "sandbox"})
_KINDS = {"money_received": "P", "refund_confirmed": "R"}


def ledger_keys(invoice: Invoice, audit: AuditEntry) -> dict[str, Any]:
    """The ledger index keys of an audit entry, or none when it is not a provider's payment or refund."""
    kind = _KINDS.get(audit.event)
    if kind is None or not audit.ref or not audit.amount or audit.amount <= 0:
        return {}
    provider = audit.ref.split(":", 1)[0]
    if provider not in LEDGER_PROVIDERS:
        return {}
    method = invoice.receipt_methods.get(audit.ref, "-") if kind == "P" else "-"
    return {
        "gsi1pk": _s(f"ACQ#{invoice.tenant_id}#{provider}"),
        "gsi1sk": _s(f"{audit.at.isoformat()}#{kind}#{audit.amount}#{method}#{audit.ref}"),
    }


def _operation(provider: str, item: dict[str, Any]) -> ProviderOperation:
    from paybridge.domain.settlement import ProviderOperation

    at, kind, amount, method, ref = item["gsi1sk"]["S"].split("#", 4)
    return ProviderOperation(
        provider=provider,
        ref=ref,
        kind="payment" if kind == "P" else "refund",
        invoice_id=item["pk"]["S"].rsplit("#", 1)[-1],
        amount=int(amount),
        method=None if method == "-" else method,
        recorded_at=datetime.fromisoformat(at),
    )


@dataclass(frozen=True)
class SettledMark:
    ref: str
    fingerprint: str
    value_date: date
    fee: int
    basis: str
    provider: str
    invoice_id: str
    amount: int
    kind: str


@dataclass(frozen=True)
class PayoutRecord:
    fingerprint: str
    line: StatementLine
    match: SettlementMatch


class DynamoSettlementStore(TableStore):
    # -- ledger ----------------------------------------------------------------------------------------------------

    def operations(self, tenant_id: str, provider: str, since: datetime, until: datetime) -> list[ProviderOperation]:
        """The provider's payments and refunds recorded in [since, until], oldest first, one per ref."""
        found: dict[str, ProviderOperation] = {}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": GSI_BY_PAYMENT,
            "KeyConditionExpression": "gsi1pk = :pk AND gsi1sk BETWEEN :since AND :until",
            "ExpressionAttributeValues": {
                ":pk": _s(f"ACQ#{tenant_id}#{provider}"),
                ":since": _s(since.isoformat()),
                ":until": _s(until.isoformat() + "~"),
            },
        }
        while True:
            response = self.client.query(**kwargs)
            for item in response.get("Items", []):
                operation = _operation(provider, item)
                found.setdefault(operation.ref, operation)
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return list(found.values())

    # -- settled marks ---------------------------------------------------------------------------------------------

    @staticmethod
    def _mark_key(tenant_id: str, ref: str) -> dict[str, Any]:
        return {"pk": _s(f"SETTLED#{tenant_id}#{ref}"), "sk": _s("SETTLED")}

    def settled(self, tenant_id: str, refs: list[str]) -> dict[str, SettledMark]:
        """Which of `refs` a payout settled already."""
        marks = {
            mark.ref: mark for mark in map(_mark, self._batch_get([self._mark_key(tenant_id, ref) for ref in refs]))
        }
        return marks

    def mark_settled(
        self, tenant_id: str, provider: str, item: SettledItem, fingerprint: str, value_date: date
    ) -> bool:
        """Record that this payout settled the operation; False when a payout had settled it before."""
        try:
            self.client.put_item(
                TableName=self._table,
                Item={
                    **self._mark_key(tenant_id, item.ref),
                    "ref": _s(item.ref),
                    "fingerprint": _s(fingerprint),
                    "value_date": _s(value_date.isoformat()),
                    "fee": _n(item.fee),
                    "basis": _s(item.basis),
                    "provider": _s(provider),
                    "invoice_id": _s(item.invoice_id),
                    "amount": _n(item.amount),
                    "kind": _s(item.kind),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    # -- payouts ---------------------------------------------------------------------------------------------------

    @staticmethod
    def _payout_key(tenant_id: str, fingerprint: str) -> dict[str, Any]:
        return {"pk": _s(f"SETTLE#{tenant_id}#{fingerprint}"), "sk": _s("SETTLEMENT")}

    def save_payout(self, tenant_id: str, line: StatementLine, match: SettlementMatch) -> None:
        """The payout as its recorded decision matched it (the same for every reader of the line)."""
        from paybridge.domain.bank import LINE_JSON

        self.client.put_item(
            TableName=self._table,
            Item={
                **self._payout_key(tenant_id, line.fingerprint),
                "line": _s(LINE_JSON.dump_json(line).decode()),
                "match": _s(match.model_dump_json()),
                "gsi1pk": _s(f"SETTLEMENTS#{tenant_id}"),
                "gsi1sk": _s(f"{line.value_date.isoformat()}#{line.fingerprint}"),
            },
        )

    def payouts(self, tenant_id: str, since: date, until: date) -> list[PayoutRecord]:
        """The payouts with a value date in [since, until], oldest first."""
        from paybridge.domain.bank import LINE_JSON
        from paybridge.domain.settlement import SettlementMatch

        fingerprints: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": GSI_BY_PAYMENT,
            "KeyConditionExpression": "gsi1pk = :pk AND gsi1sk BETWEEN :since AND :until",
            "ExpressionAttributeValues": {
                ":pk": _s(f"SETTLEMENTS#{tenant_id}"),
                ":since": _s(since.isoformat()),
                ":until": _s(until.isoformat() + "~"),
            },
        }
        while True:
            response = self.client.query(**kwargs)
            fingerprints += [item["gsi1sk"]["S"].split("#", 1)[1] for item in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        records = []
        for fingerprint in fingerprints:
            item = self.client.get_item(
                TableName=self._table, Key=self._payout_key(tenant_id, fingerprint), ConsistentRead=True
            ).get("Item")
            if item:
                records.append(
                    PayoutRecord(
                        fingerprint=fingerprint,
                        line=LINE_JSON.validate_json(item["line"]["S"]),
                        match=SettlementMatch.model_validate_json(item["match"]["S"]),
                    )
                )
        return records


def _mark(item: dict[str, Any]) -> SettledMark:
    return SettledMark(
        ref=item["ref"]["S"],
        fingerprint=item["fingerprint"]["S"],
        value_date=date.fromisoformat(item["value_date"]["S"]),
        fee=int(item["fee"]["N"]),
        basis=item["basis"]["S"],
        provider=item["provider"]["S"],
        invoice_id=item["invoice_id"]["S"],
        amount=int(item["amount"]["N"]),
        kind=item["kind"]["S"],
    )
