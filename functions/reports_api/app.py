"""HTTP API of the owner's report: a month's invoices — issued, paid, paid share, time to pay, methods, refunds —
against the month before (an `integration` or `ops` API key)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.app.reports import MonthReport
from paybridge.domain.report import MONTH_PATTERN
from paybridge.http.auth import authenticate
from paybridge.http.entry import RoutePolicy, resolve
from paybridge.http.problems import BadRequest, register_problem_handlers
from paybridge.http.resolver import APIGatewayHttpResolver, Header, Path, Query
from paybridge.http.responses import answers
from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import get_reports

app = APIGatewayHttpResolver(enable_validation=True)
register_problem_handlers(app)

JSON = "application/json"
ROUTES = {
    "GET /v1/{tenant}/report": RoutePolicy(api_key=True, body="none", scopes=("integration", "ops")),
}

TenantPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,39}$", description="Tenant slug")]
ApiKey = Annotated[str | None, Header(alias="x-api-key", description="The tenant's API key (integration or ops)")]
MonthQuery = Annotated[
    str | None,
    Query(pattern=MONTH_PATTERN, description="YYYY-MM in the tenant's time zone; this month when absent"),
]


@app.get(
    "/v1/<tenant>/report",
    summary="The owner's monthly report: the month's invoices (issued, paid, share, time to pay, methods, refunds) "
    "against the month before",
    responses=answers({200: ("the month's figures, the previous month's and the change", MonthReport, JSON)}, 400),
)
def handle_report(tenant: TenantPath, month: MonthQuery = None, api_key: ApiKey = None) -> MonthReport:
    authenticate(tenant, api_key, "integration", "ops")  # also checked by `resolve`
    try:
        return get_reports().month(tenant, month)
    except ValueError as exc:  # a month outside the years we report
        raise BadRequest(str(exc)) from None


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context, ROUTES)
