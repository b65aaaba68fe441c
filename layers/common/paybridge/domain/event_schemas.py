"""The payloads of the domain events, one model per type, and their versioned JSON Schemas (written to
`schemas/events/<type>.v1.json` by `make event-schemas`; a test checks every published event against them). Kept
apart from `domain_events.py` so that no handler builds these models at its cold start."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from paybridge.domain.domain_events import SCHEMA_VERSION, DomainEvent
from paybridge.domain.invoice import InvoiceState
from paybridge.domain.model import Model

# -- the payloads' schemas (versioned: `schemas/events/<type>.v1.json`, written by `make event-schemas`) ---------------


class _Data(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InvoiceData(_Data):
    invoice_id: str
    deal_id: str
    number: str
    provider: str
    state: InvoiceState
    amount: int = Field(description="Minor units")
    currency: str
    paid: int = Field(description="Minor units received so far")
    refunded: int = Field(description="Minor units refunded so far")
    version: int = Field(description="The invoice's version this event announces")
    subscription_id: str | None = None


class InvoiceIssuedData(InvoiceData):
    expires_at: datetime


class LinkPublishedData(InvoiceData):
    payment_id: str | None
    payment_url: str
    expires_at: datetime
    attempt: int


class PaymentReceivedData(InvoiceData):
    ref: str = Field(description="The operation at the provider or bank")
    received: int = Field(description="Minor units of this payment")
    method: Literal["card", "sbp", "bank_transfer", "saved_method", "manual", "unknown"]
    flags: list[str]


class StateChangedData(InvoiceData):
    from_state: InvoiceState


class InvoicePaidData(StateChangedData):
    paid_by_method: dict[str, int]


class RefundSucceededData(InvoiceData):
    ref: str
    refund: int = Field(description="Minor units of this refund")


class SubscriptionData(_Data):
    subscription_id: str
    period: int
    deal_id: str
    plan: str
    amount: int
    currency: str
    state: str
    failed_attempts: int
    invoice_id: str


class BankLineData(_Data):
    fingerprint: str
    account: str
    amount: int
    currency: str
    value_date: str
    decision: str
    reason: str
    numbers_found: list[str]


class DriftFinding(_Data):
    kind: str
    invoice_id: str
    deal_id: str
    detail: str
    repaired: bool


class DriftData(_Data):
    found: int
    findings: list[DriftFinding]
    repaired: int
    invoices_checked: int
    deals_checked: int


DATA_MODELS: dict[str, type[_Data]] = {
    "invoice.issued": InvoiceIssuedData,
    "invoice.link_published": LinkPublishedData,
    "payment.received": PaymentReceivedData,
    "invoice.paid": InvoicePaidData,
    "invoice.partially_paid": StateChangedData,
    "invoice.expired": StateChangedData,
    "invoice.cancelled": StateChangedData,
    "invoice.failed": StateChangedData,
    "refund.succeeded": RefundSucceededData,
    "subscription.charged": SubscriptionData,
    "subscription.blocked": SubscriptionData,
    "bank.line_needs_review": BankLineData,
    "drift.found": DriftData,
}


def validate(envelope: dict[str, Any]) -> None:
    """Raise `ValidationError` unless the envelope and its data fit the event type's schema."""
    event = DomainEvent.model_validate(envelope)
    DATA_MODELS[event.type].model_validate(event.data)


def event_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (2020-12) of one event type's envelope, version 1."""
    data = DATA_MODELS[kind].model_json_schema()
    definitions = data.pop("$defs", {})
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://paybridge.dev/schemas/events/{kind}.v{SCHEMA_VERSION}.json",
        "title": kind,
        "description": f"PayBridge domain event {kind}, schema version {SCHEMA_VERSION}: the EventBridge `detail` "
        "and the webhook body. Consumers dedupe by `id`.",
        "type": "object",
        "required": ["id", "type", "schema_version", "tenant_id", "occurred_at", "subject", "data"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "description": "Derived from the change: the same change, the same id"},
            "type": {"const": kind},
            "schema_version": {"const": SCHEMA_VERSION},
            "tenant_id": {"type": "string"},
            "occurred_at": {"type": "string", "format": "date-time"},
            "subject": {"type": "string"},
            "data": data,
        },
    }
    if definitions:
        schema["$defs"] = definitions
    return schema
