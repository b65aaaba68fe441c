"""Webhook endpoints, their messages and their delivery log, on the single table.

- endpoint:  pk=WEBHOOK#<tenant>            sk=EP#<endpoint>   doc=<WebhookEndpoint JSON> (with its secret: the table
             is encrypted at rest, and the secret must be kept in the clear to sign), version
- message:   pk=WHMSG#<tenant>#<endpoint>   sk=<event id>      body (the exact JSON sent, signed on each attempt),
             event_type, created_at, status (queued / delivered / failed), ttl 30 days. Written once per event and
             endpoint (conditional put: EventBridge's at-least-once delivery becomes one message)
- log line:  pk=WHLOG#<tenant>#<endpoint>   sk=<at>#<event id>#<attempt>  doc=<DeliveryAttempt JSON>, ttl 30 days
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from paybridge.app.errors import WebhookExists
from paybridge.domain.webhooks import DeliveryAttempt, WebhookEndpoint
from paybridge.storage.errors import ConcurrentModification
from paybridge.storage.table import TableStore, _n, _s

KEEP_SECONDS = 30 * 86400
MessageStatus = str  # "queued" | "delivered" | "failed"


class DynamoWebhookStore(TableStore):
    # -- endpoints -----------------------------------------------------------------------------------------------------

    @staticmethod
    def _endpoint_key(tenant_id: str, endpoint_id: str) -> dict[str, Any]:
        return {"pk": _s(f"WEBHOOK#{tenant_id}"), "sk": _s(f"EP#{endpoint_id}")}

    def add_endpoint(self, endpoint: WebhookEndpoint) -> None:
        try:
            self.client.put_item(
                TableName=self._table,
                Item={
                    **self._endpoint_key(endpoint.tenant_id, endpoint.endpoint_id),
                    "doc": _s(endpoint.model_dump_json()),
                    "version": _n(endpoint.version),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            raise WebhookExists(f"a webhook endpoint for this URL exists already ({endpoint.endpoint_id})") from None

    def save_endpoint(self, endpoint: WebhookEndpoint, expected_version: int) -> None:
        try:
            self.client.put_item(
                TableName=self._table,
                Item={
                    **self._endpoint_key(endpoint.tenant_id, endpoint.endpoint_id),
                    "doc": _s(endpoint.model_dump_json()),
                    "version": _n(endpoint.version),
                },
                ConditionExpression="version = :v",
                ExpressionAttributeValues={":v": _n(expected_version)},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            raise ConcurrentModification(endpoint.endpoint_id) from None

    def get_endpoint(self, tenant_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        item = self.client.get_item(
            TableName=self._table, Key=self._endpoint_key(tenant_id, endpoint_id), ConsistentRead=True
        ).get("Item")
        return WebhookEndpoint.model_validate_json(item["doc"]["S"]) if item else None

    def endpoints(self, tenant_id: str) -> list[WebhookEndpoint]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :ep)",
            "ExpressionAttributeValues": {":pk": _s(f"WEBHOOK#{tenant_id}"), ":ep": _s("EP#")},
        }
        found: list[WebhookEndpoint] = []
        while True:
            page = self.client.query(**kwargs)
            found += [WebhookEndpoint.model_validate_json(i["doc"]["S"]) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def delete_endpoint(self, tenant_id: str, endpoint_id: str) -> bool:
        answer = self.client.delete_item(
            TableName=self._table, Key=self._endpoint_key(tenant_id, endpoint_id), ReturnValues="ALL_OLD"
        )
        return "Attributes" in answer

    # -- messages ------------------------------------------------------------------------------------------------------

    def add_message(
        self, tenant_id: str, endpoint_id: str, event_id: str, event_type: str, body: str, at: datetime
    ) -> bool:
        """Record the message of one event for one endpoint; False when it was recorded before (a repeat)."""
        try:
            self.client.put_item(
                TableName=self._table,
                Item={
                    "pk": _s(f"WHMSG#{tenant_id}#{endpoint_id}"),
                    "sk": _s(event_id),
                    "body": _s(body),
                    "event_type": _s(event_type),
                    "created_at": _s(at.isoformat()),
                    "status": _s("queued"),
                    "ttl": _n(int(time.time()) + KEEP_SECONDS),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def forget_message(self, tenant_id: str, endpoint_id: str, event_id: str) -> None:
        self.client.delete_item(
            TableName=self._table, Key={"pk": _s(f"WHMSG#{tenant_id}#{endpoint_id}"), "sk": _s(event_id)}
        )

    def get_message(self, tenant_id: str, endpoint_id: str, event_id: str) -> dict[str, str] | None:
        item = self.client.get_item(
            TableName=self._table,
            Key={"pk": _s(f"WHMSG#{tenant_id}#{endpoint_id}"), "sk": _s(event_id)},
            ConsistentRead=True,
        ).get("Item")
        return {k: v["S"] for k, v in item.items() if "S" in v} if item else None

    def set_message_status(self, tenant_id: str, endpoint_id: str, event_id: str, status: MessageStatus) -> None:
        self.client.update_item(
            TableName=self._table,
            Key={"pk": _s(f"WHMSG#{tenant_id}#{endpoint_id}"), "sk": _s(event_id)},
            UpdateExpression="SET #st = :st",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#st": "status"},
            ExpressionAttributeValues={":st": _s(status)},
        )

    def messages_since(
        self, tenant_id: str, endpoint_id: str, since: datetime, statuses: tuple[str, ...], limit: int
    ) -> list[dict[str, str]]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": _s(f"WHMSG#{tenant_id}#{endpoint_id}")},
        }
        found: list[dict[str, str]] = []
        while len(found) < limit:
            page = self.client.query(**kwargs)
            for item in page.get("Items", []):
                message = {k: v["S"] for k, v in item.items() if "S" in v}
                if message["created_at"] >= since.isoformat() and message["status"] in statuses:
                    found.append(message)
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(found, key=lambda m: m["created_at"])[:limit]

    # -- the delivery log ----------------------------------------------------------------------------------------------

    def log(self, tenant_id: str, attempt: DeliveryAttempt) -> None:
        self.client.put_item(
            TableName=self._table,
            Item={
                "pk": _s(f"WHLOG#{tenant_id}#{attempt.endpoint_id}"),
                "sk": _s(f"{attempt.at.isoformat()}#{attempt.event_id}#{attempt.attempt:02d}"),
                "doc": _s(attempt.model_dump_json()),
                "ttl": _n(int(time.time()) + KEEP_SECONDS),
            },
        )

    def deliveries(self, tenant_id: str, endpoint_id: str, limit: int = 100) -> list[DeliveryAttempt]:
        answer = self.client.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": _s(f"WHLOG#{tenant_id}#{endpoint_id}")},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [DeliveryAttempt.model_validate_json(i["doc"]["S"]) for i in answer.get("Items", [])]
