"""HTTP API of a person's levers (an `ops` API key): record a payment made outside PayBridge, reissue a link,
re-sync a deal, decide a bank line on the review list, and list invoices (stuck ones first).

Every lever takes an `Idempotency-Key` (a repeat answers the first result; the key with another body is 409) and an
`X-Actor` (the person's name, recorded as `ops:<name>` with the body's `reason` in the audit history)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paybridge.app.changes import Actor
from paybridge.app.drift import DriftReport
from paybridge.app.levers import LeverName, LeverRequest, LeverResult
from paybridge.domain.bank import Assignment
from paybridge.domain.invoice import InvoiceState
from paybridge.http.auth import authenticate
from paybridge.http.entry import RoutePolicy, resolve
from paybridge.http.erasure_models import EraseCustomerBody
from paybridge.http.ops_models import (
    DriftReportsOut,
    InvoiceListOut,
    LeverOut,
    ManualPaymentBody,
    ReissueBody,
    ResolveBody,
    ResyncBody,
)
from paybridge.http.problems import BadRequest, register_problem_handlers
from paybridge.http.resolver import APIGatewayHttpResolver, Header, Path, Query
from paybridge.http.responses import answers
from paybridge.observability import logger, metrics, tracer
from paybridge.wiring import (
    get_bank_review,
    get_deal_resync,
    get_drift_check,
    get_invoices,
    get_manual_payments,
    get_reissues,
)

app = APIGatewayHttpResolver(enable_validation=True)
register_problem_handlers(app)

JSON = "application/json"
BODY_PROBLEMS = (400, 413, 415)
#: Every lever needs an `ops` key, checked before the body is read (see `http.entry`).
ROUTES = {
    "GET /v1/{tenant}/invoices": RoutePolicy(api_key=True, body="none", scopes=("ops",)),
    "POST /v1/{tenant}/invoices/{invoice_id}/payments": RoutePolicy(api_key=True, body="json", scopes=("ops",)),
    "POST /v1/{tenant}/invoices/{invoice_id}/reissue": RoutePolicy(api_key=True, body="json", scopes=("ops",)),
    "POST /v1/{tenant}/deals/{deal_id}/resync": RoutePolicy(api_key=True, body="json", scopes=("ops",)),
    "POST /v1/{tenant}/bank/review/{fingerprint}/resolve": RoutePolicy(api_key=True, body="json", scopes=("ops",)),
    "GET /v1/{tenant}/drift": RoutePolicy(api_key=True, body="none", scopes=("ops",)),
    "POST /v1/{tenant}/drift": RoutePolicy(api_key=True, body="none", scopes=("ops",)),
    "POST /v1/{tenant}/customers/erase": RoutePolicy(api_key=True, body="json", scopes=("ops",)),
}

TenantPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,39}$", description="Tenant slug")]
InvoicePath = Annotated[str, Path(pattern=r"^inv_[a-z2-7]{26}$", description="Invoice id")]
DealPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="The CRM deal id")]
FingerprintPath = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The bank line's fingerprint")]
ApiKey = Annotated[str | None, Header(alias="x-api-key", description="The tenant's API key with the `ops` scope")]
IdempotencyKey = Annotated[
    str,
    Header(
        alias="idempotency-key",
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="Your key for this lever: a repeat with it answers the first result and does nothing again",
    ),
]
ActorName = Annotated[
    str,
    Header(
        alias="x-actor",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$",
        description="Who pulls the lever (a person's name or login): recorded as `ops:<name>`",
    ),
]


def _lever(
    tenant: str, api_key: str | None, key: str, actor: str, lever: LeverName, target: str, body: Any, why: str
) -> LeverRequest:
    authenticate(tenant, api_key, "ops")  # also checked by `resolve`, before the body
    logger.info("lever %s on %s by %s", lever, target, actor)
    return LeverRequest(
        tenant_id=tenant,
        key=key,
        lever=lever,
        target=target,
        body=body.model_dump(mode="json"),
        actor=Actor(f"ops:{actor.strip()}", why),
    )


def _answer(result: LeverResult) -> LeverOut:
    if not result.replayed:
        metrics.add_metric(name="LeversPulled", unit=MetricUnit.Count, value=1)
    return LeverOut.of(result)


@app.post(
    "/v1/<tenant>/invoices/<invoice_id>/payments",
    summary="Record a payment made outside PayBridge (cash, another account); idempotent by Idempotency-Key",
    responses=answers(
        {200: ("the lever's outcome (`replayed`: the same key answered before)", LeverOut, JSON)},
        *BODY_PROBLEMS,
        403,
        409,
        502,
        503,
    ),
)
def handle_record_payment(
    tenant: TenantPath,
    invoice_id: InvoicePath,
    body: ManualPaymentBody,
    idempotency_key: IdempotencyKey,
    actor: ActorName,
    api_key: ApiKey = None,
) -> LeverOut:
    logger.set_correlation_id(invoice_id)
    request = _lever(tenant, api_key, idempotency_key, actor, "manual_payment", invoice_id, body, body.reason)
    result = get_manual_payments().record(request, invoice_id, body.amount, body.method, body.reference)
    return _answer(result)


@app.post(
    "/v1/<tenant>/invoices/<invoice_id>/reissue",
    summary="A new payment link for an expired, cancelled or failed invoice (the old payment settled safely first)",
    responses=answers(
        {200: ("the lever's outcome (`replayed`: the same key answered before)", LeverOut, JSON)},
        *BODY_PROBLEMS,
        403,
        409,
        502,
        503,
    ),
)
def handle_reissue(
    tenant: TenantPath,
    invoice_id: InvoicePath,
    body: ReissueBody,
    idempotency_key: IdempotencyKey,
    actor: ActorName,
    api_key: ApiKey = None,
) -> LeverOut:
    logger.set_correlation_id(invoice_id)
    request = _lever(tenant, api_key, idempotency_key, actor, "reissue", invoice_id, body, body.reason)
    return _answer(get_reissues().reissue(request, invoice_id, body.lifetime_seconds))


@app.post(
    "/v1/<tenant>/deals/<deal_id>/resync",
    summary="Write every invoice of the deal to the CRM again, now",
    responses=answers(
        {200: ("the lever's outcome (`replayed`: the same key answered before)", LeverOut, JSON)},
        *BODY_PROBLEMS,
        403,
        409,
        502,
        503,
    ),
)
def handle_resync(
    tenant: TenantPath,
    deal_id: DealPath,
    body: ResyncBody,
    idempotency_key: IdempotencyKey,
    actor: ActorName,
    api_key: ApiKey = None,
) -> LeverOut:
    request = _lever(tenant, api_key, idempotency_key, actor, "deal_resync", deal_id, body, body.reason)
    return _answer(get_deal_resync().resync(request, deal_id))


@app.post(
    "/v1/<tenant>/bank/review/<fingerprint>/resolve",
    summary="Decide a bank line on the review list: assign its money to invoices, or dismiss it",
    responses=answers(
        {200: ("the lever's outcome (`replayed`: the same key answered before)", LeverOut, JSON)},
        *BODY_PROBLEMS,
        403,
        409,
        502,
        503,
    ),
)
def handle_resolve_bank_line(
    tenant: TenantPath,
    fingerprint: FingerprintPath,
    body: ResolveBody,
    idempotency_key: IdempotencyKey,
    actor: ActorName,
    api_key: ApiKey = None,
) -> LeverOut:
    request = _lever(tenant, api_key, idempotency_key, actor, "bank_resolve", fingerprint, body, body.why)
    assign = [Assignment(invoice_id=a.invoice_id, amount=a.amount) for a in body.assign or ()]
    return _answer(get_bank_review().resolve(request, fingerprint, assign, dismiss=body.dismiss is not None))


StatesQuery = Annotated[
    str | None,
    Query(
        alias="state",
        pattern=r"^[a-z_]+(,[a-z_]+)*$",
        description="One state or several, comma-separated (e.g. `awaiting_payment,partially_paid`); all by default",
    ),
]
OlderThanQuery = Annotated[
    str | None,
    Query(alias="older_than", pattern=r"^\d{1,7}[smhd]?$", description="Created at least this long ago: 3600, 90m, 2d"),
]
DealQuery = Annotated[str | None, Query(alias="deal_id", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
LimitQuery = Annotated[int, Query(ge=1, le=200)]
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@app.get(
    "/v1/<tenant>/invoices",
    summary="The tenant's invoices by state and age, or by deal: stuck ones first",
    responses=answers({200: ("the invoices, stuck ones first", InvoiceListOut, JSON)}, 400, 403),
)
def handle_list_invoices(
    tenant: TenantPath,
    state: StatesQuery = None,
    older_than: OlderThanQuery = None,
    deal_id: DealQuery = None,
    limit: LimitQuery = 50,
    api_key: ApiKey = None,
) -> InvoiceListOut:
    authenticate(tenant, api_key, "ops")  # also checked by `resolve`, before the body
    states = []
    for name in (state or "").split(",") if state else ():
        try:
            states.append(InvoiceState(name))
        except ValueError:
            raise BadRequest(f"unknown state {name!r}: one of {', '.join(s.value for s in InvoiceState)}") from None
    seconds = 0
    if older_than:
        match = re.fullmatch(r"(\d+)([smhd]?)", older_than)
        assert match is not None  # the pattern above
        seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    listed = get_invoices().list_invoices(tenant, states, seconds, deal_id, limit)
    return InvoiceListOut.of(listed)


@app.get(
    "/v1/<tenant>/drift",
    summary="The latest drift checks: where deals, invoices and providers disagreed, and what was repaired",
    responses=answers({200: ("the newest checks first", DriftReportsOut, JSON)}, 403),
)
def handle_get_drift(tenant: TenantPath, api_key: ApiKey = None) -> DriftReportsOut:
    authenticate(tenant, api_key, "ops")
    return DriftReportsOut(reports=get_drift_check().latest(tenant))


@app.post(
    "/v1/<tenant>/drift",
    summary="Check for drift now: deals against their invoices, invoices against their providers; repair what lags",
    responses=answers({200: ("what this check found and repaired", DriftReport, JSON)}, 403),
)
def handle_check_drift(tenant: TenantPath, actor: ActorName, api_key: ApiKey = None) -> DriftReport:
    authenticate(tenant, api_key, "ops")
    report = get_drift_check().check(tenant, Actor(f"ops:{actor.strip()}", "drift check asked for by a person"))
    metrics.add_metric(name="DriftFound", unit=MetricUnit.Count, value=report.found)
    metrics.add_metric(name="DriftRepaired", unit=MetricUnit.Count, value=report.repaired)
    return report


@app.post(
    "/v1/<tenant>/customers/erase",
    summary="Erase one person's data (name, e-mail, phone, INN) from their closed invoices; open ones are listed",
    responses=answers(
        {200: ("the lever's outcome: the invoices erased; the open ones kept in `detail`", LeverOut, JSON)},
        *BODY_PROBLEMS,
        403,
        409,
    ),
)
def handle_erase_customer(
    tenant: TenantPath,
    body: EraseCustomerBody,
    idempotency_key: IdempotencyKey,
    actor: ActorName,
    api_key: ApiKey = None,
) -> LeverOut:
    from paybridge.app.retention import Person
    from paybridge.wiring import get_retention

    person = Person(email=body.email, phone=body.phone, inn=body.inn)
    request = _lever(tenant, api_key, idempotency_key, actor, "customer_erase", person.reference, body, body.reason)
    return _answer(get_retention().erase_person(request, person))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context, ROUTES)
