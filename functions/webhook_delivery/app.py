"""Webhook delivery (SQS): one signed POST per message and attempt; a failed one comes back after the retry
schedule's next delay (its visibility set by the service), reported in `batchItemFailures`."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.app.webhooks import DeliveryMessage
from paybridge.lambda_events import SqsEvent, event_parser
from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import get_webhooks


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@event_parser(model=SqsEvent)
def lambda_handler(event: SqsEvent, context: LambdaContext) -> dict[str, Any]:
    retry: list[str] = []
    for record in event.Records:
        try:
            message = DeliveryMessage.model_validate_json(record.body)
        except ValueError:
            logger.error("message %s is not a webhook delivery: dropped", record.messageId)
            continue
        attempt = int(record.attributes.ApproximateReceiveCount)
        try:
            done = get_webhooks().deliver(message, attempt, record.receiptHandle)
        except Exception:
            logger.exception("delivery of %s to %s failed", message.event_id, message.endpoint_id)
            done = False
        if not done:
            retry.append(record.messageId)
    metrics.add_metric(name="WebhookDeliveries", unit=MetricUnit.Count, value=len(event.Records) - len(retry))
    if retry:
        metrics.add_metric(name="WebhookDeliveryFailures", unit=MetricUnit.Count, value=len(retry))
    return {"batchItemFailures": [{"itemIdentifier": m} for m in retry]}
