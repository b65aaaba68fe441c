"""Schedule: compare every tenant's deals, invoices and providers; repair what is simply behind, report the rest."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.app.changes import Actor
from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import get_drift_check


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=False)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    reports = get_drift_check().check_all(Actor("drift", "the scheduled drift check"))
    metrics.add_metric(name="DriftFound", unit=MetricUnit.Count, value=sum(r.found for r in reports))
    metrics.add_metric(name="DriftRepaired", unit=MetricUnit.Count, value=sum(r.repaired for r in reports))
    return {r.tenant_id: {"found": r.found, "repaired": r.repaired, "skipped": len(r.skipped)} for r in reports}
