"""Schedule: erase the customer's personal data from closed invoices, closed subscriptions and done bank lines past
each tenant's retention period."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import get_retention


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=False)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    erased = get_retention().sweep()
    metrics.add_metric(
        name="CustomerDataErased", unit=MetricUnit.Count, value=sum(sum(kinds.values()) for kinds in erased.values())
    )
    return {"erased": erased}
