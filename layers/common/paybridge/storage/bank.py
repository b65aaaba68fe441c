"""Bank lines and statement cursors in the single table.

Items
- bank line:   pk=BANK#<tenant>#<fingerprint> sk=LINE   line=<StatementLine JSON>, decision=<Decision JSON>,
               state=pending|applied|resolved|dismissed, recorded_at; gsi1pk=BANKREVIEW#<tenant>,
               gsi1sk=<value date>#<fingerprint> while a person must decide. Put once (conditional): the first decision
               for a line is the one applied. A person's decision: resolution=<LineResolution JSON>, resolution_key
               (claimed once), then state resolved|dismissed and the line leaves the review list.
               gsi6pk=BANKPII#<tenant>, gsi6sk=<recorded_at>#<fingerprint> while the line holds a payer's name, INN
               or account (`ByRetention`); erased (`payer_erased_at`) once done and past the retention.
- cursor:      pk=BANKCURSOR#<tenant>#<account> sk=CURSOR  window_from, window_to, cursor (the page to read next in
               that window, or none), polled_at.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from paybridge.domain.bank import DECISION_JSON, LINE_JSON, Decision, LineResolution, StatementLine
from paybridge.storage.table import GSI_BY_PAYMENT, TableStore, _s, retention_key, retention_keys

if TYPE_CHECKING:
    from paybridge.app.publishing import OutboxBatch

LineState = Literal["pending", "applied", "resolved", "dismissed"]
_STATES: dict[str, LineState] = {"applied": "applied", "resolved": "resolved", "dismissed": "dismissed"}


@dataclass(frozen=True)
class BankLineRecord:
    line: StatementLine
    decision: Decision
    state: LineState
    recorded_at: str
    #: A person's decision for a line on the review list (set while it is being applied, and after).
    resolution: LineResolution | None = None
    #: Stored by this call of `record_line` (not found there already).
    fresh: bool = False

    @property
    def done(self) -> bool:
        """Applied (by the matcher or a person) or dismissed: reading the line again changes nothing."""
        return self.state != "pending"

    @property
    def in_review(self) -> bool:
        return self.decision.needs_a_person and self.state not in ("resolved", "dismissed")


@dataclass(frozen=True)
class BankCursor:
    window_from: datetime
    window_to: datetime
    cursor: str | None
    polled_at: datetime


class DynamoBankStore(TableStore):
    # -- lines -----------------------------------------------------------------------------------------------------

    @staticmethod
    def _line_key(tenant_id: str, fingerprint: str) -> dict[str, Any]:
        return {"pk": _s(f"BANK#{tenant_id}#{fingerprint}"), "sk": _s("LINE")}

    def get_line(self, tenant_id: str, fingerprint: str) -> BankLineRecord | None:
        item = self.client.get_item(
            TableName=self._table, Key=self._line_key(tenant_id, fingerprint), ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        return self._from_item(item)

    @staticmethod
    def _from_item(item: dict[str, Any]) -> BankLineRecord:
        resolution = item.get("resolution", {}).get("S")
        return BankLineRecord(
            line=LINE_JSON.validate_json(item["line"]["S"]),
            decision=DECISION_JSON.validate_json(item["decision"]["S"]),
            state=_STATES.get(item["state"]["S"], "pending"),
            recorded_at=item["recorded_at"]["S"],
            resolution=LineResolution.model_validate_json(resolution) if resolution else None,
        )

    def record_line(
        self, tenant_id: str, line: StatementLine, decision: Decision, outbox: OutboxBatch | None = None
    ) -> BankLineRecord:
        """Store the line with its decision unless it is known; either way, the stored record (the first decision
        for a line wins, so two readers of one line apply the same allocations). `outbox`: the decision's events,
        written in the same transaction (so only the reader whose decision is stored announces it)."""
        now = datetime.now(UTC).isoformat()
        item: dict[str, Any] = {
            **self._line_key(tenant_id, line.fingerprint),
            "line": _s(LINE_JSON.dump_json(line).decode()),
            "decision": _s(DECISION_JSON.dump_json(decision).decode()),
            "state": _s("pending"),
            "recorded_at": _s(now),
            "tenant_id": _s(tenant_id),
        }
        if decision.needs_a_person:
            item["gsi1pk"] = _s(f"BANKREVIEW#{tenant_id}")
            item["gsi1sk"] = _s(f"{line.value_date.isoformat()}#{line.fingerprint}")
        if line.has_payer_data:  # the retention's to erase once the line is done
            item["gsi6pk"] = _s(retention_key(tenant_id, "BANKPII"))
            item["gsi6sk"] = _s(f"{now}#{line.fingerprint}")
        try:
            self._write_one({"Put": {"Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}, outbox)
        except self.client.exceptions.ConditionalCheckFailedException:
            existing = self.get_line(tenant_id, line.fingerprint)
            if existing is not None:
                return existing
            raise  # pragma: no cover - it existed a moment ago and items are never deleted
        return BankLineRecord(line=line, decision=decision, state="pending", recorded_at=now, fresh=True)

    def mark_applied(self, tenant_id: str, fingerprint: str) -> None:
        # applied by another reader, or decided by a person meanwhile: that stands
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self._table,
                Key=self._line_key(tenant_id, fingerprint),
                UpdateExpression="SET #s = :applied",
                ConditionExpression="#s = :pending",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":applied": _s("applied"), ":pending": _s("pending")},
            )

    def with_payer_data(self, tenant_id: str, recorded_before: str | None = None, limit: int = 1000) -> list[str]:
        """Fingerprints of the tenant's lines still holding a payer's name, INN or account (recorded before
        `recorded_before`), oldest first, from the sparse `ByRetention` index (lines in review among them)."""
        pks = retention_keys(self.client, self._table, retention_key(tenant_id, "BANKPII"), recorded_before, limit)
        return [pk.rsplit("#", 1)[-1] for pk in pks]

    def erase_payer(self, tenant_id: str, fingerprint: str, at: datetime) -> bool:
        """Erase the payer's name, INN and account from a done line (applied, resolved or dismissed, and not on the
        review list). False: not done yet, or erased already — nothing written."""
        record = self.get_line(tenant_id, fingerprint)
        if record is None or not record.done or record.in_review or not record.line.has_payer_data:
            return False
        try:
            self.client.update_item(
                TableName=self._table,
                Key=self._line_key(tenant_id, fingerprint),
                UpdateExpression="SET line = :erased, payer_erased_at = :at REMOVE gsi6pk, gsi6sk",
                ConditionExpression="#s <> :pending AND attribute_not_exists(gsi1pk)",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={
                    ":erased": _s(LINE_JSON.dump_json(record.line.without_payer()).decode()),
                    ":at": _s(at.isoformat()),
                    ":pending": _s("pending"),
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def lines_for_review(self, tenant_id: str, limit: int = 100) -> list[BankLineRecord]:
        response = self.client.query(
            TableName=self._table,
            IndexName=GSI_BY_PAYMENT,
            KeyConditionExpression="gsi1pk = :review",
            ExpressionAttributeValues={":review": _s(f"BANKREVIEW#{tenant_id}")},
            ScanIndexForward=False,
            Limit=limit,
        )
        records = []
        for item in response.get("Items", []):
            fingerprint = item["pk"]["S"].rsplit("#", 1)[-1]
            record = self.get_line(tenant_id, fingerprint)
            if record is not None and record.in_review:  # the index lags a person's decision
                records.append(record)
        return records

    def review_count(self, tenant_id: str, month: str) -> int:
        """Lines with a value date in `month` (YYYY-MM) still waiting for a person (a Query that counts, no scan)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": GSI_BY_PAYMENT,
            "KeyConditionExpression": "gsi1pk = :review AND begins_with(gsi1sk, :month)",
            "ExpressionAttributeValues": {":review": _s(f"BANKREVIEW#{tenant_id}"), ":month": _s(f"{month}-")},
            "Select": "COUNT",
        }
        count = 0
        while True:
            response = self.client.query(**kwargs)
            count += int(response.get("Count", 0))
            if "LastEvaluatedKey" not in response:
                return count
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def claim_resolution(self, tenant_id: str, resolution: LineResolution, fingerprint: str) -> BankLineRecord | None:
        """Record a person's decision on the line unless another one is recorded (then: the line as it is). None
        when there is no such line."""
        try:
            response = self.client.update_item(
                TableName=self._table,
                Key=self._line_key(tenant_id, fingerprint),
                UpdateExpression="SET resolution = if_not_exists(resolution, :r), resolution_key = :key",
                ConditionExpression=(
                    "attribute_exists(pk) AND (attribute_not_exists(resolution_key) OR resolution_key = :key)"
                ),
                ExpressionAttributeValues={":r": _s(resolution.model_dump_json()), ":key": _s(resolution.key)},
                ReturnValues="ALL_NEW",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return self.get_line(tenant_id, fingerprint)
        return self._from_item(response["Attributes"])

    def finish_resolution(self, tenant_id: str, fingerprint: str, resolution: LineResolution) -> None:
        """The person's decision is applied: the line is resolved (or dismissed) and leaves the review list."""
        self.client.update_item(
            TableName=self._table,
            Key=self._line_key(tenant_id, fingerprint),
            UpdateExpression="SET #s = :state REMOVE gsi1pk, gsi1sk",
            ConditionExpression="resolution_key = :key",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":state": _s(resolution.kind), ":key": _s(resolution.key)},
        )

    # -- cursors ---------------------------------------------------------------------------------------------------

    @staticmethod
    def _cursor_key(tenant_id: str, account: str) -> dict[str, Any]:
        return {"pk": _s(f"BANKCURSOR#{tenant_id}#{account}"), "sk": _s("CURSOR")}

    def get_cursor(self, tenant_id: str, account: str) -> BankCursor | None:
        item = self.client.get_item(
            TableName=self._table, Key=self._cursor_key(tenant_id, account), ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        return BankCursor(
            window_from=datetime.fromisoformat(item["window_from"]["S"]),
            window_to=datetime.fromisoformat(item["window_to"]["S"]),
            cursor=item["cursor"]["S"] or None,
            polled_at=datetime.fromisoformat(item["polled_at"]["S"]),
        )

    def save_cursor(self, tenant_id: str, account: str, cursor: BankCursor) -> None:
        self.client.put_item(
            TableName=self._table,
            Item={
                **self._cursor_key(tenant_id, account),
                "window_from": _s(cursor.window_from.isoformat()),
                "window_to": _s(cursor.window_to.isoformat()),
                "cursor": _s(cursor.cursor or ""),
                "polled_at": _s(cursor.polled_at.isoformat()),
            },
        )
