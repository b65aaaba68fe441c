"""What webhook delivery needs from outside: the SQS delivery queue (send, and a message's next attempt delayed with
ChangeMessageVisibility) and an HTTP POST to the company's receiver (httpx: no redirects followed, 10 s)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from paybridge.app.webhooks import DeliveryMessage, WebhookUnreachable

if TYPE_CHECKING:
    import httpx
    from mypy_boto3_sqs import SQSClient

#: SQS's longest visibility timeout: a longer delay of the schedule is not possible in one step (ours are ≤ 10 h).
MAX_VISIBILITY = 43_200


class SqsDeliveryQueue:
    def __init__(self, queue_url: str, client: SQSClient | None = None) -> None:
        self._url, self._client = queue_url, client

    @property
    def client(self) -> SQSClient:
        if self._client is None:
            import boto3  # lazy: keeps cold starts small

            self._client = boto3.client("sqs")
        return self._client

    def send(self, messages: Sequence[DeliveryMessage]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            entries: list[Any] = [{"Id": str(n), "MessageBody": m.model_dump_json()} for n, m in enumerate(chunk)]
            answer = self.client.send_message_batch(QueueUrl=self._url, Entries=entries)
            if answer.get("Failed"):
                raise RuntimeError(f"{len(answer['Failed'])} webhook messages not queued")

    def delay(self, receipt_handle: str, seconds: int) -> None:
        self.client.change_message_visibility(
            QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=max(0, min(seconds, MAX_VISIBILITY))
        )


class HttpxPoster:
    def __init__(self, client: httpx.Client | None = None) -> None:
        self._client = client

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client(timeout=httpx.Timeout(10.0, connect=3.0), follow_redirects=False)
        return self._client

    def post(self, url: str, headers: dict[str, str], body: str) -> int:
        import httpx

        try:
            return self.client.post(url, headers=headers, content=body.encode()).status_code
        except httpx.HTTPError as exc:
            raise WebhookUnreachable(f"{type(exc).__name__}: {exc}") from None
