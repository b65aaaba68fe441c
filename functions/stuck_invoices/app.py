"""Schedule: count open invoices well past their deadline; their lifecycle should have closed them (alarm > 0)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import get_invoices

GRACE = timedelta(minutes=15)


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=False)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    stuck = get_invoices().stuck_invoices(datetime.now(UTC) - GRACE)
    for invoice in stuck:
        logger.warning("stuck invoice", extra={"invoice_id": invoice.invoice_id, "state": invoice.state.value})
    metrics.add_metric(name="StuckInvoices", unit=MetricUnit.Count, value=len(stuck))
    return {"stuck": [i.invoice_id for i in stuck]}
