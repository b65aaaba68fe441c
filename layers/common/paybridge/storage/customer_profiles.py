"""The customer-profile ledger (README "Payments on the customer's profile"), in the single table. CRM ids and money
only — no name, e-mail or phone — so the retention and erasure of customer data have nothing to erase here.

Items
- totals:    pk=PROFILE#<tenant>#<contact|company>#<crm id>  sk=TOTALS  total (M: currency → N, minor units),
             last_at (S, ISO 8601), last_amount (N), last_currency (S), version (N: facts counted)
- a fact:    same pk, sk=FACT#<invoice>#<payment|refund>#<ref>  amount (N, signed), text (S: its timeline entry),
             shown (BOOL: the CRM took the entry)
- a deal:    pk=PROFILE#<tenant>#DEAL#<deal>  sk=ENTITY  kind (S), entity_id (S): the entity resolved for the deal

A fact is counted in one `TransactWriteItems`: its item put only if absent, the totals written only at the version
read. A fact told twice (a retried notification, a redelivered outbox message, two consumers at once) fails the
first condition and changes nothing; a lost race on the totals is read again and retried."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from paybridge.domain.customer_profile import MoneyFact, ProfileEntity, ProfileTotals, entry_text
from paybridge.storage.errors import ConcurrentModification
from paybridge.storage.table import TableStore, _n, _s

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

TOTALS_SK = "TOTALS"
ENTITY_SK = "ENTITY"
MAX_ATTEMPTS = 10


@dataclass(frozen=True)
class Counted:
    """The entity's totals after counting, and the entries (fact id, text) the CRM has not taken yet — new facts and
    facts counted before whose entry was not delivered (a failed or crashed delivery)."""

    totals: ProfileTotals
    entries: tuple[tuple[str, str], ...] = ()
    #: The currency the latest of these facts is in (whose total the fields show).
    currency: str | None = None


def profile_pk(tenant_id: str, entity: ProfileEntity) -> str:
    return f"PROFILE#{tenant_id}#{entity.kind}#{entity.entity_id}"


def _fact_key(tenant_id: str, entity: ProfileEntity, fact_id: str) -> dict[str, Any]:
    return {"pk": _s(profile_pk(tenant_id, entity)), "sk": _s(f"FACT#{fact_id}")}


def _totals_key(tenant_id: str, entity: ProfileEntity) -> dict[str, Any]:
    return {"pk": _s(profile_pk(tenant_id, entity)), "sk": _s(TOTALS_SK)}


def _deal_key(tenant_id: str, deal_id: str) -> dict[str, Any]:
    return {"pk": _s(f"PROFILE#{tenant_id}#DEAL#{deal_id}"), "sk": _s(ENTITY_SK)}


def _totals_of(item: dict[str, Any] | None) -> ProfileTotals:
    if not item:
        return ProfileTotals()
    last_at = item.get("last_at", {}).get("S")
    return ProfileTotals(
        total_paid={currency: int(value["N"]) for currency, value in item.get("total", {}).get("M", {}).items()},
        last_payment_at=datetime.fromisoformat(last_at) if last_at else None,
        last_payment_amount=int(item["last_amount"]["N"]) if "last_amount" in item else None,
        last_payment_currency=item.get("last_currency", {}).get("S"),
        version=int(item.get("version", {}).get("N", "0")),
    )


def _totals_item(totals: ProfileTotals) -> dict[str, Any]:
    item: dict[str, Any] = {
        "total": {"M": {currency: _n(value) for currency, value in totals.total_paid.items()}},
        "version": _n(totals.version),
    }
    if totals.last_payment_at is not None:
        item["last_at"] = _s(totals.last_payment_at.isoformat())
    if totals.last_payment_amount is not None and totals.last_payment_currency is not None:
        item["last_amount"] = _n(totals.last_payment_amount)
        item["last_currency"] = _s(totals.last_payment_currency)
    return item


def _n_signed(value: int) -> dict[str, str]:
    return {"N": str(value)}


class DynamoProfileLedger(TableStore):
    """`ProfileLedger` (app/deal_delivery.py) on the single table."""

    def __init__(
        self, table_name: str, client: Any = None, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        super().__init__(table_name, client)
        self._clock = clock

    # -- the deal's entity -------------------------------------------------------------------------------------------

    def entity_of(self, tenant_id: str, deal_id: str) -> ProfileEntity | None:
        item = self.client.get_item(TableName=self._table, Key=_deal_key(tenant_id, deal_id)).get("Item")
        if not item:
            return None
        return ProfileEntity.model_validate({"kind": item["kind"]["S"], "entity_id": item["entity_id"]["S"]})

    def remember(self, tenant_id: str, deal_id: str, entity: ProfileEntity) -> None:
        self.client.put_item(
            TableName=self._table,
            Item={**_deal_key(tenant_id, deal_id), "kind": _s(entity.kind), "entity_id": _s(entity.entity_id)},
        )

    # -- facts -------------------------------------------------------------------------------------------------------

    def count(self, tenant_id: str, entity: ProfileEntity, facts: Sequence[MoneyFact]) -> Counted | None:
        """Count the facts not counted yet (once each, whoever asks); None when every fact was counted and shown
        before (nothing to write to the CRM)."""
        known = self._facts(tenant_id, entity, [f.fact_id for f in facts])
        entries: list[tuple[str, str]] = []
        totals: ProfileTotals | None = None
        currency: str | None = None
        for fact in facts:
            stored = known.get(fact.fact_id)
            if stored is None:
                totals, stored = self._count_one(tenant_id, entity, fact)
            if not stored.get("shown", {}).get("BOOL", False):
                entries.append((fact.fact_id, stored["text"]["S"]))
                currency = fact.currency
        if not entries:
            return None
        if totals is None:
            totals = self.totals(tenant_id, entity)
        return Counted(totals=totals, entries=tuple(entries), currency=currency)

    def totals(self, tenant_id: str, entity: ProfileEntity) -> ProfileTotals:
        item = self.client.get_item(TableName=self._table, Key=_totals_key(tenant_id, entity), ConsistentRead=True).get(
            "Item"
        )
        return _totals_of(item)

    def shown(self, tenant_id: str, entity: ProfileEntity, fact_ids: Sequence[str]) -> None:
        """The CRM took these facts' entries: a later delivery does not repeat them."""
        for fact_id in fact_ids:
            self.client.update_item(
                TableName=self._table,
                Key=_fact_key(tenant_id, entity, fact_id),
                UpdateExpression="SET shown = :yes",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":yes": {"BOOL": True}},
            )

    def _facts(self, tenant_id: str, entity: ProfileEntity, fact_ids: list[str]) -> dict[str, dict[str, Any]]:
        keys = [_fact_key(tenant_id, entity, fact_id) for fact_id in fact_ids]
        found = {item["sk"]["S"].removeprefix("FACT#"): item for item in self._batch_get(keys)}
        return found

    def _count_one(
        self, tenant_id: str, entity: ProfileEntity, fact: MoneyFact
    ) -> tuple[ProfileTotals | None, dict[str, Any]]:
        for attempt in range(MAX_ATTEMPTS):
            before = self.totals(tenant_id, entity)
            after = before.count(fact, self._clock())
            fact_item = {
                **_fact_key(tenant_id, entity, fact.fact_id),
                "amount": _n_signed(fact.signed_amount),
                "text": _s(entry_text(fact, after)),
                "shown": {"BOOL": False},
            }
            totals_condition = "attribute_not_exists(pk)" if before.version == 0 else "version = :v"
            totals_update: dict[str, Any] = {
                "Put": {
                    "TableName": self._table,
                    "Item": {**_totals_key(tenant_id, entity), **_totals_item(after)},
                    "ConditionExpression": totals_condition,
                }
            }
            if before.version:
                totals_update["Put"]["ExpressionAttributeValues"] = {":v": _n(before.version)}
            items: list[TransactWriteItemTypeDef] = [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": fact_item,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                totals_update,  # type: ignore[list-item]
            ]
            try:
                self.client.transact_write_items(TransactItems=items)
            except self.client.exceptions.TransactionCanceledException as exc:
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if reasons and reasons[0] == "ConditionalCheckFailed":  # counted meanwhile by another delivery
                    stored = self._facts(tenant_id, entity, [fact.fact_id]).get(fact.fact_id)
                    if stored is not None:
                        return None, stored
                time.sleep(random.uniform(0, 0.01 * (attempt + 1)))  # noqa: S311 - jitter, not crypto
                continue
            return after, fact_item
        raise ConcurrentModification(f"profile {profile_pk(tenant_id, entity)}")


