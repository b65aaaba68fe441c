"""Schedule: publish the domain events a crash or a failed PutEvents left in the outbox (older than a minute)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import get_domain_events


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=False)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    events = get_domain_events()
    published = events.sweep() if events is not None else 0
    if published:
        logger.warning("published %d domain events left in the outbox", published)
    metrics.add_metric(name="DomainEventsRecovered", unit=MetricUnit.Count, value=published)
    return {"published": published}
