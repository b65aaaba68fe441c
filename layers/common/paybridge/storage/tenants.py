"""Tenant configuration items: pk=TENANT#<tenant> sk=CONFIG, `config` the tenant's JSON, listed by gsi2pk=TENANTS."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from paybridge.tenants import TenantConfig, TenantNotFound, parse_tenants

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
from paybridge.storage.table import GSI_OPEN_BY_DUE, TENANTS_PK, TableStore, _s


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

    def config_json(self, tenant_id: str) -> str | None:
        """The tenant item's `config` as stored (None: no such tenant), read consistently — for a change made on it."""
        response = self.client.get_item(
            TableName=self._table, Key={"pk": _s(f"TENANT#{tenant_id}"), "sk": _s("CONFIG")}, ConsistentRead=True
        )
        item = response.get("Item")
        return item["config"]["S"] if item else None

    def put(self, tenant: TenantConfig, if_config: str | None = None) -> None:
        """Write the tenant item with every attribute the code reads: `config`, and `gsi2pk`/`gsi2sk` (the listing
        every schedule walks: bank polling, drift, the re-check sweep). With `if_config`, only over that stored
        config (`ConditionalCheckFailedException` otherwise: someone changed it meanwhile)."""
        condition: dict[str, Any] = {}
        if if_config is not None:
            condition = {"ConditionExpression": "config = :old", "ExpressionAttributeValues": {":old": _s(if_config)}}
        self.client.put_item(
            TableName=self._table,
            Item={
                "pk": _s(f"TENANT#{tenant.tenant_id}"),
                "sk": _s("CONFIG"),
                "config": _s(tenant.model_dump_json()),
                "gsi2pk": _s(TENANTS_PK),
                "gsi2sk": _s(tenant.tenant_id),
            },
            **condition,
        )
        self._cache.pop(tenant.tenant_id, None)

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

    def unindexed_ids(self) -> list[str]:
        """Tenant items without the listing attributes (`gsi2pk`/`gsi2sk`: written by hand, or by an old tool): the
        functions serve their API calls, but no schedule ever sees them — no bank polling, no re-check sweep, no
        drift check. A Scan of the whole table (an operator's check, never a function's): `paybridge tenants
        reindex` puts each back through `put`."""
        ids: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "sk = :config AND begins_with(pk, :tenant) AND attribute_not_exists(gsi2pk)",
            "ExpressionAttributeValues": {":config": _s("CONFIG"), ":tenant": _s("TENANT#")},
            "ProjectionExpression": "pk",
        }
        while True:
            page = self.client.scan(**kwargs)
            ids += [item["pk"]["S"].removeprefix("TENANT#") for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return sorted(ids)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
