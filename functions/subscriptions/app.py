"""Schedule: recurring payments — notices, charges of saved methods, dunning, blocking — and the MRR metric."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import get_subscriptions


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=False)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    subscriptions = get_subscriptions()
    done = subscriptions.run_due()
    for line in done:
        logger.info(line)
    mrr = subscriptions.mrr()
    for currency, amount in mrr.items():
        # minor units, like all our money (the dashboard divides by 100 to show roubles)
        metrics.add_metric(name=f"MrrMinorUnits_{currency}", unit=MetricUnit.NoUnit, value=amount)
    return {"done": done, "mrr_minor_units": mrr}
