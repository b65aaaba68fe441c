"""What the webhook handlers share: verification runs on the raw body and headers (signatures are over the exact
bytes sent), and every rejected signature is counted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from aws_lambda_powertools.metrics import MetricUnit

from paybridge.adapters.errors import InvalidSignature
from paybridge.app.errors import RouteNotConfigured
from paybridge.http.resolver import APIGatewayHttpResolver
from paybridge.observability import logger, metrics
from paybridge.tenants import TenantNotFound

#: The one answer to a webhook we cannot attribute to a tenant's configured sender: an unknown tenant, a provider or
#: CRM the tenant does not use, a wrong signature or token. The reason is logged, not told.
NOT_VERIFIED = "the request's signature or token is not valid for this tenant and route"

T = TypeVar("T")


@dataclass(frozen=True)
class RawRequest:
    headers: dict[str, str]  # lower-cased names
    body: bytes
    source_ip: str | None
    query: dict[str, str]  # the URL's query string (a CRM whose webhooks are unsigned carries our token there)


def raw_body(app: APIGatewayHttpResolver) -> bytes:
    """The request body's own bytes: API Gateway base64-encodes binary bodies (a Windows-1251 file is not UTF-8 text,
    so it must not go through a text decode)."""
    import base64

    event = app.current_event
    if event.is_base64_encoded:
        return base64.b64decode(event.get("body") or "")
    return (event.get("body") or "").encode("utf-8")


def verified(app: APIGatewayHttpResolver, call: Callable[[RawRequest], T]) -> T:
    """Run `call(request)` on the raw request (API Gateway base64-encodes form bodies; decoded here). The source IP
    is API Gateway's own view of the caller (`requestContext.http.sourceIp`), not a header anyone can send."""
    event = app.current_event
    body = raw_body(app)
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    source_ip = event.request_context.http.source_ip or None
    query = dict(event.query_string_parameters or {})
    try:
        return call(RawRequest(headers=headers, body=body, source_ip=source_ip, query=query))
    except (InvalidSignature, TenantNotFound, RouteNotConfigured) as exc:
        metrics.add_metric(name="SignatureFailures", unit=MetricUnit.Count, value=1)
        logger.info("webhook refused: %s: %s", type(exc).__name__, exc)
        raise InvalidSignature(NOT_VERIFIED) from None
