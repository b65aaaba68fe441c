"""HTTP API for CRM scripts and site back-ends: issue, read, cancel and refund invoices (API key per tenant)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.app.changes import Actor
from paybridge.http.auth import authenticate
from paybridge.http.entry import RoutePolicy, resolve
from paybridge.http.models import (
    CancelBody,
    CreateInvoiceBody,
    InvoiceOut,
    RefundBody,
    RefundOut,
    ScheduleBody,
    ScheduleOut,
    SubscribeBody,
    SubscriptionLeverBody,
    SubscriptionOut,
    money_trail,
)
from paybridge.http.problems import register_problem_handlers
from paybridge.http.resolver import APIGatewayHttpResolver, Header, Path, Response
from paybridge.http.responses import answers
from paybridge.observability import logger, metrics, tracer
from paybridge.tenants import ApiScope, TenantConfig
from paybridge.wiring import get_invoices, get_issuing, get_payment_checks, get_refunds, get_settlements

app = APIGatewayHttpResolver(enable_validation=True)
register_problem_handlers(app)

TenantPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,39}$", description="Tenant slug")]
InvoicePath = Annotated[str, Path(pattern=r"^inv_[a-z2-7]{26}$", description="Invoice id")]
ApiKey = Annotated[str | None, Header(alias="x-api-key", description="The tenant's API key")]
IdempotencyKey = Annotated[
    str,
    Header(
        alias="idempotency-key",
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="Your key for this refund: a repeat with it returns the first result, never a second refund",
    ),
]


#: Every route: the key is checked before the body is read (an anonymous caller gets the same 401, nothing else).
JSON = "application/json"
#: What a route that reads a JSON body may answer before it is routed (see `http.entry`)
BODY_PROBLEMS = (400, 413, 415)

ROUTES = {
    "POST /v1/{tenant}/invoices": RoutePolicy(api_key=True, body="json"),
    "GET /v1/{tenant}/invoices/{invoice_id}": RoutePolicy(api_key=True, body="none", scopes=("integration", "ops")),
    "POST /v1/{tenant}/invoices/{invoice_id}/recheck": RoutePolicy(api_key=True, body="none"),
    "POST /v1/{tenant}/invoices/{invoice_id}/cancel": RoutePolicy(api_key=True, body="json"),
    "POST /v1/{tenant}/invoices/{invoice_id}/refunds": RoutePolicy(api_key=True, body="json"),
    "POST /v1/{tenant}/deals/{deal_id}/schedules": RoutePolicy(api_key=True, body="json"),
    "POST /v1/{tenant}/subscriptions": RoutePolicy(api_key=True, body="json"),
    "GET /v1/{tenant}/subscriptions/{subscription_id}": RoutePolicy(api_key=True, body="none"),
    "POST /v1/{tenant}/subscriptions/{subscription_id}/cancel": RoutePolicy(api_key=True, body="json"),
    "POST /v1/{tenant}/subscriptions/{subscription_id}/pause": RoutePolicy(api_key=True, body="json"),
    "POST /v1/{tenant}/subscriptions/{subscription_id}/resume": RoutePolicy(api_key=True, body="json"),
}


def _authorized(tenant: str, api_key: str | None, *scopes: ApiScope) -> TenantConfig:
    # already checked by `resolve` before the body (with the route's scopes); kept for direct calls
    return authenticate(tenant, api_key, *(scopes or ("integration",)))


@app.post(
    "/v1/<tenant>/invoices",
    summary="Issue an invoice (idempotent by deal + number)",
    responses=answers(
        {201: ("the invoice, issued", InvoiceOut, JSON), 200: ("the same invoice, issued before", InvoiceOut, JSON)},
        *BODY_PROBLEMS,
        409,
    ),
)
def handle_create_invoice(tenant: TenantPath, body: CreateInvoiceBody, api_key: ApiKey = None) -> Response[InvoiceOut]:
    request = body.to_domain(_authorized(tenant, api_key).currency)
    result = get_issuing().issue_invoice(tenant, request, lifetime_given=body.lifetime_seconds is not None)
    logger.set_correlation_id(result.invoice.invoice_id)
    return Response(
        status_code=201 if result.created else 200,
        content_type="application/json",
        body=InvoiceOut.of(result.invoice),
    )


DealPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="The CRM deal id")]


@app.post(
    "/v1/<tenant>/deals/<deal_id>/schedules",
    summary="Issue a staged payment: one invoice per stage (e.g. 30 % advance, 70 % on delivery)",
    responses=answers(
        {
            201: ("the stages' invoices, issued", ScheduleOut, JSON),
            200: ("the same invoices, issued before", ScheduleOut, JSON),
        },
        *BODY_PROBLEMS,
        409,
    ),
)
def handle_create_schedule(
    tenant: TenantPath, deal_id: DealPath, body: ScheduleBody, api_key: ApiKey = None
) -> Response[ScheduleOut]:
    template = body.template(deal_id, _authorized(tenant, api_key).currency)
    results = get_issuing().issue_schedule(tenant, template, body.stages)
    created = sum(1 for r in results if r.created)
    out = ScheduleOut(deal_id=deal_id, number=body.number, invoices=[InvoiceOut.of(r.invoice) for r in results])
    return Response(status_code=201 if created else 200, content_type="application/json", body=out)


SubscriptionPath = Annotated[str, Path(pattern=r"^sub_[a-z2-7]{26}$", description="Subscription id")]


@app.post(
    "/v1/<tenant>/subscriptions",
    summary="Start a subscription: the first invoice saves the payment method, later periods are charged",
    responses=answers(
        {
            201: ("the subscription and its first invoice", SubscriptionOut, JSON),
            200: ("the same subscription, started before", SubscriptionOut, JSON),
        },
        *BODY_PROBLEMS,
        409,
    ),
)
def handle_subscribe(tenant: TenantPath, body: SubscribeBody, api_key: ApiKey = None) -> Response[SubscriptionOut]:
    from paybridge.wiring import get_subscriptions

    _authorized(tenant, api_key)
    sub, first, created = get_subscriptions().subscribe(
        tenant, body.deal_id, body.plan, body.amount, body.period, body.customer, body.currency, body.description
    )
    return Response(
        status_code=201 if created else 200,
        content_type="application/json",
        body=SubscriptionOut.of(sub, first.invoice),
    )


@app.get(
    "/v1/<tenant>/subscriptions/<subscription_id>",
    summary="A subscription and where it stands",
    responses=answers({200: ("the subscription", SubscriptionOut, JSON)}, 404),
)
def handle_get_subscription(
    tenant: TenantPath, subscription_id: SubscriptionPath, api_key: ApiKey = None
) -> SubscriptionOut:
    from paybridge.wiring import get_subscriptions

    _authorized(tenant, api_key)
    return SubscriptionOut.of(get_subscriptions().get(tenant, subscription_id))


def _subscription_lever(
    tenant: str, subscription_id: str, lever: Any, body: SubscriptionLeverBody, api_key: str | None
) -> SubscriptionOut:
    from paybridge.wiring import get_subscriptions

    _authorized(tenant, api_key)
    sub, _ = get_subscriptions().change(tenant, subscription_id, lever, Actor("api", body.reason))
    return SubscriptionOut.of(sub)


@app.post(
    "/v1/<tenant>/subscriptions/<subscription_id>/cancel",
    summary="Cancel a subscription: no more charges (idempotent); the deal is told",
    responses=answers({200: ("the subscription, cancelled", SubscriptionOut, JSON)}, *BODY_PROBLEMS, 404, 409),
)
def handle_cancel_subscription(
    tenant: TenantPath, subscription_id: SubscriptionPath, body: SubscriptionLeverBody, api_key: ApiKey = None
) -> SubscriptionOut:
    return _subscription_lever(tenant, subscription_id, "cancel", body, api_key)


@app.post(
    "/v1/<tenant>/subscriptions/<subscription_id>/pause",
    summary="Pause an active or past-due subscription: no notices, no charges until resumed (idempotent)",
    responses=answers({200: ("the subscription, paused", SubscriptionOut, JSON)}, *BODY_PROBLEMS, 404, 409),
)
def handle_pause_subscription(
    tenant: TenantPath, subscription_id: SubscriptionPath, body: SubscriptionLeverBody, api_key: ApiKey = None
) -> SubscriptionOut:
    return _subscription_lever(tenant, subscription_id, "pause", body, api_key)


@app.post(
    "/v1/<tenant>/subscriptions/<subscription_id>/resume",
    summary="Resume a paused subscription: the kept next charge, or now if it passed (idempotent)",
    responses=answers({200: ("the subscription, going on", SubscriptionOut, JSON)}, *BODY_PROBLEMS, 404, 409),
)
def handle_resume_subscription(
    tenant: TenantPath, subscription_id: SubscriptionPath, body: SubscriptionLeverBody, api_key: ApiKey = None
) -> SubscriptionOut:
    return _subscription_lever(tenant, subscription_id, "resume", body, api_key)


@app.get(
    "/v1/<tenant>/invoices/<invoice_id>",
    summary="An invoice, its money facts and its history",
    responses=answers({200: ("the invoice with its history", InvoiceOut, JSON)}, 404),
)
def handle_get_invoice(tenant: TenantPath, invoice_id: InvoicePath, api_key: ApiKey = None) -> InvoiceOut:
    logger.set_correlation_id(invoice_id)
    _authorized(tenant, api_key, "integration", "ops")  # a person pulling levers reads the history too
    invoice, history = get_invoices().get_invoice(tenant, invoice_id)
    out = InvoiceOut.of(invoice, history)
    return out.model_copy(update={"money_trail": money_trail(invoice, get_settlements().trail)})


@app.post(
    "/v1/<tenant>/invoices/<invoice_id>/cancel",
    summary="Cancel an unpaid invoice",
    responses=answers({200: ("the invoice, cancelled", InvoiceOut, JSON)}, *BODY_PROBLEMS, 404, 409, 502, 503),
)
def handle_cancel_invoice(
    tenant: TenantPath, invoice_id: InvoicePath, body: CancelBody | None = None, api_key: ApiKey = None
) -> InvoiceOut:
    logger.set_correlation_id(invoice_id)
    _authorized(tenant, api_key)
    invoice = get_invoices().cancel_invoice(tenant, invoice_id, body.reason if body else "")
    return InvoiceOut.of(invoice)


@app.post(
    "/v1/<tenant>/invoices/<invoice_id>/recheck",
    summary="Ask the provider about the invoice's payment now; money it holds is recorded (counted once)",
    responses=answers(
        {200: ("the invoice after asking its provider (money it holds recorded, counted once)", InvoiceOut, JSON)},
        502,
        503,
    ),
)
def handle_recheck_invoice(tenant: TenantPath, invoice_id: InvoicePath, api_key: ApiKey = None) -> InvoiceOut:
    logger.set_correlation_id(invoice_id)
    _authorized(tenant, api_key)
    result = get_payment_checks().recheck(tenant, invoice_id, Actor("api", "re-check asked through the API"))
    if result.learnt:
        metrics.add_metric(name="RecheckMoneyFound", unit=MetricUnit.Count, value=result.learnt)
    return InvoiceOut.of(result.invoice)


@app.post(
    "/v1/<tenant>/invoices/<invoice_id>/refunds",
    summary="Refund all or part of what was paid (idempotent by the Idempotency-Key header)",
    responses=answers(
        {201: ("the refund, asked for", RefundOut, JSON), 200: ("the same refund, asked for before", RefundOut, JSON)},
        *BODY_PROBLEMS,
        404,
        409,
        502,
        503,
    ),
)
def handle_refund_invoice(
    tenant: TenantPath,
    invoice_id: InvoicePath,
    idempotency_key: IdempotencyKey,
    body: RefundBody | None = None,
    api_key: ApiKey = None,
) -> Response[RefundOut]:
    logger.set_correlation_id(invoice_id)
    body = body or RefundBody()
    _authorized(tenant, api_key)
    result = get_refunds().refund_invoice(
        tenant, invoice_id, idempotency_key, body.amount, body.reason, tuple(body.items)
    )
    if result.created:
        metrics.add_metric(name="RefundsRequested", unit=MetricUnit.Count, value=1)
    request = result.request
    out = RefundOut(
        refund_key=result.key,
        amount=request.amount,
        status=request.status,
        provider_ref=request.provider_ref,
        detail=request.detail,
        reason=request.reason,
        invoice=InvoiceOut.of(result.invoice),
    )
    return Response(status_code=201 if result.created else 200, content_type="application/json", body=out)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context, ROUTES)
