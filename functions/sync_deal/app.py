"""Lifecycle task: make the CRM deal follow the invoice (stage, link, timeline, manager notice)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.adapters.errors import CrmRejected, CrmUnavailable
from paybridge.handlers.lifecycle import LifecycleInput
from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import get_services


@logger.inject_lambda_context(correlation_id_path="invoice_id")
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@event_parser(model=LifecycleInput)
def lambda_handler(event: LifecycleInput, context: LambdaContext) -> dict[str, Any]:
    try:
        return get_services().sync_deal(event.tenant_id, event.invoice_id, event.last_event)
    except (CrmUnavailable, CrmRejected):
        metrics.add_metric(name="CrmDeliveryErrors", unit=MetricUnit.Count, value=1)
        raise
