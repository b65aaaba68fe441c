"""Schedule: ask the providers about the invoices whose money has not been notified, on their backoff."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import get_recheck_sweep


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=False)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    summary = get_recheck_sweep().run()
    metrics.add_metric(name="RechecksAsked", unit=MetricUnit.Count, value=summary.asked)
    metrics.add_metric(name="RecheckMoneyFound", unit=MetricUnit.Count, value=summary.learnt)
    if summary.deferred:
        metrics.add_metric(name="RechecksDeferred", unit=MetricUnit.Count, value=summary.deferred)
    return {"asked": summary.asked, "learnt": summary.learnt, "deferred": summary.deferred, "paid": summary.paid}
