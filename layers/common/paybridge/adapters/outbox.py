"""The CRM outbox: every write to a CRM is a `DealUpdate` message on an SQS FIFO queue (and every deal read an event
asks for, a `DealCheck`, so reads are batched and rate-limited the same way).

- One message group per deal (`<tenant>:<deal>`): updates of a deal are delivered in order, deals in parallel.
- The deduplication id is the update's id (invoice, version, event): a retried lifecycle step enqueues nothing new.
- The consumer (functions/crm_outbox) reports failed messages; a transient failure is retried after a growing delay
  (the message's visibility), a permanent one is parked on the dead-letter queue with its reason. Messages that
  keep failing past the queue's `maxReceiveCount` land on the same dead-letter queue through its redrive policy.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from paybridge.adapters.errors import OutboxUnavailable
from paybridge.domain.deal_sync import DealCheck, DealUpdate

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class CrmOutbox(Protocol):
    """Where deal writes and deal reads wait for the CRM (the only "outbox" in PayBridge)."""

    def publish(self, message: DealUpdate | DealCheck) -> None: ...


@dataclass(frozen=True)
class OutboxRecord:
    message_id: str
    body: str
    group: str
    receive_count: int
    receipt_handle: str
    pulled: bool = False  # received by the consumer itself (top-up), not handed over by the event source mapping


class OutboxControl(Protocol):
    """What the consumer needs beyond the event: delay a message, park one, pull more, delete pulled ones."""

    def delay(self, receipt_handle: str, seconds: int) -> None: ...

    def park(self, body: str, group: str, reason: str) -> None: ...

    def pull(self, count: int) -> list[OutboxRecord]: ...

    def delete(self, receipt_handles: list[str]) -> None: ...


def dedup_id(message: DealUpdate | DealCheck) -> str:
    return hashlib.sha256(message.update_id.encode()).hexdigest()


class SqsCrmOutbox:
    def __init__(self, queue_url: str, dead_letter_url: str = "", client: SQSClient | None = None):
        self._url, self._dlq, self._client = queue_url, dead_letter_url, client

    @property
    def client(self) -> SQSClient:
        if self._client is None:
            import boto3  # lazy: keeps cold starts small

            self._client = boto3.client("sqs")
        return self._client

    def publish(self, message: DealUpdate | DealCheck) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.send_message(
                QueueUrl=self._url,
                MessageBody=message.model_dump_json(),
                MessageGroupId=message.group,
                MessageDeduplicationId=dedup_id(message),
            )
        except (BotoCoreError, ClientError) as exc:  # the lifecycle retries `OutboxUnavailable` by name
            raise OutboxUnavailable(f"CRM outbox: {exc}") from exc

    def delay(self, receipt_handle: str, seconds: int) -> None:
        self.client.change_message_visibility(
            QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=max(0, min(seconds, 43_200))
        )

    def park(self, body: str, group: str, reason: str) -> None:
        self.client.send_message(
            QueueUrl=self._dlq,
            MessageBody=body,
            MessageGroupId=group,
            # SQS drops a FIFO message whose deduplication id it saw in the last 5 minutes, even when that one was
            # redriven meanwhile: parking the same body again (refused again after a redrive) must not be dropped
            MessageDeduplicationId=f"{hashlib.sha256(body.encode()).hexdigest()[:64]}-{uuid.uuid4().hex}",
            MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:1000] or "rejected"}},
        )

    def pull(self, count: int) -> list[OutboxRecord]:
        """Receive up to `count` more waiting updates (FIFO: only from deals with nothing in flight)."""
        records: list[OutboxRecord] = []
        while len(records) < count:
            messages: list[Any] = self.client.receive_message(
                QueueUrl=self._url,
                MaxNumberOfMessages=min(10, count - len(records)),
                AttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not messages:
                break
            records += [
                OutboxRecord(
                    message_id=m["MessageId"],
                    body=m["Body"],
                    group=m.get("Attributes", {}).get("MessageGroupId", ""),
                    receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
                    receipt_handle=m["ReceiptHandle"],
                    pulled=True,
                )
                for m in messages
            ]
        return records

    def delete(self, receipt_handles: list[str]) -> None:
        for start in range(0, len(receipt_handles), 10):
            entries: list[Any] = [
                {"Id": str(n), "ReceiptHandle": handle} for n, handle in enumerate(receipt_handles[start : start + 10])
            ]
            self.client.delete_message_batch(QueueUrl=self._url, Entries=entries)
