"""Lifecycle task: make the CRM deal follow the invoice (stage, link, timeline, manager notice)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.adapters.errors import CrmRejected, CrmUnavailable
from paybridge.app.lifecycle_contract import LifecycleState
from paybridge.lambda_events import event_parser
from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import get_lifecycle_tasks


@logger.inject_lambda_context(correlation_id_path="invoice_id")
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@event_parser(model=LifecycleState)
def lambda_handler(event: LifecycleState, context: LambdaContext) -> dict[str, Any]:
    try:
        return get_lifecycle_tasks().sync_deal(event.tenant_id, event.invoice_id, event.last_event).document()
    except (CrmUnavailable, CrmRejected):
        metrics.add_metric(name="CrmDeliveryErrors", unit=MetricUnit.Count, value=1)
        raise
