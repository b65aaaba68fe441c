"""Lifecycle task: the payment could not be created: mark the invoice failed (the next step tells the manager)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.app.lifecycle_contract import LifecycleState
from paybridge.lambda_events import event_parser
from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import get_lifecycle_tasks


@logger.inject_lambda_context(correlation_id_path="invoice_id")
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@event_parser(model=LifecycleState)
def lambda_handler(event: LifecycleState, context: LambdaContext) -> dict[str, Any]:
    reason = f"{event.error.Error}: {event.error.Cause}"[:500] if event.error else "payment creation failed"
    metrics.add_metric(name="PaymentCreationFailures", unit=MetricUnit.Count, value=1)
    return get_lifecycle_tasks().mark_failed(event.tenant_id, event.invoice_id, reason).document()
