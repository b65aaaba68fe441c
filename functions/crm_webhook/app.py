"""CRM outbound webhooks (form-encoded): verify the CRM's token, read the deal, issue the invoice."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.http.entry import RoutePolicy, resolve
from paybridge.http.problems import register_problem_handlers
from paybridge.http.resolver import APIGatewayHttpResolver, Path, Response
from paybridge.http.responses import CrmWebhookOut, answers
from paybridge.http.webhooks import verified
from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import get_issuing

app = APIGatewayHttpResolver(enable_validation=True)
register_problem_handlers(app)
#: Authenticated by the sender's own scheme (signature or token) in `verified`, on the raw body
ROUTES = {"POST /crm/{tenant}/{crm}": RoutePolicy(api_key=False, body="webhook")}

TenantPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,39}$")]
CrmPath = Annotated[str, Path(pattern=r"^[a-z0-9_-]{2,20}$")]


@app.post(
    "/crm/<tenant>/<crm>",
    summary="A CRM's outbound webhook or robot call (form-encoded)",
    responses=answers(
        {
            200: (
                "`{status: issued|exists|accepted|ignored, invoices[{invoice_id, state, created}], checks, ignored[]}`"
                " (accepted: the deal is read from the outbox, batched — or the event is the echo of our own write,"
                " known without a read: `ignored` says so)",
                CrmWebhookOut,
                "application/json",
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
def handle_crm_webhook(tenant: TenantPath, crm: CrmPath) -> Response[dict[str, Any]]:
    result = verified(app, lambda raw: get_issuing().issue_from_crm(tenant, crm, raw.headers, raw.body, raw.query))
    if len(result.issued) == 1:
        logger.set_correlation_id(result.issued[0].invoice.invoice_id)
    created = sum(1 for r in result.issued if r.created)
    # InvoicesIssued is counted where the invoice is created (app/metrics.py)
    accepted = result.checks or result.echoes or result.actions
    status = "issued" if created else "exists" if result.issued else "accepted" if accepted else "ignored"
    body_out = {
        "status": status,
        "invoices": [
            {"invoice_id": r.invoice.invoice_id, "state": r.invoice.state.value, "created": r.created}
            for r in result.issued
        ],
        "checks": result.checks,
        "ignored": list(result.ignored),
        **({"actions": list(result.actions)} if result.actions else {}),
    }
    return Response(status_code=200, content_type="application/json", body=body_out)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context, ROUTES)
