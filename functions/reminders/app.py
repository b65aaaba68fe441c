"""Schedule: send the payment reminders that are due (read from the RemindersDue index, not a table scan)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import get_reminders


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=False)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    sent = get_reminders().send_due(datetime.now(UTC))
    metrics.add_metric(name="RemindersSent", unit=MetricUnit.Count, value=len(sent))
    return {"sent": [{"invoice_id": s.invoice_id, "key": s.key, "channels": s.channels} for s in sent]}
