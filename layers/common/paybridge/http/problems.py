"""Errors → RFC 9457 problem bodies (`type`, `title`, `status`, `detail`), mapped by class in one place."""

from __future__ import annotations

import json
import logging
from typing import Any

from aws_lambda_powertools.event_handler.exceptions import ServiceError
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
    WebhookExists,
    WebhookInvalid,
    WebhookNotFound,
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
from paybridge.http.resolver import ApiGatewayResolver, Response
from paybridge.storage.errors import ConcurrentModification, IdempotencyKeyReused
from paybridge.tenants import TenantNotFound


class Unauthorized(Exception):
    """The HTTP layer's own: no or a wrong API key."""


class Forbidden(Exception):
    """The HTTP layer's own: a key of the tenant's without the scope the route needs."""


class BadRequest(Exception):
    """The HTTP layer's own: a body that cannot be read as asked (empty, not UTF-8, not JSON, nested too deep)."""


class PayloadTooLarge(Exception):
    """The HTTP layer's own: a body over the route's limit."""


class UnsupportedMediaType(Exception):
    """The HTTP layer's own: a body of a content type the route does not read."""


#: The one answer for an unknown tenant, a missing key and a wrong key: tenants cannot be enumerated.
UNAUTHORIZED_DETAIL = "missing or wrong credentials for this tenant"


PROBLEMS: dict[type[Exception], tuple[int, str]] = {
    Unauthorized: (401, "unauthorized"),
    Forbidden: (403, "forbidden"),
    InvalidSignature: (401, "invalid-signature"),
    BadRequest: (400, "bad-request"),
    PayloadTooLarge: (413, "payload-too-large"),
    UnsupportedMediaType: (415, "unsupported-media-type"),
    MalformedNotification: (400, "malformed-notification"),
    StatementFormatError: (400, "statement-invalid"),
    BankNotConfigured: (404, "bank-not-configured"),
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
    WebhookNotFound: (404, "webhook-not-found"),
    WebhookExists: (409, "webhook-exists"),
    WebhookInvalid: (422, "webhook-invalid"),
}

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


def problem_body(status: int, slug: str, detail: str, **extra: Any) -> str:
    body = {
        "type": f"https://paybridge.dev/problems/{slug}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }
    return json.dumps(body, ensure_ascii=False)


def problem(status: int, slug: str, detail: str, **extra: Any) -> Response[str]:
    return Response(status_code=status, content_type=PROBLEM_JSON, body=problem_body(status, slug, detail, **extra))


def problem_event(status: int, slug: str, detail: str, **extra: Any) -> dict[str, Any]:
    """The same problem as a Lambda proxy answer (for what is refused before the resolver runs)."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": PROBLEM_JSON},
        "body": problem_body(status, slug, detail, **extra),
        "isBase64Encoded": False,
    }


def mapped_problem(exc: Exception) -> tuple[int, str, str]:
    """(status, slug, detail) of one of our errors; TenantNotFound is the same 401 as a wrong key."""
    if isinstance(exc, TenantNotFound):
        return 401, "unauthorized", UNAUTHORIZED_DETAIL
    status, slug = PROBLEMS[type(exc)]
    return status, slug, str(exc) or slug.replace("-", " ")


def internal_error(correlation_id: str | None) -> tuple[int, str, str, dict[str, Any]]:
    """Any unexpected error: a 500 that names the request (to find its one logged stack) and nothing internal."""
    return (
        500,
        "internal-error",
        "an unexpected error; nothing about it is shown here — quote the correlation id to the operator",
        {"correlation_id": correlation_id or ""},
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
        return problem(*mapped_problem(exc))

    for exc_class in (*PROBLEMS, TenantNotFound):
        app.exception_handler(exc_class)(_mapped)

    @app.exception_handler(ServiceError)
    def _service_error(exc: ServiceError) -> Response[str]:  # Powertools' own (e.g. 404 no such route)
        status = int(exc.status_code)
        return problem(status, "not-found" if status == 404 else "error", str(exc.msg))

    @app.not_found
    def _not_found(exc: Exception) -> Response[str]:
        return problem(404, "not-found", "no such route")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[str]:
        from paybridge.observability import logger

        correlation_id = logger.get_correlation_id()
        event = app.current_event
        logger.exception("unexpected error answering %s", event.get("routeKey") or event.path)
        status, slug, detail, extra = internal_error(correlation_id)
        return problem(status, slug, detail, **extra)
