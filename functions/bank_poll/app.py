"""Schedule: read what is new on every tenant's bank accounts (each at its own interval) and reconcile it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import get_banking


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=False)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    polled = get_banking().poll_due(datetime.now(UTC))
    applied = sum(s.applied for s in polled.values())
    person = sum(s.needs_a_person for s in polled.values())
    metrics.add_metric(name="BankLinesApplied", unit=MetricUnit.Count, value=applied)
    metrics.add_metric(name="BankLinesNeedAPerson", unit=MetricUnit.Count, value=person)
    return {
        tenant: {"lines": s.lines, "applied": s.applied, "needs_a_person": s.needs_a_person}
        for tenant, s in polled.items()
    }
