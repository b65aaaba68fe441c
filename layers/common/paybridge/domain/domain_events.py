"""Domain events: what PayBridge tells everything else a company runs (its CRM profile, mailing, marketing triggers,
its own systems through webhooks), derived from a change where it is applied.

Each event's id is derived from the change it announces — the invoice and its new version, the subscription and its
period, the bank line's fingerprint, the drift report — so a retried write or a duplicate notification (which change
nothing) can never announce a second event, and a republished event carries the same id: consumers dedupe by it.

The payload of every type is versioned (`schema_version`) and described by `schemas/events/<type>.v1.json`
(the models in `domain/event_schemas.py`, loaded only where they are checked or written).
Pure: no boto3, no HTTP. Money is in minor units."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import ConfigDict, Field

from paybridge.domain.invoice import Invoice, InvoiceState
from paybridge.domain.model import Model

#: The `source` of every event on the bus (EventBridge rules match on it).
SOURCE = "paybridge"
SCHEMA_VERSION = "1"

EventType = Literal[
    "invoice.issued",
    "invoice.link_published",
    "payment.received",
    "invoice.paid",
    "invoice.partially_paid",
    "invoice.expired",
    "invoice.cancelled",
    "invoice.failed",
    "refund.succeeded",
    "subscription.charged",
    "subscription.blocked",
    "bank.line_needs_review",
    "drift.found",
]
#: Every type, in the order above (the schemas in the repo are written from this).
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)


class DomainEvent(Model):
    """One event as published: the envelope (id, type, tenant, time, subject) and its `data`."""

    model_config = ConfigDict(frozen=True)
    id: str = Field(description="Derived from the change: the same change always has the same id")
    type: EventType
    schema_version: str = SCHEMA_VERSION
    tenant_id: str
    occurred_at: datetime
    #: What the event is about: an invoice id, a subscription id, a bank line's fingerprint, a drift report.
    subject: str
    data: dict[str, Any] = Field(default_factory=dict)

    def envelope(self) -> dict[str, Any]:
        """The JSON document consumers receive (EventBridge `detail`, a webhook's body)."""
        return self.model_dump(mode="json")


def _invoice_data(invoice: Invoice) -> dict[str, Any]:
    """What every invoice event carries: identity, terms and money (never the customer's personal data)."""
    return {
        "invoice_id": invoice.invoice_id,
        "deal_id": invoice.deal_id,
        "number": invoice.number,
        "provider": invoice.provider,
        "state": invoice.state.value,
        "amount": invoice.amount,
        "currency": invoice.currency,
        "paid": invoice.paid,
        "refunded": invoice.refunded,
        "version": invoice.version,
        **({"subscription_id": invoice.subscription_id} if invoice.subscription_id else {}),
    }


def _event(kind: EventType, invoice: Invoice, at: datetime, suffix: str = "", **data: Any) -> DomainEvent:
    return DomainEvent(
        id=f"{invoice.invoice_id}.v{invoice.version}.{kind}{suffix}",
        type=kind,
        tenant_id=invoice.tenant_id,
        occurred_at=at,
        subject=invoice.invoice_id,
        data={**_invoice_data(invoice), **data},
    )


def invoice_issued(invoice: Invoice) -> DomainEvent:
    return _event("invoice.issued", invoice, invoice.created_at, expires_at=invoice.expires_at.isoformat())


_STATE_EVENTS: dict[InvoiceState, EventType] = {
    InvoiceState.PAID: "invoice.paid",
    InvoiceState.PARTIALLY_PAID: "invoice.partially_paid",
    InvoiceState.EXPIRED: "invoice.expired",
    InvoiceState.CANCELLED: "invoice.cancelled",
    InvoiceState.FAILED: "invoice.failed",
}


def invoice_changed(before: Invoice, after: Invoice, at: datetime) -> list[DomainEvent]:
    """The events of one applied change (`after` is `before` with one domain event applied and its version up)."""
    events: list[DomainEvent] = []
    if after.payment_url and after.payment_url != before.payment_url:
        events.append(
            _event(
                "invoice.link_published",
                after,
                at,
                payment_id=after.payment_id,
                payment_url=after.payment_url,
                expires_at=after.expires_at.isoformat(),
                attempt=after.attempt,
            )
        )
    for ref in sorted(set(after.receipts) - set(before.receipts)):
        events.append(
            _event(
                "payment.received",
                after,
                at,
                suffix=f".{ref}",
                ref=ref,
                received=after.receipts[ref],
                method=after.receipt_methods.get(ref, "unknown"),
                flags=list(after.flags),
            )
        )
    for ref in sorted(set(after.refunds) - set(before.refunds)):
        events.append(_event("refund.succeeded", after, at, suffix=f".{ref}", ref=ref, refund=after.refunds[ref]))
    if before.state != after.state and after.state in _STATE_EVENTS:
        kind = _STATE_EVENTS[after.state]
        extra: dict[str, Any] = {"from_state": before.state.value}
        if after.state is InvoiceState.PAID:
            extra["paid_by_method"] = after.paid_by_method
        events.append(_event(kind, after, at, **extra))
    return events


def subscription_event(
    kind: Literal["subscription.charged", "subscription.blocked"],
    tenant_id: str,
    subscription_id: str,
    period: int,
    at: datetime,
    **data: Any,
) -> DomainEvent:
    return DomainEvent(
        id=f"{subscription_id}.p{period}.{kind}",
        type=kind,
        tenant_id=tenant_id,
        occurred_at=at,
        subject=subscription_id,
        data={"subscription_id": subscription_id, "period": period, **data},
    )


def bank_line_needs_review(tenant_id: str, fingerprint: str, at: datetime, **data: Any) -> DomainEvent:
    return DomainEvent(
        id=f"bank.{tenant_id}.{fingerprint}.bank.line_needs_review",
        type="bank.line_needs_review",
        tenant_id=tenant_id,
        occurred_at=at,
        subject=fingerprint,
        data={"fingerprint": fingerprint, **data},
    )


def drift_found(tenant_id: str, at: datetime, findings: list[dict[str, Any]], **data: Any) -> DomainEvent:
    stamp = at.strftime("%Y%m%dT%H%M%S%f")
    return DomainEvent(
        id=f"drift.{tenant_id}.{stamp}.drift.found",
        type="drift.found",
        tenant_id=tenant_id,
        occurred_at=at,
        subject=f"drift:{stamp}",
        data={"found": len(findings), "findings": findings, **data},
    )
