"""Drift reports: one item per run and tenant, kept 30 days.

- pk=DRIFT#<tenant> sk=<run time, ISO UTC>  doc=<DriftReport JSON>, ttl. `GET /v1/{tenant}/drift` reads the newest.
"""

from __future__ import annotations

import time

from paybridge.app.drift import DriftReport
from paybridge.storage.table import TableStore, _n, _s

KEEP_SECONDS = 30 * 86400


class DynamoDriftStore(TableStore):
    def save(self, report: DriftReport) -> None:
        self.client.put_item(
            TableName=self._table,
            Item={
                "pk": _s(f"DRIFT#{report.tenant_id}"),
                "sk": _s(report.at.isoformat()),
                "doc": _s(report.model_dump_json()),
                "ttl": _n(int(time.time()) + KEEP_SECONDS),
            },
        )

    def latest(self, tenant_id: str, limit: int = 10) -> list[DriftReport]:
        response = self.client.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": _s(f"DRIFT#{tenant_id}")},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [DriftReport.model_validate_json(item["doc"]["S"]) for item in response.get("Items", [])]
