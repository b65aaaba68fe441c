"""Bank transfers over HTTP: 1CClientBankExchange uploads (API key), the review list of lines a person must decide,
and the bank's operation webhook (a hint: we re-read the statement)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.http.auth import authenticate
from paybridge.http.bank_models import BankReviewOut, BankSummaryOut, ReconciliationOut
from paybridge.http.entry import RoutePolicy, resolve
from paybridge.http.problems import BadRequest, register_problem_handlers
from paybridge.http.resolver import APIGatewayHttpResolver, Header, Path, Query, Response
from paybridge.http.responses import answers
from paybridge.http.webhooks import raw_body, verified
from paybridge.observability import logger, metrics, tracer
from paybridge.tenants import ApiScope
from paybridge.wiring import get_banking, get_settlements

app = APIGatewayHttpResolver(enable_validation=True)
register_problem_handlers(app)

TenantPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,39}$", description="Tenant slug")]
ApiKey = Annotated[str | None, Header(alias="x-api-key", description="The tenant's API key")]
WebhookToken = Annotated[str | None, Query(alias="token", description="The token in the URL registered at the bank")]
ROUTES = {
    "POST /bank/{tenant}/statements": RoutePolicy(api_key=True, body="file"),
    "GET /bank/{tenant}/review": RoutePolicy(api_key=True, body="none", scopes=("integration", "ops")),
    "POST /bank/{tenant}/{source}": RoutePolicy(api_key=False, body="webhook"),  # the bank's token, in `verified`
    "GET /v1/{tenant}/reconciliation": RoutePolicy(api_key=True, body="none", scopes=("integration", "ops")),
}


def _authorized(tenant: str, api_key: str | None, *scopes: ApiScope) -> None:
    # already checked by `resolve` before the body (with the route's scopes); kept for direct calls
    authenticate(tenant, api_key, *(scopes or ("integration",)))


def _count(summary: Any) -> None:
    metrics.add_metric(name="BankLinesApplied", unit=MetricUnit.Count, value=summary.applied)
    if summary.needs_a_person:
        metrics.add_metric(name="BankLinesNeedAPerson", unit=MetricUnit.Count, value=summary.needs_a_person)


@app.post(
    "/bank/<tenant>/statements",
    summary="Upload a 1CClientBankExchange statement (Windows-1251 or DOS); incoming transfers are reconciled",
    responses=answers(
        {200: ("what the statement led to", BankSummaryOut, "application/json")},
        400,  # not a valid 1CClientBankExchange file (the problem names the line), or an empty body
        404,  # the tenant has no bank settings
        413,
        415,
    ),
)
def handle_upload(tenant: TenantPath, api_key: ApiKey = None) -> BankSummaryOut:
    _authorized(tenant, api_key)
    data = raw_body(app)
    if not data.strip():
        raise BadRequest("empty body: send the statement file as the request body")
    # a file over MAX_UPLOAD_BYTES (4 MiB: base64 in a 6 MB Lambda request) was refused with 413 by `resolve`
    summary, parsed = get_banking().upload(tenant, data)  # StatementFormatError: 400 with the line
    _count(summary)
    return BankSummaryOut.of(summary, documents=parsed.documents, skipped=parsed.skipped)


@app.get(
    "/bank/<tenant>/review",
    summary="Bank lines a person must decide (no invoice found, or ambiguous)",
    responses=answers({200: ("the lines waiting for a person", BankReviewOut, "application/json")}, 404),
)
def handle_review(tenant: TenantPath, api_key: ApiKey = None) -> BankReviewOut:
    _authorized(tenant, api_key, "integration", "ops")  # the list a person decides from (see the ops levers)
    return BankReviewOut.of(get_banking().review(tenant))


MonthQuery = Annotated[
    str, Query(pattern=r"^20\d\d-(0[1-9]|1[0-2])$", description="The month, YYYY-MM (Moscow days, as acquirers count)")
]


@app.get(
    "/v1/<tenant>/reconciliation",
    summary="Acquiring reconciliation for a month: payments recorded, settled to the bank, fees, not yet settled "
    "after the provider's usual delay, payouts that do not add up — per provider",
    responses=answers({200: ("the month's reconciliation", ReconciliationOut, "application/json")}, 404),
)
def handle_reconciliation(tenant: TenantPath, month: MonthQuery, api_key: ApiKey = None) -> ReconciliationOut:
    _authorized(tenant, api_key, "integration", "ops")
    get_banking().review(tenant)  # BankNotConfigured (404) for a tenant without bank settings
    return ReconciliationOut.model_validate(get_settlements().report(tenant, month))


SourcePath = Annotated[
    str,
    Path(
        pattern=r"^[a-z0-9_]{2,30}$",
        description="The tenant's bank statement source (`tbank_business`; `tbank`, the URL registered before)",
    ),
]


@app.post(
    "/bank/<tenant>/<source>",
    summary="A bank's operation webhook (T-Bank business `oper-feed-operation`): a hint to read the statement now",
    responses=answers({200: ("`OK`", None, "text/plain")}, 400, 404, 413, 502, 503),
)
def handle_bank_webhook(tenant: TenantPath, source: SourcePath, token: WebhookToken = None) -> Response[str]:
    # `token` is declared for the OpenAPI document; `verified` hands the raw request to the source and counts refusals
    now = datetime.now(UTC)
    summary = verified(
        app, lambda raw: get_banking().accept_webhook(tenant, source, raw.headers, raw.query, raw.body, now)
    )
    _count(summary)
    return Response(status_code=200, content_type="text/plain", body="OK")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context, ROUTES)