@dataclass
class MemoryProfileLedger:
    """The same ledger in memory (unit tests): the same rules, one dict."""

    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    entities: dict[tuple[str, str], ProfileEntity] = field(default_factory=dict)
    totals_by: dict[tuple[str, str, str], ProfileTotals] = field(default_factory=dict)
    facts: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)

    def entity_of(self, tenant_id: str, deal_id: str) -> ProfileEntity | None:
        return self.entities.get((tenant_id, deal_id))

    def remember(self, tenant_id: str, deal_id: str, entity: ProfileEntity) -> None:
        self.entities[(tenant_id, deal_id)] = entity

    def count(self, tenant_id: str, entity: ProfileEntity, facts: Sequence[MoneyFact]) -> Counted | None:
        key = (tenant_id, entity.kind, entity.entity_id)
        entries: list[tuple[str, str]] = []
        currency: str | None = None
        for fact in facts:
            stored = self.facts.get((*key, fact.fact_id))
            if stored is None:
                after = self.totals_by.get(key, ProfileTotals()).count(fact, self.clock())
                self.totals_by[key] = after
                stored = self.facts[(*key, fact.fact_id)] = {"text": entry_text(fact, after), "shown": False}
            if not stored["shown"]:
                entries.append((fact.fact_id, stored["text"]))
                currency = fact.currency
        if not entries:
            return None
        return Counted(totals=self.totals_by.get(key, ProfileTotals()), entries=tuple(entries), currency=currency)

    def shown(self, tenant_id: str, entity: ProfileEntity, fact_ids: Sequence[str]) -> None:
        for fact_id in fact_ids:
            self.facts[(tenant_id, entity.kind, entity.entity_id, fact_id)]["shown"] = True
