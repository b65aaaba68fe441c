"""Every HTTP function's entry: what is refused before the resolver reads anything, and the last-resort 500.

In order: the caller is authenticated (API-key routes: `http.auth.authenticate`, before the body is looked at —
an anonymous caller learns nothing about the body, the tenant or the validation rules); the body's size, content
type and encoding are checked; a JSON body is parsed once with bounded nesting (deep or huge JSON, invalid UTF-8,
NaN → 400/413/415 problem JSON, never a RecursionError). Only then does the Powertools resolver validate and route.
Anything unexpected, here or in the resolver, is one logged stack and a 500 problem with the correlation id."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from paybridge.adapters.wire import loads_json
from paybridge.http.auth import api_key_of, authenticate
from paybridge.http.problems import (
    PROBLEMS,
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    internal_error,
    mapped_problem,
    problem_event,
)
from paybridge.http.resolver import ApiGatewayResolver
from paybridge.tenants import ApiScope, TenantNotFound

#: Our JSON requests are small (an invoice with 100 receipt lines is ~30 KB).
MAX_JSON_BYTES = 256 * 1024
#: A webhook body: providers' and CRMs' notifications are a few KB.
MAX_WEBHOOK_BYTES = 1024 * 1024
#: A 1CClientBankExchange upload. API Gateway hands binary bodies to Lambda base64-encoded (4 bytes per 3) and a
#: Lambda request may be at most 6 MB (6,291,456 bytes) — so 4 MiB of file is 5.59 MB in the event, with room for
#: the headers and the rest of the event. Larger statements: upload one file per day or per account.
MAX_UPLOAD_BYTES = 4 * 1024 * 1024

BodyKind = Literal["json", "none", "file", "webhook"]
FILE_TYPES = ("application/octet-stream", "text/plain")


@dataclass(frozen=True)
class RoutePolicy:
    """How a route's request is screened: `api_key` — the tenant's key is checked first, and must carry one of
    `scopes` (403 otherwise); `body` — what it reads."""

    api_key: bool
    body: BodyKind
    scopes: tuple[ApiScope, ...] = ("integration",)


def resolve(
    app: ApiGatewayResolver, event: dict[str, Any], context: Any, routes: Mapping[str, RoutePolicy]
) -> dict[str, Any]:
    """`app.resolve(event, context)` behind the screening above; `routes` is keyed by the template's route key
    (`POST /v1/{tenant}/invoices`). A route not listed is screened as a JSON route with an API key."""
    try:
        policy = routes.get(str(event.get("routeKey") or ""), RoutePolicy(api_key=True, body="json"))
        refused = screen(event, policy)
        if refused is not None:
            return refused
        return app.resolve(event, context)
    except Exception:
        from paybridge.observability import logger

        logger.exception("unexpected error before or outside the resolver")
        status, slug, detail, extra = internal_error(logger.get_correlation_id())
        return problem_event(status, slug, detail, **extra)


KNOWN: tuple[type[Exception], ...] = (*PROBLEMS, TenantNotFound)


def screen(event: dict[str, Any], policy: RoutePolicy) -> dict[str, Any] | None:
    """The problem answer for a request refused before routing, or None to go on."""
    try:
        if policy.api_key:
            tenant = str((event.get("pathParameters") or {}).get("tenant") or "")
            authenticate(tenant, api_key_of(event.get("headers")), *policy.scopes)
        check_body(event, policy.body)
    except KNOWN as exc:
        return problem_event(*mapped_problem(exc))
    return None


def body_bytes(event: Mapping[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("the body is not valid base64") from None
    return body.encode("utf-8", "surrogatepass")


def media_type(headers: Mapping[str, str] | None) -> tuple[str, dict[str, str]]:
    """(`type/subtype` lower-cased, parameters) of the Content-Type header; ("", {}) without one."""
    value = next((v for k, v in (headers or {}).items() if k.lower() == "content-type"), "") or ""
    kind, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for part in rest.split(";"):
        name, sep, val = part.partition("=")
        if sep:
            params[name.strip().lower()] = val.strip().strip('"')
    return kind.strip().lower(), params


def check_body(event: Mapping[str, Any], kind: BodyKind) -> None:
    if kind == "none":
        return
    limit = {"json": MAX_JSON_BYTES, "file": MAX_UPLOAD_BYTES, "webhook": MAX_WEBHOOK_BYTES}[kind]
    encoded = len(event.get("body") or "")
    if (encoded * 3 // 4 if event.get("isBase64Encoded") else encoded) > limit * 4:  # before decoding a huge body
        raise PayloadTooLarge(f"the body may be at most {limit} bytes")
    data = body_bytes(event)
    if len(data) > limit:
        raise PayloadTooLarge(f"the body may be at most {limit} bytes")
    mtype, params = media_type(event.get("headers"))
    if kind == "webhook":
        return  # each provider's and CRM's parser reads its own format and refuses anything else (400)
    if mtype.startswith("multipart/"):
        raise UnsupportedMediaType(
            "multipart bodies are not read here: send the file itself as the body (application/octet-stream)"
            if kind == "file"
            else "send the body as application/json"
        )
    if kind == "file":
        if mtype and mtype not in FILE_TYPES:
            raise UnsupportedMediaType("send the statement file as the body with Content-Type application/octet-stream")
        return
    if not data.strip():
        return  # no body: the route's own validation says whether one is required
    if mtype != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
    charset = params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType("JSON bodies are UTF-8")
    try:
        parsed = loads_json(data)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if not isinstance(parsed, dict):
        raise BadRequest("the body must be a JSON object")
