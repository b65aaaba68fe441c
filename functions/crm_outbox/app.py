"""CRM outbox consumer (SQS FIFO, one group per deal): deliver a batch of deal updates to their CRMs, batched and
within each CRM's rate limit; report the records to retry (`ReportBatchItemFailures`)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.adapters.outbox import OutboxRecord
from paybridge.app.deal_delivery import process_batch
from paybridge.lambda_events import SqsEvent, event_parser
from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import get_deal_delivery, get_outbox


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@event_parser(model=SqsEvent)
def lambda_handler(event: SqsEvent, context: LambdaContext) -> dict[str, Any]:
    records = [
        OutboxRecord(
            message_id=r.messageId,
            body=r.body,
            group=r.attributes.MessageGroupId or "",
            receive_count=int(r.attributes.ApproximateReceiveCount),
            receipt_handle=r.receiptHandle,
        )
        for r in event.Records
    ]
    result = process_batch(records, get_deal_delivery().deliver, get_outbox())
    metrics.add_metric(name="CrmUpdatesDelivered", unit=MetricUnit.Count, value=result.delivered)
    if result.retry:
        metrics.add_metric(name="CrmDeliveryErrors", unit=MetricUnit.Count, value=len(result.retry))
    if result.parked:
        metrics.add_metric(name="CrmUpdatesParked", unit=MetricUnit.Count, value=result.parked)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in result.retry]}
