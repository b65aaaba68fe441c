"""Webhook fan-out (SQS, fed by the bus's rule): each domain event becomes one message per endpoint that takes it."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.lambda_events import SqsEvent, event_parser
from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import get_webhooks


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@event_parser(model=SqsEvent)
def lambda_handler(event: SqsEvent, context: LambdaContext) -> dict[str, Any]:
    failed: list[str] = []
    queued = 0
    endpoints: dict[str, Any] = {}  # each tenant's endpoints, read once for the batch
    for record in event.Records:  # one at a time: a record that fails comes back alone
        try:
            queued += get_webhooks().fan_out([json.loads(record.body)], endpoints)
        except Exception:
            logger.exception("fan-out of message %s failed", record.messageId)
            failed.append(record.messageId)
    metrics.add_metric(name="WebhookMessagesQueued", unit=MetricUnit.Count, value=queued)
    return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}
