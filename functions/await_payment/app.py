"""Lifecycle task (.waitForTaskToken): store the task token; resume at once if money came before it was stored."""

from __future__ import annotations

from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.app.lifecycle_contract import AwaitInput, AwaitOutput
from paybridge.lambda_events import event_parser
from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import get_lifecycle_tasks


@logger.inject_lambda_context(correlation_id_path="invoice_id")
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@event_parser(model=AwaitInput)
def lambda_handler(event: AwaitInput, context: LambdaContext) -> dict[str, bool]:
    tasks = get_lifecycle_tasks()
    resumed = tasks.await_payment(event.task_token, event.tenant_id, event.invoice_id, event.version_seen)
    return AwaitOutput(resumed=resumed).model_dump()
