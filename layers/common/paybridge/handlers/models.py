"""Request and response models of the HTTP API (separate from the domain entity; mapped explicitly)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from paybridge.domain.invoice import (
    AuditEntry,
    Customer,
    DealId,
    Invoice,
    InvoiceId,
    InvoiceNumber,
    InvoiceState,
    NewInvoice,
)
from paybridge.domain.money import Currency

StrictMinorUnits = Annotated[
    int, Field(strict=True, gt=0, le=10**13, description="Amount in minor units (kopecks, cents); integers only")
]


class CreateInvoiceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deal_id: DealId
    number: InvoiceNumber = Field(description="Invoice number; the same deal + number returns the same invoice")
    amount: StrictMinorUnits
    currency: Currency | None = Field(default=None, description="Defaults to the tenant's currency")
    description: str = Field(default="", max_length=250)
    customer: Customer = Field(default_factory=Customer)
    lifetime_seconds: int | None = Field(
        default=None, ge=1, le=90 * 24 * 3600, description="Link lifetime; defaults to the tenant's"
    )

    def to_domain(self, default_currency: str) -> NewInvoice:
        fields = {
            "deal_id": self.deal_id,
            "number": self.number,
            "amount": self.amount,
            "currency": self.currency or default_currency,
            "description": self.description,
            "customer": self.customer,
        }
        if self.lifetime_seconds is not None:
            fields["lifetime_seconds"] = self.lifetime_seconds
        return NewInvoice.model_validate(fields)


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=500)


class HistoryEntryOut(BaseModel):
    at: datetime
    event: str
    from_state: InvoiceState
    to_state: InvoiceState
    amount: int | None = None
    ref: str | None = None
    detail: str = ""


class InvoiceOut(BaseModel):
    invoice_id: InvoiceId
    tenant_id: str
    deal_id: str
    number: str
    state: InvoiceState
    amount: int
    paid: int
    refunded: int
    outstanding: int
    currency: str
    description: str
    provider: str
    payment_url: str | None
    qr_payload: str | None
    created_at: datetime
    expires_at: datetime
    flags: list[str]
    history: list[HistoryEntryOut] | None = None

    @classmethod
    def of(cls, invoice: Invoice, history: list[AuditEntry] | None = None) -> InvoiceOut:
        return cls(
            invoice_id=invoice.invoice_id,
            tenant_id=invoice.tenant_id,
            deal_id=invoice.deal_id,
            number=invoice.number,
            state=invoice.state,
            amount=invoice.amount,
            paid=invoice.paid,
            refunded=invoice.refunded,
            outstanding=invoice.outstanding,
            currency=invoice.currency,
            description=invoice.description,
            provider=invoice.provider,
            payment_url=invoice.payment_url,
            qr_payload=invoice.qr_payload,
            created_at=invoice.created_at,
            expires_at=invoice.expires_at,
            flags=list(invoice.flags),
            history=None if history is None else [HistoryEntryOut(**h.model_dump()) for h in history],
        )
