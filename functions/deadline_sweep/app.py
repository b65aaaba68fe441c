"""Schedule (every minute): start the expiry of every open invoice whose link's deadline has passed."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import get_deadlines


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=False)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    run = get_deadlines().run()
    if run.started:
        metrics.add_metric(name="ExpiriesStarted", unit=MetricUnit.Count, value=run.started)
    return {"due": run.due, "started": run.started}
