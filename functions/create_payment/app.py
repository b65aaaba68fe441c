"""Lifecycle task: create the payment at the tenant's PSP (idempotent by invoice id) and store its link."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.handlers.lifecycle import LifecycleInput
from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import get_services


@logger.inject_lambda_context(correlation_id_path="invoice_id")
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@event_parser(model=LifecycleInput)
def lambda_handler(event: LifecycleInput, context: LambdaContext) -> dict[str, Any]:
    return get_services().create_payment(event.tenant_id, event.invoice_id)
