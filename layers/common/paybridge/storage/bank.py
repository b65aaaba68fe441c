"""Bank lines and statement cursors in the single table.

Items
- bank line:   pk=BANK#<tenant>#<fingerprint> sk=LINE   line=<StatementLine JSON>, decision=<Decision JSON>,
               state=pending|applied, recorded_at; gsi1pk=BANKREVIEW#<tenant>, gsi1sk=<value date>#<fingerprint>
               while a person must decide. Put once (conditional): the first decision for a line is the one applied.
- cursor:      pk=BANKCURSOR#<tenant>#<account> sk=CURSOR  window_from, window_to, cursor (the page to read next in
               that window, or none), polled_at.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from paybridge.domain.bank import Decision, StatementLine
from paybridge.storage.dynamodb import GSI_BY_PAYMENT, TableStore, _s

if TYPE_CHECKING:
    pass

LineState = Literal["pending", "applied"]


@dataclass(frozen=True)
class BankLineRecord:
    line: StatementLine
    decision: Decision
    state: LineState
    recorded_at: str


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
        return BankLineRecord(
            line=StatementLine.model_validate_json(item["line"]["S"]),
            decision=Decision.model_validate_json(item["decision"]["S"]),
            state="applied" if item["state"]["S"] == "applied" else "pending",
            recorded_at=item["recorded_at"]["S"],
        )

    def record_line(self, tenant_id: str, line: StatementLine, decision: Decision) -> BankLineRecord:
        """Store the line with its decision unless it is known; either way, the stored record (the first decision
        for a line wins, so two readers of one line apply the same allocations)."""
        now = datetime.now(UTC).isoformat()
        item: dict[str, Any] = {
            **self._line_key(tenant_id, line.fingerprint),
            "line": _s(line.model_dump_json()),
            "decision": _s(decision.model_dump_json()),
            "state": _s("pending"),
            "recorded_at": _s(now),
            "tenant_id": _s(tenant_id),
        }
        if decision.needs_a_person:
            item["gsi1pk"] = _s(f"BANKREVIEW#{tenant_id}")
            item["gsi1sk"] = _s(f"{line.value_date.isoformat()}#{line.fingerprint}")
        try:
            self.client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except self.client.exceptions.ConditionalCheckFailedException:
            existing = self.get_line(tenant_id, line.fingerprint)
            if existing is not None:
                return existing
            raise  # pragma: no cover - it existed a moment ago and items are never deleted
        return BankLineRecord(line=line, decision=decision, state="pending", recorded_at=now)

    def mark_applied(self, tenant_id: str, fingerprint: str) -> None:
        self.client.update_item(
            TableName=self._table,
            Key=self._line_key(tenant_id, fingerprint),
            UpdateExpression="SET #s = :applied",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":applied": _s("applied")},
        )

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
            if record is not None:
                records.append(record)
        return records

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
