"""Drift reports: one item per run and tenant, kept 30 days.

- pk=DRIFT#<tenant> sk=<run time, ISO UTC>  doc=<DriftReport JSON>, ttl. `GET /v1/{tenant}/drift` reads the newest.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from paybridge.app.drift import DriftReport
from paybridge.storage.table import TableStore, _n, _s

if TYPE_CHECKING:
    from paybridge.app.publishing import OutboxBatch

KEEP_SECONDS = 30 * 86400


class DynamoDriftStore(TableStore):
    def save(self, report: DriftReport, outbox: OutboxBatch | None = None) -> None:
        """The run's report; with `outbox`, its `drift.found` in the same transaction."""
        item = {
            "pk": _s(f"DRIFT#{report.tenant_id}"),
            "sk": _s(report.at.isoformat()),
            "doc": _s(report.model_dump_json()),
            "ttl": _n(int(time.time()) + KEEP_SECONDS),
        }
        self._write_one({"Put": {"Item": item}}, outbox)

    def latest(self, tenant_id: str, limit: int = 10) -> list[DriftReport]:
        response = self.client.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": _s(f"DRIFT#{tenant_id}")},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [DriftReport.model_validate_json(item["doc"]["S"]) for item in response.get("Items", [])]
