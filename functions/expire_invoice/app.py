"""Lifecycle task: the link's lifetime ran out: ask the provider first; expire the invoice unless money is there,
and cancel at the PSP only a payment that holds none."""

from __future__ import annotations

from typing import Any

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
    # InvoicesExpired is counted where the change is applied (app/metrics.py)
    state = get_lifecycle_tasks().expire_invoice(event.tenant_id, event.invoice_id, event.expiry_attempt or 0)
    return state.document()
