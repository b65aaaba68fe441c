"""Errors → RFC 9457 problem bodies (`type`, `title`, `status`, `detail`), mapped by class in one place."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from paybridge.adapters.errors import (
    CrmRejected,
    CrmUnavailable,
    InvalidSignature,
    MalformedNotification,
    ProviderRejected,
    ProviderUnavailable,
)
from paybridge.app.errors import (
    BankLineNotFound,
    DealHasNoInvoices,
    DealNotInvoiceable,
    InvoiceNotFound,
    LeverInvalid,
    LifetimeOutOfRange,
    RouteNotConfigured,
    UnknownPayment,
)
from paybridge.domain.errors import (
    BankNotConfigured,
    InvalidTransition,
    InvoiceConflict,
    ReceiptError,
    ScheduleError,
    StatementFormatError,
    SubscriptionNotFound,
)
from paybridge.storage.errors import ConcurrentModification, IdempotencyKeyReused
from paybridge.tenants import TenantNotFound


class Unauthorized(Exception):
    """The HTTP layer's own: no or a wrong API key."""


class Forbidden(Exception):
    """The HTTP layer's own: a key of the tenant's without the scope the route needs."""


class BadRequest(Exception):
    """The HTTP layer's own: a body that cannot be read as asked (empty, too large)."""


PROBLEMS: dict[type[Exception], tuple[int, str]] = {
    Unauthorized: (401, "unauthorized"),
    Forbidden: (403, "forbidden"),
    InvalidSignature: (401, "invalid-signature"),
    BadRequest: (400, "bad-request"),
    MalformedNotification: (400, "malformed-notification"),
    StatementFormatError: (400, "statement-invalid"),
    BankNotConfigured: (404, "bank-not-configured"),
    TenantNotFound: (404, "tenant-not-found"),
    InvoiceNotFound: (404, "invoice-not-found"),
    BankLineNotFound: (404, "bank-line-not-found"),
    DealHasNoInvoices: (404, "deal-has-no-invoices"),
    SubscriptionNotFound: (404, "subscription-not-found"),
    RouteNotConfigured: (404, "route-not-configured"),
    UnknownPayment: (404, "unknown-payment"),
    InvalidTransition: (409, "invalid-transition"),
    InvoiceConflict: (409, "invoice-conflict"),
    ConcurrentModification: (409, "concurrent-modification"),
    IdempotencyKeyReused: (409, "idempotency-key-reused"),
    DealNotInvoiceable: (422, "deal-not-invoiceable"),
    LifetimeOutOfRange: (422, "lifetime-out-of-range"),
    ReceiptError: (422, "receipt-invalid"),
    ScheduleError: (422, "schedule-invalid"),
    LeverInvalid: (422, "lever-invalid"),
    ProviderRejected: (502, "provider-rejected"),
    CrmRejected: (502, "crm-rejected"),
    ProviderUnavailable: (503, "provider-unavailable"),
    CrmUnavailable: (503, "crm-unavailable"),
}

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Content",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def problem(status: int, slug: str, detail: str, **extra: Any) -> Response[str]:
    body = {
        "type": f"https://paybridge.dev/problems/{slug}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }
    return Response(
        status_code=status, content_type="application/problem+json", body=json.dumps(body, ensure_ascii=False)
    )


def register_problem_handlers(app: ApiGatewayResolver) -> None:
    @app.exception_handler(RequestValidationError)
    def _validation(exc: RequestValidationError) -> Response[str]:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors) or "invalid request"
        return problem(422, "validation-error", detail, errors=errors)

    def _mapped(exc: Exception) -> Response[str]:
        status, slug = PROBLEMS[type(exc)]
        return problem(status, slug, str(exc) or slug.replace("-", " "))

    for exc_class in PROBLEMS:
        app.exception_handler(exc_class)(_mapped)
