"""Payment provider notifications: verify, record once, apply, publish to the deal, answer what the PSP expects."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.http.entry import RoutePolicy, resolve
from paybridge.http.problems import register_problem_handlers
from paybridge.http.resolver import APIGatewayHttpResolver, Path, Response
from paybridge.http.responses import answers
from paybridge.http.webhooks import verified
from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import get_payment_events

app = APIGatewayHttpResolver(enable_validation=True)
register_problem_handlers(app)
#: Authenticated by the sender's own scheme (signature or token) in `verified`, on the raw body
ROUTES = {"POST /psp/{tenant}/{provider}": RoutePolicy(api_key=False, body="webhook")}

TenantPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,39}$")]
ProviderPath = Annotated[str, Path(pattern=r"^[a-z0-9_-]{2,20}$")]


@app.post(
    "/psp/<tenant>/<provider>",
    summary="A payment provider's notification (raw body, verified by the provider's own scheme)",
    responses=answers(
        {
            200: (
                "What the provider expects (T-Bank, sandbox: `OK`; Stripe: JSON)",
                None,
                ("text/plain", "application/json"),
            )
        },
        400,
        404,
        409,
        413,
        502,
        503,
    ),
)
def handle_psp_notification(tenant: TenantPath, provider: ProviderPath) -> Response[str]:
    result = verified(
        app,
        lambda raw: get_payment_events().accept_psp_notification(
            tenant, provider, raw.headers, raw.body, raw.source_ip
        ),
    )
    if result.invoice is not None:
        logger.set_correlation_id(result.invoice.invoice_id)
    if result.duplicate:
        metrics.add_metric(name="DuplicateNotifications", unit=MetricUnit.Count, value=1)
    ack = result.acknowledgement
    return Response(status_code=ack.status_code, content_type=ack.content_type, body=ack.body)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context, ROUTES)
