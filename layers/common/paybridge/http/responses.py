"""What every route may answer besides its own models: problem JSON (RFC 9457) and the OpenAPI `responses` of
a route (`answers`), and the CRM webhook's answer."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from paybridge.domain.invoice import (
    InvoiceState,
)
from paybridge.http.api_model import ApiModel


class CrmInvoiceOut(ApiModel):
    invoice_id: str
    state: InvoiceState
    created: bool


class CrmWebhookOut(ApiModel):
    status: Literal["issued", "exists", "accepted", "ignored"]
    invoices: list[CrmInvoiceOut]
    checks: int
    ignored: list[str]
    #: The tenant's CRM action triggers this call matched (a refund, a new link): one line each (absent: none).
    actions: list[str] = []  # noqa: RUF012 - a pydantic field (copied per instance), not a class attribute


class ProblemError(ApiModel):
    loc: list[str]
    msg: str
    type: str


class Problem(ApiModel):
    """RFC 9457 problem details: every 4xx and 5xx answer (`application/problem+json`)."""

    type: str = Field(description="https://paybridge.dev/problems/<slug>")
    title: str
    status: int
    detail: str
    errors: list[ProblemError] | None = Field(default=None, description="422 validation-error: each invalid field")
    correlation_id: str | None = Field(default=None, description="500: quote it to the operator")


PROBLEM_DESCRIPTIONS = {
    400: "bad request: unreadable body (not UTF-8, not JSON, nested too deep) or malformed content",
    401: "unauthorized: unknown tenant, missing or wrong key, or a bad signature/token (the same answer for all)",
    403: "forbidden: the tenant's key does not carry the scope this route needs (`ops` for a person's levers)",
    404: "not found (also: a path parameter with characters the route does not match)",
    409: "conflict",
    413: "the body is over the route's limit",
    415: "a content type the route does not read",
    422: "invalid request: the problem lists each invalid field",
    500: "unexpected error: the problem carries a correlation id and nothing internal",
    502: "the payment provider or the CRM refused the call",
    503: "the payment provider or the CRM is unavailable: retry later",
}


def answers(ok: dict[int, tuple[str, Any, str | tuple[str, ...]]], *problems: int) -> dict[int, Any]:
    """The OpenAPI `responses` of a route: its successes `{status: (description, model or None, media type)}` and
    its problem statuses, each with the Problem schema as `application/problem+json`."""
    documented: dict[int, Any] = {}
    for status, (description, model, media) in ok.items():
        content = {"model": model} if model is not None else {"schema": {"type": "string"}}
        medias = (media,) if isinstance(media, str) else media
        documented[status] = {"description": description, "content": {m: content for m in medias}}
    for status in sorted({*problems, 401, 404, 422, 500}):  # 404: also a path the route cannot match
        documented[status] = {
            "description": PROBLEM_DESCRIPTIONS[status],
            "content": {"application/problem+json": {"model": Problem}},
        }
    return documented
